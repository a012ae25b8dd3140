//! Evaluates a parsed selector against one message, in SQL's three-valued logic.
//!
//! A name resolves to a header of that name, else to one of the message properties
//! (`routing_key`, `message_id`, `correlation_id`, `reply_to`, `content_type`, `priority`,
//! `timestamp`, `expiration`, `persistent`), else to null. Any comparison involving null, or
//! values that cannot be compared (a header that is not a number against a number), is
//! unknown; `NOT` unknown is unknown; `AND` and `OR` follow the SQL truth tables; and a message
//! passes only when the whole selector is true.

use std::cmp::Ordering;

use switchyard_plugin::{Id, Message, Value as Typed};

use crate::ast::{CompareOp, Expr, Literal, Number, Operand};

/// The outcome of a condition: SQL's three truth values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    /// A null or an incomparable value was involved.
    Unknown,
}

impl Truth {
    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }

    fn negate_if(self, negated: bool) -> Truth {
        if negated { self.not() } else { self }
    }
}

impl From<bool> for Truth {
    fn from(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }
}

/// A value during evaluation, borrowed from the message or the selector.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Null,
    Str(&'a str),
    Number(Number),
    Bool(bool),
}

pub(crate) fn evaluate(expr: &Expr, message: &Message) -> Truth {
    match expr {
        Expr::And(all) => {
            let mut result = Truth::True;
            for e in all {
                match evaluate(e, message) {
                    Truth::False => return Truth::False,
                    Truth::Unknown => result = Truth::Unknown,
                    Truth::True => {}
                }
            }
            result
        }
        Expr::Or(any) => {
            let mut result = Truth::False;
            for e in any {
                match evaluate(e, message) {
                    Truth::True => return Truth::True,
                    Truth::Unknown => result = Truth::Unknown,
                    Truth::False => {}
                }
            }
            result
        }
        Expr::Not(inner) => evaluate(inner, message).not(),
        Expr::Compare { op, left, right } => {
            compare(*op, value(left, message), value(right, message))
        }
        Expr::Between {
            operand,
            low,
            high,
            negated,
        } => {
            let v = value(operand, message);
            let above = compare(CompareOp::Ge, v, value(low, message));
            let below = compare(CompareOp::Le, v, value(high, message));
            and(above, below).negate_if(*negated)
        }
        Expr::In {
            operand,
            list,
            negated,
        } => {
            let v = value(operand, message);
            let mut result = Truth::False;
            for literal in list {
                match compare(CompareOp::Eq, v, literal_value(literal)) {
                    Truth::True => {
                        result = Truth::True;
                        break;
                    }
                    Truth::Unknown => result = Truth::Unknown,
                    Truth::False => {}
                }
            }
            result.negate_if(*negated)
        }
        Expr::Like {
            operand,
            pattern,
            negated,
        } => match value(operand, message) {
            Value::Str(text) => Truth::from(pattern.matches(text)).negate_if(*negated),
            _ => Truth::Unknown,
        },
        Expr::IsNull { operand, negated } => {
            Truth::from(value(operand, message) == Value::Null).negate_if(*negated)
        }
        Expr::Truth(operand) => match value(operand, message) {
            Value::Bool(b) => Truth::from(b),
            Value::Str(text) => parse_bool(text).map_or(Truth::Unknown, Truth::from),
            Value::Null | Value::Number(_) => Truth::Unknown,
        },
    }
}

fn and(a: Truth, b: Truth) -> Truth {
    match (a, b) {
        (Truth::False, _) | (_, Truth::False) => Truth::False,
        (Truth::True, Truth::True) => Truth::True,
        _ => Truth::Unknown,
    }
}

fn value<'a>(operand: &'a Operand, message: &'a Message) -> Value<'a> {
    match operand {
        Operand::Identifier(name) => resolve(name, message),
        Operand::Literal(literal) => literal_value(literal),
        Operand::Group(expr) => match evaluate(expr, message) {
            Truth::True => Value::Bool(true),
            Truth::False => Value::Bool(false),
            Truth::Unknown => Value::Null,
        },
    }
}

fn literal_value(literal: &Literal) -> Value<'_> {
    match literal {
        Literal::String(text) => Value::Str(text),
        Literal::Number(n) => Value::Number(*n),
        Literal::Bool(b) => Value::Bool(*b),
    }
}

