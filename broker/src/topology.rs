//! The broker's exchanges, queues and bindings, and routing a message through them.
//!
//! Invariants:
//! - Every exchange and queue has a handle unique in the broker (`u32`), which routing plugins
//!   answer with; handles are never reused while the broker runs.
//! - The binding table here is authoritative; each binding is also given to the source
//!   exchange's plugin, which keeps its own index.
//! - Routing clones what it needs out of the lock and calls plugins without holding it.
//! - Changes (declare, delete, bind, unbind) are serialised by a separate mutex, `changes`.
//!   They call plugins (create-exchange, validate-binding: guest code under the admin
//!   deadline), write the definitions file and delete queue logs holding only that mutex; the
//!   state lock is taken for writing only to update the maps, so a slow plugin or disk stalls
//!   other changes, never routing.
//!
//! Durable exchanges and queues, and bindings between durable ones, are written to the store's
//! definitions file after every change that touches them (under `changes`, so the file follows
//! the order of changes); a durable queue is added to the maps only once the file lists it.
//! [`Topology::restore`] writes the file once, at its end; [`Topology::import`] too, plus once
//! per new durable queue.
//! [`Topology::restore`] declares them again at start, and a durable queue is rebuilt from its
//! log.
//!
//! The default exchange `""` is not plugin-backed: it routes to the queue named by the routing
//! key, cannot be declared, deleted or bound, as in AMQP.
//!
//! The topology is also its queues' [`QueueHost`]: it routes their dead letters (applying the
//! dead-letter cycle rule of `queue::dead_letter`) and deletes queues whose `x-expires` ran
//! out. Queues call it without holding their own locks; it may call queues while holding its
//! lock, never the other way round.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use smallvec::{SmallVec, smallvec};

use crate::config::LimitSettings;
use crate::error::BrokerError;
use crate::exchange::{Exchange, ExchangeSpec, RoutingFaultPolicy};
use crate::message::{Message, Table};
use crate::plugin::{BindingSpec, PluginError, PluginRegistry};
use crate::queue::{
    DeathPlace, DeathReason, MemoryGauge, Queue, QueueContext, QueueHost, QueuePolicy,
    QueueProperties, QueuedMessage, Window, closes_cycle, dead_lettered,
};
use crate::store::{
    BindingDefinition, Definitions, ExchangeDefinition, QueueDefinition, QueueLog, Store,
};

/// The longest exchange or queue name, in bytes (as AMQP's short strings).
pub const MAX_NAME_BYTES: usize = 255;

/// The most exchanges one message passes through (exchange-to-exchange bindings); beyond
/// that further exchanges are not followed.
const MAX_EXCHANGES_PER_ROUTE: usize = 16;

/// What a binding points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BindingDestination {
    Queue(String),
    Exchange(String),
}

impl BindingDestination {
    fn kind(&self) -> &'static str {
        match self {
            BindingDestination::Queue(_) => "queue",
            BindingDestination::Exchange(_) => "exchange",
        }
    }

    fn name(&self) -> &str {
        match self {
            BindingDestination::Queue(name) | BindingDestination::Exchange(name) => name,
        }
    }
}

/// A binding as the broker records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Binding {
    pub source: String,
    pub destination: BindingDestination,
    pub key: String,
    pub arguments: Table,
}

/// What a client declares for a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Empty: the broker picks a unique name.
    pub name: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Table,
}

#[derive(Debug, Clone)]
enum Node {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

#[derive(Debug, Default)]
struct State {
    exchanges: HashMap<String, Arc<Exchange>>,
    queues: HashMap<String, Arc<Queue>>,
    by_handle: HashMap<u32, Node>,
    bindings: BTreeSet<Binding>,
}

/// What [`Topology::restore`] or an import declared, and what it could not.
#[derive(Debug, Default, Clone)]
pub struct RestoreReport {
    pub exchanges: usize,
    pub queues: usize,
    pub bindings: usize,
    /// Ready messages in the declared queues (recovered ones, at start).
    pub messages: u64,
    pub failures: Vec<String>,
    /// The definitions that failed.
    pub skipped: Definitions,
}

/// Where a published message goes.
#[derive(Debug, Default)]
pub struct Routed {
    pub queues: Vec<Arc<Queue>>,
    /// Set when a routing plugin failed and its exchange's `x-routing-fault` dead-lettered the
    /// message: the exchange it went to and the message as dead-lettered, which is what
    /// `queues` get instead of the original.
    pub dead_lettered: Option<(String, Message)>,
}

#[derive(Debug)]
pub struct Topology {
    plugins: Arc<PluginRegistry>,
    queues_context: Arc<QueueContext>,
    state: RwLock<State>,
    /// Held across every change, and only by changes (see the module doc).
    changes: parking_lot::Mutex<()>,
    next_handle: AtomicU32,
    store: Option<Arc<Store>>,
    window: Window,
    /// Durable definitions that could not be restored at start; saved with the rest.
    unrestored: parking_lot::Mutex<Definitions>,
    limits: LimitSettings,
}

/// Arguments in the order the broker keeps them: sorted by name, so that two declares or binds
/// that give the same arguments in another order are the same (AMQP's field tables are maps,
/// and RabbitMQ compares them as such). A name given twice is refused.
fn normalized_arguments(kind: &str, mut arguments: Table) -> Result<Table, BrokerError> {
    arguments.sort_by_name();
    if let Some(name) = arguments.repeated_name() {
        return Err(BrokerError::invalid(format!(
            "{kind} argument {name} is given twice"
        )));
    }
    Ok(arguments)
}

/// Bindings taken out of the maps whose plugins still have to be told, outside the state lock.
#[derive(Default)]
#[must_use = "the plugins still hold these bindings"]
struct RemovedBindings {
    unbound: Vec<(Arc<Exchange>, BindingSpec)>,
    /// Auto-delete exchanges whose last binding went.
    deleted_exchanges: Vec<Arc<Exchange>>,
}

impl RemovedBindings {
    /// Tells the plugins; returns whether any of it was in the definitions file (a durable
    /// source exchange).
    fn tell_plugins(self) -> bool {
        let mut durable = false;
        for (source, spec) in &self.unbound {
            durable |= source.spec.durable;
            if let Err(error) = source.router.unbind(source.id, spec) {
                tracing::warn!(exchange = source.name(), error = %error, "plugin failed to unbind");
            }
        }
        for exchange in &self.deleted_exchanges {
            exchange.router.destroy_exchange(exchange.id);
        }
        durable
    }
}

/// Which writes of the definitions file a [`PersistBatch`] leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchKind {
    /// The restore at start: everything it declares is in the file already.
    Restore,
    /// An import: every write but a new durable queue's, which must be in the file before it
    /// can take messages (review finding 14).
    Import,
}

