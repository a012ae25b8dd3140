//! The `selector` consumer filter: JMS-style message selectors, a subset of SQL-92 conditions
//! over a message's headers and properties. A consumer subscribes with, say,
//! `region = 'eu' AND priority > 5` and receives only the messages for which it is true.
//!
//! # The language
//!
//! * **Names** are headers; a name that is not a header is one of the properties
//!   `routing_key`, `message_id`, `correlation_id` (text ids; a binary id is null),
//!   `reply_to`, `content_type`, `content_encoding`, `type`, `user_id`, `app_id`, `priority`,
//!   `timestamp`, `expiration`, `persistent`; anything else is null. Bare names start with a
//!   letter, `_` or `$` and go on with letters, digits, `_`, `$` and `.`; write any other
//!   header name in double quotes: `"x-region" = 'eu'`. Names are case-sensitive.
//! * **Literals:** `'strings'` (`''` for a quote), integers (`42`, `-7`), decimals (`10.5`,
//!   `1e3`), `TRUE`, `FALSE`.
//! * **Comparisons:** `=`, `<>` (or `!=`), `<`, `<=`, `>`, `>=`. Header values are typed:
//!   an integer of any width, a float or a decimal is a number and compares numerically (`2`
//!   as an `i8` equals `2.0`); a boolean is a boolean; a timestamp is its seconds; void, byte
//!   arrays, arrays and tables are null. A string header compared with a number compares
//!   numerically if it reads as one (MQTT user properties and STOMP headers are strings), and
//!   makes the comparison unknown if not. Strings order by code point. Booleans only compare
//!   with `=` and `<>`; a string header reading `true` or `false` (any case) is a boolean
//!   there.
//! * **Predicates:** `x [NOT] BETWEEN a AND b`, `x [NOT] IN ('a', 'b', 3)`,
//!   `x [NOT] LIKE 'ord%'` (`%` any run, `_` one character, optional `ESCAPE '\'`),
//!   `x IS [NOT] NULL`. A name or `TRUE`/`FALSE` may stand alone as a condition
//!   (`persistent AND priority > 5`).
//! * **Logic:** `NOT`, `AND`, `OR` (in falling precedence) and parentheses. Keywords are
//!   case-insensitive.
//!
//! Logic is three-valued as in SQL: a comparison involving a missing name (null) or values that
//! cannot be compared is unknown, `NOT` unknown is unknown, `FALSE AND` unknown is false and
//! `TRUE OR` unknown is true. A message passes only if the selector is true, so both `tag = 'x'`
//! and `NOT (tag = 'x')` refuse a message without `tag`; use `tag IS NULL` to ask about absence.
//!
//! A selector is at most [`MAX_SELECTOR_BYTES`] bytes and nests parentheses and `NOT`s at most
//! [`MAX_NESTING`] deep. Errors give the byte position (from 0) and what was expected there.
//!
//! [`Selector`] is the entry point: [`Selector::parse`] compiles, [`Selector::evaluate`] runs.

mod ast;
mod error;
mod eval;
mod lexer;
mod like;
mod parser;

use switchyard_plugin::{Filter, Message, PluginInfo};

pub use error::SelectorError;
pub use eval::Truth;

/// The longest selector accepted, in bytes.
pub const MAX_SELECTOR_BYTES: usize = 4096;

/// How deeply parentheses and `NOT`s may nest.
pub const MAX_NESTING: usize = 64;

/// A compiled selector.
#[derive(Debug, Clone)]
pub struct Selector {
    expr: ast::Expr,
}

impl Selector {
    /// Compiles a selector; the error says where and why it is not one.
    pub fn parse(source: &str) -> Result<Selector, SelectorError> {
        if source.len() > MAX_SELECTOR_BYTES {
            return Err(SelectorError::TooLong {
                length: source.len(),
            });
        }
        parser::parse(source).map(|expr| Selector { expr })
    }

    /// The selector's truth value for `message`; it passes only on [`Truth::True`].
    pub fn evaluate(&self, message: &Message) -> Truth {
        eval::evaluate(&self.expr, message)
    }
}

impl Filter for Selector {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "selector",
            env!("CARGO_PKG_VERSION"),
            "JMS/SQL-style selectors over headers and properties, e.g. \
             region = 'eu' AND priority > 5",
        )
        .reads_headers()
        .reads_properties()
    }

    fn compile(expression: &str) -> Result<Self, String> {
        Selector::parse(expression).map_err(|e| e.to_string())
    }

    fn matches(&self, message: &Message) -> bool {
        self.evaluate(message) == Truth::True
    }
}

switchyard_plugin::export_filter!(Selector);

#[cfg(test)]
mod tests;
