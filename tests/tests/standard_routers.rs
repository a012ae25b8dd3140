//! The standard exchange types, table-driven, through the real host and the real components
//! built from `plugins/`.

use std::path::Path;
use switchyard::plugin::{BindingSpec, RouterPlugin};

use switchyard::{Message, Table, Value};
use switchyard_tests::{registry, wasm};

fn routed(router: &RouterPlugin, exchange: u32, message: &Message) -> Vec<u32> {
    router
        .route(exchange, message)
        .unwrap_or_else(|e| panic!("route failed: {e}"))
        .to_vec()
}

/// (pattern, routing key, matches) — RabbitMQ's topic semantics.
const TOPIC_CASES: &[(&str, &str, bool)] = &[
    ("a.b.c", "a.b.c", true),
    ("a.b.c", "a.b", false),
    ("a.b.c", "a.b.c.d", false),
    ("a.*.c", "a.b.c", true),
    ("a.*.c", "a.c", false),
    ("a.*.c", "a.b.b.c", false),
    ("*", "a", true),
    ("*", "", false),
    ("*", "a.b", false),
    ("*.*", "a.b", true),
    ("*.*", "a", false),
    ("#", "", true),
    ("#", "a", true),
    ("#", "a.b.c.d.e", true),
    ("a.#", "a", true),
    ("a.#", "a.b", true),
    ("a.#", "a.b.c", true),
    ("a.#", "b.a", false),
    ("#.a", "a", true),
    ("#.a", "x.y.a", true),
    ("#.a", "a.b", false),
    ("a.#.b", "a.b", true),
    ("a.#.b", "a.x.y.b", true),
    ("a.#.b", "a.x.y.c", false),
    ("#.#", "", true),
    ("#.#", "a.b.c", true),
    ("#.b.#", "b", true),
    ("#.b.#", "a.b.c", true),
    ("#.b.#", "a.c", false),
    ("*.#", "", false),
    ("#.*.#", "", false),
    ("*.#", "a", true),
    ("#.*", "a.b", true),
    ("*.*.#", "a", false),
    ("a..b", "a..b", true),
    ("a..b", "a.b", false),
    ("a.*.b", "a..b", true),
    ("", "", true),
    ("", "a", false),
    ("*.", "a.", true),
    ("#.", ".", true),
    ("stock.*.nyse", "stock.ibm.nyse", true),
    ("stock.#", "stock", true),
    ("a.*.#.c", "a.b.c", true),
    ("a.*.#.c", "a.c", false),
    ("#.#.#.#.z", "a.b.c.d.e.f.g.h.z", true),
    ("#.#.#.#.z", "a.b.c.d.e.f.g.h.y", false),
    ("A.b", "a.b", false),
    ("a.b", "a.b.", false),
];

#[test]
fn topic_routes_as_rabbitmq_for_every_case_in_the_table() {
    let registry = registry();
    let topic = registry.router("topic").unwrap();
    for (i, &(pattern, key, expected)) in TOPIC_CASES.iter().enumerate() {
        let exchange = i as u32;
        topic.create_exchange(exchange, Table::new()).unwrap();
        topic.bind(exchange, BindingSpec::new(7, pattern)).unwrap();
        let got = routed(&topic, exchange, &Message::new(key, ""));
        let want: Vec<u32> = if expected { vec![7] } else { vec![] };
        assert_eq!(got, want, "pattern {pattern:?} against key {key:?}");
    }
}

#[test]
fn topic_gives_a_destination_bound_by_several_matching_patterns_one_copy() {
    let registry = registry();
    let topic = registry.router("topic").unwrap();
    topic.create_exchange(1, Table::new()).unwrap();
    for pattern in ["stock.*", "#", "stock.ibm", "*.ibm"] {
        topic.bind(1, BindingSpec::new(10, pattern)).unwrap();
    }
    topic.bind(1, BindingSpec::new(11, "fx.#")).unwrap();
    assert_eq!(routed(&topic, 1, &Message::new("stock.ibm", "")), vec![10]);
    assert_eq!(routed(&topic, 1, &Message::new("fx.eur", "")), vec![10, 11]);
}

#[test]
fn unbinding_takes_effect_for_the_next_message_even_when_the_decision_was_cached() {
    let registry = registry();
    let topic = registry.router("topic").unwrap();
    topic.create_exchange(1, Table::new()).unwrap();
    topic.bind(1, BindingSpec::new(1, "a.*")).unwrap();
    let message = Message::new("a.b", "");
    assert_eq!(routed(&topic, 1, &message), vec![1]);
    assert_eq!(
        routed(&topic, 1, &message),
        vec![1],
        "served from the cache"
    );
    topic.bind(1, BindingSpec::new(2, "#")).unwrap();
    assert_eq!(routed(&topic, 1, &message), vec![1, 2]);
    assert!(topic.unbind(1, &BindingSpec::new(1, "a.*")).unwrap());
    assert_eq!(routed(&topic, 1, &message), vec![2]);
    assert!(!topic.unbind(1, &BindingSpec::new(1, "a.*")).unwrap());
    topic.destroy_exchange(1);
    assert!(
        topic.route(1, &message).is_err(),
        "a destroyed exchange routes nothing"
    );
}

