//! End-to-end tests of the selector language: parse a selector, evaluate it against a
//! message, and check the errors consumers see.

use switchyard_plugin::{Decimal, Filter, Message, Properties, Table, Value};

use crate::{MAX_NESTING, MAX_SELECTOR_BYTES, Selector, SelectorError, Truth};

fn sample() -> Message {
    let mut message = Message::with_key("orders.eu")
        .header("region", "eu")
        .header("amount", "12.5")
        .header("count", "7")
        .header("kind", "order")
        .header("name", "orders-2024")
        .header("flag", "TRUE")
        .header("note", "it's")
        .header("x-region", "us")
        .header("empty", "")
        .header("weird", "abc");
    message.properties = Properties {
        message_id: Some("m-1".into()),
        content_type: Some("application/json".into()),
        message_type: Some("order.created".into()),
        user_id: Some("app".into()),
        timestamp: Some(1_700_000_000_000),
        priority: 7,
        persistent: true,
        ..Properties::default()
    };
    message
}

use Truth::{False as F, True as T, Unknown as U};

/// (selector, its truth value for `sample()`)
const CASES: &[(&str, Truth)] = &[
    // Equality and inequality on strings.
    ("region = 'eu'", T),
    ("region = 'us'", F),
    ("region <> 'us'", T),
    ("region != 'eu'", F),
    ("REGION = 'eu'", U),
    ("empty = ''", T),
    ("note = 'it''s'", T),
    ("\"x-region\" = 'us'", T),
    ("region > 'ab'", T),
    ("region < 'ab'", F),
    // Numbers, and headers that read as numbers.
    ("region = 'eu' AND priority > 5", T),
    ("region = 'eu' and priority > 7", F),
    ("priority >= 7 AND priority <= 7", T),
    ("priority = -7", F),
    ("priority > -1", T),
    ("amount >= 10.5", T),
    ("amount > 12.5", F),
    ("amount = 12.50", T),
    ("count = 7", T),
    ("count = 7.0", T),
    ("count > 10", F),
    ("count < 1e1", T),
    ("'7' = count", T),
    ("count < '10'", F),
    ("weird > 5", U),
    ("weird = 5", U),
    ("weird <> 5", U),
    ("1 = 1", T),
    ("1 < 2.5", T),
    ("timestamp > 1600000000000", T),
    ("expiration > 0", U),
    // Booleans.
    ("persistent", T),
    ("NOT persistent", F),
    ("persistent = TRUE", T),
    ("persistent <> false", T),
    ("persistent > FALSE", U),
    ("priority = TRUE", U),
    ("flag", T),
    ("flag = true", T),
    ("region", U),
    ("TRUE", T),
    ("FALSE", F),
    // Three-valued logic.
    ("missing = 'x'", U),
    ("NOT missing = 'x'", U),
    ("NOT (weird > 5)", U),
    ("weird > 5 OR region = 'eu'", T),
    ("weird > 5 OR region = 'us'", U),
    ("weird > 5 AND region = 'eu'", U),
    ("weird > 5 AND region = 'us'", F),
    ("persistent AND missing = 1", U),
    ("TRUE OR missing = 1", T),
    ("FALSE AND missing = 1", F),
    ("FALSE OR missing = 1", U),
    ("NOT (FALSE OR missing = 1)", U),
    ("NOT (FALSE AND missing = 1)", T),
    // IS [NOT] NULL never yields unknown.
    ("missing IS NULL", T),
    ("missing IS NOT NULL", F),
    ("region IS NOT NULL", T),
    ("correlation_id IS NULL", T),
    ("content_type is not null", T),
    ("(missing = 1) IS NULL", T),
    // Properties, and headers shadowing them.
    ("message_id = 'm-1'", T),
    ("routing_key = 'orders.eu'", T),
    ("routing_key LIKE 'orders.%'", T),
    ("reply_to = 'x'", U),
    // LIKE.
    ("content_type LIKE 'application/%'", T),
    ("name LIKE 'ord%'", T),
    ("name NOT LIKE 'ord%'", F),
    ("name LIKE 'orders-____'", T),
    ("name LIKE 'orders-___'", F),
    ("name LIKE 'Ord%'", F),
    ("note LIKE 'it''_'", T),
    ("amount LIKE '12.5!%' ESCAPE '!'", F),
    ("amount LIKE '12%' ESCAPE '!'", T),
    ("amount LIKE '12._'", T),
    ("missing LIKE '%'", U),
    ("missing NOT LIKE '%'", U),
    ("priority LIKE '7'", U),
    // IN.
    ("kind IN ('a','b')", F),
    ("kind IN ('order', 'b')", T),
    ("kind NOT IN ('order')", F),
    ("NOT (kind IN ('a','b')) OR amount >= 10.5", T),
    ("missing IN ('a')", U),
    ("missing NOT IN ('a')", U),
    ("count IN (1, 7)", T),
    ("weird IN (1, 'abc')", T),
    ("weird IN (1, 2)", U),
    ("weird NOT IN (1, 2)", U),
    // BETWEEN.
    ("count BETWEEN 1 AND 7", T),
    ("count BETWEEN 8 AND 10", F),
    ("count NOT BETWEEN 8 AND 10", T),
    ("amount BETWEEN 12 AND 13", T),
    ("missing BETWEEN 1 AND 5", U),
    ("count BETWEEN 1 AND missing", U),
    ("count BETWEEN 8 AND missing", F),
    ("priority BETWEEN 1 AND weird", U),
    ("count BETWEEN 1 AND 5 AND region = 'eu'", F),
    // Precedence: NOT over AND over OR; parentheses over all.
    ("region = 'eu' OR region = 'us' AND priority = 0", T),
    ("(region = 'eu' OR region = 'us') AND priority = 0", F),
    ("NOT region = 'us' AND priority = 7", T),
    ("NOT (region = 'eu' AND priority = 7)", F),
    ("region = 'eu' AND (priority = 1 OR count = 7)", T),
    ("((region = 'eu'))", T),
    ("(region = 'eu') = TRUE", T),
    ("(region = 'us') <> (count = 7)", T),
    ("region = 'eu' aNd NoT (kind In ('x'))", T),
    ("NOT NOT persistent", T),
];

