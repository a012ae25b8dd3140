//! The session layer: the one way into the broker's core for every protocol frontend.
//!
//! A frontend (today the QUIC protocol in `frontend/quic/`; AMQP 0-9-1, MQTT and STOMP next)
//! owns its listener, its codec and the translation between its protocol and this API, nothing
//! else. It authenticates a client through [`Sessions::authenticate`], opens a [`Session`] for the
//! principal, and from then on does everything through it:
//!
//! - declare, delete, bind, unbind, purge, inspect, export and import (this file);
//! - publish a batch and learn each message's outcome, final once durable ([`Publisher`]);
//! - subscribe with credit, exclusivity and a filter, settle (ack, nack, reject, requeue,
//!   credit), cancel and keep settling, sync ([`Subscription`]);
//! - take single messages on request and settle them (AMQP's `basic.get`; [`Getter`]);
//! - hear backpressure: [`Session::backpressure`] is an event, blocked or clear, for the
//!   frontend to translate (QUIC sends `Blocked` and stops reading the stream; AMQP sends
//!   `connection.blocked`).
//!
//! What holds for every protocol is applied here once: the message size limit counting every
//! byte a message carries, the dead-letter trail a publisher may not forge, the disk watermark
//! for persistent messages, exclusive queues owned by the session's connection, and (later)
//! permissions. What differs by protocol stays in the frontend: name and key length limits,
//! frame sizes, how an outcome is told. Nothing here knows a frame or a socket, and frontends
//! never reach past this layer into the topology. Calls may block on plugins and the disk:
//! frontends make them off the async workers where they may (`block_in_place`), as the QUIC
//! frontend's module docs describe.

mod admission;
mod backpressure;
mod consume;
mod get;
mod publish;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use admission::{Admission, ConnectionSlot};
pub use backpressure::{Backpressure, Pressure};
pub use consume::{SubscribeOptions, Subscription};
pub use get::{Getter, Got};
pub use publish::{
    DurabilityWait, MAX_ROUTING_KEY_BYTES, Outcome, PendingPublish, PublishRequest, Publisher,
};

/// The core's vocabulary a frontend speaks to the session in: what it declares, publishes,
/// receives and settles. Frontends import these from here, not from the core's modules.
pub use crate::error::BrokerError;
pub use crate::exchange::ExchangeSpec;
pub use crate::message::{Headers, Identifier, Message, Properties, Table, Value};
pub use crate::plugin::{
    PluginError, PluginHealth, PluginInfo, PluginKind, PluginSource, PluginStatus, ShadowReport,
};
pub use crate::queue::{
    Cancellation, DeliveryEvent, DeliveryReceiver, DeliverySender, Settlement, delivery_channel,
};
pub use crate::topology::{Binding, BindingDestination, QueueSpec};

pub use crate::auth::Credentials;
use crate::auth::{AuthError, Principal, Users};
use crate::config::BrokerConfig;
use crate::exchange::Exchange;
pub use crate::queue::Queue;
use crate::store::Definitions;
use crate::topology::{RestoreReport, Topology};

/// A shadow's report with the exchanges and destinations named.
#[derive(Debug, Clone)]
pub struct ShadowFindings {
    pub report: ShadowReport,
    /// `report.divergences`, named, in the same order.
    pub divergences: Vec<NamedDivergence>,
}

/// One divergence, with names where the topology still knows the handles (`#N` where not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedDivergence {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub serving: Vec<String>,
    pub shadow: Vec<String>,
}

/// What every session shares: the core, the users, and the limits every protocol obeys.
#[derive(Debug)]
pub struct Sessions {
    topology: Arc<Topology>,
    users: Users,
    /// Every byte a message carries, at most (`max_message_bytes`).
    max_message_bytes: usize,
    /// Queued message bytes above which publishers are held back.
    memory_high_watermark_bytes: u64,
    /// Where installed plugins are written (the broker watches it).
    plugin_dir: PathBuf,
    /// The connection limits every frontend's connections count against.
    admission: Arc<Admission>,
    next_connection: AtomicU64,
}

