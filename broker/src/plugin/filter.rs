//! A consumer filter backed by a filter plugin: the host-owned table of compiled expressions,
//! replayed into the plugin's instances as bindings are for routers. Versions, pooling and
//! quarantine are `replicas.rs`. A consumer holds a [`CompiledFilter`]; dropping it releases
//! the expression everywhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::bindings::filter_world::{Filter as FilterExports, FilterPre};
use super::bindings::{empty_message, fill_message_for_plugin, info_from_wit, types};
use super::engine::PluginEngine;
use super::error::{PluginCall, PluginError};
use super::info::{PluginInfo, PluginSource, Reads};
use super::quarantine::{FaultReport, Scope};
use super::replay::ReplayState;
use super::replicas::{Replica, ReplicaSet, Version};
use super::sandbox::SandboxState;
use super::sandbox_call::{Sandbox, off_runtime};
use crate::message::Message;

/// The longest filter expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) enum FilterOp {
    Compile { id: u64, expression: String },
    Release { id: u64 },
}

/// The authoritative compiled expressions of one filter plugin.
#[derive(Debug, Default)]
pub(crate) struct FilterTable {
    expressions: BTreeMap<u64, String>,
}

impl ReplayState for FilterTable {
    type Op = FilterOp;

    fn apply(&mut self, op: &FilterOp) {
        match op {
            FilterOp::Compile { id, expression } => {
                self.expressions.insert(*id, expression.clone());
            }
            FilterOp::Release { id } => {
                self.expressions.remove(id);
            }
        }
    }

    fn snapshot(&self) -> Vec<FilterOp> {
        self.expressions
            .iter()
            .map(|(id, expression)| FilterOp::Compile {
                id: *id,
                expression: expression.clone(),
            })
            .collect()
    }
}

pub(crate) struct FilterInstance {
    sandbox: Sandbox,
    exports: FilterExports,
    applied: u64,
    /// Host filter id → the handle this instance's `compile` returned.
    handles: HashMap<u64, u32>,
    /// Reused for every `matches` call.
    scratch: types::Message,
}

impl Replica for FilterInstance {
    type State = FilterTable;
    type Pre = FilterPre<SandboxState>;

    fn instantiate(
        engine: &PluginEngine,
        pre: &FilterPre<SandboxState>,
        plugin: &str,
        version: &str,
    ) -> Result<Self, PluginError> {
        let mut sandbox = Sandbox::new(engine, plugin, version);
        let exports = off_runtime(|| pre.instantiate(&mut sandbox.store))
            .map_err(|e| sandbox.instantiate_error(&e))?;
        Ok(FilterInstance {
            sandbox,
            exports,
            applied: 0,
            handles: HashMap::new(),
            scratch: empty_message(),
        })
    }

    fn apply(&mut self, engine: &PluginEngine, op: &FilterOp) -> Result<(), PluginError> {
        self.apply_op(engine, op)
    }

    fn applied(&self) -> u64 {
        self.applied
    }

    fn set_applied(&mut self, applied: u64) {
        self.applied = applied;
    }
}

impl FilterInstance {
    pub(crate) fn info(&mut self, engine: &PluginEngine) -> Result<PluginInfo, PluginError> {
        let exports = &self.exports;
        self.sandbox
            .call(PluginCall::Info, engine.limits.admin_deadline, |store| {
                exports.switchyard_plugin_message_filter().call_info(store)
            })
            .map(info_from_wit)
    }

    fn apply_op(&mut self, engine: &PluginEngine, op: &FilterOp) -> Result<(), PluginError> {
        let deadline = engine.limits.admin_deadline;
        let guest = self.exports.switchyard_plugin_message_filter();
        match op {
            FilterOp::Compile { id, expression } => {
                let answer = self.sandbox.call(PluginCall::Compile, deadline, |store| {
                    guest.call_compile(store, expression)
                })?;
                let handle = answer.map_err(|reason| PluginError::Refused {
                    plugin: self.sandbox.plugin().to_owned(),
                    call: PluginCall::Compile,
                    reason,
                })?;
                self.handles.insert(*id, handle);
            }
            FilterOp::Release { id } => {
                if let Some(handle) = self.handles.remove(id) {
                    self.sandbox.call(PluginCall::Release, deadline, |store| {
                        guest.call_release(store, handle)
                    })?;
                }
            }
        }
        Ok(())
    }