#[test]
fn every_case_evaluates_as_sql_does() {
    let message = sample();
    for &(selector, expected) in CASES {
        let compiled =
            Selector::parse(selector).unwrap_or_else(|e| panic!("{selector:?} did not parse: {e}"));
        assert_eq!(compiled.evaluate(&message), expected, "{selector}");
    }
}

#[test]
fn only_true_passes_the_filter() {
    let message = sample();
    for &(selector, expected) in CASES {
        let filter = <Selector as Filter>::compile(selector).unwrap();
        assert_eq!(filter.matches(&message), expected == T, "{selector}");
    }
}

/// Typed headers, as AMQP and Switchyard clients send them: numbers of any width compare as
/// numbers, booleans as booleans; values nothing compares with are null.
#[test]
fn typed_header_values_compare_by_their_type() {
    let message = Message::with_key("k")
        .header("small", Value::I8(7))
        .header("big", u64::MAX)
        .header("ratio", 2.5_f64)
        .header(
            "price",
            Value::Decimal(Decimal {
                scale: 2,
                value: 1250,
            }),
        )
        .header("urgent", true)
        .header("blob", vec![1_u8, 2])
        .header("nested", Table::new().with("k", "v"))
        .header("nothing", Value::Void);
    for (selector, expected) in [
        ("small = 7", T),
        ("small = 7.0", T),
        ("small > 6 AND small < 8", T),
        ("small = '7'", T),
        ("big > 1e19", T),
        ("ratio BETWEEN 2 AND 3", T),
        ("price = 12.5", T),
        ("urgent", T),
        ("urgent = TRUE", T),
        ("NOT urgent", F),
        ("blob IS NULL", T),
        ("nested IS NULL", T),
        ("nothing IS NULL", T),
        ("type = 'order.created'", U),
    ] {
        let selector_parsed = Selector::parse(selector).unwrap();
        assert_eq!(selector_parsed.evaluate(&message), expected, "{selector}");
    }
    let properties = Selector::parse("type = 'order.created' AND user_id = 'app'").unwrap();
    assert_eq!(properties.evaluate(&sample()), T);
}