impl Sessions {
    pub fn new(topology: Arc<Topology>, users: Users, config: &BrokerConfig) -> Arc<Sessions> {
        topology
            .memory()
            .set_watermark(config.memory_high_watermark_bytes);
        Arc::new(Sessions {
            topology,
            users,
            max_message_bytes: config.max_message_bytes as usize,
            memory_high_watermark_bytes: config.memory_high_watermark_bytes,
            plugin_dir: config.plugin_dir(),
            admission: Admission::new(config.limits),
            next_connection: AtomicU64::new(1),
        })
    }

    /// The connection limits: a frontend takes a slot for each connection it accepts, and a
    /// turn before each password check.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// A connection id unique in the broker, whatever the frontend (exclusive queues belong to
    /// one).
    pub fn new_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the broker has no users, so connections are anonymous (development mode).
    pub fn anonymous_allowed(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks credentials. Blocks for a password hash's verification (deliberately slow):
    /// call it off the async workers, and bound how many run at once.
    pub fn authenticate(&self, auth: &Credentials) -> Result<Principal, AuthError> {
        self.users.authenticate(auth)
    }

    /// A session for `principal` on the frontend's connection `connection` (an id unique in the
    /// broker, which owns the exclusive queues it declares).
    pub fn open(self: &Arc<Self>, principal: Principal, connection: u64) -> Session {
        Session {
            sessions: Arc::clone(self),
            principal,
            connection,
        }
    }
}

/// One client's session: everything it may do.
#[derive(Debug)]
pub struct Session {
    sessions: Arc<Sessions>,
    principal: Principal,
    connection: u64,
}

impl Session {
    /// Who the session acts for (a frontend checks a message's `user_id` against it).
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn topology(&self) -> &Arc<Topology> {
        &self.sessions.topology
    }

    pub fn declare_exchange(&self, spec: ExchangeSpec, passive: bool) -> Result<(), BrokerError> {
        self.topology().declare_exchange(spec, passive)
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        self.topology().delete_exchange(name, if_unused)
    }

    /// Declares a queue (an empty name gets a server-chosen one); returns it.
    pub fn declare_queue(&self, spec: QueueSpec, passive: bool) -> Result<Arc<Queue>, BrokerError> {
        self.topology()
            .declare_queue(spec, self.connection, passive)
    }

    /// Deletes a queue; returns how many messages it held.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64, BrokerError> {
        self.topology()
            .delete_queue(name, self.connection, if_unused, if_empty)
    }

    /// Drops a queue's ready messages; returns how many.
    pub fn purge_queue(&self, name: &str) -> Result<u64, BrokerError> {
        Ok(self.queue(name)?.purge())
    }

    pub fn bind(&self, binding: Binding) -> Result<(), BrokerError> {
        self.topology().bind(binding)
    }

    pub fn unbind(&self, binding: &Binding) -> Result<(), BrokerError> {
        self.topology().unbind(binding)
    }

