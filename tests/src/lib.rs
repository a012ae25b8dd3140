//! Helpers for Switchyard's integration tests: where the test plugins were built, and a plugin
//! registry set up the way the broker sets it up.

pub mod broker_process;

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
    adjust(&mut config);
    // Share compiled plugins between tests.
    std::fs::create_dir_all(artifact_cache()).expect("artifact cache");
    let _ = std::os::unix::fs::symlink(artifact_cache(), data_dir.path().join("plugin-cache"));
    let broker = Broker::start(config.clone()).await.expect("broker starts");
    config.listen = broker.local_addr();
    (broker, data_dir, config)
}
