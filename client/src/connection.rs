//! A connection to the broker, kept alive across failures.
//!
//! A [`Connection`] holds one live [`Session`] at a time: a QUIC connection after the
//! handshake, with its control stream and request/reply bookkeeping. When the session is lost
//! (the broker restarts, the network drops) a supervisor reconnects with exponential backoff,
//! re-declares every exchange, queue and binding this client declared, and publishes the new
//! session; consumers resubscribe on it by themselves, publishers open a new stream on their
//! next publish. Publishes that were awaiting confirmation when the session was lost fail with
//! [`ClientError::Closed`] — whether the broker got them is unknown, so the caller decides
//! whether to publish again (at-least-once).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{
    Auth, Binding, ControlDown, ControlOk, ControlOp, ControlRequest, ControlUp, DEFAULT_MAX_FRAME,
    DestinationKind, ErrorCode, ExchangeInfo, Hello, PluginInfo, QueueInfo, SUPPORTED_VERSIONS,
    ShadowReport, StreamKind, Table, Welcome, WireError,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::ClientError;
use crate::framed::{FramedRecv, FramedSend};
use crate::publish_streams::PublishStreams;
use crate::tls::{Trust, client_config};

/// How to reach and authenticate to a broker.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub addr: SocketAddr,
    /// The name the certificate is checked against (with [`Trust::CaFile`]).
    pub server_name: String,
    pub trust: Trust,
    pub auth: Auth,
    /// Shown in the broker's logs.
    pub client_name: String,
}

impl ConnectOptions {
    /// Options for `addr`, trusting as `trust`, anonymous.
    pub fn new(addr: SocketAddr, trust: Trust) -> Self {
        ConnectOptions {
            addr,
            server_name: "localhost".into(),
            trust,
            auth: Auth::Anonymous,
            client_name: format!("switchyard-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

type Pending = HashMap<u64, oneshot::Sender<Result<ControlOk, ClientError>>>;

/// A connection that reconnects by itself. Cheap to clone; clones share it.
#[derive(Debug, Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    options: ConnectOptions,
    /// The live session; `None` while reconnecting or after `close`.
    session: watch::Sender<Option<Arc<Session>>>,
    journal: parking_lot::Mutex<Journal>,
    closed_by_user: AtomicBool,
    reconnects: AtomicU64,
}

/// One live QUIC connection to the broker, after the handshake.
#[derive(Debug)]
pub(crate) struct Session {
    quic: quinn::Connection,
    /// The session's own endpoint (and socket), which lives as long as it does.
    endpoint: quinn::Endpoint,
    requests: mpsc::Sender<(ControlOp, oneshot::Sender<Result<ControlOk, ClientError>>)>,
    welcome: Welcome,
    publish_streams: PublishStreams,
}

/// What this client declared, in order, to declare again after a reconnect.
#[derive(Debug, Default)]
struct Journal {
    operations: Vec<ControlOp>,
}

impl Journal {
    /// Records a request the broker accepted.
    fn record(&mut self, op: &ControlOp, reply: &ControlOk) {
        match op {
            ControlOp::DeclareExchange { passive: false, .. } | ControlOp::Bind(_) => {
                self.remember(op.clone());
            }
            ControlOp::DeclareQueue { passive: false, .. } => {
                // A server-named queue is declared again under the name it was given.
                let mut op = op.clone();
                if let ControlOp::DeclareQueue { name, .. } = &mut op
                    && let ControlOk::QueueDeclared { name: given, .. } = reply
                {
                    name.clone_from(given);
                }
                self.remember(op);
            }
            ControlOp::DeleteExchange { name, .. } => self
                .operations
                .retain(|kept| !declares_exchange(kept, name) && !binds_exchange(kept, name)),
            ControlOp::DeleteQueue { name, .. } => self
                .operations
                .retain(|kept| !declares_queue(kept, name) && !binds_queue(kept, name)),
            ControlOp::Unbind(binding) => self
                .operations
                .retain(|kept| !matches!(kept, ControlOp::Bind(b) if b == binding)),
            _ => {}
        }
    }

    fn remember(&mut self, op: ControlOp) {
        if !self.operations.contains(&op) {
            self.operations.push(op);
        }
    }
}

fn declares_exchange(op: &ControlOp, exchange: &str) -> bool {
    matches!(op, ControlOp::DeclareExchange { name, .. } if name == exchange)
}

fn declares_queue(op: &ControlOp, queue: &str) -> bool {
    matches!(op, ControlOp::DeclareQueue { name, .. } if name == queue)
}

fn binds_exchange(op: &ControlOp, exchange: &str) -> bool {
    let ControlOp::Bind(b) = op else { return false };
    b.source == exchange
        || (b.destination_kind == DestinationKind::Exchange && b.destination == exchange)
}

fn binds_queue(op: &ControlOp, queue: &str) -> bool {
    let ControlOp::Bind(b) = op else { return false };
    b.destination_kind == DestinationKind::Queue && b.destination == queue
}

/// How long [`Connection::close`] waits for the broker to read what was published.
const CLOSE_DRAIN: Duration = Duration::from_secs(5);

/// How long a request waits for a session while the connection is being re-established.
const SESSION_WAIT: Duration = Duration::from_secs(30);
/// Backoff between reconnection attempts.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Options of `exchange declare`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeOptions {
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Table,
}

/// Options of `queue declare`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Table,
}

/// What [`Connection::import_definitions`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub exchanges: u32,
    pub queues: u32,
    pub bindings: u32,
    pub failures: Vec<String>,
}