    /// The queue called `name`, if this session may use it.
    pub fn queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        self.topology().queue(name, self.connection)
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.topology().exchanges()
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.topology().queues()
    }

    pub fn export_definitions(&self) -> Definitions {
        self.topology().export()
    }

    pub fn import_definitions(
        &self,
        definitions: &Definitions,
    ) -> Result<RestoreReport, BrokerError> {
        self.topology().import(definitions, true)
    }

    /// Whether exchanges of type `kind` can be declared (a router plugin of that name is
    /// loaded).
    pub fn has_exchange_type(&self, kind: &str) -> bool {
        self.topology().plugins().router(kind).is_ok()
    }

    pub fn plugins(&self) -> Vec<PluginStatus> {
        self.topology().plugins().list()
    }

    /// Installs a plugin component into the broker's plugin directory and answers once it
    /// serves (see [`PluginRegistry::install_upload`](crate::plugin::PluginRegistry)). Blocks
    /// on compiling and on the disk.
    pub fn install_plugin(&self, wasm: &[u8]) -> Result<PluginInfo, BrokerError> {
        self.check_may_load_plugins()?;
        self.topology()
            .plugins()
            .install_upload(&self.sessions.plugin_dir, wasm)
            .map_err(BrokerError::PluginRefused)
    }

    /// Runs a new version of router `name` beside the serving one on `sample_percent` of its
    /// traffic (see `plugin/shadow.rs`).
    pub fn start_shadow(
        &self,
        name: &str,
        wasm: Arc<[u8]>,
        sample_percent: u8,
    ) -> Result<PluginInfo, BrokerError> {
        self.check_may_load_plugins()?;
        if !(1..=100).contains(&sample_percent) {
            return Err(BrokerError::InvalidArgument {
                reason: format!("the sample is a percentage from 1 to 100, not {sample_percent}"),
            });
        }
        self.topology()
            .plugins()
            .start_shadow(name, wasm, sample_percent)
            .map_err(BrokerError::PluginRefused)
    }

    /// What the shadow of router `name` found, with handles turned into names.
    pub fn shadow_report(&self, name: &str) -> Result<ShadowFindings, BrokerError> {
        let router = self
            .topology()
            .plugins()
            .router(name)
            .map_err(BrokerError::PluginRefused)?;
        let report = router.shadow_report().ok_or_else(|| {
            BrokerError::PluginRefused(PluginError::NoShadow {
                plugin: name.to_owned(),
            })
        })?;
        let topology = self.topology();
        Ok(ShadowFindings {
            divergences: report
                .divergences
                .iter()
                .map(|d| NamedDivergence {
                    exchange: topology.node_name(d.exchange),
                    routing_key: d.routing_key.clone(),
                    message_id: d.message_id.clone(),
                    serving: d.serving.iter().map(|&h| topology.node_name(h)).collect(),
                    shadow: d.shadow.iter().map(|&h| topology.node_name(h)).collect(),
                })
                .collect(),
            report,
        })
    }

    /// Makes the shadow of router `name` the serving version.
    pub fn promote_shadow(&self, name: &str) -> Result<PluginInfo, BrokerError> {
        self.check_may_load_plugins()?;
        self.topology()
            .plugins()
            .promote_shadow(&self.sessions.plugin_dir, name)
            .map_err(BrokerError::PluginRefused)
    }

    /// Stops the shadow of router `name`.
    pub fn discard_shadow(&self, name: &str) -> Result<(), BrokerError> {
        self.check_may_load_plugins()?;
        self.topology()
            .plugins()
            .discard_shadow(name)
            .map_err(BrokerError::PluginRefused)
    }

    fn check_may_load_plugins(&self) -> Result<(), BrokerError> {
        if self.sessions.users.may_load_plugins(&self.principal) {
            Ok(())
        } else {
            Err(BrokerError::NotAllowed {
                reason: format!(
                    "loading plugin code needs a user tagged {:?} (`tags = [\"{}\"]` in its [[users]] entry)",
                    crate::auth::ADMINISTRATOR,
                    crate::auth::ADMINISTRATOR
                ),
            })
        }
    }

    /// A publisher: publishes batches through this session.
    pub fn publisher(&self) -> Publisher {
        let user = match &self.principal {
            Principal::User(name) => Some(name.clone()),
            Principal::Anonymous => None,
        };
        Publisher::new(
            Arc::clone(&self.sessions.topology),
            self.sessions.max_message_bytes,
            user,
        )
    }

    /// Takes single messages from `queue` on request (AMQP's `basic.get`); see [`Getter`].
    pub fn getter(&self, queue: &str) -> Result<Getter, BrokerError> {
        Getter::open(&self.sessions.topology, self.connection, queue)
    }

    /// Subscribes to a queue; deliveries arrive on `options.deliveries`.
    pub fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BrokerError> {
        Subscription::open(
            Arc::clone(&self.sessions.topology),
            self.connection,
            options,
        )
    }

    /// Whether this session's publishers are held back, as an event (see [`Backpressure`]).
    pub fn backpressure(&self) -> Backpressure {
        Backpressure::new(
            self.topology().memory().subscribe(),
            self.sessions.memory_high_watermark_bytes,
        )
    }

    /// Ends the session: deletes the exclusive queues its connection declared.
    pub fn close(&self) {
        self.topology().connection_closed(self.connection);
    }
}
