//! Plugins that misbehave on purpose: each failure is a typed error, the host keeps serving,
//! and the next call runs on a fresh instance with every binding replayed.

use std::path::Path;

use switchyard::plugin::{BindingSpec, PluginError, PluginHealth, PluginLimits};
use switchyard::{Message, Table};
use switchyard_tests::{registry, registry_with, test_limits, wasm};

fn bound_exchange(registry: &switchyard::plugin::PluginRegistry, plugin: &str) {
    let router = registry.router(plugin).unwrap();
    router.create_exchange(1, Table::new()).unwrap();
    router.bind(1, BindingSpec::new(1, "ok")).unwrap();
}

fn routes_ok_afterwards(registry: &switchyard::plugin::PluginRegistry, plugin: &str) {
    let router = registry.router(plugin).unwrap();
    let routed = router
        .route(1, &Message::new("ok", ""))
        .unwrap_or_else(|e| panic!("the call after the fault failed: {e}"));
    assert_eq!(
        routed.to_vec(),
        vec![1],
        "bindings were replayed into the fresh instance"
    );
}

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline_and_the_host_goes_on() {
    let registry = registry();
    registry.load_file(Path::new(wasm::LOOPER)).unwrap();
    bound_exchange(&registry, "looper");
    let router = registry.router("looper").unwrap();
    let error = router.route(1, &Message::new("loop", "")).unwrap_err();
    assert!(matches!(error, PluginError::Deadline { .. }), "{error:?}");
    routes_ok_afterwards(&registry, "looper");
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let registry = registry();
    registry.load_file(Path::new(wasm::BOMB)).unwrap();
    bound_exchange(&registry, "bomb");
    let router = registry.router("bomb").unwrap();
    let error = router.route(1, &Message::new("bomb", "")).unwrap_err();
    assert!(
        matches!(error, PluginError::MemoryLimit { .. }),
        "{error:?}"
    );
    routes_ok_afterwards(&registry, "bomb");
}

