//! A router built against the previous plugin contract, `switchyard:plugin@0.1.0` (its WIT is
//! kept in `tests/wit-0.1.0/`), as a plugin compiled with an older SDK is. Tests that the broker
//! refuses it with a message naming the version and saying how to rebuild, instead of a link
//! error.

wit_bindgen::generate!({
    path: "../../wit-0.1.0",
    world: "switchyard:plugin/router@0.1.0",
});

use exports::switchyard::plugin::exchange::Guest;
use switchyard::plugin::types::{Binding, Header, Message, PluginInfo, Reads};

/// Constructed only by the export glue, which exists only when built for wasm32.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct OldRouter;

impl Guest for OldRouter {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "old-router".into(),
            version: "0.1.0".into(),
            description: "built against switchyard:plugin@0.1.0".into(),
            reads: Reads::empty(),
        }
    }

    fn create(_exchange: u32, _arguments: Vec<Header>) -> Result<(), String> {
        Ok(())
    }

    fn destroy(_exchange: u32) {}

    fn validate_binding(_exchange: u32, _binding: Binding) -> Result<(), String> {
        Ok(())
    }

    fn bind(_exchange: u32, _binding: Binding) {}

    fn unbind(_exchange: u32, _binding: Binding) {}

    fn route(_exchange: u32, _message: Message) -> Vec<u32> {
        Vec::new()
    }

    fn route_batch(_exchange: u32, messages: Vec<Message>) -> Vec<Vec<u32>> {
        vec![Vec::new(); messages.len()]
    }
}

#[cfg(target_arch = "wasm32")]
export!(OldRouter);
