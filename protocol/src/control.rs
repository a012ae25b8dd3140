//! Frames of the control stream: the first bidirectional stream a client opens on a connection.
//!
//! The conversation:
//! 1. The client sends [`ControlUp::Hello`]: the versions it speaks, its name, its credentials.
//! 2. The broker answers [`ControlDown::Welcome`] (the version chosen, its `max_frame`, a
//!    connection id), or [`ControlDown::Closing`] with `UNSUPPORTED_VERSION` or
//!    `ACCESS_REFUSED` and closes the connection. Nothing else may be sent before `Welcome`,
//!    and no other stream is served until then.
//! 3. The client sends [`ControlUp::Request`]s, each with an id of its choosing; the broker
//!    answers each with exactly one [`ControlDown::Reply`] carrying the same id. Replies come in
//!    request order, but a client should match them by id. Ids need not be sequential; reusing
//!    one that is still unanswered is a protocol violation.
//! 4. Either side may end the connection. Before the broker closes it on purpose it sends
//!    [`ControlDown::Closing`] with the reason (`CONNECTION_FORCED` at shutdown), then closes
//!    QUIC with the reason's code. Closing the control stream closes the connection.
//!
//! Which `ControlOk` answers which `ControlOp` is documented on each op; any op may instead be
//! answered with a [`WireError`]. A failed request changes nothing, and the connection and its
//! other streams go on (unlike AMQP, where an error closes the channel).

use crate::error_code::WireError;
use crate::value::Table;

/// Client → broker on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControlUp {
    /// The first frame of every connection, and only then. Frozen across versions.
    Hello(Hello),
    Request(ControlRequest),
}

/// Broker → client on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControlDown {
    /// The answer to a successful `Hello`. Frozen across versions.
    Welcome(Welcome),
    Reply(ControlReply),
    /// The broker is about to close the connection, and why.
    Closing {
        reason: WireError,
    },
}

/// Opens a connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hello {
    /// Every protocol version the client speaks, in any order.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub versions: Vec<u16>,
    /// Shown in logs and the admin API; need not be unique.
    pub client_name: String,
    pub auth: Auth,
}

/// How the client authenticates. TLS client certificates (mTLS) are checked during the
/// handshake, before any frame; a client relying on one alone sends `Anonymous`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Auth {
    /// Allowed only where the broker is configured to accept it.
    Anonymous,
    Password {
        user: String,
        password: String,
    },
    /// A bearer token the broker can verify.
    Token(String),
}

// Written by hand so that credentials never reach a log.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Password { user, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// The broker accepted the `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Welcome {
    /// The version both sides now speak on every stream of this connection.
    pub version: u16,
    pub server_name: String,
    /// The largest frame payload the broker accepts, in bytes (after the 4-byte length
    /// prefix). The client must not send larger frames and should decode with this limit.
    pub max_frame: u32,
    /// The broker's id for this connection, as its logs and admin API show it.
    pub connection_id: u64,
}

/// A request on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControlRequest {
    /// Chosen by the client; echoed in the reply.
    pub id: u64,
    pub op: ControlOp,
}

/// The answer to the request with the same id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControlReply {
    pub id: u64,
    pub result: Result<ControlOk, WireError>,
}

