//! A router that answers destination handles nobody bound: the bound handle plus 1000, and
//! `u32::MAX`. Tests that the host rejects such answers and never uses the handles.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct Liar {
    bindings: Vec<Binding>,
}

impl Router for Liar {
    fn info() -> PluginInfo {
        PluginInfo::new("liar", "0.1.0", "answers handles that are not bound")
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(Liar::default())
    }

    fn bind(&mut self, binding: Binding) {
        self.bindings.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) {
        self.bindings.retain(|b| b != binding);
    }

    fn route(&self, _message: &Message) -> Vec<Destination> {
        let mut out: Vec<Destination> = self
            .bindings
            .iter()
            .map(|b| Destination(b.destination.0 + 1000))
            .collect();
        out.push(Destination(u32::MAX));
        out
    }
}

switchyard_plugin::export_router!(Liar);