#[test]
fn a_header_shadows_the_property_of_the_same_name() {
    let mut message = Message::with_key("k").header("priority", "high");
    message.properties.priority = 9;
    let selector = Selector::parse("priority = 'high'").unwrap();
    assert_eq!(selector.evaluate(&message), T);
    let selector = Selector::parse("priority > 5").unwrap();
    assert_eq!(selector.evaluate(&message), U);
}

/// (selector, the error the consumer sees)
const ERRORS: &[(&str, &str)] = &[
    (
        "region = ",
        "expected a value after '=' at position 9, found the end of the selector",
    ),
    ("region = 'eu", "unterminated string starting at position 9"),
    (
        "\"x-region = 'eu'",
        "unterminated quoted identifier starting at position 0",
    ),
    (
        "",
        "the selector is empty; expected a condition at position 0",
    ),
    (
        "   ",
        "the selector is empty; expected a condition at position 3",
    ),
    (
        "region = 'eu' AND",
        "expected a condition after AND at position 17, found the end of the selector",
    ),
    ("AND x", "expected a condition at position 0, found AND"),
    (
        "region 'eu'",
        "expected AND, OR or the end of the selector at position 7, found string 'eu'",
    ),
    (
        "x = 1 = 2",
        "expected AND, OR or the end of the selector at position 6, found '='",
    ),
    (
        "(region = 'eu'",
        "expected AND, OR or ')' at position 14, found the end of the selector",
    ),
    ("region = 'eu')", "unmatched ')' at position 13"),
    (
        "x BETWEEN 1 OR 5",
        "expected AND between the bounds of BETWEEN at position 12, found OR",
    ),
    (
        "x BETWEEN AND 5",
        "expected a lower bound after BETWEEN at position 10, found AND",
    ),
    (
        "x IN 'a'",
        "expected '(' after IN at position 5, found string 'a'",
    ),
    (
        "x IN ()",
        "expected a string or number after '(' at position 6, found ')'",
    ),
    (
        "x IN ('a' 'b')",
        "expected ',' or ')' in the IN list at position 10, found string 'b'",
    ),
    (
        "x IN ('a', y)",
        "expected a string or number after ',' at position 11, found identifier y",
    ),
    (
        "x LIKE 5",
        "expected a quoted pattern after LIKE at position 7, found number 5",
    ),
    (
        "x LIKE 'a' ESCAPE 'ab'",
        "the ESCAPE character must be exactly one character, not \"ab\" at position 18",
    ),
    (
        "x LIKE 'a!' ESCAPE '!'",
        "in a LIKE pattern the escape character '!' must be followed by %, _ or itself at \
         position 7",
    ),
    (
        "x IS 5",
        "expected NULL after IS at position 5, found number 5",
    ),
    (
        "x IS NOT",
        "expected NULL after NOT at position 8, found the end of the selector",
    ),
    (
        "x = NULL",
        "NULL is not a value to compare with; use IS NULL or IS NOT NULL at position 4",
    ),
    (
        "x NOT = 1",
        "expected BETWEEN, IN or LIKE after NOT at position 6, found '='",
    ),
    (
        "'abc'",
        "expected a comparison after string 'abc' at position 5, found the end of the selector",
    ),
    (
        "x = 5 AND 7 OR y",
        "expected a comparison after number 7 at position 12, found OR",
    ),
    (
        "x = -'a'",
        "expected a number after '-' at position 5, found string 'a'",
    ),
    ("x # 1", "unexpected character '#' at position 2"),
    ("x ! 1", "expected '=' after '!' at position 2"),
    ("x = 1.2.3", "invalid number 1.2.3 at position 4"),
];