/// A header's typed value as the selector sees it: numbers of every width as numbers, booleans,
/// strings; void, byte arrays, arrays and tables are null (nothing compares with them).
fn header_value(value: &Typed) -> Value<'_> {
    match value {
        Typed::String(text) => Value::Str(text),
        Typed::Bool(b) => Value::Bool(*b),
        Typed::U64(n) => Value::Number(match i64::try_from(*n) {
            Ok(i) => Number::Integer(i),
            Err(_) => Number::Decimal(*n as f64),
        }),
        Typed::Timestamp(t) => {
            Value::Number(Number::Integer(i64::try_from(*t).unwrap_or(i64::MAX)))
        }
        Typed::F32(_) | Typed::F64(_) | Typed::Decimal(_) => value
            .as_f64()
            .map_or(Value::Null, |x| Value::Number(Number::Decimal(x))),
        other => other
            .as_i64()
            .map_or(Value::Null, |i| Value::Number(Number::Integer(i))),
    }
}

/// A header of that name, else a property, else null.
fn resolve<'a>(name: &str, message: &'a Message) -> Value<'a> {
    if let Some(header) = message.header_value(name) {
        return header_value(header);
    }
    let properties = &message.properties;
    let text = |t: &'a Option<String>| t.as_deref().map_or(Value::Null, Value::Str);
    let id = |id: &'a Option<Id>| {
        id.as_ref()
            .and_then(Id::as_text)
            .map_or(Value::Null, Value::Str)
    };
    let millis = |m: Option<u64>| {
        m.map_or(Value::Null, |m| {
            Value::Number(match i64::try_from(m) {
                Ok(i) => Number::Integer(i),
                Err(_) => Number::Decimal(m as f64),
            })
        })
    };
    match name {
        "routing_key" => Value::Str(&message.routing_key),
        "message_id" => id(&properties.message_id),
        "correlation_id" => id(&properties.correlation_id),
        "reply_to" => text(&properties.reply_to),
        "content_type" => text(&properties.content_type),
        "content_encoding" => text(&properties.content_encoding),
        "type" => text(&properties.message_type),
        "user_id" => text(&properties.user_id),
        "app_id" => text(&properties.app_id),
        "priority" => Value::Number(Number::Integer(i64::from(properties.priority))),
        "timestamp" => millis(properties.timestamp),
        "expiration" => millis(properties.expiration),
        "persistent" => Value::Bool(properties.persistent),
        _ => Value::Null,
    }
}

fn compare(op: CompareOp, left: Value<'_>, right: Value<'_>) -> Truth {
    let ordering: Option<Ordering> = match (left, right) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Number(a), Value::Number(b)) => a.compare(b),
        (Value::Str(s), Value::Number(n)) => parse_number(s).and_then(|a| a.compare(n)),
        (Value::Number(n), Value::Str(s)) => parse_number(s).and_then(|b| n.compare(b)),
        (Value::Bool(a), Value::Bool(b)) => return equality(op, a == b),
        (Value::Str(s), Value::Bool(b)) | (Value::Bool(b), Value::Str(s)) => {
            return parse_bool(s).map_or(Truth::Unknown, |a| equality(op, a == b));
        }
        (Value::Number(_), Value::Bool(_)) | (Value::Bool(_), Value::Number(_)) => None,
    };
    ordering.map_or(Truth::Unknown, |o| Truth::from(op.holds(o)))
}

/// Booleans have no order: only `=` and `<>` are known.
fn equality(op: CompareOp, equal: bool) -> Truth {
    match op {
        CompareOp::Eq => Truth::from(equal),
        CompareOp::Ne => Truth::from(!equal),
        _ => Truth::Unknown,
    }
}

/// A header read as a number: an optional sign, digits, and an optional fraction and
/// exponent. Anything else, `inf` and `NaN` included, is not a number.
fn parse_number(text: &str) -> Option<Number> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::Integer(i));
    }
    let plausible = text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    if !plausible {
        return None;
    }
    text.parse::<f64>()
        .ok()
        .filter(|d| d.is_finite())
        .map(Number::Decimal)
}

/// A header read as a boolean: `true` or `false` in any case.
fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_as_numbers_only_when_they_are_numbers() {
        assert_eq!(parse_number("42"), Some(Number::Integer(42)));
        assert_eq!(parse_number("-7"), Some(Number::Integer(-7)));
        assert_eq!(parse_number("10.5"), Some(Number::Decimal(10.5)));
        assert_eq!(parse_number("1e3"), Some(Number::Decimal(1000.0)));
        for not_a_number in [
            "", "abc", "inf", "NaN", "infinity", " 5", "5 ", "1,5", "0x10",
        ] {
            assert_eq!(parse_number(not_a_number), None, "{not_a_number:?}");
        }
    }

    #[test]
    fn and_follows_the_sql_truth_table() {
        use Truth::*;
        for (a, b, expected) in [
            (True, True, True),
            (True, Unknown, Unknown),
            (False, Unknown, False),
            (Unknown, Unknown, Unknown),
            (True, False, False),
        ] {
            assert_eq!(and(a, b), expected, "{a:?} AND {b:?}");
            assert_eq!(and(b, a), expected, "{b:?} AND {a:?}");
        }
    }
}
