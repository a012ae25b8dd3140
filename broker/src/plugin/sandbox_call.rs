//! One plugin instance's store and the single way to call into it: under a deadline and the
//! memory cap, with failures classified into [`PluginError`]. After any failed call the
//! instance must be dropped (a trapped component cannot be entered again); callers do that.
//!
//! Plugin code runs off the async runtime: [`off_runtime`] wraps every call and every
//! instantiation in `block_in_place`, which hands the Tokio worker's other tasks to another
//! thread for the duration. Two reasons: a call may legitimately take up to its deadline, and
//! WASI's synchronous host functions (a plugin writing to stderr, say, as Rust does when it
//! panics) enter Tokio with `block_on`, which panics on a worker thread. Routing decisions the
//! cache answers, and the default exchange, make no call, so the hot paths pay nothing; a call
//! costs one thread hand-over (some microseconds). Outside a Tokio runtime (the plugin
//! watcher, the timer thread, unit tests) the call simply runs.

use std::time::Duration;

use wasmtime::Store;

use super::engine::PluginEngine;
use super::error::{PluginCall, PluginError};
use super::sandbox::SandboxState;

pub(crate) struct Sandbox {
    pub(crate) store: Store<SandboxState>,
    plugin: String,
    /// The plugin's version, named in fault errors (empty while a file is first probed).
    version: String,
    memory_bytes: usize,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

/// Runs `work`, which enters plugin code, outside the async worker (see the module docs).
pub(crate) fn off_runtime<R>(work: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(work)
}

impl Sandbox {
    pub(crate) fn new(engine: &PluginEngine, plugin: &str, version: &str) -> Self {
        let mut store = Store::new(
            &engine.engine,
            SandboxState::new(plugin, &engine.limits, engine.log_budgets.of(plugin)),
        );
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(PluginEngine::deadline_ticks(engine.limits.admin_deadline));
        Sandbox {
            store,
            plugin: plugin.to_owned(),
            version: version.to_owned(),
            memory_bytes: engine.limits.memory_bytes,
        }
    }

    /// The linear memory this instance holds, in bytes (it never shrinks).
    pub(crate) fn memory_in_use(&self) -> usize {
        self.store.data().limiter.memory_in_use()
    }

    pub(crate) fn plugin(&self) -> &str {
        &self.plugin
    }

    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// Runs `f` against the store with `deadline`; turns a failure into the matching error.
    pub(crate) fn call<R>(
        &mut self,
        call: PluginCall,
        deadline: Duration,
        f: impl FnOnce(&mut Store<SandboxState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.store
            .set_epoch_deadline(PluginEngine::deadline_ticks(deadline));
        self.store.data_mut().limiter.clear_refusals();
        self.store.data_mut().panic = None;
        let result = off_runtime(|| f(&mut self.store));
        result.map_err(|error| self.classify(call, deadline, &error))
    }

    /// Maps an error from instantiating into this store. Running out of the engine's shared
    /// instance slots is no fault of this plugin (another plugin's slow calls may hold them):
    /// it is [`PluginError::NoInstanceSlot`], which quarantine does not count.
    pub(crate) fn instantiate_error(&self, error: &wasmtime::Error) -> PluginError {
        if error
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return PluginError::NoInstanceSlot {
                plugin: self.plugin.clone(),
                reason: format!("{error:#}"),
            };
        }
        match self.classify(PluginCall::Info, Duration::ZERO, error) {
            e @ (PluginError::MemoryLimit { .. } | PluginError::TableLimit { .. }) => e,
            _ => PluginError::Instantiate {
                plugin: self.plugin.clone(),
                reason: format!("{error:#}"),
            },
        }
    }

    fn classify(
        &self,
        call: PluginCall,
        deadline: Duration,
        error: &wasmtime::Error,
    ) -> PluginError {
        let plugin = self.plugin.clone();
        let version = self.version.clone();
        let limiter = &self.store.data().limiter;
        if let Some(asked_bytes) = limiter.refused_memory {
            return PluginError::MemoryLimit {
                plugin,
                version,
                call,
                limit_bytes: self.memory_bytes,
                asked_bytes,
            };
        }
        if let Some(asked_elements) = limiter.refused_table {
            return PluginError::TableLimit {
                plugin,
                version,
                call,
                limit_elements: limiter.table_elements(),
                asked_elements,
            };
        }
        if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            return PluginError::Deadline {
                plugin,
                version,
                call,
                deadline,
            };
        }
        // The error says what the plugin's panic hook reported, when it did, in one line; the
        // wasm backtrace rides along for the fault's log line.
        let backtrace = format!("{error:#}").replace('\n', " | ");
        let reason = match &self.store.data().panic {
            Some((message, location)) => {
                format!("panicked at {location}: {message}").replace('\n', " | ")
            }
            None => backtrace.clone(),
        };
        PluginError::Trap {
            plugin,
            version,
            call,
            reason,
            backtrace,
        }
    }
}
