//! The one Wasmtime engine every plugin runs on, its linker, the epoch ticker that enforces
//! call deadlines, and compilation through the on-disk artifact cache.
//!
//! Configuration follows what was measured for this broker: `concurrency_support(false)`
//! (a component call costs about a third), epoch interruption (a deadline costs a counter check
//! on loop back-edges, far less than fuel), and the pooling allocator (instantiation reuses
//! pre-reserved slots instead of mapping memory each time).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::bindings::router_world;
use super::error::PluginError;
use super::limits::PluginLimits;
use super::sandbox::SandboxState;

/// How often the epoch advances; deadlines are rounded up to whole ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Instances the pooling allocator keeps slots for. Each exchange type and filter keeps about
/// one instance per concurrently routing thread, plus one being prepared during a reload.
const POOLED_COMPONENT_INSTANCES: u32 = 512;

/// The engine, its linker and where compiled artifacts are cached.
pub(crate) struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<SandboxState>,
    pub(crate) limits: PluginLimits,
    cache_dir: Option<PathBuf>,
    pub(crate) log_budgets: super::log_budget::LogBudgets,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("limits", &self.limits)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Builds the engine and starts its epoch ticker, which stops when the engine is dropped.
    pub(crate) fn new(
        limits: PluginLimits,
        cache_dir: Option<PathBuf>,
    ) -> Result<Arc<Self>, PluginError> {
        let engine_error = |e: wasmtime::Error| PluginError::Engine {
            reason: format!("{e:#}"),
        };
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOLED_COMPONENT_INSTANCES)
            .total_core_instances(POOLED_COMPONENT_INSTANCES * 8)
            .total_memories(POOLED_COMPONENT_INSTANCES * 2)
            .total_tables(POOLED_COMPONENT_INSTANCES * 4)
            .max_memory_size(limits.memory_bytes)
            .table_elements(limits.table_elements);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .concurrency_support(false)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(engine_error)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        router_world::switchyard::plugin::host::add_to_linker::<_, HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(engine_error)?;

        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| PluginError::Io {
                path: dir.clone(),
                source: source.into(),
            })?;
        }
        let plugin_engine = Arc::new(PluginEngine {
            engine,
            linker,
            limits,
            cache_dir,
            log_budgets: Default::default(),
        });
        start_epoch_ticker(Arc::downgrade(&plugin_engine));
        Ok(plugin_engine)
    }

    /// Epoch ticks that cover `deadline`.
    pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
        let ticks = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }

    /// Compiles `wasm`, or loads the artifact compiled earlier from the same bytes by an
    /// engine with the same compatibility hash.
    pub(crate) fn compile(&self, wasm: &[u8], origin: &str) -> Result<Component, PluginError> {
        let invalid = |e: wasmtime::Error| PluginError::Invalid {
            origin: origin.to_owned(),
            reason: format!("{e:#}"),
        };
        let Some(path) = self.artifact_path(wasm) else {
            return Component::new(&self.engine, wasm).map_err(invalid);
        };
        if path.exists() {
            // SAFETY: the file is one this engine serialized into the broker's own data
            // directory (see `store_artifact`), which the broker's operator must keep trusted,
            // as any broker's data directory. Wasmtime checks the header and the engine
            // compatibility before using it.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "discarding unusable compiled plugin artifact");
                }
            }
        }
        let component = Component::new(&self.engine, wasm).map_err(invalid)?;
        self.store_artifact(&component, &path);
        Ok(component)
    }

    fn artifact_path(&self, wasm: &[u8]) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut hasher = Sha256::new();
        hasher.update(wasm);
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut compat);
        let engine_hash = std::hash::Hasher::finish(&compat);
        let name = format!(
            "{}-{engine_hash:016x}.cwasm",
            hex::encode(hasher.finalize())
        );
        Some(dir.join(name))
    }

    /// Writes the artifact atomically; a failure only costs a recompile next time.
    fn store_artifact(&self, component: &Component, path: &Path) {
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|bytes| {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, path)
            });
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "could not cache compiled plugin");
        }
    }
}

fn start_epoch_ticker(engine: Weak<PluginEngine>) {
    let spawned = std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.engine.increment_epoch(),
                    None => return,
                }
            }
        });
    if let Err(error) = spawned {
        // Without the ticker no deadline fires; refuse to run plugins unbounded.
        panic!("cannot start the plugin epoch ticker thread: {error}");
    }
}
