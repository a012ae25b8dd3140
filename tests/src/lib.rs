//! Helpers for Switchyard's integration tests: where the test plugins were built, and a plugin
//! registry set up the way the broker sets it up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard::plugin::{PluginConfig, PluginLimits, PluginRegistry};

/// Paths of the components `build.rs` built from `tests/plugins/` and `plugins/`, and of the
/// tests' artifact cache.
pub mod wasm {
    include!(concat!(env!("OUT_DIR"), "/test_plugins.rs"));
}

/// A directory shared by every test for compiled plugin artifacts, so each plugin is compiled
/// once per test run rather than once per test.
pub fn artifact_cache() -> PathBuf {
    PathBuf::from(wasm::ARTIFACT_CACHE)
}

/// Limits small enough that hostile plugins are stopped quickly.
pub fn test_limits() -> PluginLimits {
    PluginLimits {
        call_deadline: std::time::Duration::from_millis(200),
        memory_bytes: 32 << 20,
        ..PluginLimits::default()
    }
}

/// A registry with the standard plugins loaded, as `switchyard serve` starts.
pub fn registry_with(limits: PluginLimits) -> Arc<PluginRegistry> {
    init_tracing();
    let registry = PluginRegistry::new(PluginConfig {
        limits,
        cache_dir: Some(artifact_cache()),
    })
    .expect("plugin engine");
    registry.load_embedded().expect("embedded plugins load");
    registry
}

pub fn registry() -> Arc<PluginRegistry> {
    registry_with(test_limits())
}

/// Shows the broker's logs for a failing test (`RUST_LOG=debug cargo test ...`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Copies a built component into `dir` under `file_name`, the way a user drops one in.
pub fn install(component: &str, dir: &Path, file_name: &str) -> PathBuf {
    let target = dir.join(file_name);
    let staging = dir.join(format!(".{file_name}.partial"));
    std::fs::copy(component, &staging).expect("copy plugin");
    std::fs::rename(&staging, &target).expect("move plugin into place");
    target
}
