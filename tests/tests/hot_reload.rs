//! Hot reload of the plugin directory: new, changed, corrupt and removed files, under load.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchyard::plugin::{BindingSpec, PluginDirectory, PluginHealth, PluginSource};
use switchyard::{Message, Table};
use switchyard_tests::{install, registry, wasm};

/// Waits for `condition`, polling; panics with `what` after a generous timeout.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn replacing_topic_under_load_answers_every_route_with_exactly_one_version() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let _watch = PluginDirectory::watch(Arc::clone(&registry), dir.path()).unwrap();

    let topic = registry.router("topic").unwrap();
    topic.create_exchange(1, Table::new()).unwrap();
    topic.bind(1, BindingSpec::new(1, "a.*")).unwrap();
    topic.bind(1, BindingSpec::new(2, "a.b")).unwrap();
    // Version 1 (embedded, AMQP patterns): "a.b" → [1, 2]. Version 2 (exact keys): → [2].
    let v1_answer = vec![1, 2];
    let v2_answer = vec![2];

    let stop = Arc::new(AtomicBool::new(false));
    let routers: Vec<_> = (0..2)
        .map(|_| {
            let topic = Arc::clone(&topic);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    answers.push(topic.route(1, &Message::new("a.b", "")).map(|d| d.to_vec()));
                }
                answers
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(50));
    install(wasm::TOPIC_V2, dir.path(), "topic.wasm");
    wait_for("topic v2 to load", || topic.info().version == "2.0.0-test");
    let after_swap = Instant::now();
    // Keep routing a little on the new version.
    wait_for("routes on v2", || {
        after_swap.elapsed() > Duration::from_millis(50)
    });
    stop.store(true, Ordering::Relaxed);

    let mut seen_v1 = 0;
    let mut seen_v2 = 0;
    for router in routers {
        for answer in router.join().unwrap() {
            let answer = answer.unwrap_or_else(|e| panic!("a route failed during reload: {e}"));
            if answer == v1_answer {
                seen_v1 += 1;
            } else if answer == v2_answer {
                seen_v2 += 1;
            } else {
                panic!("answer {answer:?} is neither version's");
            }
        }
    }
    assert!(seen_v1 > 0 && seen_v2 > 0, "v1 {seen_v1}, v2 {seen_v2}");
    assert_eq!(
        topic.source(),
        PluginSource::File(dir.path().canonicalize().unwrap().join("topic.wasm"))
    );
    assert_eq!(topic.bindings(1).len(), 2, "bindings survive the reload");
}

#[test]
fn a_corrupt_file_leaves_the_old_version_serving_and_reports_why() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let _watch = PluginDirectory::watch(Arc::clone(&registry), dir.path()).unwrap();
    let topic = registry.router("topic").unwrap();
    topic.create_exchange(1, Table::new()).unwrap();
    topic.bind(1, BindingSpec::new(1, "a.b")).unwrap();

    install(wasm::TOPIC_V2, dir.path(), "topic.wasm");
    wait_for("topic v2 to load", || topic.info().version == "2.0.0-test");

    let path = dir.path().join("topic.wasm");
    let mut corrupt = std::fs::read(wasm::TOPIC_V2).unwrap();
    let middle = corrupt.len() / 2;
    corrupt.truncate(middle);
    std::fs::write(&path, &corrupt).unwrap();
    wait_for("the failure to be reported", || {
        registry
            .list()
            .iter()
            .any(|row| row.name == "topic" && row.last_error.is_some())
    });
    assert_eq!(
        topic.info().version,
        "2.0.0-test",
        "the old version keeps serving"
    );
    assert_eq!(
        topic.route(1, &Message::new("a.b", "")).unwrap().to_vec(),
        vec![1]
    );
}

#[test]
fn removing_an_override_brings_back_the_embedded_plugin() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let _watch = PluginDirectory::watch(Arc::clone(&registry), dir.path()).unwrap();
    let topic = registry.router("topic").unwrap();
    let embedded_version = topic.info().version;
    let path = install(wasm::TOPIC_V2, dir.path(), "topic.wasm");
    wait_for("the override to load", || {
        topic.info().version == "2.0.0-test"
    });
    std::fs::remove_file(path).unwrap();
    wait_for("the embedded plugin to return", || {
        topic.source() == PluginSource::Embedded
    });
    assert_eq!(topic.info().version, embedded_version);
}

#[test]
fn a_new_plugin_appears_and_stays_while_in_use_after_its_file_is_removed() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let _watch = PluginDirectory::watch(Arc::clone(&registry), dir.path()).unwrap();
    assert!(registry.router("trapper").is_err());

    let path = install(wasm::TRAPPER, dir.path(), "trapper.wasm");
    wait_for("trapper to load", || registry.router("trapper").is_ok());
    let trapper = registry.router("trapper").unwrap();
    trapper.create_exchange(1, Table::new()).unwrap();
    trapper.bind(1, BindingSpec::new(1, "k")).unwrap();

    std::fs::remove_file(&path).unwrap();
    wait_for("the removal to be noticed", || {
        registry
            .list()
            .iter()
            .any(|row| row.name == "trapper" && row.health == PluginHealth::Orphaned)
    });
    assert_eq!(
        trapper.route(1, &Message::new("k", "")).unwrap().to_vec(),
        vec![1],
        "it keeps serving the exchange that uses it"
    );
}

#[test]
fn plugins_already_in_the_directory_load_at_start() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    install(wasm::LIAR, dir.path(), "liar.wasm");
    let _watch = PluginDirectory::watch(Arc::clone(&registry), dir.path()).unwrap();
    assert!(
        registry.router("liar").is_ok(),
        "loaded before watch returns"
    );
    assert!(Path::new(wasm::LIAR).exists());
}
