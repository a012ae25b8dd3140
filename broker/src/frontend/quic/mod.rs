//! The QUIC frontend: the endpoint, one task per connection, and one task per stream, each a
//! translation between Switchyard's own protocol and the session layer. Streams are typed by
//! their first byte (see `switchyard_protocol::StreamKind`): the control stream comes first,
//! then any number of publish and consume streams, so a slow consumer stalls only its own
//! stream.
//!
//! Routing and dispatch call WebAssembly plugins synchronously, from the stream tasks. Each call
//! into a plugin leaves the async worker for its duration (see `plugin::sandbox_call`); the
//! routing decision cache and the default exchange need no call, so the hot paths stay on the
//! worker. Enqueueing, dispatching and settling stay on the worker too, on durable queues as
//! well: appending to a log is a memory copy, and what reaches the disk from there is a
//! `write(2)` into the page cache (a delivery record, so a crash still marks the message
//! redelivered), a read-back of a paged-out backlog, or the unlink of a drained segment — never
//! an fsync, which only the syncer thread makes (it holds no lock a worker waits for while it
//! syncs). Leaving the worker for each of them (`block_in_place`) was measured: it cost W2 a
//! fifth of its throughput and two thirds more CPU per message (`bench/README.md`). Waits for
//! an fsync on a worker (dead letters made durable) do leave it (`Topology::wait_durable`).
//! The server needs Tokio's multi-threaded runtime.

mod busy_wait;
mod connection;
mod consume;
mod control;
mod publish;
mod stream_limit;
mod traffic_socket;
mod wire_error;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use self::busy_wait::BusyWait;
use self::traffic_socket::TrafficSocket;
use crate::config::BrokerConfig;
use crate::session::Sessions;
use crate::tls::TlsIdentity;

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The only way into the core (see `session`).
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) config: BrokerConfig,
    /// Flips to true when the broker shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// A running QUIC endpoint.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    busy_wait: Arc<BusyWait>,
    shutdown: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The busy-wait threads could not be started (see `busy_wait`).
    #[error("starting the busy-wait threads")]
    BusyWait(#[source] std::io::Error),
}

impl Server {
    /// Binds the endpoint and starts accepting connections.
    pub fn start(
        config: BrokerConfig,
        identity: &TlsIdentity,
        sessions: Arc<Sessions>,
    ) -> Result<Server, ServerError> {
        let tls = identity.server_config()?;
        let quic_tls = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| crate::tls::TlsError::Config(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(quic_tls));
        let mut transport = quinn::TransportConfig::default();
        transport
            // Raised per connection as the client opens streams (see `stream_limit`).
            .max_concurrent_bidi_streams(stream_limit::INITIAL_BIDI_STREAMS.into())
            .max_concurrent_uni_streams(0u32.into())
            .max_idle_timeout(Some(Duration::from_secs(30).try_into().expect("30 s fits")))
            .stream_receive_window((4u32 << 20).into())
            // Small until the client has authenticated (see `connection.rs`), so a client that
            // never says Hello cannot make the broker buffer megabytes.
            .receive_window(connection::PRE_AUTH_RECEIVE_WINDOW.into())
            .send_window(16 << 20);
        server_config.transport_config(Arc::new(transport));
        let addr = config.listen;
        let busy_wait = BusyWait::new(Duration::from_micros(config.busy_wait_us));
        let endpoint = bind(server_config, addr, &busy_wait)
            .map_err(|source| ServerError::Bind { addr, source })?;
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        busy_wait.start(workers).map_err(ServerError::BusyWait)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            sessions,
            config,
            shutdown: shutdown_rx,
        });
        let accept_task = tokio::spawn(accept_loop(endpoint.clone(), shared));
        Ok(Server {
            endpoint,
            busy_wait,
            shutdown,
            accept_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    /// Stops accepting, tells every consumer and connection, and closes the endpoint.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.accept_task.abort();
        self.endpoint.close(
            switchyard_protocol::ErrorCode::ConnectionForced
                .as_u16()
                .into(),
            b"broker shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        self.busy_wait.stop();
    }
}

/// The endpoint on `addr`, its socket reporting traffic to `busy_wait`.
fn bind(
    server_config: quinn::ServerConfig,
    addr: SocketAddr,
    busy_wait: &Arc<BusyWait>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let socket = runtime.wrap_udp_socket(std::net::UdpSocket::bind(addr)?)?;
    let socket = Arc::new(TrafficSocket::new(socket, Arc::clone(busy_wait)));
    quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        Some(server_config),
        socket,
        runtime,
    )
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let id = shared.sessions.new_connection_id();
        tokio::spawn(connection::serve(incoming, id, Arc::clone(&shared)));
    }
}
