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
