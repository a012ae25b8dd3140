//! Deploying plugins into a running broker over QUIC, shadow versions on live traffic, and
//! what a faulting plugin tells the publisher and the log.

use std::process::Stdio;

use bytes::Bytes;
use switchyard_client::{
    ClientError, Connection, ErrorCode, ExchangeOptions, OutgoingMessage, QueueOptions, Table,
};
use switchyard_tests::broker_process::{
    BrokerProcess, free_port, share_plugin_cache, write_config,
};
use switchyard_tests::{TestBroker, install, wasm};

fn code(error: &ClientError) -> Option<ErrorCode> {
    match error {
        ClientError::Refused(refusal) | ClientError::Rejected { error: refusal, .. } => {
            Some(refusal.code)
        }
        _ => None,
    }
}

fn component(path: &str) -> Bytes {
    Bytes::from(std::fs::read(path).expect("built test plugin"))
}

/// A `direct` exchange `orders` with queues `qa`, `qb`, `qc` bound with `a`, `b`, `c`.
async fn orders(client: &Connection) {
    client
        .declare_exchange("orders", "direct", ExchangeOptions::default())
        .await
        .unwrap();
    for key in ["a", "b", "c"] {
        let queue = format!("q{key}");
        client
            .declare_queue(&queue, QueueOptions::default())
            .await
            .unwrap();
        client
            .bind_queue("orders", &queue, key, Table::new())
            .await
            .unwrap();
    }
}

async fn publish_round(client: &Connection, round: usize) {
    let mut publisher = client.publisher().await.unwrap();
    for key in ["a", "b", "c"] {
        publisher
            .publish_confirmed(
                OutgoingMessage::new("orders", key, "x").message_id(format!("{key}-{round}")),
            )
            .await
            .unwrap();
    }
}

