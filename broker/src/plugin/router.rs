//! An exchange type backed by a router plugin: the host-owned binding table that is replayed
//! into the plugin's instances, routing with destination checks, and the decision cache for
//! plugins that read only the routing key. Versions, pooling and quarantine are `replicas.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use super::bindings::router_world::{Router as RouterExports, RouterPre};
use super::bindings::{empty_message, fill_message_for_plugin, info_from_wit, table_to_wit, types};
use super::decision_cache::{DecisionCache, Destinations};
use super::engine::PluginEngine;
use super::error::{PluginCall, PluginError};
use super::info::{PluginInfo, PluginSource, Reads};
use super::quarantine::{FaultReport, Scope};
use super::replay::{ReplayLog, ReplayState};
use super::replicas::{Replica, ReplicaSet, Version};
use super::sandbox::SandboxState;
use super::sandbox_call::{Sandbox, off_runtime};
use super::shadow::{Shadow, ShadowReport};
use crate::message::{Message, Table, Value};

/// A binding as the host records it and replays it into plugins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindingSpec {
    /// The broker's handle for the destination, unique within the exchange.
    pub destination: u32,
    pub key: String,
    pub arguments: Table,
}

impl BindingSpec {
    pub fn new(destination: u32, key: impl Into<String>) -> Self {
        BindingSpec {
            destination,
            key: key.into(),
            arguments: Table::new(),
        }
    }

    pub fn with_argument(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.arguments.push(name, value);
        self
    }

