//! The plugin host: runs routing and filter plugins — WebAssembly components of the
//! `switchyard:plugin` worlds in `wit/` — sandboxed, bounded and hot-reloadable.
//!
//! Entry point: [`PluginRegistry`]. It loads the embedded standard plugins and a
//! [`PluginDirectory`]'s files, and hands out a [`RouterPlugin`] per exchange type and a
//! [`FilterPlugin`] per filter name. The host owns every exchange's bindings and every
//! compiled filter and replays them into plugin instances, so a trap, a reload or a new worker
//! never loses routing state.
//!
//! Calls into plugins block their thread for at most the configured deadline; make them from
//! threads that do not drive an async runtime.

mod bindings;
mod builtin;
mod decision_cache;
mod engine;
mod error;
mod filter;
mod info;
mod limits;
mod loader;
mod log_budget;
mod quarantine;
mod registry;
mod reload;
mod replay;
mod replicas;
mod router;
mod sandbox;
mod sandbox_call;
mod shadow;

pub use decision_cache::Destinations;
pub use error::{PluginCall, PluginError};
pub use filter::{CompiledFilter, FilterPlugin, MAX_EXPRESSION_BYTES};
pub use info::{PluginHealth, PluginInfo, PluginKind, PluginSource, PluginStatus, Reads};
pub use limits::PluginLimits;
pub use quarantine::FaultReport;
pub use registry::{PluginConfig, PluginRegistry};
pub use reload::{PluginDirectory, SETTLE};
pub use router::{BindingSpec, RouterPlugin};
pub use shadow::{Divergence, MAX_KEPT_DIVERGENCES, ShadowReport};