async fn ready(client: &Connection, queue: &str) -> u64 {
    client.queue_info(queue).await.unwrap().ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_reports_exactly_the_messages_it_routes_differently_while_the_serving_version_routes_all()
 {
    let t = TestBroker::start().await;
    orders(&t.client).await;
    let version = t
        .client
        .start_shadow("direct", component(wasm::DIRECT_V2), 100)
        .await
        .unwrap();
    assert_eq!(version, "0.2.0-test");
    for round in 0..10 {
        publish_round(&t.client, round).await;
    }

    let report = t.client.shadow_report("direct").await.unwrap();
    assert_eq!(report.serving_version, "0.1.0");
    assert_eq!(report.shadow_version, "0.2.0-test");
    assert_eq!(
        (report.seen, report.sampled, report.agreed, report.diverged),
        (30, 30, 20, 10)
    );
    assert_eq!(report.failed, 0, "{:?}", report.last_error);
    assert_eq!(report.divergences.len(), 10);
    for (round, divergence) in report.divergences.iter().enumerate() {
        assert_eq!(divergence.exchange, "orders");
        assert_eq!(divergence.routing_key, "b");
        assert_eq!(
            divergence.message_id.as_deref(),
            Some(&*format!("b-{round}"))
        );
        assert_eq!(divergence.serving, vec!["qb".to_owned()]);
        assert_eq!(divergence.shadow, vec!["qa".to_owned()]);
    }
    // The serving version decided every message.
    for queue in ["qa", "qb", "qc"] {
        assert_eq!(ready(&t.client, queue).await, 10, "{queue}");
    }

    t.client.discard_shadow("direct").await.unwrap();
    let error = t.client.shadow_report("direct").await.unwrap_err();
    assert!(error.to_string().contains("no shadow running"), "{error}");
    publish_round(&t.client, 10).await;
    assert_eq!(ready(&t.client, "qb").await, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_shadow_sees_the_asked_share_of_messages() {
    let t = TestBroker::start().await;
    orders(&t.client).await;
    t.client
        .start_shadow("direct", component(wasm::DIRECT_V2), 10)
        .await
        .unwrap();
    for round in 0..10 {
        publish_round(&t.client, round).await;
    }
    let report = t.client.shadow_report("direct").await.unwrap();
    assert_eq!((report.seen, report.sampled), (30, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_a_shadow_makes_it_serve_and_keeps_it_across_a_restart() {
    let t = TestBroker::start().await;
    orders(&t.client).await;
    t.client
        .start_shadow("direct", component(wasm::DIRECT_V2), 100)
        .await
        .unwrap();
    let installed = t.client.promote_shadow("direct").await.unwrap();
    assert_eq!(installed.version.as_deref(), Some("0.2.0-test"));
    publish_round(&t.client, 0).await;
    assert_eq!(
        ready(&t.client, "qa").await,
        2,
        "`b` now goes where `a` goes"
    );
    assert_eq!(ready(&t.client, "qb").await, 0);

    let t = t.restart().await;
    let direct = t
        .client
        .list_plugins()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "direct")
        .unwrap();
    assert_eq!(direct.version.as_deref(), Some("0.2.0-test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_answers_once_the_new_version_serves_and_refuses_what_is_not_a_plugin() {
    let t = TestBroker::start().await;
    orders(&t.client).await;
    let installed = t
        .client
        .install_plugin(component(wasm::DIRECT_V2))
        .await
        .unwrap();
    assert_eq!(installed.version.as_deref(), Some("0.2.0-test"));
    let file = t.data_dir.path().join("plugins").join("direct.wasm");
    assert!(file.is_file(), "installed into the plugin directory");
    // No waiting: the answer came after the swap.
    publish_round(&t.client, 0).await;
    assert_eq!(ready(&t.client, "qa").await, 2);

    let error = t
        .client
        .install_plugin(Bytes::from_static(b"not wasm"))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::PluginRefused), "{error}");
    assert!(
        error
            .to_string()
            .contains("not a valid WebAssembly component"),
        "{error}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), component(wasm::DIRECT_V2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_administrator_may_load_code_once_users_exist() {
    let users = |config: &mut switchyard::BrokerConfig| {
        let user = |name: &str, tags: Vec<String>| switchyard::config::UserConfig {
            name: name.into(),
            password_hash: switchyard::auth::hash_password("pw"),
            tags,
        };
        config.users = vec![
            user("app", Vec::new()),
            user("ops", vec!["administrator".into()]),
        ];
    };
    let (broker, _data_dir, _) = switchyard_tests::start_broker(users).await;
    let connect = |user: &str| {
        let mut options = switchyard_client::ConnectOptions::new(
            broker.local_addr(),
            switchyard_client::Trust::Pinned(broker.fingerprint().to_owned()),
        );
        options.auth = switchyard_client::Auth::Password {
            user: user.into(),
            password: "pw".into(),
        };
        Connection::connect(options)
    };
    let app = connect("app").await.unwrap();
    let error: ClientError = app
        .install_plugin(component(wasm::DIRECT_V2))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::NotAllowed), "{error}");
    assert!(error.to_string().contains("administrator"), "{error}");
    let error = app
        .start_shadow("direct", component(wasm::DIRECT_V2), 50)
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::NotAllowed), "{error}");

    let ops = connect("ops").await.unwrap();
    ops.install_plugin(component(wasm::DIRECT_V2))
        .await
        .unwrap();
}

/// Publishes one message with `key` to exchange `exchange` of a broker process and returns the
/// refusal's text.
async fn refusal(client: &Connection, exchange: &str, key: &str) -> String {
    let mut publisher = client.publisher().await.unwrap();
    let error = publisher
        .publish_confirmed(OutgoingMessage::new(exchange, key, "x"))
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(ErrorCode::RoutingFault), "{error}");
    error.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_name_their_place_to_the_publisher_and_log_one_structured_line() {
    let data_dir = tempfile::tempdir().unwrap();
    share_plugin_cache(data_dir.path());
    let plugins = data_dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (component, file) in [
        (wasm::TRAPPER, "trapper.wasm"),
        (wasm::LOOPER, "looper.wasm"),
        (wasm::BOMB, "bomb.wasm"),
    ] {
        install(component, &plugins, file);
    }
    let config = write_config(data_dir.path(), free_port(), "");
    let log_path = data_dir.path().join("broker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let broker = BrokerProcess::spawn_with_stderr(
        env!("CARGO_BIN_EXE_test-broker"),
        &config,
        None,
        Stdio::from(log),
    );
    let client = broker.connect().await;
    for (exchange, kind) in [
        ("fragile", "trapper"),
        ("slow", "looper"),
        ("hungry", "bomb"),
    ] {
        client
            .declare_exchange(exchange, kind, ExchangeOptions::default())
            .await
            .unwrap();
    }

    let trapped = refusal(&client, "fragile", "boom").await;
    assert!(
        trapped.contains(
            r#"routing failed for routing key "boom" at exchange "fragile": plugin "trapper" 0.1.0: route trapped: panicked at "#
        ),
        "{trapped}"
    );
    assert!(
        trapped.contains("tests/plugins/trapper/src/lib.rs:")
            && trapped.ends_with(": asked to trap"),
        "{trapped}"
    );
    assert!(!trapped.contains('\n'), "one line: {trapped}");

    let looped = refusal(&client, "slow", "loop").await;
    assert!(
        looped.contains(r#"for routing key "loop" at exchange "slow": plugin "looper""#)
            && looped.contains("ran past its deadline of"),
        "{looped}"
    );
    let hungry = refusal(&client, "hungry", "bomb").await;
    assert!(
        hungry.contains(r#"at exchange "hungry": plugin "bomb""#)
            && hungry.contains("bytes of memory in all; the limit is"),
        "{hungry}"
    );

    client.close().await;
    broker.kill();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("routing fault"))
        .collect();
    assert_eq!(lines.len(), 3, "one line per fault:\n{log}");
    let trap_line = lines.iter().find(|l| l.contains("boom")).unwrap();
    for field in [
        r#"exchange="fragile""#,
        r#"routing_key="boom""#,
        "backtrace=",
        "panicked at",
    ] {
        assert!(
            trap_line.contains(field),
            "{field} missing from {trap_line}"
        );
    }
    assert!(!log.contains("plugin fault"), "logged twice:\n{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a file:\n{log}");
}