#[test]
fn direct_and_fanout_route_as_their_names_say() {
    let registry = registry();
    let direct = registry.router("direct").unwrap();
    direct.create_exchange(1, Table::new()).unwrap();
    direct.bind(1, BindingSpec::new(1, "orders")).unwrap();
    direct.bind(1, BindingSpec::new(2, "orders")).unwrap();
    direct.bind(1, BindingSpec::new(3, "payments")).unwrap();
    assert_eq!(routed(&direct, 1, &Message::new("orders", "")), vec![1, 2]);
    assert_eq!(
        routed(&direct, 1, &Message::new("order", "")),
        Vec::<u32>::new()
    );
    assert!(
        !direct.bind(1, BindingSpec::new(1, "orders")).unwrap(),
        "binding twice is a no-op"
    );

    let fanout = registry.router("fanout").unwrap();
    fanout.create_exchange(1, Table::new()).unwrap();
    fanout.bind(1, BindingSpec::new(4, "")).unwrap();
    fanout.bind(1, BindingSpec::new(5, "ignored")).unwrap();
    assert_eq!(
        routed(&fanout, 1, &Message::new("anything", "")),
        vec![4, 5]
    );
}

#[test]
fn headers_matches_every_x_match_mode_with_missing_and_extra_headers() {
    let registry = registry();
    let headers = registry.router("headers").unwrap();
    headers.create_exchange(1, Table::new()).unwrap();
    let bind = |destination: u32, mode: Option<&str>, args: &[(&str, &str)]| {
        let mut spec = BindingSpec::new(destination, "");
        if let Some(mode) = mode {
            spec = spec.with_argument("x-match", mode);
        }
        for (k, v) in args {
            spec = spec.with_argument(*k, *v);
        }
        headers.bind(1, spec).unwrap();
    };
    bind(1, None, &[("format", "pdf"), ("type", "report")]); // default: all
    bind(2, Some("all"), &[("format", "pdf"), ("x-tag", "z")]);
    bind(3, Some("any"), &[("format", "zip"), ("type", "log")]);
    bind(4, Some("all-with-x"), &[("format", "pdf"), ("x-tag", "z")]);
    bind(5, Some("any-with-x"), &[("x-tag", "z"), ("type", "nope")]);
    bind(6, Some("any"), &[]);

    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Headers<'_>, &[u32])] = &[
        (&[("format", "pdf"), ("type", "report")], &[1, 2]),
        (
            &[("format", "pdf"), ("type", "report"), ("extra", "1")],
            &[1, 2],
        ),
        (&[("format", "pdf")], &[2]),
        (&[("format", "pdf"), ("x-tag", "z")], &[2, 4, 5]),
        (&[("x-tag", "z")], &[5]),
        (&[("type", "log")], &[3]),
        (&[("format", "zip"), ("type", "log")], &[3]),
        (&[("format", "PDF"), ("type", "report")], &[]),
        (&[], &[]),
    ];
    for (message_headers, expected) in cases {
        let mut message = Message::new("ignored", "");
        for (k, v) in *message_headers {
            message = message.with_header(*k, *v);
        }
        assert_eq!(
            routed(&headers, 1, &message),
            expected.to_vec(),
            "headers {message_headers:?}"
        );
    }
}

#[test]
fn headers_refuses_a_binding_with_a_bad_x_match() {
    let registry = registry();
    let headers = registry.router("headers").unwrap();
    headers.create_exchange(1, Table::new()).unwrap();
    let error = headers
        .bind(1, BindingSpec::new(1, "").with_argument("x-match", "most"))
        .unwrap_err();
    assert!(error.to_string().contains("x-match"), "{error}");
    assert!(headers.bindings(1).is_empty());
}