/// What a control request asks for. Names and keys are at most
/// [`MAX_NAME_BYTES`](crate::MAX_NAME_BYTES); see [`limits`](crate::validate_name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControlOp {
    /// Creates an exchange, or checks that an identical one exists. Answered by
    /// [`ControlOk::ExchangeDeclared`]. Redeclaring with different properties or arguments
    /// fails with `PRECONDITION_FAILED`; an unknown `kind` with `NOT_FOUND`; arguments the
    /// routing plugin refuses with `PLUGIN_REFUSED`.
    DeclareExchange {
        name: String,
        /// The exchange type: the name of the routing plugin (`direct`, `topic`, …).
        kind: String,
        /// Survives a broker restart.
        durable: bool,
        /// Deleted when its last binding (as a source) is removed, once it has had one.
        auto_delete: bool,
        /// Cannot be published to directly; only exchange-to-exchange bindings reach it.
        internal: bool,
        arguments: Table,
        /// Only check that the exchange exists (`NOT_FOUND` if not); the other fields are
        /// ignored.
        passive: bool,
    },
    /// Deletes an exchange and every binding to or from it. Answered by [`ControlOk::Done`].
    /// `if_unused` fails with `PRECONDITION_FAILED` while the exchange has bindings as a
    /// source.
    DeleteExchange { name: String, if_unused: bool },
    /// Creates a queue, or checks that an identical one exists. Answered by
    /// [`ControlOk::QueueDeclared`]. An empty name asks the broker to choose one (returned in
    /// the answer); such a queue is usually also exclusive.
    DeclareQueue {
        name: String,
        /// Survives a broker restart (with its persistent messages).
        durable: bool,
        /// Used only by this connection, and deleted when it closes. Others get
        /// `RESOURCE_LOCKED`.
        exclusive: bool,
        /// Deleted when its last consumer is cancelled, once it has had one.
        auto_delete: bool,
        /// Queue arguments as RabbitMQ names them: `x-max-length`, `x-max-length-bytes`,
        /// `x-overflow`, `x-message-ttl`, `x-expires`, `x-dead-letter-exchange`,
        /// `x-dead-letter-routing-key`, `x-delivery-limit`, `x-max-priority`.
        arguments: Table,
        /// Only check that the queue exists (`NOT_FOUND` if not); the other fields are ignored.
        passive: bool,
    },
    /// Deletes a queue, its bindings and its messages. Answered by [`ControlOk::Deleted`].
    /// `if_unused` fails with `PRECONDITION_FAILED` while it has consumers, `if_empty` while it
    /// holds messages. The queue's consumers get `Cancelled { QueueDeleted }`.
    DeleteQueue {
        name: String,
        if_unused: bool,
        if_empty: bool,
    },
    /// Drops a queue's ready messages (not those delivered and unacked). Answered by
    /// [`ControlOk::Purged`].
    PurgeQueue { name: String },
    /// Adds a binding; binding one that exists is a no-op. Answered by [`ControlOk::Done`].
    /// A key or arguments the routing plugin refuses fail with `PLUGIN_REFUSED`.
    Bind(Binding),
    /// Removes a binding; removing one that does not exist is a no-op (as in RabbitMQ).
    /// Answered by [`ControlOk::Done`].
    Unbind(Binding),
    /// Answered by [`ControlOk::Exchanges`].
    ListExchanges,
    /// Answered by [`ControlOk::Queues`].
    ListQueues,
    /// Answered by [`ControlOk::Plugins`].
    ListPlugins,
    /// Answered by [`ControlOk::Queue`].
    QueueInfo { name: String },
    /// Every exchange, queue (exclusive ones left out) and binding, as the definitions JSON
    /// that `ImportDefinitions` reads. Answered by [`ControlOk::Definitions`].
    ExportDefinitions,
    /// Declares what definitions JSON lists: exchanges, then queues, then bindings; items that
    /// fail are reported and the rest still declared. Answered by [`ControlOk::Imported`].
    ImportDefinitions { json: String },
    /// Installs a plugin component (a router or a filter) into the broker's plugin directory,
    /// over the file of the plugin of the same name if one serves, and loads it. Answered by
    /// [`ControlOk::PluginInstalled`] once the new version serves; if it cannot take over the
    /// plugin's exchanges and bindings, the old version and its file stay, and the error says
    /// why. Where users are configured, only a user tagged `administrator` may load code.
    InstallPlugin {
        #[serde(with = "crate::body")]
        wasm: bytes::Bytes,
    },
    /// Runs `wasm`, a new version of the router `name`, beside the serving one: `sample_percent`
    /// of the messages routed by exchanges of that type are routed by both, and differences
    /// recorded (see [`ShadowReport`]). The serving version's decisions stay the ones used.
    /// Replaces an earlier shadow. Answered by [`ControlOk::ShadowStarted`]; needs the same
    /// right as `InstallPlugin`.
    StartShadow {
        name: String,
        #[serde(with = "crate::body")]
        wasm: bytes::Bytes,
        /// 1 to 100.
        sample_percent: u8,
    },
    /// What the shadow of router `name` found so far. Answered by [`ControlOk::Shadow`].
    ShadowReport { name: String },
    /// Makes the shadow of router `name` the serving version, as `InstallPlugin` would.
    /// Answered by [`ControlOk::PluginInstalled`].
    PromoteShadow { name: String },
    /// Stops the shadow of router `name`; nothing else changes. Answered by [`ControlOk::Done`].
    DiscardShadow { name: String },
}

impl ControlOp {
    /// The op's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            ControlOp::DeclareExchange { .. } => "declare-exchange",
            ControlOp::DeleteExchange { .. } => "delete-exchange",
            ControlOp::DeclareQueue { .. } => "declare-queue",
            ControlOp::DeleteQueue { .. } => "delete-queue",
            ControlOp::PurgeQueue { .. } => "purge-queue",
            ControlOp::Bind(_) => "bind",
            ControlOp::Unbind(_) => "unbind",
            ControlOp::ListExchanges => "list-exchanges",
            ControlOp::ListQueues => "list-queues",
            ControlOp::ListPlugins => "list-plugins",
            ControlOp::QueueInfo { .. } => "queue-info",
            ControlOp::ExportDefinitions => "export-definitions",
            ControlOp::ImportDefinitions { .. } => "import-definitions",
            ControlOp::InstallPlugin { .. } => "install-plugin",
            ControlOp::StartShadow { .. } => "start-shadow",
            ControlOp::ShadowReport { .. } => "shadow-report",
            ControlOp::PromoteShadow { .. } => "promote-shadow",
            ControlOp::DiscardShadow { .. } => "discard-shadow",
        }
    }
}

