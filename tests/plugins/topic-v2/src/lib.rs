//! A second version of the `topic` exchange type that routes differently — only on exact key
//! equality, like `direct` — so a test can tell which version answered each route during a
//! hot reload.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct TopicV2 {
    bindings: Vec<Binding>,
}

impl Router for TopicV2 {
    fn info() -> PluginInfo {
        PluginInfo::new("topic", "2.0.0-test", "topic replaced by exact matching")
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(TopicV2::default())
    }

    fn bind(&mut self, binding: Binding) {
        self.bindings.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) {
        if let Some(i) = self.bindings.iter().position(|b| b == binding) {
            self.bindings.remove(i);
        }
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        self.bindings
            .iter()
            .filter(|b| b.key == message.routing_key)
            .map(|b| b.destination)
            .collect()
    }
}

switchyard_plugin::export_router!(TopicV2);
