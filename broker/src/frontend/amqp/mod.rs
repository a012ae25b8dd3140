//! The AMQP 0-9-1 frontend: RabbitMQ's protocol over TCP and over TLS, so applications written
//! for RabbitMQ (pika, kombu and Celery, amqplib, the Java and .NET clients, lapin) run
//! unchanged. It is a translation between AMQP's frames and the session layer, in three rooms
//! (STYLE.md, 16): `connection.rs` does the IO (reader and writer tasks, heartbeats, the
//! connection task that owns the channels), `channel.rs` is the state machine from commands to
//! session calls and replies, and `handshake.rs` opens a connection. The codec is
//! `switchyard-amqp` (no IO); `translate.rs` maps properties and errors.
//!
//! What differs from RabbitMQ, and why, is in `docs/amqp.md`.

mod channel;
mod connection;
mod handshake;
mod translate;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{AmqpSettings, BrokerConfig};
use crate::session::Sessions;
use crate::tls::TlsIdentity;

/// What every AMQP connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    sessions: Arc<Sessions>,
    settings: AmqpSettings,
    max_message_bytes: u64,
    /// Flips to true when the broker shuts down.
    shutdown: watch::Receiver<bool>,
}

/// Why the AMQP listeners did not start.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("listening for AMQP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS configuration for AMQPS: {0}")]
    Tls(String),
}

/// The running AMQP listeners.
#[derive(Debug)]
pub(crate) struct AmqpServer {
    plain: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    accept_tasks: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl AmqpServer {
    /// Binds the listeners the configuration asks for and starts accepting.
    pub(crate) async fn start(
        config: &BrokerConfig,
        identity: &TlsIdentity,
        sessions: Arc<Sessions>,
    ) -> Result<AmqpServer, AmqpError> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            sessions,
            settings: config.amqp.clone(),
            max_message_bytes: u64::from(config.max_message_bytes),
            shutdown: shutdown_rx,
        });
        let mut accept_tasks = Vec::new();
        let mut plain = None;
        if let Some(addr) = config.amqp.listen {
            let listener = bind(addr).await?;
            plain = Some(
                listener
                    .local_addr()
                    .map_err(|source| AmqpError::Bind { addr, source })?,
            );
            accept_tasks.push(tokio::spawn(accept_plain(listener, Arc::clone(&shared))));
        }
        let mut tls = None;
        if let Some(addr) = config.amqp.listen_tls {
            let server_config = identity
                .server_config_for_tcp()
                .map_err(|e| AmqpError::Tls(e.to_string()))?;
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
            let listener = bind(addr).await?;
            tls = Some(
                listener
                    .local_addr()
                    .map_err(|source| AmqpError::Bind { addr, source })?,
            );
            accept_tasks.push(tokio::spawn(accept_tls(
                listener,
                acceptor,
                Arc::clone(&shared),
            )));
        }
        if let Some(addr) = plain {
            tracing::info!(%addr, "AMQP 0-9-1 listening");
        }
        if let Some(addr) = tls {
            tracing::info!(%addr, "AMQPS listening");
        }
        Ok(AmqpServer {
            plain,
            tls,
            accept_tasks,
            shutdown,
        })
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.plain
    }

    pub(crate) fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    /// Stops accepting and tells every connection to close (`connection.close` 320).
    pub(crate) fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        for task in &self.accept_tasks {
            task.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AmqpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AmqpError::Bind { addr, source })
}

async fn accept_plain(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection::serve(stream, peer, Arc::clone(&shared)));
            }
            Err(error) => {
                tracing::warn!(%error, "accepting an AMQP connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let deadline =
                        std::time::Duration::from_millis(shared.settings.handshake_timeout_ms);
                    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection::serve(stream, peer, shared).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "AMQPS TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "no AMQPS TLS handshake within the deadline")
                        }
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "accepting an AMQPS connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