    fn to_wit(&self) -> types::Binding {
        types::Binding {
            destination: self.destination,
            key: self.key.clone(),
            arguments: table_to_wit(&self.arguments),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum RouterOp {
    Create { exchange: u32, arguments: Table },
    Destroy { exchange: u32 },
    Bind { exchange: u32, binding: BindingSpec },
    Unbind { exchange: u32, binding: BindingSpec },
}

#[derive(Debug, Default)]
struct ExchangeEntry {
    arguments: Table,
    bindings: Vec<BindingSpec>,
}

/// The authoritative exchanges and bindings of one exchange type.
#[derive(Debug, Default)]
pub(crate) struct RouterTable {
    exchanges: BTreeMap<u32, ExchangeEntry>,
}

impl ReplayState for RouterTable {
    type Op = RouterOp;

    fn apply(&mut self, op: &RouterOp) {
        match op {
            RouterOp::Create {
                exchange,
                arguments,
            } => {
                self.exchanges.insert(
                    *exchange,
                    ExchangeEntry {
                        arguments: arguments.clone(),
                        bindings: Vec::new(),
                    },
                );
            }
            RouterOp::Destroy { exchange } => {
                self.exchanges.remove(exchange);
            }
            RouterOp::Bind { exchange, binding } => {
                if let Some(entry) = self.exchanges.get_mut(exchange) {
                    entry.bindings.push(binding.clone());
                }
            }
            RouterOp::Unbind { exchange, binding } => {
                if let Some(entry) = self.exchanges.get_mut(exchange)
                    && let Some(i) = entry.bindings.iter().position(|b| b == binding)
                {
                    entry.bindings.remove(i);
                }
            }
        }
    }

    fn snapshot(&self) -> Vec<RouterOp> {
        let mut ops = Vec::new();
        for (exchange, entry) in &self.exchanges {
            ops.push(RouterOp::Create {
                exchange: *exchange,
                arguments: entry.arguments.clone(),
            });
            ops.extend(entry.bindings.iter().map(|binding| RouterOp::Bind {
                exchange: *exchange,
                binding: binding.clone(),
            }));
        }
        ops
    }
}

impl RouterTable {
    fn has_binding(&self, exchange: u32, binding: &BindingSpec) -> bool {
        self.exchanges
            .get(&exchange)
            .is_some_and(|e| e.bindings.contains(binding))
    }
}

/// One live instance of a router plugin version.
pub(crate) struct RouterInstance {
    sandbox: Sandbox,
    exports: RouterExports,
    /// Number of the last binding-log operation applied (see `replay.rs`).
    applied: u64,
    /// Exchange → destination → how many bindings; the handles `route` may answer.
    bound: HashMap<u32, HashMap<u32, u32>>,
    /// Reused for every `route` call (see `fill_message_for_plugin`).
    scratch: types::Message,
    /// Reused for every `route-batch` call.
    scratch_batch: Vec<types::Message>,
}

impl Replica for RouterInstance {
    type State = RouterTable;
    type Pre = RouterPre<SandboxState>;

    fn instantiate(
        engine: &PluginEngine,
        pre: &RouterPre<SandboxState>,
        plugin: &str,
        version: &str,
    ) -> Result<Self, PluginError> {
        let mut sandbox = Sandbox::new(engine, plugin, version);
        let exports = off_runtime(|| pre.instantiate(&mut sandbox.store))
            .map_err(|e| sandbox.instantiate_error(&e))?;
        Ok(RouterInstance {
            sandbox,
            exports,
            applied: 0,
            bound: HashMap::new(),
            scratch: empty_message(),
            scratch_batch: Vec::new(),
        })
    }

    fn apply(&mut self, engine: &PluginEngine, op: &RouterOp) -> Result<(), PluginError> {
        self.apply_op(engine, op)
    }

    fn applied(&self) -> u64 {
        self.applied
    }

    fn set_applied(&mut self, applied: u64) {
        self.applied = applied;
    }
}

impl RouterInstance {
    fn memory_in_use(&self) -> usize {
        self.sandbox.memory_in_use()
    }

    pub(crate) fn info(&mut self, engine: &PluginEngine) -> Result<PluginInfo, PluginError> {
        let exports = &self.exports;
        self.sandbox
            .call(PluginCall::Info, engine.limits.admin_deadline, |store| {
                exports.switchyard_plugin_exchange().call_info(store)
            })
            .map(info_from_wit)
    }

    fn refused(&self, call: PluginCall, reason: String) -> PluginError {
        PluginError::Refused {
            plugin: self.sandbox.plugin().to_owned(),
            call,
            reason,
        }
    }

    fn apply_op(&mut self, engine: &PluginEngine, op: &RouterOp) -> Result<(), PluginError> {
        let deadline = engine.limits.admin_deadline;
        let guest = self.exports.switchyard_plugin_exchange();
        match op {
            RouterOp::Create {
                exchange,
                arguments,
            } => {
                let arguments = table_to_wit(arguments);
                let answer = self.sandbox.call(PluginCall::Create, deadline, |store| {
                    guest.call_create(store, *exchange, &arguments)
                })?;
                answer.map_err(|reason| self.refused(PluginCall::Create, reason))?;
                self.bound.insert(*exchange, HashMap::new());
            }
            RouterOp::Destroy { exchange } => {
                self.sandbox.call(PluginCall::Destroy, deadline, |store| {
                    guest.call_destroy(store, *exchange)
                })?;
                self.bound.remove(exchange);
            }
            RouterOp::Bind { exchange, binding } => {
                let wit = binding.to_wit();
                self.sandbox.call(PluginCall::Bind, deadline, |store| {
                    guest.call_bind(store, *exchange, &wit)
                })?;
                *self
                    .bound
                    .entry(*exchange)
                    .or_default()
                    .entry(binding.destination)
                    .or_default() += 1;
            }
            RouterOp::Unbind { exchange, binding } => {
                let wit = binding.to_wit();
                self.sandbox.call(PluginCall::Unbind, deadline, |store| {
                    guest.call_unbind(store, *exchange, &wit)
                })?;
                if let Some(destinations) = self.bound.get_mut(exchange)
                    && let Some(count) = destinations.get_mut(&binding.destination)
                {
                    *count -= 1;
                    if *count == 0 {
                        destinations.remove(&binding.destination);
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_binding(
        &mut self,
        engine: &PluginEngine,
        exchange: u32,
        binding: &BindingSpec,
    ) -> Result<(), PluginError> {
        let guest = self.exports.switchyard_plugin_exchange();
        let wit = binding.to_wit();
        let answer = self.sandbox.call(
            PluginCall::ValidateBinding,
            engine.limits.admin_deadline,
            |store| guest.call_validate_binding(store, exchange, &wit),
        )?;
        answer.map_err(|reason| self.refused(PluginCall::ValidateBinding, reason))
    }

    pub(super) fn route(
        &mut self,
        engine: &PluginEngine,
        exchange: u32,
        message: &Message,
        reads: Reads,
    ) -> Result<Vec<u32>, PluginError> {
        self.check_bound(exchange)?;
        fill_message_for_plugin(&mut self.scratch, message, reads);
        let guest = self.exports.switchyard_plugin_exchange();
        let scratch = &self.scratch;
        let destinations =
            self.sandbox
                .call(PluginCall::Route, engine.limits.call_deadline, |store| {
                    guest.call_route(store, exchange, scratch)
                })?;
        self.checked(exchange, destinations)
    }

    /// Routes `messages` in one call (see `route-batch` in the WIT contract).
    fn route_batch(
        &mut self,
        engine: &PluginEngine,
        exchange: u32,
        messages: &[&Message],
        reads: Reads,
    ) -> Result<Vec<Vec<u32>>, PluginError> {
        self.check_bound(exchange)?;
        self.scratch_batch
            .resize_with(messages.len(), empty_message);
        for (slot, message) in self.scratch_batch.iter_mut().zip(messages) {
            fill_message_for_plugin(slot, message, reads);
        }
        let guest = self.exports.switchyard_plugin_exchange();
        let batch = &self.scratch_batch[..messages.len()];
        let answers =
            self.sandbox
                .call(PluginCall::Route, engine.limits.call_deadline, |store| {
                    guest.call_route_batch(store, exchange, batch)
                })?;
        if answers.len() != messages.len() {
            return Err(PluginError::Trap {
                plugin: self.sandbox.plugin().to_owned(),
                version: self.sandbox.version().to_owned(),
                call: PluginCall::Route,
                reason: format!(
                    "route-batch answered {} lists for {} messages",
                    answers.len(),
                    messages.len()
                ),
                backtrace: String::new(),
            });
        }
        answers
            .into_iter()
            .map(|destinations| self.checked(exchange, destinations))
            .collect()
    }

    fn check_bound(&self, exchange: u32) -> Result<(), PluginError> {
        if self.bound.contains_key(&exchange) {
            Ok(())
        } else {
            Err(PluginError::UnknownHandle {
                plugin: self.sandbox.plugin().to_owned(),
                what: "exchange",
                handle: exchange,
            })
        }
    }

    /// Rejects an answer naming a handle not bound to `exchange`; sorts and dedups the rest.
    fn checked(&self, exchange: u32, mut destinations: Vec<u32>) -> Result<Vec<u32>, PluginError> {
        let bound = self.bound.get(&exchange);
        if let Some(&handle) = destinations
            .iter()
            .find(|d| !bound.is_some_and(|b| b.contains_key(d)))
        {
            return Err(PluginError::InvalidDestination {
                plugin: self.sandbox.plugin().to_owned(),
                exchange,
                handle,
            });
        }
        destinations.sort_unstable();
        destinations.dedup();
        Ok(destinations)
    }
}

/// A loaded version of a router plugin.
pub(crate) type RouterVersion = Version<RouterInstance>;

/// The share of an instance's memory limit that the bindings it holds may fill (numerator,
/// denominator); the rest is room for routing calls.
pub const BINDING_MEMORY_SHARE: (usize, usize) = (3, 4);

/// An exchange type: the router plugin serving it and every exchange of that type.
pub struct RouterPlugin {
    replicas: ReplicaSet<RouterInstance>,
    cache: DecisionCache,
    /// Whether the current version reads only the routing key (its decisions are cached);
    /// kept beside the version so a cache hit needs no version load.
    key_only: AtomicBool,
    /// A new version compared with the serving one on live traffic (see `shadow.rs`).
    shadow: ArcSwapOption<Shadow>,
}

impl std::fmt::Debug for RouterPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterPlugin")
            .field("name", &self.replicas.name)
            .finish_non_exhaustive()
    }
}

impl RouterPlugin {
    pub(crate) fn new(engine: Arc<PluginEngine>, version: RouterVersion) -> Self {
        RouterPlugin {
            cache: DecisionCache::new(engine.limits.decision_cache_entries),
            key_only: AtomicBool::new(version.info.reads.key_only()),
            replicas: ReplicaSet::new(engine, version),
            shadow: ArcSwapOption::empty(),
        }
    }

    /// The exchange type's name.
    pub fn name(&self) -> &str {
        &self.replicas.name
    }

    /// The current version's self-description.
    pub fn info(&self) -> PluginInfo {
        self.replicas.current().info.clone()
    }

    pub fn source(&self) -> PluginSource {
        self.replicas.current().source.clone()
    }

    pub(crate) fn loaded_at(&self) -> SystemTime {
        self.replicas.current().loaded_at
    }

    pub fn faults(&self) -> FaultReport {
        self.replicas.quarantine.report()
    }

    /// How many exchanges of this type exist.
    pub fn exchange_count(&self) -> usize {
        self.replicas.lock_log().state().exchanges.len()
    }

    /// Declares an exchange of this type; the plugin may refuse its arguments.
    pub fn create_exchange(&self, exchange: u32, arguments: Table) -> Result<(), PluginError> {
        let mut log = self.replicas.lock_log();
        if log.state().exchanges.contains_key(&exchange) {
            return Err(PluginError::Refused {
                plugin: self.name().to_owned(),
                call: PluginCall::Create,
                reason: format!("exchange handle {exchange} already exists"),
            });
        }
        let version = self.replicas.current();
        let mut instance = self.replicas.check_out_locked(&version, &log)?;
        let op = RouterOp::Create {
            exchange,
            arguments,
        };
        match instance.apply_op(&self.replicas.engine, &op) {
            Ok(()) => {
                instance.applied = self.replicas.push(&mut log, op);
                version.check_in(instance);
                Ok(())
            }
            Err(error) => Err(self.replicas.after_failure(
                &version,
                instance,
                error,
                Scope::Exchange(exchange),
            )),
        }
    }

    /// Forgets an exchange and its bindings.
    pub fn destroy_exchange(&self, exchange: u32) {
        let mut log = self.replicas.lock_log();
        if log.state().exchanges.contains_key(&exchange) {
            self.replicas.push(&mut log, RouterOp::Destroy { exchange });
            self.cache.invalidate();
            self.replicas.quarantine.forget(Scope::Exchange(exchange));
        }
    }

    /// Adds a binding after the plugin has validated it. Returns `false` if the identical
    /// binding already existed (binding twice is a no-op, as in RabbitMQ).
    pub fn bind(&self, exchange: u32, binding: BindingSpec) -> Result<bool, PluginError> {
        let mut log = self.replicas.lock_log();
        self.check_exchange(&log, exchange)?;
        if log.state().has_binding(exchange, &binding) {
            return Ok(false);
        }
        let version = self.replicas.current();
        let mut instance = self.replicas.check_out_locked(&version, &log)?;
        match instance.validate_binding(&self.replicas.engine, exchange, &binding) {
            Ok(()) => {
                let op = RouterOp::Bind { exchange, binding };
                let mut instance =
                    self.apply_within_budget(&version, &log, instance, exchange, &op)?;
                instance.applied = self.replicas.push(&mut log, op);
                version.check_in(instance);
                self.cache.invalidate();
                Ok(true)
            }
            Err(error) => Err(self.replicas.after_failure(
                &version,
                instance,
                error,
                Scope::Exchange(exchange),
            )),
        }
    }

    /// Applies a new binding to `instance` and checks that the instance still has room to
    /// route: every instance holds every binding of every exchange of this type, so bindings
    /// may fill at most [`BINDING_MEMORY_SHARE`] of the memory limit (review finding 8: one
    /// tenant's bindings pushed the shared instance past the cap, and every exchange of the
    /// type failed). Memory never shrinks, so an instance over the budget is rebuilt from the
    /// log first, and the binding refused only if a fresh instance is over it too. Returns the
    /// instance with the binding applied, current with the log once `op` is pushed.
    fn apply_within_budget(
        &self,
        version: &RouterVersion,
        log: &ReplayLog<RouterTable>,
        instance: RouterInstance,
        exchange: u32,
        op: &RouterOp,
    ) -> Result<RouterInstance, PluginError> {
        let limit = self.replicas.engine.limits.memory_bytes;
        let budget = limit / BINDING_MEMORY_SHARE.1 * BINDING_MEMORY_SHARE.0;
        let instance = self.apply_admin_op(version, instance, exchange, op)?;
        if instance.memory_in_use() <= budget {
            return Ok(instance);
        }
        drop(instance);
        let fresh = self.replicas.fresh_instance(version, log)?;
        let fresh = self.apply_admin_op(version, fresh, exchange, op)?;
        let in_use = fresh.memory_in_use();
        if in_use <= budget {
            return Ok(fresh);
        }
        Err(PluginError::Refused {
            plugin: self.name().to_owned(),
            call: PluginCall::Bind,
            reason: format!(
                "with this binding the plugin's instance would hold {in_use} bytes; the bindings of all exchanges of this type may use at most {budget} of its {limit} bytes"
            ),
        })
    }

    fn apply_admin_op(
        &self,
        version: &RouterVersion,
        mut instance: RouterInstance,
        exchange: u32,
        op: &RouterOp,
    ) -> Result<RouterInstance, PluginError> {
        match instance.apply_op(&self.replicas.engine, op) {
            Ok(()) => Ok(instance),
            Err(error) => Err(self.replicas.after_failure(
                version,
                instance,
                error,
                Scope::Exchange(exchange),
            )),
        }
    }

    /// Removes a binding. Returns `false` if there was no such binding.
    pub fn unbind(&self, exchange: u32, binding: &BindingSpec) -> Result<bool, PluginError> {
        let mut log = self.replicas.lock_log();
        self.check_exchange(&log, exchange)?;
        if !log.state().has_binding(exchange, binding) {
            return Ok(false);
        }
        self.replicas.push(
            &mut log,
            RouterOp::Unbind {
                exchange,
                binding: binding.clone(),
            },
        );
        self.cache.invalidate();
        Ok(true)
    }

    /// The bindings of an exchange, as the host holds them.
    pub fn bindings(&self, exchange: u32) -> Vec<BindingSpec> {
        self.replicas
            .lock_log()
            .state()
            .exchanges
            .get(&exchange)
            .map(|e| e.bindings.clone())
            .unwrap_or_default()
    }

    fn check_exchange(
        &self,
        log: &ReplayLog<RouterTable>,
        exchange: u32,
    ) -> Result<(), PluginError> {
        if log.state().exchanges.contains_key(&exchange) {
            Ok(())
        } else {
            Err(PluginError::UnknownHandle {
                plugin: self.name().to_owned(),
                what: "exchange",
                handle: exchange,
            })
        }
    }

    /// The destinations of `message` published to `exchange`, sorted and without duplicates.
    /// Blocks the calling thread for at most the call deadline (off the async worker, see
    /// `sandbox_call.rs`).
    pub fn route(&self, exchange: u32, message: &Message) -> Result<Destinations, PluginError> {
        let destinations = self.route_serving(exchange, message)?;
        self.observe_shadow(exchange, message, &destinations);
        Ok(destinations)
    }

    /// Lets the shadow, if one runs, route `message` too and compare.
    fn observe_shadow(&self, exchange: u32, message: &Message, serving: &Destinations) {
        if let Some(shadow) = &*self.shadow.load() {
            shadow.observe(&self.replicas, exchange, message, serving);
        }
    }

    fn route_serving(&self, exchange: u32, message: &Message) -> Result<Destinations, PluginError> {
        self.replicas.quarantine.check(Scope::Exchange(exchange))?;
        // Read before the version and the instance, so a decision computed against bindings
        // that change meanwhile is refused by the cache (see `decision_cache.rs`).
        let generation = self.cache.generation();
        if self.key_only.load(Ordering::Acquire)
            && let Some(hit) = self.cache.get(exchange, &message.routing_key)
        {
            return Ok(hit);
        }
        let version = self.replicas.current();
        let cacheable = version.info.reads.key_only() && self.cache.enabled();
        let mut instance = self.replicas.check_out(&version)?;
        match instance.route(&self.replicas.engine, exchange, message, version.info.reads) {
            Ok(destinations) => {
                version.check_in(instance);
                self.replicas.after_success(Scope::Exchange(exchange));
                let destinations: Destinations = destinations.into();
                if cacheable {
                    self.cache
                        .insert(generation, exchange, &message.routing_key, &destinations);
                }
                Ok(destinations)
            }
            Err(error) => Err(self.replicas.after_failure(
                &version,
                instance,
                error,
                Scope::Exchange(exchange),
            )),
        }
    }

    /// Routes several messages published to the same exchange, answering in order, with one
    /// plugin call for all those the decision cache does not answer. If that call fails, each
    /// message is routed on its own, so one poisonous message fails only itself.
    pub fn route_batch(
        &self,
        exchange: u32,
        messages: &[Message],
    ) -> Vec<Result<Destinations, PluginError>> {
        if let Err(error) = self.replicas.quarantine.check(Scope::Exchange(exchange)) {
            return messages.iter().map(|_| Err(error.clone())).collect();
        }
        let generation = self.cache.generation();
        let version = self.replicas.current();
        let cacheable = version.info.reads.key_only() && self.cache.enabled();
        let mut results: Vec<Option<Result<Destinations, PluginError>>> = messages
            .iter()
            .map(|m| {
                cacheable
                    .then(|| self.cache.get(exchange, &m.routing_key).map(Ok))
                    .flatten()
            })
            .collect();
        let misses: Vec<usize> = (0..messages.len())
            .filter(|&i| results[i].is_none())
            .collect();
        if !misses.is_empty() {
            let missed: Vec<&Message> = misses.iter().map(|&i| &messages[i]).collect();
            let answers =
                self.replicas.check_out(&version).and_then(|mut instance| {
                    match instance.route_batch(
                        &self.replicas.engine,
                        exchange,
                        &missed,
                        version.info.reads,
                    ) {
                        Ok(answers) => {
                            version.check_in(instance);
                            self.replicas.after_success(Scope::Exchange(exchange));
                            Ok(answers)
                        }
                        Err(error) => Err(self.replicas.after_failure(
                            &version,
                            instance,
                            error,
                            Scope::Exchange(exchange),
                        )),
                    }
                });
            match answers {
                Ok(answers) => {
                    for (&i, destinations) in misses.iter().zip(answers) {
                        let destinations: Destinations = destinations.into();
                        if cacheable {
                            self.cache.insert(
                                generation,
                                exchange,
                                &messages[i].routing_key,
                                &destinations,
                            );
                        }
                        results[i] = Some(Ok(destinations));
                    }
                }
                Err(_) => {
                    for &i in &misses {
                        results[i] = Some(self.route_serving(exchange, &messages[i]));
                    }
                }
            }
        }
        let results: Vec<Result<Destinations, PluginError>> = results
            .into_iter()
            .map(|r| r.expect("every message answered"))
            .collect();
        if self.shadow.load().is_some() {
            for (message, result) in messages.iter().zip(&results) {
                if let Ok(destinations) = result {
                    self.observe_shadow(exchange, message, destinations);
                }
            }
        }
        results
    }

    /// Starts running `version` as this exchange type's shadow, replacing any earlier shadow.
    /// Fails, leaving things as they were, if the version cannot take every exchange and
    /// binding of the type.
    pub(crate) fn start_shadow(
        &self,
        version: RouterVersion,
        wasm: Arc<[u8]>,
        sample_percent: u8,
    ) -> Result<(), PluginError> {
        let instance = self.replicas.build_beside(&version)?;
        version.check_in(instance);
        tracing::info!(
            plugin = self.name(),
            serving = self.replicas.current().info.version.as_str(),
            shadow = version.info.version.as_str(),
            sample_percent,
            "shadow started"
        );
        self.shadow
            .store(Some(Arc::new(Shadow::new(version, wasm, sample_percent))));
        Ok(())
    }

    /// What the shadow has found, if one runs.
    pub fn shadow_report(&self) -> Option<ShadowReport> {
        let shadow = self.shadow.load_full()?;
        let serving = self.replicas.current();
        Some(shadow.report(self.name(), &serving.info.version))
    }

    /// Stops the shadow; returns its component, if one ran.
    pub(crate) fn stop_shadow(&self) -> Option<Arc<[u8]>> {
        let shadow = self.shadow.swap(None)?;
        tracing::info!(
            plugin = self.name(),
            shadow = shadow.version.info.version.as_str(),
            "shadow stopped"
        );
        Some(Arc::clone(&shadow.wasm))
    }

    /// Swaps in a new version after replaying every exchange and binding into it; on any
    /// failure the current version keeps serving.
    pub(crate) fn replace(&self, version: RouterVersion) -> Result<(), PluginError> {
        let key_only = version.info.reads.key_only();
        self.replicas.replace(version)?;
        self.key_only.store(key_only, Ordering::Release);
        self.cache.invalidate();
        Ok(())
    }
}
