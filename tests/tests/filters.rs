//! Consumer filters through the real `selector` plugin.

use switchyard::Message;
use switchyard::plugin::PluginError;
use switchyard_tests::registry;

#[test]
fn a_selector_filters_on_headers_and_properties() {
    let registry = registry();
    let selector = registry.filter("selector").unwrap();
    let filter = selector.compile("region = 'eu' AND priority > 5").unwrap();
    let mut urgent_eu = Message::new("k", "").with_header("region", "eu");
    urgent_eu.properties.priority = 9;
    let mut calm_eu = urgent_eu.clone();
    calm_eu.properties.priority = 1;
    let urgent_us = {
        let mut m = Message::new("k", "").with_header("region", "us");
        m.properties.priority = 9;
        m
    };
    assert!(filter.matches(&urgent_eu).unwrap());
    assert!(!filter.matches(&calm_eu).unwrap());
    assert!(!filter.matches(&urgent_us).unwrap());
    assert_eq!(selector.expression_count(), 1);
    drop(filter);
    assert_eq!(
        selector.expression_count(),
        0,
        "dropping releases the expression"
    );
}

#[test]
fn a_bad_expression_is_refused_with_where_and_why() {
    let registry = registry();
    let selector = registry.filter("selector").unwrap();
    let error = selector.compile("region = ").unwrap_err();
    assert!(matches!(error, PluginError::Refused { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("position"), "{text}");
    let too_long = "a = 1 OR ".repeat(1000);
    assert!(selector.compile(&too_long).is_err());
}

#[test]
fn many_filters_stay_independent() {
    let registry = registry();
    let selector = registry.filter("selector").unwrap();
    let filters: Vec<_> = (0..20)
        .map(|i| selector.compile(&format!("n = {i}")).unwrap())
        .collect();
    for i in 0..20 {
        let message = Message::new("k", "").with_header("n", i.to_string());
        for (j, filter) in filters.iter().enumerate() {
            assert_eq!(
                filter.matches(&message).unwrap(),
                i == j,
                "filter {j} on n={i}"
            );
        }
    }
}

/// Review finding 8: one consumer's filter, fed messages it cannot handle (a `LIKE` over a
/// header too large for the plugin's memory), faulted the `selector` plugin into quarantine
/// for every consumer in the broker.
#[test]
fn a_filter_that_keeps_faulting_is_quarantined_alone() {
    let registry = switchyard_tests::registry_with(switchyard::plugin::PluginLimits {
        quarantine_faults: 3,
        quarantine_after: std::time::Duration::ZERO,
        memory_bytes: 16 << 20,
        ..switchyard_tests::test_limits()
    });
    let selector = registry.filter("selector").unwrap();
    let hostile = selector.compile("h LIKE '%x'").unwrap();
    let innocent = selector.compile("region = 'eu'").unwrap();
    let huge = Message::new("k", "").with_header("h", "y".repeat(8 << 20));
    for _ in 0..3 {
        let error = hostile.matches(&huge).unwrap_err();
        assert!(
            matches!(
                error,
                PluginError::MemoryLimit { .. } | PluginError::Deadline { .. }
            ),
            "{error:?}"
        );
    }
    let error = hostile
        .matches(&Message::new("k", "").with_header("h", "x"))
        .unwrap_err();
    assert!(error.to_string().contains("for this filter"), "{error}");
    let eu = Message::new("k", "").with_header("region", "eu");
    assert!(innocent.matches(&eu).unwrap());
    // A new consumer's filter compiles and works too.
    let newcomer = selector.compile("region = 'us'").unwrap();
    assert!(!newcomer.matches(&eu).unwrap());
}
