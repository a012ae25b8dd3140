//! The `json-route` exchange type: routes on the value of one field of a JSON message body,
//! which AMQP's classic exchange types cannot see.
//!
//! # Using it
//!
//! * **`field`** (exchange argument, required): where the value is, as a dotted path into the
//!   body, e.g. `order.region`. A segment of digits also indexes an array, so `items.0.sku` is
//!   the `sku` of the first item. Member names containing `.` cannot be addressed.
//! * **Binding key:** the value to match. A string field matches its text (`eu` matches
//!   `"eu"`, escapes decoded); a number, `true`, `false` or `null` matches its JSON text
//!   exactly as the publisher wrote it (`42` matches `42` but not `42.0`). Keys are text, so
//!   the key `42` matches both `42` and `"42"`, and `true` both `true` and `"true"`. An object
//!   or array matches no value. The key `*` matches every message in which the field exists,
//!   whatever its value.
//!
//! A message whose body is missing, is not JSON (nesting deeper than 128 levels counts as not
//! JSON) or lacks the field is unroutable. A destination bound more than once gets one copy.
//!
//! The plugin reads message bodies, which the broker copies into it for every message, so use
//! it where the routing decision really is in the body.

mod index;
mod json;
mod path;

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

pub use index::ANY_VALUE;
use index::BindingIndex;
pub use json::MAX_DEPTH;
pub use path::FieldPath;

/// The exchange argument that names the field to route on.
pub const FIELD_ARGUMENT: &str = "field";

/// One json-route exchange.
#[derive(Debug)]
pub struct JsonRouteExchange {
    field: FieldPath,
    index: BindingIndex,
}

impl JsonRouteExchange {
    /// The field this exchange routes on.
    pub fn field(&self) -> &FieldPath {
        &self.field
    }
}

impl Router for JsonRouteExchange {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "json-route",
            env!("CARGO_PKG_VERSION"),
            "routes on a field of a JSON body (argument `field`, e.g. order.region); binding \
             key = the value, or * for any",
        )
        .reads_body()
    }

    fn create(arguments: &Table) -> Result<Self, String> {
        let Some(text) = arguments.get_str(FIELD_ARGUMENT) else {
            return Err(format!(
                "a json-route exchange needs a `{FIELD_ARGUMENT}` argument naming the JSON field \
                 to route on as a string, e.g. {FIELD_ARGUMENT}=order.region"
            ));
        };
        let field = FieldPath::parse(text).map_err(|e| format!("`{FIELD_ARGUMENT}`: {e}"))?;
        Ok(JsonRouteExchange {
            field,
            index: BindingIndex::default(),
        })
    }

    fn bind(&mut self, binding: Binding) {
        self.index.insert(binding.key, binding.destination);
    }

    fn unbind(&mut self, binding: &Binding) {
        self.index.remove(&binding.key, binding.destination);
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        let Some(body) = &message.body else {
            return Vec::new();
        };
        let value = json::extract(body, self.field.segments());
        self.index.route(value.as_ref())
    }
}

