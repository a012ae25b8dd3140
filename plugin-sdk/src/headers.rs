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
//! none matches no message; `x-match` itself is never compared; a message carrying the same
//! header twice matches if either value does.
//!
//! Values are typed and compared as RabbitMQ compares them: of the same kind and equal. Every
//! integer width is one kind (`1` as an `i32` matches `1` as an `i64`) and both float widths
//! are one kind, but an integer never matches a string (`1` is not `"1"`), nor a float. An
//! argument of type void asks only that the header be present, whatever its value. An argument
//! holding a table is ignored.

use switchyard_value::{Table, Value};

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
    pub fn parse(value: &Value) -> Result<Self, String> {
        match value.as_str() {
            Some("all") => Ok(MatchMode::All),
            Some("any") => Ok(MatchMode::Any),
            Some("all-with-x") => Ok(MatchMode::AllWithX),
            Some("any-with-x") => Ok(MatchMode::AnyWithX),
            _ => Err(format!(
                "x-match must be all, any, all-with-x or any-with-x, not {value} ({})",
                value.type_name()
            )),
        }
    }
}

/// One binding's compiled header condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatcher {
    mode: MatchMode,
    required: Vec<(String, Value)>,
}

impl HeaderMatcher {
    /// Builds the condition from a binding's arguments; fails on a bad `x-match`.
    pub fn from_arguments(arguments: &Table) -> Result<Self, String> {
        let mode = match arguments.get("x-match") {
            Some(value) => MatchMode::parse(value)?,
            None => MatchMode::All,
        };
        let with_x = matches!(mode, MatchMode::AllWithX | MatchMode::AnyWithX);
        let required = arguments
            .iter()
            .filter(|(name, value)| {
                *name != "x-match"
                    && (with_x || !name.starts_with("x-"))
                    && !matches!(value, Value::Table(_))
            })
            .map(|(name, value)| (name.to_owned(), value.clone()))
            .collect();
        Ok(HeaderMatcher { mode, required })
    }

    pub fn mode(&self) -> MatchMode {
        self.mode
    }

    /// Whether a message with these headers matches.
    pub fn matches(&self, headers: &Table) -> bool {
        let present = |(name, wanted): &(String, Value)| {
            headers
                .iter()
                .any(|(header, value)| header == name && value_matches(wanted, value))
        };
        match self.mode {
            MatchMode::All | MatchMode::AllWithX => self.required.iter().all(present),
            MatchMode::Any | MatchMode::AnyWithX => self.required.iter().any(present),
        }
    }
}

/// Whether a header value satisfies a binding argument (see the module docs).
pub fn value_matches(argument: &Value, header: &Value) -> bool {
    match (argument, header) {
        (Value::Void, _) => true,
        (a, h) if a.is_integer() && h.is_integer() => integer(a) == integer(h),
        (Value::F32(_) | Value::F64(_), Value::F32(_) | Value::F64(_)) => {
            argument.as_f64() == header.as_f64()
        }
        (a, h) => a == h,
    }
}

/// Any integer width, exactly.
fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::U64(n) => Some(i128::from(*n)),
        other => other.as_i64().map(i128::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Table {
        pairs.iter().copied().collect()
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
        let all = HeaderMatcher::from_arguments(&Table::new()).unwrap();
        assert_eq!(all.mode(), MatchMode::All);
        assert!(all.matches(&Table::new()));
        let any = HeaderMatcher::from_arguments(&h(&[("x-match", "any")])).unwrap();
        assert!(!any.matches(&h(&[("a", "1")])));
    }

    #[test]
    fn bad_x_match_is_an_error() {
        let err = HeaderMatcher::from_arguments(&h(&[("x-match", "most")])).unwrap_err();
        assert!(err.contains("most"), "{err}");
        let err = HeaderMatcher::from_arguments(&Table::new().with("x-match", 1_i32)).unwrap_err();
        assert!(err.contains("an integer"), "{err}");
    }

    #[test]
    fn values_match_by_kind_and_value_as_in_rabbitmq() {
        let bind = |value: Value| HeaderMatcher::from_arguments(&Table::new().with("n", value));
        let header = |value: Value| Table::new().with("n", value);
        let one = bind(Value::I32(1)).unwrap();
        assert!(
            one.matches(&header(Value::I64(1))),
            "integer widths are one kind"
        );
        assert!(one.matches(&header(Value::U8(1))));
        assert!(
            !one.matches(&header(Value::String("1".into()))),
            "1 is not \"1\""
        );
        assert!(!one.matches(&header(Value::F64(1.0))), "nor 1.0");
        assert!(!one.matches(&header(Value::I64(2))));
        let text = bind(Value::String("1".into())).unwrap();
        assert!(!text.matches(&header(Value::I32(1))));
        assert!(text.matches(&header(Value::String("1".into()))));
        let yes = bind(Value::Bool(true)).unwrap();
        assert!(yes.matches(&header(Value::Bool(true))));
        assert!(!yes.matches(&header(Value::String("true".into()))));
        let half = bind(Value::F32(0.5)).unwrap();
        assert!(half.matches(&header(Value::F64(0.5))));
        let present = bind(Value::Void).unwrap();
        assert!(present.matches(&header(Value::String("anything".into()))));
        assert!(!present.matches(&Table::new()));
    }

    #[test]
    fn a_table_argument_is_ignored() {
        let m = HeaderMatcher::from_arguments(
            &Table::new()
                .with("region", "eu")
                .with("nested", Table::new().with("k", "v")),
        )
        .unwrap();
        assert!(m.matches(&h(&[("region", "eu")])));
    }
}