/// A binding from an exchange to a queue or another exchange.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    /// The exchange messages come from.
    pub source: String,
    pub destination: String,
    pub destination_kind: DestinationKind,
    /// The binding key; what it means is up to the source's routing plugin.
    pub key: String,
    /// Passed to the routing plugin (the `headers` plugin reads `x-match` here, say).
    pub arguments: Table,
}

/// What a binding's destination names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DestinationKind {
    Queue,
    Exchange,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControlOk {
    /// The op succeeded and has nothing to report.
    Done,
    ExchangeDeclared,
    QueueDeclared {
        /// The queue's name: the one asked for, or the one the broker chose.
        name: String,
        /// Ready messages.
        messages: u64,
        consumers: u32,
    },
    /// Messages dropped with a deleted queue.
    Deleted {
        messages: u64,
    },
    /// Ready messages dropped by a purge.
    Purged {
        messages: u64,
    },
    Exchanges(#[serde(deserialize_with = "crate::bounded::seq")] Vec<ExchangeInfo>),
    Queues(#[serde(deserialize_with = "crate::bounded::seq")] Vec<QueueInfo>),
    Plugins(#[serde(deserialize_with = "crate::bounded::seq")] Vec<PluginInfo>),
    Queue(QueueInfo),
    /// Definitions JSON.
    Definitions(String),
    /// What an import declared, and one line per item that failed.
    Imported {
        exchanges: u32,
        queues: u32,
        bindings: u32,
        #[serde(deserialize_with = "crate::bounded::seq")]
        failures: Vec<String>,
    },
    /// The plugin version that now serves.
    PluginInstalled(PluginInfo),
    /// The shadow's name and version.
    ShadowStarted {
        name: String,
        version: String,
    },
    Shadow(ShadowReport),
}

/// What a shadow version found: how many messages both versions routed, and each message
/// they routed differently (the newest 1,000).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShadowReport {
    pub plugin: String,
    pub serving_version: String,
    pub shadow_version: String,
    pub sample_percent: u8,
    /// Messages the serving version routed since the shadow started.
    pub seen: u64,
    /// Of those, the ones the shadow routed too.
    pub sampled: u64,
    pub agreed: u64,
    pub diverged: u64,
    /// Sampled messages the shadow failed on (a trap, its deadline, its memory limit).
    pub failed: u64,
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub divergences: Vec<Divergence>,
    pub last_error: Option<String>,
}

/// One message the serving version and its shadow routed differently.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Divergence {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: Option<String>,
    /// Queue or exchange names, sorted: where the message went.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub serving: Vec<String>,
    /// Where the shadow would have sent it.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub shadow: Vec<String>,
}

/// One exchange, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExchangeInfo {
    pub name: String,
    /// The routing plugin's name.
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Table,
}

/// One queue, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueInfo {
    pub name: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    /// Messages waiting to be delivered.
    pub ready: u64,
    /// Messages delivered and not yet acked.
    pub unacked: u64,
    pub consumers: u32,
    pub arguments: Table,
}

/// One plugin, as listed: loaded, or a file that failed to load.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginInfo {
    /// The plugin's name (an exchange type or filter name), or for a file that failed to load,
    /// the file's stem.
    pub name: String,
    /// Unknown for a file that failed to load.
    pub kind: Option<PluginKind>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub source: PluginSource,
    pub status: PluginStatus,
    /// The last load failure or fault.
    pub last_error: Option<String>,
    /// Faults (traps, overrun deadlines, memory cap, invalid answers) since the broker started.
    pub faults: u64,
}

/// Whether a plugin routes (an exchange type) or filters (for consumers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PluginKind {
    Router,
    Filter,
}

/// Where a plugin's code came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PluginSource {
    /// Built into the broker binary.
    Embedded,
    /// A `.wasm` file in the plugin directory, by its path on the broker's machine.
    File(String),
}

/// A plugin's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PluginStatus {
    Serving,
    /// Faulted too often; calls are refused until the quarantine ends or a new version loads.
    Quarantined,
    /// Its file was removed while exchanges still use it; it keeps serving them.
    Orphaned,
    /// The file failed to load; nothing serves under its name from that file.
    Failed,
}
