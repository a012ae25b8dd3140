//! A router that panics (a trap) when the routing key is `boom`, and can be told to fail
//! `create` with the argument `refuse`; otherwise it routes like `direct`. Tests that a trap
//! fails one call and the next call runs on a fresh instance with the bindings replayed.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct Trapper {
    bindings: Vec<Binding>,
}

impl Router for Trapper {
    fn info() -> PluginInfo {
        PluginInfo::new("trapper", "0.1.0", "panics on the key `boom`")
    }

    fn create(arguments: &Table) -> Result<Self, String> {
        if let Some(reason) = arguments.get("refuse") {
            return Err(format!("refused: {reason}"));
        }
        Ok(Trapper::default())
    }

    fn validate_binding(&self, binding: &Binding) -> Result<(), String> {
        if binding.key == "forbidden" {
            return Err("the key `forbidden` cannot be bound".into());
        }
        Ok(())
    }

    fn bind(&mut self, binding: Binding) {
        self.bindings.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) {
        self.bindings.retain(|b| b != binding);
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        if message.routing_key == "boom" {
            panic!("asked to trap");
        }
        self.bindings
            .iter()
            .filter(|b| b.key == message.routing_key)
            .map(|b| b.destination)
            .collect()
    }
}

switchyard_plugin::export_router!(Trapper);
