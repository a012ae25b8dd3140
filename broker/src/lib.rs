//! Switchyard, a message broker whose exchanges route through WebAssembly plugins.
//!
//! This crate is the server library and the `switchyard` binary. Start a broker with
//! [`Broker::start`] (tests run it in-process on `127.0.0.1:0`). The parts, each its own
//! module: [`plugin`] (the WebAssembly host), [`topology`] (exchanges, queues, bindings,
//! routing), [`queue`] (delivery and acknowledgement), [`session`] (the protocol-neutral API
//! every frontend goes through), `frontend` (the protocols: QUIC today), [`tls`], [`config`].
//!
//! The core modules (`topology`, `queue`, `store`, `plugin`, `exchange`, `message`) stay at the
//! crate root rather than under a `core/` folder: they are this crate's public API, which the
//! CLI and the integration tests use directly. Frontends reach them only through `session`.

pub mod auth;
pub mod config;
pub mod error;
pub mod exchange;
mod frontend;
pub mod message;
pub mod plugin;
pub mod queue;
pub mod session;
pub mod store;
pub mod tls;
pub mod topology;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::BrokerConfig;
pub use error::BrokerError;
pub use frontend::quic::ServerError;
pub use message::{Headers, Identifier, Message, MessageProperties, Properties, Table, Value};

use frontend::quic::Server;
use plugin::{PluginConfig, PluginDirectory, PluginError, PluginRegistry};
use tls::{TlsError, TlsIdentity};
use topology::Topology;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("plugins: {0}")]
    Plugins(#[from] PluginError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("users: {0}")]
    Users(#[from] auth::AuthError),
    #[error("opening the store: {0}")]
    Store(#[source] std::io::Error),
    #[error("restoring durable definitions: {0}")]
    Restore(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Amqp(#[from] frontend::amqp::AmqpError),
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    server: Server,
    amqp: frontend::amqp::AmqpServer,
    topology: Arc<Topology>,
    sessions: Arc<session::Sessions>,
    fingerprint: String,
    _plugin_dir: PluginDirectory,
}

impl Broker {
    /// Loads the plugins (embedded, then the plugin directory, watched from then on), sets up
    /// TLS and starts serving. Must run on Tokio's multi-threaded runtime.
    pub async fn start(config: BrokerConfig) -> Result<Broker, StartError> {
        config.validate().map_err(StartError::Config)?;
        let (plugins, plugin_dir, identity) = tokio::task::block_in_place(|| {
            let plugins = PluginRegistry::new(PluginConfig {
                limits: config.plugin_limits(),
                cache_dir: Some(config.data_dir.join("plugin-cache")),
            })?;
            plugins.load_embedded()?;
            let plugin_dir = PluginDirectory::watch(Arc::clone(&plugins), &config.plugin_dir())?;
            let identity = TlsIdentity::load_or_generate(
                config.tls_cert.as_deref(),
                config.tls_key.as_deref(),
                &config.data_dir,
            )?;
            Ok::<_, StartError>((plugins, plugin_dir, identity))
        })?;
        let users = auth::Users::from_config(&config.users)?;
        if config.users.is_empty() && !config.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %config.listen,
                "no [[users]] are configured: anyone who can reach this address has full access"
            );
        }
        // Under a file-size limit (RLIMIT_FSIZE) a write past it must fail with EFBIG, which the
        // store reports as a failed write, instead of SIGXFSZ killing the broker. A handled
        // signal does that; the handler stays installed for the life of the process.
        let _ =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ));
        let store = tokio::task::block_in_place(|| store::Store::open(config.store_config()))
            .map_err(StartError::Store)?;
        let topology = Topology::with_store(
            plugins,
            Arc::new(store),
            config.queue_window(),
            config.limits,
        );
        let report = tokio::task::block_in_place(|| topology.restore())
            .map_err(|e| StartError::Restore(e.to_string()))?;
        if report.exchanges + report.queues > 0 {
            tracing::info!(
                exchanges = report.exchanges,
                queues = report.queues,
                bindings = report.bindings,
                messages = report.messages,
                failed = report.failures.len(),
                "restored durable definitions"
            );
        }
        let sessions = session::Sessions::new(Arc::clone(&topology), users, &config);
        topology.declare_standard_exchanges();
        let amqp =
            frontend::amqp::AmqpServer::start(&config, &identity, Arc::clone(&sessions)).await?;
        let server = Server::start(config, &identity, Arc::clone(&sessions))?;
        Ok(Broker {
            server,
            amqp,
            topology,
            sessions,
            fingerprint: identity.fingerprint(),
            _plugin_dir: plugin_dir,
        })
    }

    /// Where the broker listens (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Where the AMQP 0-9-1 listener is, if it is on.
    pub fn amqp_addr(&self) -> Option<SocketAddr> {
        self.amqp.local_addr()
    }

    /// Where the AMQPS (AMQP over TLS) listener is, if it is on.
    pub fn amqps_addr(&self) -> Option<SocketAddr> {
        self.amqp.tls_local_addr()
    }

    /// SHA-256 of the broker's certificate, for clients to pin.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// The session layer, for a frontend run beside the built-in ones (and for tests).
    pub fn sessions(&self) -> &Arc<session::Sessions> {
        &self.sessions
    }

    pub fn plugins(&self) -> &Arc<PluginRegistry> {
        self.topology.plugins()
    }

    /// Stops serving: consumers are told, connections closed, and the store makes everything
    /// it was given durable.
    pub async fn shutdown(self) {
        self.amqp.shutdown();
        self.server.shutdown().await;
        if let Some(store) = self.topology.store() {
            tokio::task::block_in_place(|| store.close());
        }
    }
}