#[test]
fn a_trap_fails_one_call_and_the_next_runs_on_a_fresh_instance() {
    let registry = registry();
    registry.load_file(Path::new(wasm::TRAPPER)).unwrap();
    bound_exchange(&registry, "trapper");
    let router = registry.router("trapper").unwrap();
    let error = router.route(1, &Message::new("boom", "")).unwrap_err();
    match &error {
        // The panic's own message and place, in one line, instead of a wasm backtrace.
        PluginError::Trap {
            reason, backtrace, ..
        } => {
            assert!(
                reason.starts_with("panicked at tests/plugins/trapper/src/lib.rs:")
                    || reason.starts_with("panicked at src/lib.rs:"),
                "{reason}"
            );
            assert!(reason.ends_with(": asked to trap"), "{reason}");
            assert!(!reason.contains('\n'), "{reason}");
            assert!(!backtrace.is_empty() && !backtrace.contains('\n'));
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    routes_ok_afterwards(&registry, "trapper");
    assert_eq!(router.faults().total_faults, 1);
}

#[test]
fn refusals_are_the_plugins_own_words_and_change_nothing() {
    let registry = registry();
    registry.load_file(Path::new(wasm::TRAPPER)).unwrap();
    let router = registry.router("trapper").unwrap();
    let refused = router
        .create_exchange(2, Table::new().with("refuse", "no thanks"))
        .unwrap_err();
    assert_eq!(refused.to_string(), "refused: no thanks");
    assert_eq!(router.exchange_count(), 0);
    router.create_exchange(1, Table::new()).unwrap();
    let refused = router
        .bind(1, BindingSpec::new(1, "forbidden"))
        .unwrap_err();
    assert!(
        matches!(refused, PluginError::Refused { .. }),
        "{refused:?}"
    );
    assert!(router.bindings(1).is_empty());
    assert_eq!(router.faults().total_faults, 0, "a refusal is not a fault");
}

#[test]
fn destination_handles_nobody_bound_are_rejected_and_never_used() {
    let registry = registry();
    registry.load_file(Path::new(wasm::LIAR)).unwrap();
    bound_exchange(&registry, "liar");
    let router = registry.router("liar").unwrap();
    let error = router.route(1, &Message::new("ok", "")).unwrap_err();
    match error {
        PluginError::InvalidDestination {
            handle, exchange, ..
        } => {
            assert_eq!(exchange, 1);
            assert!(handle == 1001 || handle == u32::MAX, "handle {handle}");
        }
        other => panic!("expected InvalidDestination, got {other:?}"),
    }
}

/// Review finding 8 / trustworthy-core item 7: ten poison messages within a minute
/// quarantined the whole plugin type, and every good message to every exchange of that type
/// was refused for 30 s. A fault one message causes is that message's.
#[test]
fn poison_messages_fail_alone_and_good_ones_keep_routing() {
    let registry = registry_with(PluginLimits {
        quarantine_faults: 3,
        ..test_limits()
    });
    registry.load_file(Path::new(wasm::TRAPPER)).unwrap();
    bound_exchange(&registry, "trapper");
    let router = registry.router("trapper").unwrap();
    for _ in 0..20 {
        let error = router.route(1, &Message::new("boom", "")).unwrap_err();
        assert!(matches!(error, PluginError::Trap { .. }), "{error:?}");
        routes_ok_afterwards(&registry, "trapper");
    }
    // Even a burst of poison, shorter than `quarantine_after`, leaves the plugin serving.
    for _ in 0..10 {
        let error = router.route(1, &Message::new("boom", "")).unwrap_err();
        assert!(matches!(error, PluginError::Trap { .. }), "{error:?}");
    }
    routes_ok_afterwards(&registry, "trapper");
    let row = registry
        .list()
        .into_iter()
        .find(|row| row.name == "trapper")
        .unwrap();
    assert_eq!(row.health, PluginHealth::Serving, "{row:?}");
}

#[test]
fn an_exchange_whose_every_call_faults_is_quarantined_alone_and_reported() {
    let registry = registry_with(PluginLimits {
        quarantine_faults: 3,
        quarantine_after: std::time::Duration::ZERO,
        ..test_limits()
    });
    registry.load_file(Path::new(wasm::TRAPPER)).unwrap();
    bound_exchange(&registry, "trapper");
    let router = registry.router("trapper").unwrap();
    // A second exchange of the same type, another tenant's.
    router.create_exchange(2, Table::new()).unwrap();
    router.bind(2, BindingSpec::new(7, "ok")).unwrap();
    for _ in 0..3 {
        let error = router.route(1, &Message::new("boom", "")).unwrap_err();
        assert!(matches!(error, PluginError::Trap { .. }), "{error:?}");
    }
    let error = router.route(1, &Message::new("ok", "")).unwrap_err();
    assert!(
        matches!(error, PluginError::Quarantined { .. }),
        "{error:?}"
    );
    // The refusal says how many faults led to it, and that it is this exchange's.
    assert!(error.to_string().contains("after 3 faults"), "{error}");
    assert!(error.to_string().contains("on this exchange"), "{error}");
    // Review finding 8: the other exchange of the type routes on.
    assert_eq!(
        router.route(2, &Message::new("ok", "")).unwrap().to_vec(),
        vec![7]
    );
    assert_eq!(router.faults().quarantined_scopes, 1);
    let row = registry
        .list()
        .into_iter()
        .find(|row| row.name == "trapper")
        .unwrap();
    assert_eq!(row.health, PluginHealth::Serving);
    assert!(row.last_error.unwrap().contains("trapped"));
    // The other plugins are untouched.
    let topic = registry.router("topic").unwrap();
    topic.create_exchange(1, Table::new()).unwrap();
    topic.bind(1, BindingSpec::new(3, "#")).unwrap();
    assert_eq!(
        topic.route(1, &Message::new("x", "")).unwrap().to_vec(),
        vec![3]
    );
    // Deleting the exchange forgets its quarantine.
    router.destroy_exchange(1);
    assert_eq!(router.faults().quarantined_scopes, 0);
}

#[test]
fn files_that_are_not_switchyard_plugins_are_refused_with_a_clear_message() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm").unwrap();
    let error = registry.load_file(&garbage).unwrap_err();
    assert!(matches!(error, PluginError::Invalid { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("not a valid WebAssembly component")
    );

    let core_module = dir.path().join("core.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").unwrap();
    let error = registry.load_file(&core_module).unwrap_err();
    assert!(matches!(error, PluginError::Invalid { .. }), "{error:?}");

    let error = registry
        .load_file(Path::new(wasm::WRONG_WORLD))
        .unwrap_err();
    assert!(matches!(error, PluginError::WrongWorld { .. }), "{error:?}");
    assert!(
        error.to_string().contains("switchyard:plugin@0.2.0"),
        "{error}"
    );

    // Built with the previous SDK: refused with the version named and how to rebuild.
    let error = registry
        .load_file(Path::new(wasm::CONTRACT_0_1))
        .unwrap_err();
    assert!(
        matches!(&error, PluginError::ContractVersion { found, .. } if found == "0.1.0"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("built against switchyard:plugin@0.1.0")
            && message.contains("switchyard:plugin@0.2.0")
            && message.contains("rebuild it"),
        "{message}"
    );

    let error = registry.load_file(Path::new(wasm::BAD_NAME)).unwrap_err();
    assert!(matches!(error, PluginError::BadInfo { .. }), "{error:?}");

    let failed: Vec<_> = registry
        .list()
        .into_iter()
        .filter(|row| row.health == PluginHealth::Failed)
        .collect();
    assert!(failed.len() >= 2, "failed files are listed: {failed:?}");
    assert!(failed.iter().all(|row| row.last_error.is_some()));
}

#[test]
fn a_hung_plugin_does_not_stop_other_threads_from_routing() {
    let registry = registry();
    registry.load_file(Path::new(wasm::LOOPER)).unwrap();
    bound_exchange(&registry, "looper");
    let topic = registry.router("topic").unwrap();
    topic.create_exchange(1, Table::new()).unwrap();
    topic.bind(1, BindingSpec::new(5, "a.#")).unwrap();
    let looper = registry.router("looper").unwrap();
    let hung = std::thread::spawn(move || looper.route(1, &Message::new("loop", "")));
    for i in 0..200 {
        let routed = topic.route(1, &Message::new(format!("a.{i}"), "")).unwrap();
        assert_eq!(routed.to_vec(), vec![5]);
    }
    assert!(hung.join().unwrap().is_err());
}

#[test]
fn a_poisonous_message_in_a_batch_fails_only_itself() {
    let registry = registry();
    registry.load_file(Path::new(wasm::TRAPPER)).unwrap();
    bound_exchange(&registry, "trapper");
    let router = registry.router("trapper").unwrap();
    let batch = [
        Message::new("ok", ""),
        Message::new("boom", ""),
        Message::new("ok", ""),
        Message::new("other", ""),
    ];
    let results = router.route_batch(1, &batch);
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap().to_vec(), vec![1]);
    assert!(
        matches!(results[1], Err(PluginError::Trap { .. })),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().unwrap().to_vec(), vec![1]);
    assert_eq!(results[3].as_ref().unwrap().to_vec(), Vec::<u32>::new());
}

#[test]
fn a_plugin_gets_no_files_environment_clock_or_sockets() {
    let registry = registry();
    registry.load_file(Path::new(wasm::SNOOP)).unwrap();
    let router = registry.router("snoop").unwrap();
    router.create_exchange(1, Table::new()).unwrap();
    for (destination, capability) in ["files", "env", "clock", "net"].iter().enumerate() {
        router
            .bind(1, BindingSpec::new(destination as u32, *capability))
            .unwrap();
    }
    let worked = router.route(1, &Message::new("any", "")).unwrap();
    assert!(worked.is_empty(), "capabilities that worked: {worked:?}");
}

fn exchange_spec(name: &str, kind: &str) -> switchyard::exchange::ExchangeSpec {
    switchyard::exchange::ExchangeSpec {
        name: name.into(),
        kind: kind.into(),
        durable: false,
        auto_delete: false,
        internal: false,
        arguments: Table::new(),
    }
}

/// Review finding 15: a bind whose plugin validation runs to the admin deadline (2 s) held
/// the topology's write lock throughout, and every publish in the broker waited for it.
#[test]
fn a_plugin_stuck_validating_a_binding_does_not_hold_up_routing_elsewhere() {
    use switchyard::topology::{Binding, BindingDestination, QueueSpec, Topology};
    let registry = registry();
    registry.load_file(Path::new(wasm::LOOPER)).unwrap();
    let topology = Topology::new(registry);
    topology
        .declare_exchange(exchange_spec("stuck", "looper"), false)
        .unwrap();
    topology
        .declare_exchange(exchange_spec("busy", "direct"), false)
        .unwrap();
    let queue = QueueSpec {
        name: "q".into(),
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: Table::new(),
    };
    topology.declare_queue(queue, 0, false).unwrap();
    let binding = |source: &str, key: &str| Binding {
        source: source.into(),
        destination: BindingDestination::Queue("q".into()),
        key: key.into(),
        arguments: Table::new(),
    };
    topology.bind(binding("busy", "k")).unwrap();

    let stuck_bind = std::thread::spawn({
        let topology = std::sync::Arc::clone(&topology);
        move || topology.bind(binding("stuck", "loop"))
    });
    // Let the bind reach the plugin; it spins there until the admin deadline.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let routed = topology.route("busy", &Message::new("k", "")).unwrap();
    assert_eq!(routed.queues.len(), 1);
    assert!(
        !stuck_bind.is_finished(),
        "routing waited for the stuck bind to end"
    );
    let error = stuck_bind.join().unwrap().unwrap_err();
    assert!(error.to_string().contains("deadline"), "{error}");
}

/// Review finding 8: bindings with long many-word keys on one topic exchange grew the topic
/// plugin's shared instance past its memory cap, after which every topic exchange failed to
/// route. Bindings may now fill only part of an instance's memory; past that a bind is
/// refused, and routing goes on for everyone.
#[test]
fn bindings_that_would_fill_a_plugins_memory_are_refused_and_routing_goes_on() {
    let registry = registry();
    let topic = registry.router("topic").unwrap();
    topic.create_exchange(1, Table::new()).unwrap();
    topic.create_exchange(2, Table::new()).unwrap();
    topic.bind(2, BindingSpec::new(9, "a.*")).unwrap();
    let mut refused = None;
    for i in 0..5_000 {
        // 124 short words with a distinct first one: a path of trie nodes per binding.
        let key = format!("{i}.{}", vec!["w"; 123].join("."));
        match topic.bind(1, BindingSpec::new(1, key)) {
            Ok(_) => {}
            Err(error) => {
                refused = Some((i, error));
                break;
            }
        }
    }
    let (bound, error) = refused.expect("some binding is refused before the memory cap");
    eprintln!("refused after {bound} bindings: {error}");
    assert!(matches!(error, PluginError::Refused { .. }), "{error:?}");
    assert!(error.to_string().contains("may use at most"), "{error}");
    assert!(bound > 100, "refused after only {bound} bindings: {error}");
    // Both exchanges still route, from fresh instances too (bindings replayed).
    for _ in 0..4 {
        assert_eq!(
            topic.route(2, &Message::new("a.b", "")).unwrap().to_vec(),
            vec![9]
        );
        let key = format!("0.{}", vec!["w"; 123].join("."));
        assert_eq!(
            topic.route(1, &Message::new(&key, "")).unwrap().to_vec(),
            vec![1]
        );
    }
}