#[test]
fn errors_say_where_and_why() {
    for &(selector, message) in ERRORS {
        let err = Selector::parse(selector)
            .map(|_| ())
            .expect_err(selector)
            .to_string();
        assert_eq!(err, message, "{selector:?}");
    }
}

#[test]
fn the_filter_reports_errors_as_text() {
    let err = <Selector as Filter>::compile("a =").unwrap_err();
    assert!(err.contains("position 3"), "{err}");
}

#[test]
fn selectors_longer_than_the_limit_are_refused() {
    let at_limit = format!("a = '{}'", "x".repeat(MAX_SELECTOR_BYTES - 6));
    assert_eq!(at_limit.len(), MAX_SELECTOR_BYTES);
    assert!(Selector::parse(&at_limit).is_ok());
    let over = format!("a = '{}'", "x".repeat(MAX_SELECTOR_BYTES - 5));
    let err = Selector::parse(&over).unwrap_err();
    assert_eq!(err, SelectorError::TooLong { length: 4097 });
    assert_eq!(err.position(), None);
    assert_eq!(
        err.to_string(),
        "the selector is 4097 bytes long; at most 4096 are allowed"
    );
}

#[test]
fn nesting_is_limited_for_parentheses_and_nots() {
    let parens = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    assert!(Selector::parse(&parens(MAX_NESTING)).is_ok());
    let err = Selector::parse(&parens(MAX_NESTING + 1)).unwrap_err();
    assert_eq!(err, SelectorError::TooDeep { position: 64 });
    assert_eq!(
        err.to_string(),
        "the selector nests parentheses and NOTs more than 64 deep at position 64"
    );

    let nots = |n: usize| format!("{}persistent", "NOT ".repeat(n));
    let deepest = Selector::parse(&nots(MAX_NESTING)).unwrap();
    assert_eq!(deepest.evaluate(&sample()), T);
    let err = Selector::parse(&nots(MAX_NESTING + 1)).unwrap_err();
    assert_eq!(err, SelectorError::TooDeep { position: 256 });

    // Mixed: each level counts, whichever it is.
    let mixed = format!("{}a = 1{}", "NOT (".repeat(33), ")".repeat(33));
    assert!(matches!(
        Selector::parse(&mixed),
        Err(SelectorError::TooDeep { .. })
    ));
}

#[test]
fn a_hostile_selector_is_refused_without_exhausting_the_stack() {
    let hostile = "(".repeat(MAX_SELECTOR_BYTES);
    assert!(matches!(
        Selector::parse(&hostile),
        Err(SelectorError::TooDeep { position: 64 })
    ));
    let hostile = "NOT ".repeat(MAX_SELECTOR_BYTES / 4);
    assert!(matches!(
        Selector::parse(&hostile),
        Err(SelectorError::TooDeep { .. })
    ));
}

#[test]
fn a_long_chain_of_conditions_is_wide_not_deep() {
    let chain = vec!["count = 7"; 250].join(" AND ");
    assert!(chain.len() <= MAX_SELECTOR_BYTES);
    let selector = Selector::parse(&chain).unwrap();
    assert_eq!(selector.evaluate(&sample()), T);
    let chain = vec!["count = 8"; 250].join(" or ");
    assert_eq!(Selector::parse(&chain).unwrap().evaluate(&sample()), F);
}

#[test]
fn info_declares_headers_and_properties() {
    let info = <Selector as Filter>::info();
    assert_eq!(info.name, "selector");
    assert!(info.reads.headers && info.reads.properties && !info.reads.body);
}