    fn matches(
        &mut self,
        engine: &PluginEngine,
        id: u64,
        message: &Message,
        reads: Reads,
    ) -> Result<bool, PluginError> {
        let Some(&handle) = self.handles.get(&id) else {
            return Err(PluginError::UnknownHandle {
                plugin: self.sandbox.plugin().to_owned(),
                what: "compiled filter",
                handle: u32::try_from(id).unwrap_or(u32::MAX),
            });
        };
        fill_message_for_plugin(&mut self.scratch, message, reads);
        let guest = self.exports.switchyard_plugin_message_filter();
        let scratch = &self.scratch;
        self.sandbox
            .call(PluginCall::Matches, engine.limits.call_deadline, |store| {
                guest.call_matches(store, handle, scratch)
            })
    }
}

/// A loaded version of a filter plugin.
pub(crate) type FilterVersion = Version<FilterInstance>;

/// A filter plugin and every expression consumers compiled with it.
pub struct FilterPlugin {
    replicas: ReplicaSet<FilterInstance>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for FilterPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterPlugin")
            .field("name", &self.replicas.name)
            .finish_non_exhaustive()
    }
}

/// A consumer's compiled expression. Dropping it releases the expression.
#[derive(Debug)]
pub struct CompiledFilter {
    plugin: Arc<FilterPlugin>,
    id: u64,
    expression: String,
}

impl CompiledFilter {
    /// Whether `message` passes. Blocks for at most the call deadline; call it off the async
    /// runtime.
    pub fn matches(&self, message: &Message) -> Result<bool, PluginError> {
        self.plugin.matches(self.id, message)
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn plugin_name(&self) -> &str {
        self.plugin.name()
    }
}

impl Drop for CompiledFilter {
    fn drop(&mut self) {
        self.plugin.release(self.id);
    }
}

impl FilterPlugin {
    pub(crate) fn new(engine: Arc<PluginEngine>, version: FilterVersion) -> Self {
        FilterPlugin {
            replicas: ReplicaSet::new(engine, version),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn name(&self) -> &str {
        &self.replicas.name
    }

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

    /// How many compiled expressions are in use.
    pub fn expression_count(&self) -> usize {
        self.replicas.lock_log().state().expressions.len()
    }

    /// Compiles a consumer's expression; a bad one is [`PluginError::Refused`] with the
    /// plugin's explanation.
    pub fn compile(self: &Arc<Self>, expression: &str) -> Result<CompiledFilter, PluginError> {
        if expression.len() > MAX_EXPRESSION_BYTES {
            return Err(PluginError::Refused {
                plugin: self.name().to_owned(),
                call: PluginCall::Compile,
                reason: format!(
                    "a filter expression is at most {MAX_EXPRESSION_BYTES} bytes, this one is {}",
                    expression.len()
                ),
            });
        }
        self.replicas.quarantine.check(Scope::Plugin)?;
        let mut log = self.replicas.lock_log();
        let version = self.replicas.current();
        let mut instance = self.replicas.check_out_locked(&version, &log)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let op = FilterOp::Compile {
            id,
            expression: expression.to_owned(),
        };
        match instance.apply_op(&self.replicas.engine, &op) {
            Ok(()) => {
                instance.applied = self.replicas.push(&mut log, op);
                version.check_in(instance);
                Ok(CompiledFilter {
                    plugin: Arc::clone(self),
                    id,
                    expression: expression.to_owned(),
                })
            }
            Err(error) => {
                Err(self
                    .replicas
                    .after_failure(&version, instance, error, Scope::Plugin))
            }
        }
    }

    fn release(&self, id: u64) {
        let mut log = self.replicas.lock_log();
        if log.state().expressions.contains_key(&id) {
            self.replicas.push(&mut log, FilterOp::Release { id });
            self.replicas.quarantine.forget(Scope::Filter(id));
        }
    }

    fn matches(&self, id: u64, message: &Message) -> Result<bool, PluginError> {
        self.replicas.quarantine.check(Scope::Filter(id))?;
        let version = self.replicas.current();
        let mut instance = self.replicas.check_out(&version)?;
        match instance.matches(&self.replicas.engine, id, message, version.info.reads) {
            Ok(pass) => {
                version.check_in(instance);
                self.replicas.after_success(Scope::Filter(id));
                Ok(pass)
            }
            Err(error) => {
                Err(self
                    .replicas
                    .after_failure(&version, instance, error, Scope::Filter(id)))
            }
        }
    }

    /// Swaps in a new version after recompiling every expression in use with it. On any
    /// failure (an expression the new version refuses, say) the current version keeps serving.
    pub(crate) fn replace(&self, version: FilterVersion) -> Result<(), PluginError> {
        self.replicas.replace(version).map(drop)
    }
}