thread_local! {
    static PERSIST_BATCH: std::cell::Cell<Option<BatchKind>> = const { std::cell::Cell::new(None) };
}

/// While one lives, changes made on this thread write the definitions file only where its
/// kind says: an import writes it once at its end instead of once per item.
struct PersistBatch;

impl PersistBatch {
    fn begin(kind: BatchKind) -> PersistBatch {
        PERSIST_BATCH.with(|batch| batch.set(Some(kind)));
        PersistBatch
    }

    /// Whether a write (adding a durable queue or not) is left for the batch's end.
    fn defers(adding_queue: bool) -> bool {
        match PERSIST_BATCH.with(|batch| batch.get()) {
            None => false,
            Some(BatchKind::Restore) => true,
            Some(BatchKind::Import) => !adding_queue,
        }
    }
}

impl Drop for PersistBatch {
    fn drop(&mut self) {
        PERSIST_BATCH.with(|batch| batch.set(None));
    }
}

/// Refuses one more of `what` when `current` already reached `max`.
fn limit(what: &'static str, current: usize, max: u64) -> Result<(), BrokerError> {
    if current as u64 >= max {
        return Err(BrokerError::LimitReached { what, limit: max });
    }
    Ok(())
}

fn check_name(kind: &str, name: &str) -> Result<(), BrokerError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(BrokerError::invalid(format!(
            "{kind} name is {} bytes; the limit is {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(BrokerError::invalid(format!(
            "{kind} name {name:?} contains control characters"
        )));
    }
    Ok(())
}

impl Topology {
    /// A topology that keeps nothing on disk; starts the queues' timer thread.
    pub fn new(plugins: Arc<PluginRegistry>) -> Arc<Self> {
        Self::build(plugins, None, Window::default(), LimitSettings::default())
    }

    /// A topology whose durable parts live in `store`; call [`Topology::restore`] next.
    pub fn with_store(
        plugins: Arc<PluginRegistry>,
        store: Arc<Store>,
        window: Window,
        limits: LimitSettings,
    ) -> Arc<Self> {
        Self::build(plugins, Some(store), window, limits)
    }

