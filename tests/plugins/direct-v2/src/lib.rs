//! A second version of the `direct` exchange type that differs on one key: a message with the
//! routing key `b` goes where `a` would. Run as a shadow of the standard `direct`, it must
//! diverge on exactly the messages keyed `b`.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct DirectV2 {
    bindings: Vec<Binding>,
}

impl Router for DirectV2 {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "direct",
            "0.2.0-test",
            "direct, but `b` goes where `a` goes",
        )
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(DirectV2::default())
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
        let key = match message.routing_key.as_str() {
            "b" => "a",
            other => other,
        };
        self.bindings
            .iter()
            .filter(|b| b.key == key)
            .map(|b| b.destination)
            .collect()
    }
}

switchyard_plugin::export_router!(DirectV2);
