//! Turns bytes into a checked plugin version: compile (through the artifact cache), link
//! against the host's imports, recognise the world it targets, and ask it to describe itself.
//! Nothing here touches the registry; a version that fails any step is never seen by routing.

use wasmtime::component::Component;

use super::bindings::CONTRACT_VERSION;
use super::bindings::filter_world::FilterPre;
use super::bindings::router_world::RouterPre;
use super::engine::PluginEngine;
use super::error::PluginError;
use super::filter::{FilterInstance, FilterVersion};
use super::info::{PluginKind, PluginSource, check_info};
use super::replicas::{Replica, Version};
use super::router::{RouterInstance, RouterVersion};

/// A plugin version ready to be installed.
pub(crate) enum LoadedVersion {
    Router(RouterVersion),
    Filter(FilterVersion),
}

impl LoadedVersion {
    pub(crate) fn name(&self) -> &str {
        match self {
            LoadedVersion::Router(v) => &v.info.name,
            LoadedVersion::Filter(v) => &v.info.name,
        }
    }

    pub(crate) fn kind(&self) -> PluginKind {
        match self {
            LoadedVersion::Router(_) => PluginKind::Router,
            LoadedVersion::Filter(_) => PluginKind::Filter,
        }
    }
}

/// Compiles and checks `wasm`. `origin` names it in errors (a path, or "embedded NAME").
pub(crate) fn load_version(
    engine: &PluginEngine,
    wasm: &[u8],
    source: PluginSource,
    origin: &str,
) -> Result<LoadedVersion, PluginError> {
    let component = engine.compile(wasm, origin)?;
    if let Some(found) = other_contract_version(engine, &component) {
        return Err(PluginError::ContractVersion {
            origin: origin.to_owned(),
            found,
            expected: CONTRACT_VERSION,
        });
    }
    let wrong_world = |reason: String| PluginError::WrongWorld {
        origin: origin.to_owned(),
        reason,
    };
    let pre = engine
        .linker
        .instantiate_pre(&component)
        .map_err(|e| wrong_world(format!("it imports what the broker does not offer: {e:#}")))?;
    let router_error = match RouterPre::new(pre.clone()) {
        Ok(pre) => {
            let mut probe = RouterInstance::instantiate(engine, &pre, origin, "")?;
            let info = probe.info(engine)?;
            check_info(&info).map_err(|reason| bad_info(origin, reason))?;
            return Ok(LoadedVersion::Router(Version::new(info, source, pre)));
        }
        Err(e) => e,
    };
    match FilterPre::new(pre) {
        Ok(pre) => {
            let mut probe = FilterInstance::instantiate(engine, &pre, origin, "")?;
            let info = probe.info(engine)?;
            check_info(&info).map_err(|reason| bad_info(origin, reason))?;
            Ok(LoadedVersion::Filter(Version::new(info, source, pre)))
        }
        Err(filter_error) => Err(wrong_world(format!(
            "as a router: {router_error:#}; as a filter: {filter_error:#}"
        ))),
    }
}

/// The version of `switchyard:plugin` a component's imports or exports name, when it is not
/// the one this broker speaks (a plugin built with an older SDK).
fn other_contract_version(engine: &PluginEngine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    let imports = ty.imports(&engine.engine).map(|(name, _)| name);
    let exports = ty.exports(&engine.engine).map(|(name, _)| name);
    imports
        .chain(exports)
        .filter_map(|name| name.strip_prefix("switchyard:plugin/"))
        .filter_map(|interface| interface.split_once('@').map(|(_, version)| version))
        .find(|version| *version != CONTRACT_VERSION)
        .map(str::to_owned)
}

fn bad_info(origin: &str, reason: String) -> PluginError {
    PluginError::BadInfo {
        origin: origin.to_owned(),
        reason,
    }
}
