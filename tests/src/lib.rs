//! Helpers for Switchyard's integration tests: where the test plugins were built, and a plugin
//! registry set up the way the broker sets it up.

pub mod broker_process;
pub mod client_scripts;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard::plugin::{PluginConfig, PluginLimits, PluginRegistry};
use switchyard::{Broker, BrokerConfig};
use switchyard_client::{ConnectOptions, Connection, Consumer, Delivery, Trust};

/// Paths of the components `build.rs` built from `tests/plugins/` and `plugins/`, and of the
/// tests' artifact cache.
pub mod wasm {
    include!(concat!(env!("OUT_DIR"), "/test_plugins.rs"));
}

/// A directory shared by every test for compiled plugin artifacts, so each plugin is compiled
/// once per test run rather than once per test.
pub fn artifact_cache() -> PathBuf {
    PathBuf::from(wasm::ARTIFACT_CACHE)
}

/// Limits small enough that hostile plugins are stopped quickly.
pub fn test_limits() -> PluginLimits {
    PluginLimits {
        call_deadline: std::time::Duration::from_millis(200),
        memory_bytes: 32 << 20,
        ..PluginLimits::default()
    }
}

/// A registry with the standard plugins loaded, as `switchyard serve` starts.
pub fn registry_with(limits: PluginLimits) -> Arc<PluginRegistry> {
    init_tracing();
    let registry = PluginRegistry::new(PluginConfig {
        limits,
        cache_dir: Some(artifact_cache()),
    })
    .expect("plugin engine");
    registry.load_embedded().expect("embedded plugins load");
    registry
}

pub fn registry() -> Arc<PluginRegistry> {
    registry_with(test_limits())
}

/// Shows the broker's logs for a failing test (`RUST_LOG=debug cargo test ...`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Copies a built component into `dir` under `file_name`, the way a user drops one in.
pub fn install(component: &str, dir: &Path, file_name: &str) -> PathBuf {
    let target = dir.join(file_name);
    let staging = dir.join(format!(".{file_name}.partial"));
    std::fs::copy(component, &staging).expect("copy plugin");
    std::fs::rename(&staging, &target).expect("move plugin into place");
    target
}

/// A broker running in this process on `127.0.0.1:0`, with its data in a temporary directory,
/// and a client connected to it that pins the broker's certificate.
#[derive(Debug)]
pub struct TestBroker {
    pub broker: Broker,
    pub client: Connection,
    pub data_dir: tempfile::TempDir,
    config: BrokerConfig,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `adjust` has changed its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let (broker, data_dir, config) = start_broker(adjust).await;
        let client = TestBroker::connect_to(&broker).await;
        TestBroker {
            broker,
            client,
            data_dir,
            config,
        }
    }

    /// Stops the broker and starts a new one on the same address and data directory (so the
    /// same certificate): what clients see when a broker restarts.
    pub async fn restart(self) -> TestBroker {
        let TestBroker {
            broker,
            client,
            data_dir,
            config,
        } = self;
        broker.shutdown().await;
        let broker = Broker::start(config.clone())
            .await
            .expect("broker restarts");
        TestBroker {
            broker,
            client,
            data_dir,
            config,
        }
    }

    /// Stops the broker, runs `between` on its data directory (to damage files, say), and
    /// starts a new one on the same address and data directory.
    pub async fn restart_after(self, between: impl FnOnce(&Path)) -> TestBroker {
        let TestBroker {
            broker,
            client,
            data_dir,
            config,
        } = self;
        broker.shutdown().await;
        between(data_dir.path());
        let broker = Broker::start(config.clone())
            .await
            .expect("broker restarts");
        TestBroker {
            broker,
            client,
            data_dir,
            config,
        }
    }

    /// A new client connection to `broker`.
    pub async fn connect_to(broker: &Broker) -> Connection {
        let options = ConnectOptions::new(
            broker.local_addr(),
            Trust::Pinned(broker.fingerprint().to_owned()),
        );
        Connection::connect(options).await.expect("client connects")
    }

    /// Another client connection to this broker.
    pub async fn connect(&self) -> Connection {
        TestBroker::connect_to(&self.broker).await
    }
}

/// The next delivery, failing the test after a generous timeout instead of hanging.
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the subscription is open")
        .expect("a delivery, not an error")
}

/// Starts a broker on `127.0.0.1:0` with its data in a new temporary directory, after `adjust`
/// has changed its configuration. Returns the configuration with the real listen address.
pub async fn start_broker(
    adjust: impl FnOnce(&mut BrokerConfig),
) -> (Broker, tempfile::TempDir, BrokerConfig) {
    init_tracing();
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let mut config = BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        data_dir: data_dir.path().to_owned(),
        ..BrokerConfig::default()
    };
    config.plugins.call_deadline_ms = 200;
    // Brokers of tests run side by side: none takes the AMQP ports; AMQP tests ask for any.
    config.amqp = switchyard::config::AmqpSettings::off();
    adjust(&mut config);
    // Share compiled plugins between tests.
    std::fs::create_dir_all(artifact_cache()).expect("artifact cache");
    let _ = std::os::unix::fs::symlink(artifact_cache(), data_dir.path().join("plugin-cache"));
    let broker = Broker::start(config.clone()).await.expect("broker starts");
    config.listen = broker.local_addr();
    (broker, data_dir, config)
}

/// Headers holding one value of every type, nested arrays and tables, a repeated name and
/// non-ASCII text: what a typed round trip must bring back exactly.
pub fn every_value_type() -> switchyard_client::Table {
    use switchyard_client::{Decimal, Table, Value};
    let scalars = vec![
        Value::Void,
        Value::Bool(false),
        Value::I8(i8::MIN),
        Value::U8(u8::MAX),
        Value::I16(-300),
        Value::U16(60_000),
        Value::I32(-70_000),
        Value::U32(4_000_000_000),
        Value::I64(i64::MIN),
        Value::U64(u64::MAX),
        Value::F32(-0.5),
        Value::F64(std::f64::consts::PI),
        Value::Decimal(Decimal {
            scale: 2,
            value: 12_345,
        }),
        Value::String("ünïcode ✓".into()),
        Value::Bytes(vec![0, 0xFF, 0x80, 0x7F]),
        Value::Timestamp(1_764_650_000),
    ];
    Table::new()
        .with("tenant", "acme")
        .with("tenant", "a name may repeat")
        .with("scalars", Value::Array(scalars.clone()))
        .with(
            "celery-like",
            Value::Array(vec![
                Value::Array(vec![1_i64.into(), Value::Void]),
                Table::new().with("callbacks", Value::Void).into(),
            ]),
        )
        .with(
            "nested",
            Table::new()
                .with("empty", Table::new())
                .with("deeper", Table::new().with("all", Value::Array(scalars))),
        )
}

/// Every property set (`user_id` to `user`, no delay so the message is delivered at once).
pub fn every_property(user: &str) -> switchyard_client::Properties {
    use switchyard_client::{Identifier, Properties};
    Properties {
        message_id: Some(Identifier::Text("m-1".into())),
        correlation_id: Some(Identifier::Binary(bytes::Bytes::from_static(&[0, 1, 0xFE]))),
        reply_to: Some("replies".into()),
        content_type: Some("application/json".into()),
        content_encoding: Some("gzip".into()),
        message_type: Some("order.created".into()),
        user_id: Some(user.into()),
        app_id: Some("shop".into()),
        cluster_id: Some("eu-1".into()),
        timestamp: Some(1_764_650_000_000),
        expiration: Some(3_600_000),
        priority: 3,
        persistent: true,
        delay_ms: None,
    }
}