impl Connection {
    /// Connects, negotiates the protocol version and authenticates; from then on reconnects
    /// by itself whenever the session is lost, until [`close`](Self::close).
    pub async fn connect(options: ConnectOptions) -> Result<Connection, ClientError> {
        let session = Arc::new(Session::establish(&options).await?);
        let (session_tx, _) = watch::channel(Some(Arc::clone(&session)));
        let shared = Arc::new(Shared {
            options,
            session: session_tx,
            journal: parking_lot::Mutex::default(),
            closed_by_user: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
        });
        tokio::spawn(supervise(Arc::downgrade(&shared), session));
        Ok(Connection { shared })
    }

    /// The live session, waiting (bounded) while the connection is re-established.
    pub(crate) async fn session(&self) -> Result<Arc<Session>, ClientError> {
        let mut sessions = self.shared.session.subscribe();
        let wait = sessions.wait_for(|session| {
            session.is_some() || self.shared.closed_by_user.load(Ordering::Relaxed)
        });
        match tokio::time::timeout(SESSION_WAIT, wait).await {
            Ok(Ok(session)) => session
                .clone()
                .ok_or_else(|| ClientError::closed("the connection was closed")),
            Ok(Err(_)) => Err(ClientError::closed("the connection was closed")),
            Err(_) => Err(ClientError::Timeout {
                what: "a connection to the broker".into(),
                after: SESSION_WAIT,
            }),
        }
    }

    /// Waits until a session other than `old` is live (after a reconnect).
    pub(crate) async fn next_session(
        &self,
        old: &Arc<Session>,
    ) -> Result<Arc<Session>, ClientError> {
        let mut sessions = self.shared.session.subscribe();
        let changed = sessions.wait_for(|session| {
            self.shared.closed_by_user.load(Ordering::Relaxed)
                || session.as_ref().is_some_and(|s| !Arc::ptr_eq(s, old))
        });
        match changed.await {
            Ok(session) => session
                .clone()
                .filter(|_| !self.shared.closed_by_user.load(Ordering::Relaxed))
                .ok_or_else(|| ClientError::closed("the connection was closed")),
            Err(_) => Err(ClientError::closed("the connection was closed")),
        }
    }

    /// The current QUIC connection, if one is live (for tests and diagnostics).
    pub fn quic(&self) -> Option<quinn::Connection> {
        self.shared
            .session
            .borrow()
            .as_ref()
            .map(|s| s.quic.clone())
    }

    /// The broker's identifier for the current session.
    pub fn id(&self) -> Option<u64> {
        self.shared
            .session
            .borrow()
            .as_ref()
            .map(|s| s.welcome.connection_id)
    }

    /// How many times the connection was re-established after a loss.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Closes the connection for good, gracefully: every publish stream is finished, and the
    /// close waits (up to 5 s) until the broker has read and handled everything published on
    /// it, unconfirmed publishes included; then the connection closes and this waits (briefly)
    /// until the broker has been told, so it requeues this connection's unacked messages at
    /// once rather than after a timeout. Publishers fail with [`ClientError::Closed`] from
    /// then on, and so does other outstanding work.
    pub async fn close(&self) {
        self.shared.closed_by_user.store(true, Ordering::Relaxed);
        let session = self.shared.session.send_replace(None);
        if let Some(session) = session {
            let finished =
                tokio::time::timeout(CLOSE_DRAIN, session.publish_streams().finish_all()).await;
            if finished.is_err() {
                tracing::warn!(
                    "the broker did not finish reading the publish streams within {CLOSE_DRAIN:?}; closing anyway"
                );
            }
            session.quic.close(0u32.into(), b"client closed");
            let _ =
                tokio::time::timeout(Duration::from_secs(2), session.endpoint.wait_idle()).await;
        }
    }