switchyard_plugin::export_router!(JsonRouteExchange);

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(field: &str, bindings: &[(u32, &str)]) -> JsonRouteExchange {
        let mut exchange = JsonRouteExchange::create(&Table::new().with("field", field)).unwrap();
        for &(destination, key) in bindings {
            let binding = Binding::new(destination, key);
            exchange.validate_binding(&binding).unwrap();
            exchange.bind(binding);
        }
        exchange
    }

    fn routed(exchange: &JsonRouteExchange, body: &str) -> Vec<u32> {
        exchange
            .route(&Message::with_key("ignored").body(body))
            .iter()
            .map(|d| d.0)
            .collect()
    }

    #[test]
    fn routes_on_a_nested_string_field() {
        let exchange = exchange("order.region", &[(1, "eu"), (2, "us"), (3, "*")]);
        assert_eq!(
            routed(&exchange, r#"{"order":{"region":"eu"}}"#),
            vec![1, 3]
        );
        assert_eq!(
            routed(&exchange, r#"{"order":{"region":"us","n":1}}"#),
            vec![2, 3]
        );
        assert_eq!(routed(&exchange, r#"{"order":{"region":"apac"}}"#), vec![3]);
        assert_eq!(routed(&exchange, r#"{"order":{"region":"EU"}}"#), vec![3]);
    }

    /// (body, destinations) for bindings 1 → `42`, 2 → `true`, 3 → `null`, 4 → `*`,
    /// 5 → `"42"` as text, i.e. the key `42` too.
    const SCALAR_CASES: &[(&str, &[u32])] = &[
        (r#"{"v":42}"#, &[1, 4, 5]),
        (r#"{"v":"42"}"#, &[1, 4, 5]),
        (r#"{"v":42.0}"#, &[4]),
        (r#"{"v":true}"#, &[2, 4]),
        (r#"{"v":"true"}"#, &[2, 4]),
        (r#"{"v":null}"#, &[3, 4]),
        (r#"{"v":{"x":1}}"#, &[4]),
        (r#"{"v":[42]}"#, &[4]),
        (r#"{"w":42}"#, &[]),
        (r#"{"v":42"#, &[]),
        ("not json", &[]),
        ("", &[]),
    ];

    #[test]
    fn numbers_bools_and_null_match_their_json_text() {
        let exchange = exchange(
            "v",
            &[(1, "42"), (2, "true"), (3, "null"), (4, "*"), (5, "42")],
        );
        for &(body, expected) in SCALAR_CASES {
            assert_eq!(routed(&exchange, body), expected, "{body}");
        }
    }

    #[test]
    fn routes_through_array_indexes() {
        let exchange = exchange("items.0.sku", &[(1, "A-1"), (2, "B-2")]);
        assert_eq!(
            routed(&exchange, r#"{"items":[{"sku":"B-2"},{"sku":"A-1"}]}"#),
            vec![2]
        );
        assert_eq!(routed(&exchange, r#"{"items":[]}"#), Vec::<u32>::new());
    }

    #[test]
    fn a_message_without_a_body_routes_nowhere() {
        let exchange = exchange("a", &[(1, "*")]);
        assert!(exchange.route(&Message::with_key("a")).is_empty());
    }

    #[test]
    fn a_destination_matching_twice_gets_one_copy() {
        let exchange = exchange("r", &[(1, "eu"), (1, "*"), (1, "eu"), (2, "eu")]);
        assert_eq!(routed(&exchange, r#"{"r":"eu"}"#), vec![1, 2]);
    }

    #[test]
    fn unbinding_removes_one_binding_at_a_time() {
        let mut exchange = exchange("r", &[(1, "eu"), (1, "eu"), (2, "*")]);
        exchange.unbind(&Binding::new(1, "eu"));
        assert_eq!(routed(&exchange, r#"{"r":"eu"}"#), vec![1, 2]);
        exchange.unbind(&Binding::new(1, "eu"));
        assert_eq!(routed(&exchange, r#"{"r":"eu"}"#), vec![2]);
        exchange.unbind(&Binding::new(2, "*"));
        assert_eq!(routed(&exchange, r#"{"r":"eu"}"#), Vec::<u32>::new());
        // Unbinding what was never bound is harmless.
        exchange.unbind(&Binding::new(7, "eu"));
        exchange.unbind(&Binding::new(7, "*"));
        assert_eq!(routed(&exchange, r#"{"r":"eu"}"#), Vec::<u32>::new());
    }

    #[test]
    fn the_empty_string_is_a_value_like_any_other() {
        let exchange = exchange("r", &[(1, "")]);
        assert_eq!(routed(&exchange, r#"{"r":""}"#), vec![1]);
        assert_eq!(routed(&exchange, r#"{"r":"x"}"#), Vec::<u32>::new());
    }

    #[test]
    fn create_requires_a_well_formed_field() {
        let err = JsonRouteExchange::create(&Table::new()).unwrap_err();
        assert!(err.contains("`field` argument"), "{err}");
        let err = JsonRouteExchange::create(&Table::new().with("field", "")).unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = JsonRouteExchange::create(&Table::new().with("field", "a..b")).unwrap_err();
        assert!(err.contains("empty segment at byte 2"), "{err}");
        let ok = JsonRouteExchange::create(
            &Table::new()
                .with("other", "x")
                .with("field", "order.region"),
        )
        .unwrap();
        assert_eq!(ok.field().to_string(), "order.region");
    }

    #[test]
    fn info_names_the_type_and_reads_the_body() {
        let info = JsonRouteExchange::info();
        assert_eq!(info.name, "json-route");
        assert!(info.reads.body);
        assert!(!info.reads.headers);
    }
}