#[test]
fn json_route_routes_on_a_field_of_the_body() {
    let registry = registry();
    let json = registry.router("json-route").unwrap();
    let missing = json.create_exchange(1, Table::new()).unwrap_err();
    assert!(missing.to_string().contains("field"), "{missing}");
    json.create_exchange(1, Table::new().with("field", "order.region"))
        .unwrap();
    json.bind(1, BindingSpec::new(1, "eu")).unwrap();
    json.bind(1, BindingSpec::new(2, "us")).unwrap();
    json.bind(1, BindingSpec::new(3, "*")).unwrap();
    let body = |b: &str| Message::new("", b.to_owned());
    assert_eq!(
        routed(&json, 1, &body(r#"{"order":{"region":"eu","total":3}}"#)),
        vec![1, 3]
    );
    assert_eq!(
        routed(&json, 1, &body(r#"{"order":{"region":"apac"}}"#)),
        vec![3]
    );
    assert_eq!(
        routed(&json, 1, &body(r#"{"order":{}}"#)),
        Vec::<u32>::new()
    );
    assert_eq!(routed(&json, 1, &body("not json")), Vec::<u32>::new());
}

#[test]
fn consistent_hash_sends_each_key_to_one_stable_destination() {
    let registry = registry();
    let hash = registry.router("consistent-hash").unwrap();
    hash.create_exchange(1, Table::new()).unwrap();
    assert!(hash.bind(1, BindingSpec::new(1, "zero")).is_err());
    for destination in 1..=4 {
        hash.bind(1, BindingSpec::new(destination, "1")).unwrap();
    }
    let mut counts = [0usize; 5];
    for i in 0..2000 {
        let message = Message::new(format!("customer-{i}"), "");
        let first = routed(&hash, 1, &message);
        assert_eq!(first.len(), 1);
        assert_eq!(routed(&hash, 1, &message), first, "stable for the same key");
        counts[first[0] as usize] += 1;
    }
    for (destination, count) in counts.iter().enumerate().skip(1) {
        assert!(
            (250..=750).contains(count),
            "destination {destination} got {count} of 2000"
        );
    }
}

#[test]
fn a_batch_is_routed_exactly_as_its_messages_one_by_one() {
    let registry = registry();
    let topic = registry.router("topic").unwrap();
    topic.create_exchange(1, Table::new()).unwrap();
    for (destination, pattern) in ["a.*", "#.z", "a.b.#", "*.*.*"].iter().enumerate() {
        topic
            .bind(1, BindingSpec::new(destination as u32, *pattern))
            .unwrap();
    }
    let messages: Vec<Message> = ["a.b", "a.b.z", "q.z", "a", "x.y.z", "", "a.b.c.d"]
        .iter()
        .map(|key| Message::new(*key, ""))
        .collect();
    let batched: Vec<Vec<u32>> = topic
        .route_batch(1, &messages)
        .into_iter()
        .map(|r| r.unwrap().to_vec())
        .collect();
    let single: Vec<Vec<u32>> = messages.iter().map(|m| routed(&topic, 1, m)).collect();
    assert_eq!(batched, single);
    assert_eq!(batched[1], vec![1, 2, 3], "a.b.z: #.z, a.b.# and *.*.*");
}

/// RabbitMQ's typed matching: every integer width is one kind, but an integer never matches a
/// string; booleans match booleans; a void argument asks for presence; a table argument is
/// ignored.
#[test]
fn headers_matches_typed_values_as_rabbitmq_does() {
    let registry = registry();
    let headers = registry.router("headers").unwrap();
    headers.create_exchange(1, Table::new()).unwrap();
    let bind = |destination: u32, arguments: Table| {
        let mut spec = BindingSpec::new(destination, "");
        spec.arguments = arguments;
        headers.bind(1, spec).unwrap();
    };
    bind(1, Table::new().with("version", Value::I32(2)));
    bind(2, Table::new().with("version", "2"));
    bind(3, Table::new().with("urgent", true));
    bind(4, Table::new().with("trace", Value::Void));
    bind(
        5,
        Table::new()
            .with("region", "eu")
            .with("nested", Table::new().with("ignored", true)),
    );
    let cases: &[(Table, &[u32])] = &[
        (Table::new().with("version", Value::I64(2)), &[1]),
        (Table::new().with("version", Value::U8(2)), &[1]),
        (Table::new().with("version", "2"), &[2]),
        (Table::new().with("version", 2.0_f64), &[]),
        (Table::new().with("urgent", true), &[3]),
        (Table::new().with("urgent", "true"), &[]),
        (Table::new().with("trace", vec![1_u8]), &[4]),
        (Table::new().with("region", "eu"), &[5]),
    ];
    for (message_headers, expected) in cases {
        let mut message = Message::new("ignored", "");
        message.headers = message_headers.clone();
        assert_eq!(
            routed(&headers, 1, &message),
            expected.to_vec(),
            "headers {message_headers}"
        );
    }
}

/// Every value type, nested arrays and tables included, crosses the plugin contract exactly:
/// the `mirror` plugin routes only when the headers it sees equal the arguments it was given.
#[test]
fn every_value_type_reaches_a_plugin_intact_as_headers_and_as_arguments() {
    let registry = registry();
    registry.load_file(Path::new(wasm::MIRROR)).unwrap();
    let mirror = registry.router("mirror").unwrap();
    // Arguments as the broker keeps them: sorted by name, no name twice.
    let mut typed = switchyard_tests::every_value_type();
    typed.remove("tenant");
    typed.sort_by_name();
    mirror.create_exchange(1, typed.clone()).unwrap();
    let mut spec = BindingSpec::new(7, "");
    spec.arguments = typed.clone();
    mirror.bind(1, spec).unwrap();
    let mut message = Message::new("k", "");
    message.headers = typed.clone();
    assert_eq!(routed(&mirror, 1, &message), vec![7]);
    // One value of another width is another value.
    let mut narrower = typed;
    narrower.insert("scalars", Value::Array(vec![Value::I32(1)]));
    message.headers = narrower;
    assert_eq!(routed(&mirror, 1, &message), Vec::<u32>::new());
}