    /// Sends one control request on the live session and waits for its reply. Declarations,
    /// bindings and deletions are remembered, to be replayed after a reconnect.
    pub async fn request(&self, op: ControlOp) -> Result<ControlOk, ClientError> {
        let session = self.session().await?;
        let reply = session.request(op.clone()).await?;
        self.shared.journal.lock().record(&op, &reply);
        Ok(reply)
    }

    pub async fn declare_exchange(
        &self,
        name: &str,
        kind: &str,
        options: ExchangeOptions,
    ) -> Result<(), ClientError> {
        self.request(ControlOp::DeclareExchange {
            name: name.into(),
            kind: kind.into(),
            durable: options.durable,
            auto_delete: options.auto_delete,
            internal: options.internal,
            arguments: options.arguments,
            passive: false,
        })
        .await
        .map(drop)
    }

    pub async fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), ClientError> {
        self.request(ControlOp::DeleteExchange {
            name: name.into(),
            if_unused,
        })
        .await
        .map(drop)
    }

    /// Declares a queue; returns its name (chosen by the broker when `name` is empty).
    pub async fn declare_queue(
        &self,
        name: &str,
        options: QueueOptions,
    ) -> Result<String, ClientError> {
        let reply = self
            .request(ControlOp::DeclareQueue {
                name: name.into(),
                durable: options.durable,
                exclusive: options.exclusive,
                auto_delete: options.auto_delete,
                arguments: options.arguments,
                passive: false,
            })
            .await?;
        match reply {
            ControlOk::QueueDeclared { name, .. } => Ok(name),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a queue; returns how many messages it held.
    pub async fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64, ClientError> {
        match self
            .request(ControlOp::DeleteQueue {
                name: name.into(),
                if_unused,
                if_empty,
            })
            .await?
        {
            ControlOk::Deleted { messages } => Ok(messages),
            other => Err(unexpected(other)),
        }
    }

    /// Drops a queue's ready messages; returns how many.
    pub async fn purge_queue(&self, name: &str) -> Result<u64, ClientError> {
        match self
            .request(ControlOp::PurgeQueue { name: name.into() })
            .await?
        {
            ControlOk::Purged { messages } => Ok(messages),
            other => Err(unexpected(other)),
        }
    }

    /// Binds queue `queue` to `exchange` with `key` (and arguments for e.g. `headers`).
    pub async fn bind_queue(
        &self,
        exchange: &str,
        queue: &str,
        key: &str,
        arguments: Table,
    ) -> Result<(), ClientError> {
        self.request(ControlOp::Bind(binding(
            exchange,
            queue,
            DestinationKind::Queue,
            key,
            arguments,
        )))
        .await
        .map(drop)
    }

    pub async fn unbind_queue(
        &self,
        exchange: &str,
        queue: &str,
        key: &str,
        arguments: Table,
    ) -> Result<(), ClientError> {
        self.request(ControlOp::Unbind(binding(
            exchange,
            queue,
            DestinationKind::Queue,
            key,
            arguments,
        )))
        .await
        .map(drop)
    }

    /// Binds exchange `destination` to exchange `source`.
    pub async fn bind_exchange(
        &self,
        source: &str,
        destination: &str,
        key: &str,
        arguments: Table,
    ) -> Result<(), ClientError> {
        self.request(ControlOp::Bind(binding(
            source,
            destination,
            DestinationKind::Exchange,
            key,
            arguments,
        )))
        .await
        .map(drop)
    }

    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>, ClientError> {
        match self.request(ControlOp::ListQueues).await? {
            ControlOk::Queues(queues) => Ok(queues),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_exchanges(&self) -> Result<Vec<ExchangeInfo>, ClientError> {
        match self.request(ControlOp::ListExchanges).await? {
            ControlOk::Exchanges(exchanges) => Ok(exchanges),
            other => Err(unexpected(other)),
        }
    }

    /// Every exchange, queue and binding as definitions JSON (see `switchyard definitions`).
    pub async fn export_definitions(&self) -> Result<String, ClientError> {
        match self.request(ControlOp::ExportDefinitions).await? {
            ControlOk::Definitions(json) => Ok(json),
            other => Err(unexpected(other)),
        }
    }

    /// Declares what definitions JSON lists; returns how many exchanges, queues and bindings
    /// were declared and one line per item that failed.
    pub async fn import_definitions(&self, json: &str) -> Result<ImportReport, ClientError> {
        match self
            .request(ControlOp::ImportDefinitions { json: json.into() })
            .await?
        {
            ControlOk::Imported {
                exchanges,
                queues,
                bindings,
                failures,
            } => Ok(ImportReport {
                exchanges,
                queues,
                bindings,
                failures,
            }),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_plugins(&self) -> Result<Vec<PluginInfo>, ClientError> {
        match self.request(ControlOp::ListPlugins).await? {
            ControlOk::Plugins(plugins) => Ok(plugins),
            other => Err(unexpected(other)),
        }
    }

    /// Installs a plugin component into the broker and waits until it serves; answers the
    /// plugin list's row for it. The broker keeps it in its plugin directory.
    pub async fn install_plugin(&self, wasm: Bytes) -> Result<PluginInfo, ClientError> {
        match self.request(ControlOp::InstallPlugin { wasm }).await? {
            ControlOk::PluginInstalled(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Runs `wasm`, a new version of router `name`, beside the serving one on
    /// `sample_percent` of its traffic; answers the shadow's version.
    pub async fn start_shadow(
        &self,
        name: &str,
        wasm: Bytes,
        sample_percent: u8,
    ) -> Result<String, ClientError> {
        let op = ControlOp::StartShadow {
            name: name.into(),
            wasm,
            sample_percent,
        };
        match self.request(op).await? {
            ControlOk::ShadowStarted { version, .. } => Ok(version),
            other => Err(unexpected(other)),
        }
    }

    /// What the shadow of router `name` found so far.
    pub async fn shadow_report(&self, name: &str) -> Result<ShadowReport, ClientError> {
        match self
            .request(ControlOp::ShadowReport { name: name.into() })
            .await?
        {
            ControlOk::Shadow(report) => Ok(report),
            other => Err(unexpected(other)),
        }
    }

    /// Makes the shadow of router `name` the serving version (and its file the plugin's).
    pub async fn promote_shadow(&self, name: &str) -> Result<PluginInfo, ClientError> {
        match self
            .request(ControlOp::PromoteShadow { name: name.into() })
            .await?
        {
            ControlOk::PluginInstalled(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Stops the shadow of router `name`.
    pub async fn discard_shadow(&self, name: &str) -> Result<(), ClientError> {
        match self
            .request(ControlOp::DiscardShadow { name: name.into() })
            .await?
        {
            ControlOk::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn queue_info(&self, name: &str) -> Result<QueueInfo, ClientError> {
        match self
            .request(ControlOp::QueueInfo { name: name.into() })
            .await?
        {
            ControlOk::Queue(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }
}

impl Session {
    /// Connects, negotiates the protocol version and authenticates.
    async fn establish(options: &ConnectOptions) -> Result<Session, ClientError> {
        let connect_error = |reason: String| ClientError::Connect {
            addr: options.addr.to_string(),
            reason,
        };
        let tls = client_config(&options.trust)?;
        let quic_tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic_tls));
        let mut transport = quinn::TransportConfig::default();
        transport
            .keep_alive_interval(Some(Duration::from_secs(2)))
            .max_idle_timeout(Some(Duration::from_secs(10).try_into().expect("10 s fits")));
        config.transport_config(Arc::new(transport));
        let bind: SocketAddr = if options.addr.is_ipv6() {
            "[::]:0".parse().expect("literal address")
        } else {
            "0.0.0.0:0".parse().expect("literal address")
        };
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|e| connect_error(e.to_string()))?;
        endpoint.set_default_client_config(config);
        let quic = endpoint
            .connect(options.addr, &options.server_name)
            .map_err(|e| connect_error(e.to_string()))?
            .await
            .map_err(|e| connect_error(e.to_string()))?;

        let (send, recv) = quic
            .open_bi()
            .await
            .map_err(|e| ClientError::from_connection(&e))?;
        let mut send = FramedSend::new(send, DEFAULT_MAX_FRAME);
        let mut recv = FramedRecv::new(recv, DEFAULT_MAX_FRAME);
        send.push_stream_kind(StreamKind::Control);
        send.send(&ControlUp::Hello(Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            client_name: options.client_name.clone(),
            auth: options.auth.clone(),
        }))
        .await?;
        let welcome = match recv.next::<ControlDown>().await? {
            Some(ControlDown::Welcome(welcome)) => welcome,
            Some(ControlDown::Closing { reason }) => return Err(ClientError::Refused(reason)),
            Some(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )));
            }
            None => return Err(ClientError::closed("the broker closed the control stream")),
        };
        // The broker must pick one of ours: frames of any other version would not decode.
        if !SUPPORTED_VERSIONS.contains(&welcome.version) {
            return Err(ClientError::Refused(WireError::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "the broker chose protocol version {}; this client speaks {SUPPORTED_VERSIONS:?}",
                    welcome.version
                ),
            )));
        }
        let (requests, queue) = mpsc::channel(256);
        tokio::spawn(run_control(send, recv, queue));
        Ok(Session {
            quic,
            endpoint,
            requests,
            welcome,
            publish_streams: PublishStreams::default(),
        })
    }

    pub(crate) fn max_frame(&self) -> u32 {
        self.welcome.max_frame
    }

    /// Whether the QUIC connection is still up.
    pub(crate) fn is_open(&self) -> bool {
        self.quic.close_reason().is_none()
    }

    /// The publish streams opened on this session.
    pub(crate) fn publish_streams(&self) -> &PublishStreams {
        &self.publish_streams
    }

    /// Opens a client stream of `kind` on this session.
    pub(crate) async fn open_stream(
        &self,
        kind: StreamKind,
    ) -> Result<(FramedSend, FramedRecv), ClientError> {
        let (send, recv) = self.quic.open_bi().await.map_err(ClientError::closed)?;
        let mut send = FramedSend::new(send, self.max_frame());
        send.push_stream_kind(kind);
        Ok((send, FramedRecv::new(recv, self.max_frame())))
    }

    async fn request(&self, op: ControlOp) -> Result<ControlOk, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((op, reply))
            .await
            .map_err(|_| ClientError::closed("the control stream is gone"))?;
        answer
            .await
            .map_err(|_| ClientError::closed("the control stream is gone"))?
    }
}

/// Watches the live session; when it is lost (and the user did not close the connection),
/// reconnects with backoff, replays the journal and publishes the new session.
async fn supervise(shared: Weak<Shared>, mut session: Arc<Session>) {
    loop {
        let reason = session.quic.closed().await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if strong.closed_by_user.load(Ordering::Relaxed) {
            return;
        }
        tracing::warn!(%reason, "connection to the broker lost; reconnecting");
        strong.session.send_replace(None);
        let mut backoff = FIRST_BACKOFF;
        session = loop {
            tokio::time::sleep(backoff).await;
            if strong.closed_by_user.load(Ordering::Relaxed) {
                return;
            }
            match reconnect(&strong).await {
                Ok(new) => break Arc::new(new),
                Err(error) => {
                    tracing::debug!(%error, ?backoff, "reconnection attempt failed");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        tracing::info!("reconnected to the broker");
        strong.reconnects.fetch_add(1, Ordering::Relaxed);
        strong.session.send_replace(Some(Arc::clone(&session)));
    }
}

/// A new session with everything this client declared declared again.
async fn reconnect(shared: &Shared) -> Result<Session, ClientError> {
    let session = Session::establish(&shared.options).await?;
    let operations = shared.journal.lock().operations.clone();
    for op in operations {
        session.request(op).await?;
    }
    Ok(session)
}

fn binding(
    source: &str,
    destination: &str,
    destination_kind: DestinationKind,
    key: &str,
    arguments: Table,
) -> Binding {
    Binding {
        source: source.into(),
        destination: destination.into(),
        destination_kind,
        key: key.into(),
        arguments,
    }
}

fn unexpected(reply: ControlOk) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

/// Writes requests and matches replies to them by id, until either side goes away.
async fn run_control(
    mut send: FramedSend,
    mut recv: FramedRecv,
    mut requests: mpsc::Receiver<(ControlOp, oneshot::Sender<Result<ControlOk, ClientError>>)>,
) {
    let mut pending: Pending = HashMap::new();
    let mut next_id = 1u64;
    let failure = loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((op, reply)) = request else { break ClientError::closed("connection dropped") };
                let id = next_id;
                next_id += 1;
                pending.insert(id, reply);
                if let Err(e) = send.send(&ControlUp::Request(ControlRequest { id, op })).await {
                    break ClientError::from(e);
                }
            }
            frame = recv.next::<ControlDown>() => match frame {
                Ok(Some(ControlDown::Reply(reply))) => {
                    if let Some(waiter) = pending.remove(&reply.id) {
                        let _ = waiter.send(reply.result.map_err(ClientError::Refused));
                    }
                }
                Ok(Some(ControlDown::Closing { reason })) => break ClientError::Refused(reason),
                Ok(Some(other)) => break ClientError::Protocol(format!("unexpected control frame {other:?}")),
                Ok(None) => break ClientError::closed("the broker closed the control stream"),
                Err(e) => break ClientError::from(e),
            }
        }
    };
    for (_, waiter) in pending {
        let _ = waiter.send(Err(failure.clone()));
    }
}