    fn build(
        plugins: Arc<PluginRegistry>,
        store: Option<Arc<Store>>,
        window: Window,
        limits: LimitSettings,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this: &Weak<Topology>| {
            let host: Weak<dyn QueueHost> = this.clone();
            Topology {
                plugins,
                queues_context: Arc::new(QueueContext::new(host)),
                state: RwLock::new(State::default()),
                changes: parking_lot::Mutex::new(()),
                next_handle: AtomicU32::new(1),
                store,
                window,
                unrestored: Default::default(),
                limits,
            }
        })
    }

    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// Declares every durable exchange, queue (recovering its messages) and binding from the
    /// store. A definition that cannot be declared now (its plugin is gone, say) is skipped
    /// with an error in the log, and kept: it is written back with every later save, so a
    /// restart after the cause is fixed restores it.
    pub fn restore(&self) -> Result<RestoreReport, BrokerError> {
        let Some(store) = &self.store else {
            return Ok(RestoreReport::default());
        };
        let definitions = store
            .load_definitions()
            .map_err(|e| BrokerError::storage(format!("reading definitions: {e}")))?;
        let keep: Vec<&str> = definitions.queues.iter().map(|q| q.name.as_str()).collect();
        store
            .remove_queues_except(&keep)
            .map_err(|e| BrokerError::storage(format!("removing stale queue logs: {e}")))?;
        // Recovered queues dead-letter nothing until every binding is back.
        self.queues_context.timer().hold();
        let batch = PersistBatch::begin(BatchKind::Restore);
        let result = self.import_items(&definitions, true);
        drop(batch);
        self.queues_context.timer().release();
        if let Ok(report) = &result {
            *self.unrestored.lock() = report.skipped.clone();
        }
        // Logged by `persist`; the definitions in memory stand and are written with the next
        // change.
        let _change = self.changes.lock();
        let _ = self.persist(None);
        result
    }

    /// Declares what `definitions` lists (exchanges, then queues, then bindings), skipping what
    /// fails and saying why. Items that exist already are left as they are when equal. The
    /// definitions file is written once, at the end.
    pub fn import(
        &self,
        definitions: &Definitions,
        keep_going: bool,
    ) -> Result<RestoreReport, BrokerError> {
        let batch = PersistBatch::begin(BatchKind::Import);
        let result = self.import_items(definitions, keep_going);
        drop(batch);
        let _change = self.changes.lock();
        let saved = self.persist(None);
        let report = result?;
        saved.map(|()| report)
    }

    fn import_items(
        &self,
        definitions: &Definitions,
        keep_going: bool,
    ) -> Result<RestoreReport, BrokerError> {
        let mut report = RestoreReport::default();
        let fail = |report: &mut RestoreReport,
                    what: String,
                    error: BrokerError|
         -> Result<(), BrokerError> {
            tracing::error!(item = %what, %error, "definition not declared");
            report.failures.push(format!("{what}: {error}"));
            if keep_going { Ok(()) } else { Err(error) }
        };
        for exchange in &definitions.exchanges {
            let spec = ExchangeSpec {
                name: exchange.name.clone(),
                kind: exchange.kind.clone(),
                durable: exchange.durable,
                auto_delete: exchange.auto_delete,
                internal: exchange.internal,
                arguments: exchange.arguments.clone(),
            };
            match self.declare_exchange(spec, false) {
                Ok(()) => report.exchanges += 1,
                Err(error) => {
                    report.skipped.exchanges.push(exchange.clone());
                    fail(&mut report, format!("exchange {:?}", exchange.name), error)?
                }
            }
        }
        for queue in &definitions.queues {
            let spec = QueueSpec {
                name: queue.name.clone(),
                durable: queue.durable,
                exclusive: false,
                auto_delete: queue.auto_delete,
                arguments: queue.arguments.clone(),
            };
            match self.declare_queue(spec, 0, false) {
                Ok(declared) => {
                    report.queues += 1;
                    report.messages += declared.counts().ready;
                }
                Err(error) => {
                    report.skipped.queues.push(queue.clone());
                    fail(&mut report, format!("queue {:?}", queue.name), error)?
                }
            }
        }
        for binding in &definitions.bindings {
            let destination = match binding.destination_type.as_str() {
                "queue" => BindingDestination::Queue(binding.destination.clone()),
                "exchange" => BindingDestination::Exchange(binding.destination.clone()),
                other => {
                    fail(
                        &mut report,
                        format!("binding {:?} -> {:?}", binding.source, binding.destination),
                        BrokerError::invalid(format!(
                            "destination_type must be \"queue\" or \"exchange\", not {other:?}"
                        )),
                    )?;
                    continue;
                }
            };
            let result = self.bind(Binding {
                source: binding.source.clone(),
                destination,
                key: binding.routing_key.clone(),
                arguments: binding.arguments.clone(),
            });
            match result {
                Ok(()) => report.bindings += 1,
                Err(error) => {
                    report.skipped.bindings.push(binding.clone());
                    fail(
                        &mut report,
                        format!("binding {:?} -> {:?}", binding.source, binding.destination),
                        error,
                    )?
                }
            }
        }
        Ok(report)
    }

    /// Every exchange, queue and binding (durable or not, exclusive queues left out), in the
    /// definitions format.
    pub fn export(&self) -> Definitions {
        Self::definitions(&self.state.read(), false)
    }

    fn definitions(state: &State, durable_only: bool) -> Definitions {
        let mut exchanges: Vec<ExchangeDefinition> = state
            .exchanges
            .values()
            .filter(|e| e.spec.durable || !durable_only)
            .filter(|e| !is_standard_exchange(&e.spec.name))
            .map(|e| ExchangeDefinition {
                name: e.spec.name.clone(),
                kind: e.spec.kind.clone(),
                durable: e.spec.durable,
                auto_delete: e.spec.auto_delete,
                internal: e.spec.internal,
                arguments: e.spec.arguments.clone(),
            })
            .collect();
        exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        let mut queues: Vec<QueueDefinition> = state
            .queues
            .values()
            .filter(|q| q.properties().exclusive_owner.is_none())
            .filter(|q| q.properties().durable || !durable_only)
            .map(|q| QueueDefinition {
                name: q.name().to_owned(),
                durable: q.properties().durable,
                auto_delete: q.properties().auto_delete,
                arguments: q.properties().arguments.clone(),
            })
            .collect();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        let listed_exchange = |name: &str| exchanges.iter().any(|e| e.name == name);
        let listed_queue = |name: &str| queues.iter().any(|q| q.name == name);
        let bindings = state
            .bindings
            .iter()
            .filter(|b| listed_exchange(&b.source))
            .filter_map(|b| {
                let (kind, listed) = match &b.destination {
                    BindingDestination::Queue(name) => ("queue", listed_queue(name)),
                    BindingDestination::Exchange(name) => ("exchange", listed_exchange(name)),
                };
                listed.then(|| BindingDefinition {
                    source: b.source.clone(),
                    destination: b.destination.name().to_owned(),
                    destination_type: kind.to_owned(),
                    routing_key: b.key.clone(),
                    arguments: b.arguments.clone(),
                })
            })
            .collect();
        Definitions {
            switchyard_definitions: crate::store::DEFINITIONS_VERSION,
            exchanges,
            queues,
            bindings,
        }
    }

    /// Writes the durable definitions, with `adding` (a durable queue not yet in the maps).
    /// Call it holding `changes`, never the state lock: the definitions are copied under a
    /// read lock, then written and synced without it. Inside an import (a [`PersistBatch`] on
    /// this thread) it writes only what the batch's kind says. A failure is logged
    /// and returned: the change stands in memory unless the caller undoes it, and the file
    /// keeps the previous definitions until a later write succeeds.
    fn persist(&self, adding: Option<QueueDefinition>) -> Result<(), BrokerError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if PersistBatch::defers(adding.is_some()) {
            return Ok(());
        }
        let mut definitions = Self::definitions(&self.state.read(), true);
        definitions.queues.extend(adding);
        let unrestored = self.unrestored.lock();
        definitions
            .exchanges
            .extend(unrestored.exchanges.iter().cloned());
        definitions.queues.extend(unrestored.queues.iter().cloned());
        definitions
            .bindings
            .extend(unrestored.bindings.iter().cloned());
        store.save_definitions(&definitions).map_err(|error| {
            tracing::error!(%error, "writing the durable definitions failed");
            BrokerError::storage(format!("writing the durable definitions failed: {error}"))
        })
    }

    pub fn plugins(&self) -> &Arc<PluginRegistry> {
        &self.plugins
    }

    /// Bytes of message bodies held in all queues.
    pub fn memory(&self) -> &MemoryGauge {
        self.queues_context.memory()
    }

    /// What every queue shares (the timer, for inspection).
    pub fn queues_context(&self) -> &QueueContext {
        &self.queues_context
    }

    fn new_handle(&self) -> u32 {
        self.next_handle.fetch_add(1, Ordering::Relaxed)
    }

    /// Declares an exchange; redeclaring with the same properties is a no-op, with different
    /// ones an error. `passive` only checks that it exists.
    /// Declares the exchanges every RabbitMQ client may count on ([`STANDARD_EXCHANGES`]),
    /// durable, unless a definition declared them already. They are made at every start and
    /// left out of definitions.
    pub fn declare_standard_exchanges(&self) {
        for (name, kind) in STANDARD_EXCHANGES {
            let spec = ExchangeSpec {
                name: (*name).to_owned(),
                kind: (*kind).to_owned(),
                durable: true,
                auto_delete: false,
                internal: false,
                arguments: Table::new(),
            };
            if let Err(error) = tokio::task::block_in_place(|| self.declare_exchange(spec, false)) {
                tracing::warn!(exchange = name, %error, "a standard exchange could not be declared");
            }
        }
    }

    pub fn declare_exchange(
        &self,
        mut spec: ExchangeSpec,
        passive: bool,
    ) -> Result<(), BrokerError> {
        check_name("exchange", &spec.name)?;
        spec.arguments = normalized_arguments("exchange", std::mem::take(&mut spec.arguments))?;
        if spec.name.is_empty() {
            return Err(BrokerError::not_allowed(
                "the default exchange \"\" cannot be declared",
            ));
        }
        let on_routing_fault = RoutingFaultPolicy::parse(&spec.arguments)?;
        if let Some(existing) = self.existing_exchange(&spec, passive)? {
            return existing;
        }
        let router = self
            .plugins
            .router(&spec.kind)
            .map_err(BrokerError::from_admin_plugin_error)?;
        let _change = self.changes.lock();
        if let Some(existing) = self.existing_exchange(&spec, passive)? {
            // Declared while this one waited for its turn.
            return existing;
        }
        if !is_standard_exchange(&spec.name) {
            // The standard exchanges are the broker's, not the users': they do not count.
            let state = self.state.read();
            let standard = STANDARD_EXCHANGES
                .iter()
                .filter(|(name, _)| state.exchanges.contains_key(*name))
                .count();
            limit(
                "exchanges",
                state.exchanges.len() - standard,
                self.limits.max_exchanges,
            )?;
        }
        let id = self.new_handle();
        router
            .create_exchange(id, spec.arguments.clone())
            .map_err(BrokerError::from_admin_plugin_error)?;
        let exchange = Arc::new(Exchange {
            spec,
            id,
            router,
            on_routing_fault,
        });
        let durable = exchange.spec.durable;
        {
            let mut state = self.state.write();
            state
                .by_handle
                .insert(id, Node::Exchange(Arc::clone(&exchange)));
            state.exchanges.insert(exchange.spec.name.clone(), exchange);
        }
        if durable {
            let _ = self.persist(None);
        }
        Ok(())
    }

    /// `Some(answer)` when the declare of `spec` is answered by what exists (or, passive, by
    /// what does not).
    #[allow(clippy::type_complexity)]
    fn existing_exchange(
        &self,
        spec: &ExchangeSpec,
        passive: bool,
    ) -> Result<Option<Result<(), BrokerError>>, BrokerError> {
        let state = self.state.read();
        let Some(existing) = state.exchanges.get(&spec.name) else {
            if passive {
                return Err(BrokerError::not_found("exchange", &spec.name));
            }
            return Ok(None);
        };
        if passive || existing.spec == *spec {
            return Ok(Some(Ok(())));
        }
        Err(BrokerError::precondition(format!(
            "exchange {:?} exists with different properties (type {}, durable {}, auto-delete {}, internal {}, arguments {:?})",
            spec.name,
            existing.spec.kind,
            existing.spec.durable,
            existing.spec.auto_delete,
            existing.spec.internal,
            existing.spec.arguments
        )))
    }

    /// Deletes an exchange and every binding from or to it.
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        if name.is_empty() {
            return Err(BrokerError::not_allowed(
                "the default exchange \"\" cannot be deleted",
            ));
        }
        let _change = self.changes.lock();
        let (exchange, removed) = {
            let mut state = self.state.write();
            let exchange = state
                .exchanges
                .get(name)
                .cloned()
                .ok_or_else(|| BrokerError::not_found("exchange", name))?;
            if if_unused && state.bindings.iter().any(|b| b.source == name) {
                return Err(BrokerError::precondition(format!(
                    "exchange {name:?} has bindings and if-unused was given"
                )));
            }
            // Bindings from the exchange go with its plugin state; only those to it are
            // removed from other exchanges' plugins.
            let touching: Vec<Binding> = state
                .bindings
                .iter()
                .filter(|b| b.destination == BindingDestination::Exchange(name.to_owned()))
                .cloned()
                .collect();
            state.bindings.retain(|b| b.source != name);
            let removed = Self::take_bindings(&mut state, &touching);
            state.exchanges.remove(name);
            state.by_handle.remove(&exchange.id);
            (exchange, removed)
        };
        exchange.router.destroy_exchange(exchange.id);
        let file_changes = removed.tell_plugins();
        if exchange.spec.durable || file_changes {
            let _ = self.persist(None);
        }
        Ok(())
    }

    /// Declares a queue; returns it. An empty name gets a unique server-chosen one.
    pub fn declare_queue(
        &self,
        mut spec: QueueSpec,
        connection: u64,
        passive: bool,
    ) -> Result<Arc<Queue>, BrokerError> {
        check_name("queue", &spec.name)?;
        if spec.name.is_empty() {
            if passive {
                return Err(BrokerError::invalid("a passive declare needs a queue name"));
            }
            spec.name = format!("amq.gen-{:08x}-{}", connection, self.new_handle());
        }
        spec.arguments = normalized_arguments("queue", std::mem::take(&mut spec.arguments))?;
        let policy = QueuePolicy::parse(&spec.arguments)?;
        QueuePolicy::canonicalize(&mut spec.arguments);
        let properties = QueueProperties {
            durable: spec.durable,
            exclusive_owner: spec.exclusive.then_some(connection),
            auto_delete: spec.auto_delete,
            arguments: spec.arguments.clone(),
        };
        if let Some(existing) = self.existing_queue(&spec.name, &properties, connection, passive)? {
            return Ok(existing);
        }
        let _change = self.changes.lock();
        if let Some(existing) = self.existing_queue(&spec.name, &properties, connection, passive)? {
            // Declared while this one waited for its turn.
            return Ok(existing);
        }
        limit(
            "queues",
            self.state.read().queues.len(),
            self.limits.max_queues,
        )?;
        let id = self.new_handle();
        // An exclusive queue ends with its connection, so it never needs a log, even when
        // declared durable (RabbitMQ accepts that, and amqplib declares queues durable by
        // default); it keeps the flag so that a redeclare compares equal.
        let queue = match (&self.store, spec.durable && !spec.exclusive) {
            (Some(store), true) => {
                let (log, recovered) = store
                    .open_queue(
                        &spec.name,
                        self.window.messages,
                        policy.deduplication_window,
                    )
                    .map_err(|e| {
                        BrokerError::storage(format!(
                            "opening the log of queue {:?}: {e}",
                            spec.name
                        ))
                    })?;
                if !recovered.messages.is_empty() || recovered.tail.is_some() {
                    tracing::info!(
                        queue = spec.name.as_str(),
                        in_memory = recovered.messages.len(),
                        on_disk = recovered.tail.map_or(0, |(_, count)| count),
                        "recovered messages"
                    );
                }
                Queue::durable(
                    spec.name.clone(),
                    id,
                    properties,
                    policy,
                    Arc::clone(&self.queues_context),
                    log,
                    recovered,
                    self.window,
                )
            }
            _ => Queue::new(
                spec.name.clone(),
                id,
                properties,
                policy,
                Arc::clone(&self.queues_context),
            ),
        };
        if queue.properties().durable
            && let Err(error) = self.persist(Some(Self::queue_definition(&queue)))
        {
            // A durable queue missing from the file would not come back after a restart:
            // refuse the declare instead of taking messages it could lose (review finding 14).
            // Nobody has seen the queue yet.
            queue.delete();
            return Err(error);
        }
        {
            let mut state = self.state.write();
            state.by_handle.insert(id, Node::Queue(Arc::clone(&queue)));
            state.queues.insert(spec.name.clone(), Arc::clone(&queue));
        }
        // Starts the x-expires clock (if any) with the timer.
        queue.touch();
        Ok(queue)
    }

    /// `Some(queue)` when the declare is answered by the queue called `name` that exists.
    fn existing_queue(
        &self,
        name: &str,
        properties: &QueueProperties,
        connection: u64,
        passive: bool,
    ) -> Result<Option<Arc<Queue>>, BrokerError> {
        let state = self.state.read();
        let Some(existing) = state.queues.get(name) else {
            if passive {
                return Err(BrokerError::not_found("queue", name));
            }
            return Ok(None);
        };
        Self::check_exclusive(existing, connection)?;
        if passive || existing.properties() == properties {
            existing.touch();
            return Ok(Some(Arc::clone(existing)));
        }
        Err(BrokerError::precondition(format!(
            "queue {:?} exists with different properties (durable {}, exclusive {}, auto-delete {}, arguments {:?})",
            name,
            existing.properties().durable,
            existing.properties().exclusive_owner.is_some(),
            existing.properties().auto_delete,
            existing.properties().arguments
        )))
    }

    fn queue_definition(queue: &Queue) -> QueueDefinition {
        QueueDefinition {
            name: queue.name().to_owned(),
            durable: queue.properties().durable,
            auto_delete: queue.properties().auto_delete,
            arguments: queue.properties().arguments.clone(),
        }
    }
    fn check_exclusive(queue: &Queue, connection: u64) -> Result<(), BrokerError> {
        match queue.properties().exclusive_owner {
            Some(owner) if owner != connection => Err(BrokerError::ResourceLocked {
                queue: queue.name().to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// The queue called `name`, if this connection may use it.
    pub fn queue(&self, name: &str, connection: u64) -> Result<Arc<Queue>, BrokerError> {
        let queue = self
            .state
            .read()
            .queues
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::not_found("queue", name))?;
        Self::check_exclusive(&queue, connection)?;
        Ok(queue)
    }

    /// Deletes a queue and its bindings; returns how many messages it held.
    pub fn delete_queue(
        &self,
        name: &str,
        connection: u64,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64, BrokerError> {
        self.delete_queue_if(name, connection, if_unused, if_empty, None)
    }

    /// [`delete_queue`](Self::delete_queue), only if the queue called `name` is still the one
    /// with handle `expected` (when given).
    fn delete_queue_if(
        &self,
        name: &str,
        connection: u64,
        if_unused: bool,
        if_empty: bool,
        expected: Option<u32>,
    ) -> Result<u64, BrokerError> {
        let _change = self.changes.lock();
        let (queue, removed) = {
            let mut state = self.state.write();
            let queue = state
                .queues
                .get(name)
                .filter(|q| expected.is_none_or(|id| q.id() == id))
                .cloned()
                .ok_or_else(|| BrokerError::not_found("queue", name))?;
            Self::check_exclusive(&queue, connection)?;
            let counts = queue.counts();
            if if_unused && counts.consumers > 0 {
                return Err(BrokerError::precondition(format!(
                    "queue {name:?} has {} consumers and if-unused was given",
                    counts.consumers
                )));
            }
            if if_empty && counts.ready + counts.unacked > 0 {
                return Err(BrokerError::precondition(format!(
                    "queue {name:?} holds {} messages and if-empty was given",
                    counts.ready + counts.unacked
                )));
            }
            let touching: Vec<Binding> = state
                .bindings
                .iter()
                .filter(|b| b.destination == BindingDestination::Queue(name.to_owned()))
                .cloned()
                .collect();
            let removed = Self::take_bindings(&mut state, &touching);
            state.queues.remove(name);
            state.by_handle.remove(&queue.id());
            (queue, removed)
        };
        let file_changes = removed.tell_plugins();
        if queue.properties().durable || file_changes {
            let _ = self.persist(None);
        }
        // Its log is removed only once the file no longer lists the queue.
        Ok(queue.delete())
    }
    /// Deletes the exclusive queues of a connection that has closed.
    pub fn connection_closed(&self, connection: u64) {
        let owned: Vec<String> = self
            .state
            .read()
            .queues
            .values()
            .filter(|q| q.properties().exclusive_owner == Some(connection))
            .map(|q| q.name().to_owned())
            .collect();
        for name in owned {
            let _ = self.delete_queue(&name, connection, false, false);
        }
    }

    /// Deletes an auto-delete queue once its last consumer is gone.
    pub fn consumer_left(&self, queue: &Queue) {
        if queue.properties().auto_delete && queue.counts().consumers == 0 {
            let owner = queue.properties().exclusive_owner.unwrap_or(0);
            let _ = self.delete_queue(queue.name(), owner, true, false);
        }
    }

    /// Adds a binding; binding the same thing twice is a no-op.
    pub fn bind(&self, mut binding: Binding) -> Result<(), BrokerError> {
        binding.arguments =
            normalized_arguments("binding", std::mem::take(&mut binding.arguments))?;
        if binding.source.is_empty() {
            return Err(BrokerError::not_allowed(
                "the default exchange \"\" cannot be bound: it routes to the queue named by the routing key",
            ));
        }
        check_name("binding key", &binding.key)?;
        let _change = self.changes.lock();
        let (source, destination) = {
            let state = self.state.read();
            let source = state
                .exchanges
                .get(&binding.source)
                .cloned()
                .ok_or_else(|| BrokerError::not_found("exchange", &binding.source))?;
            let destination = Self::destination_handle(&state, &binding.destination)?;
            if state.bindings.contains(&binding) {
                return Ok(());
            }
            limit("bindings", state.bindings.len(), self.limits.max_bindings)?;
            (source, destination)
        };
        let spec = BindingSpec {
            destination,
            key: binding.key.clone(),
            arguments: binding.arguments.clone(),
        };
        // Guest code under the admin deadline: no state lock held. Nothing else changes the
        // maps meanwhile (`changes` is held), so what was checked above still holds.
        source
            .router
            .bind(source.id, spec)
            .map_err(BrokerError::from_admin_plugin_error)?;
        self.state.write().bindings.insert(binding);
        if source.spec.durable {
            let _ = self.persist(None);
        }
        Ok(())
    }

    /// Removes a binding; removing one that does not exist is a no-op (as in RabbitMQ).
    pub fn unbind(&self, binding: &Binding) -> Result<(), BrokerError> {
        let mut normalized = binding.clone();
        normalized.arguments = normalized_arguments("binding", normalized.arguments)?;
        let binding = normalized;
        let _change = self.changes.lock();
        let removed = {
            let mut state = self.state.write();
            if !state.exchanges.contains_key(&binding.source) {
                return Err(BrokerError::not_found("exchange", &binding.source));
            }
            Self::destination_handle(&state, &binding.destination)?;
            Self::take_bindings(&mut state, std::slice::from_ref(&binding))
        };
        if removed.tell_plugins() {
            let _ = self.persist(None);
        }
        Ok(())
    }

    fn destination_handle(
        state: &State,
        destination: &BindingDestination,
    ) -> Result<u32, BrokerError> {
        match destination {
            BindingDestination::Queue(name) => state.queues.get(name).map(|q| q.id()),
            BindingDestination::Exchange(name) => state.exchanges.get(name).map(|e| e.id),
        }
        .ok_or_else(|| BrokerError::not_found(destination.kind(), destination.name()))
    }

    /// Removes `bindings` from the maps, and the auto-delete exchanges they leave unbound; the
    /// plugins are told afterwards, without the state lock ([`RemovedBindings::tell_plugins`]).
    fn take_bindings(state: &mut State, bindings: &[Binding]) -> RemovedBindings {
        let mut removed = RemovedBindings::default();
        for binding in bindings {
            if !state.bindings.remove(binding) {
                continue;
            }
            let (Some(source), Ok(destination)) = (
                state.exchanges.get(&binding.source).cloned(),
                Self::destination_handle(state, &binding.destination),
            ) else {
                continue;
            };
            removed.unbound.push((
                Arc::clone(&source),
                BindingSpec {
                    destination,
                    key: binding.key.clone(),
                    arguments: binding.arguments.clone(),
                },
            ));
            let source_still_bound = state.bindings.iter().any(|b| b.source == binding.source);
            if source.spec.auto_delete && !source_still_bound {
                state.exchanges.remove(&binding.source);
                state.by_handle.remove(&source.id);
                removed.deleted_exchanges.push(source);
            }
        }
        removed
    }

    /// The name of the exchange or queue with `handle`, or `#handle` if it is gone.
    pub fn node_name(&self, handle: u32) -> String {
        match self.state.read().by_handle.get(&handle) {
            Some(Node::Queue(queue)) => queue.name().to_owned(),
            Some(Node::Exchange(exchange)) => exchange.name().to_owned(),
            None => format!("#{handle}"),
        }
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        let mut list: Vec<_> = self.state.read().exchanges.values().cloned().collect();
        list.sort_by(|a, b| a.name().cmp(b.name()));
        list
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        let mut list: Vec<_> = self.state.read().queues.values().cloned().collect();
        list.sort_by(|a, b| a.name().cmp(b.name()));
        list
    }

    pub fn bindings(&self) -> Vec<Binding> {
        self.state.read().bindings.iter().cloned().collect()
    }

    /// The queues `message` goes to when published to `exchange`. Blocks on routing plugins:
    /// call it off the async runtime. A plugin fault rejects the message, or dead-letters it
    /// when the faulting exchange says so (see [`Routed::dead_lettered`]).
    pub fn route(&self, exchange: &str, message: &Message) -> Result<Routed, BrokerError> {
        match self.route_through(exchange, message) {
            Ok(queues) => Ok(Routed {
                queues,
                dead_lettered: None,
            }),
            Err(RouteFailure::Refused(error)) => Err(error),
            Err(RouteFailure::Fault {
                exchange: faulty,
                error,
            }) => {
                let fault = || BrokerError::RoutingFault {
                    error: Box::new(error.clone()),
                    place: format!(
                        " for routing key {:?} at exchange {:?}",
                        message.routing_key,
                        faulty.name()
                    ),
                };
                let RoutingFaultPolicy::DeadLetter { exchange: target } = &faulty.on_routing_fault
                else {
                    return Err(fault());
                };
                let letter = dead_lettered(
                    message,
                    DeathReason::RoutingFault,
                    DeathPlace {
                        queue: "",
                        exchange,
                    },
                    None,
                );
                match self.route_through(target, &letter) {
                    Ok(queues) if !queues.is_empty() => {
                        tracing::debug!(exchange = faulty.name(), target = target.as_str(), error = %error, "routing fault: message dead-lettered");
                        Ok(Routed {
                            queues,
                            dead_lettered: Some((target.clone(), letter)),
                        })
                    }
                    // Nothing would hold the message: the publisher must know.
                    _ => Err(fault()),
                }
            }
        }
    }

    /// Routes through `exchange` and the exchanges bound to it; a plugin fault stops it.
    fn route_through(
        &self,
        exchange: &str,
        message: &Message,
    ) -> Result<Vec<Arc<Queue>>, RouteFailure> {
        if exchange.is_empty() {
            let queue = self.state.read().queues.get(&message.routing_key).cloned();
            return Ok(queue.into_iter().collect());
        }
        let start = self
            .state
            .read()
            .exchanges
            .get(exchange)
            .cloned()
            .ok_or_else(|| RouteFailure::Refused(BrokerError::not_found("exchange", exchange)))?;
        if start.spec.internal {
            return Err(RouteFailure::Refused(BrokerError::not_allowed(format!(
                "exchange {exchange:?} is internal: publish to an exchange bound to it"
            ))));
        }
        let mut queues: Vec<Arc<Queue>> = Vec::new();
        // Most routes cross one exchange: these stay on the stack.
        let mut visited: SmallVec<[_; 4]> = smallvec![start.id];
        let mut frontier: SmallVec<[_; 4]> = smallvec![start];
        for _ in 0..MAX_EXCHANGES_PER_ROUTE {
            let Some(current) = frontier.pop() else { break };
            let handles = match current.router.route(current.id, message) {
                Ok(handles) => handles,
                Err(error) => {
                    if error.is_fault() {
                        tracing::warn!(
                            exchange = current.name(),
                            routing_key = message.routing_key.as_str(),
                            error = %error,
                            backtrace = error.backtrace(),
                            "routing fault"
                        );
                    }
                    return Err(RouteFailure::Fault {
                        exchange: current,
                        error,
                    });
                }
            };
            let state = self.state.read();
            queues.reserve(handles.len());
            for handle in handles.iter() {
                match state.by_handle.get(handle) {
                    Some(Node::Queue(queue)) if !queues.iter().any(|q| q.id() == queue.id()) => {
                        queues.push(Arc::clone(queue));
                    }
                    Some(Node::Exchange(next)) if !visited.contains(&next.id) => {
                        visited.push(next.id);
                        frontier.push(Arc::clone(next));
                    }
                    // Already taken, or deleted between the plugin's answer and now.
                    _ => {}
                }
            }
        }
        Ok(queues)
    }
}

/// The exchanges RabbitMQ pre-declares, by name and type.
pub const STANDARD_EXCHANGES: &[(&str, &str)] = &[
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
];

fn is_standard_exchange(name: &str) -> bool {
    STANDARD_EXCHANGES
        .iter()
        .any(|(standard, _)| *standard == name)
}

/// Why routing stopped.
enum RouteFailure {
    /// The request itself is wrong (no such exchange, an internal one).
    Refused(BrokerError),
    /// `exchange`'s plugin failed on the message.
    Fault {
        exchange: Arc<Exchange>,
        error: PluginError,
    },
}

impl QueueHost for Topology {
    fn dead_letter(
        &self,
        exchange: &str,
        message: Message,
    ) -> Result<Vec<(Arc<QueueLog>, u64)>, ()> {
        let mut durable = Vec::new();
        let routed = match self.route(exchange, &message) {
            Ok(routed) => routed,
            Err(error @ BrokerError::RoutingFault { .. }) => {
                tracing::warn!(exchange, error = %error, "dead letter not routed now: its dead-letter exchange's plugin failed; the source keeps it");
                return Err(());
            }
            Err(error) => {
                tracing::warn!(exchange, error = %error, "dead letter dropped: its dead-letter exchange cannot route it");
                return Ok(durable);
            }
        };
        let (exchange, message) = match routed.dead_lettered {
            Some((target, letter)) => (target, letter),
            None => (exchange.to_owned(), message),
        };
        let exchange: Arc<str> = Arc::from(exchange);
        let message = Arc::new(message);
        for queue in routed.queues {
            if closes_cycle(&message, queue.name()) {
                tracing::warn!(
                    queue = queue.name(),
                    "dead letter not enqueued: it died in this queue before and was never rejected (a dead-letter cycle)"
                );
                continue;
            }
            let enqueued = queue.enqueue([QueuedMessage::new(
                Arc::clone(&exchange),
                Arc::clone(&message),
            )]);
            if !enqueued.refused.is_empty() {
                tracing::debug!(queue = queue.name(), "dead letter refused by a full queue");
            }
            if let (Some(&(_, lsn)), Some(log)) = (enqueued.durable_lsns.last(), queue.log()) {
                durable.push((log, lsn));
            }
        }
        Ok(durable)
    }

    /// Blocks the calling thread. From a Tokio worker it steps out of the worker first
    /// (`block_in_place`), and the wait runs outside Tokio's cooperative budget: inside a
    /// task whose budget was spent, Tokio's `watch::changed` answers `Pending` and wakes at
    /// once, for ever, so a plain `block_on` there spun without ever seeing the syncer's
    /// progress (found by the fault-injection runner: both workers stuck here, the broker
    /// deaf to its socket).
    fn wait_durable(&self, logs: &[(Arc<QueueLog>, u64)]) -> bool {
        let Some(store) = self.store.as_ref().filter(|_| !logs.is_empty()) else {
            return true;
        };
        let wait = || {
            let progress = store.progress();
            futures::executor::block_on(tokio::task::unconstrained(crate::store::wait_durable(
                progress, logs,
            )))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    fn queue_unused(&self, queue: &Queue) {
        let owner = queue.properties().exclusive_owner.unwrap_or(0);
        match self.delete_queue_if(queue.name(), owner, true, false, Some(queue.id())) {
            Ok(messages) => {
                tracing::info!(
                    queue = queue.name(),
                    messages,
                    "queue deleted: unused for its x-expires"
                );
            }
            Err(error) => {
                tracing::debug!(queue = queue.name(), error = %error, "unused queue not deleted");
            }
        }
    }
}
