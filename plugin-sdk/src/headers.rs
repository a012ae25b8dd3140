//! Header matching as RabbitMQ's headers exchange does it.
//!
//! A binding's arguments say which headers a message must carry, and `x-match` says how many
//! of them must match:
//!
//! | `x-match`    | matches when                                  | `x-` arguments |
//! |--------------|-----------------------------------------------|----------------|
//! | `all` (default) | every argument is a header with that value | ignored        |
//! | `any`        | at least one argument is such a header        | ignored        |
//! | `all-with-x` | as `all`                                      | compared too   |
//! | `any-with-x` | as `any`                                      | compared too   |
//!
//! As in RabbitMQ, `all` with no arguments to compare matches every message and `any` with
//! none matches no message. `x-match` itself is never compared. Header values are strings and
//! compare exactly; a message carrying the same header twice matches if either value does.

use crate::message::{Header, find_header};

/// How many of a binding's arguments must be present in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl MatchMode {
    /// Parses an `x-match` value.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "all" => Ok(MatchMode::All),
            "any" => Ok(MatchMode::Any),
            "all-with-x" => Ok(MatchMode::AllWithX),
            "any-with-x" => Ok(MatchMode::AnyWithX),
            other => Err(format!(
                "x-match must be all, any, all-with-x or any-with-x, not {other:?}"
            )),
        }
    }
}

/// One binding's compiled header condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatcher {
    mode: MatchMode,
    required: Vec<Header>,
}

impl HeaderMatcher {
    /// Builds the condition from a binding's arguments; fails on a bad `x-match`.
    pub fn from_arguments(arguments: &[Header]) -> Result<Self, String> {
        let mode = match find_header(arguments, "x-match") {
            Some(value) => MatchMode::parse(value)?,
            None => MatchMode::All,
        };
        let with_x = matches!(mode, MatchMode::AllWithX | MatchMode::AnyWithX);
        let required = arguments
            .iter()
            .filter(|a| a.name != "x-match" && (with_x || !a.name.starts_with("x-")))
            .cloned()
            .collect();
        Ok(HeaderMatcher { mode, required })
    }

    pub fn mode(&self) -> MatchMode {
        self.mode
    }

    /// Whether a message with these headers matches.
    pub fn matches(&self, headers: &[Header]) -> bool {
        let present = |want: &Header| {
            headers
                .iter()
                .any(|h| h.name == want.name && h.value == want.value)
        };
        match self.mode {
            MatchMode::All | MatchMode::AllWithX => self.required.iter().all(present),
            MatchMode::Any | MatchMode::AnyWithX => self.required.iter().any(present),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs.iter().map(|(n, v)| Header::new(*n, *v)).collect()
    }

    #[test]
    fn all_needs_every_argument_and_ignores_x_arguments() {
        let m = HeaderMatcher::from_arguments(&h(&[
            ("x-match", "all"),
            ("a", "1"),
            ("b", "2"),
            ("x-extra", "z"),
        ]))
        .unwrap();
        assert!(m.matches(&h(&[("a", "1"), ("b", "2")])));
        assert!(m.matches(&h(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!m.matches(&h(&[("a", "1")])));
        assert!(!m.matches(&h(&[("a", "1"), ("b", "3")])));
    }

    #[test]
    fn any_with_x_compares_x_arguments() {
        let m =
            HeaderMatcher::from_arguments(&h(&[("x-match", "any-with-x"), ("x-k", "v")])).unwrap();
        assert!(m.matches(&h(&[("x-k", "v")])));
        assert!(!m.matches(&h(&[("x-k", "w")])));
    }

    #[test]
    fn empty_all_matches_everything_and_empty_any_nothing() {
        let all = HeaderMatcher::from_arguments(&[]).unwrap();
        assert_eq!(all.mode(), MatchMode::All);
        assert!(all.matches(&[]));
        let any = HeaderMatcher::from_arguments(&h(&[("x-match", "any")])).unwrap();
        assert!(!any.matches(&h(&[("a", "1")])));
    }

    #[test]
    fn bad_x_match_is_an_error() {
        let err = HeaderMatcher::from_arguments(&h(&[("x-match", "most")])).unwrap_err();
        assert!(err.contains("most"), "{err}");
    }
}
