//! A router that allocates without bound when the routing key is `bomb`; otherwise it routes
//! like `direct`. Tests the memory cap.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct Bomb {
    bindings: Vec<Binding>,
}

impl Router for Bomb {
    fn info() -> PluginInfo {
        PluginInfo::new("bomb", "0.1.0", "allocates without bound on the key `bomb`")
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(Bomb::default())
    }

    fn bind(&mut self, binding: Binding) {
        self.bindings.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) {
        self.bindings.retain(|b| b != binding);
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        if message.routing_key == "bomb" {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        self.bindings
            .iter()
            .filter(|b| b.key == message.routing_key)
            .map(|b| b.destination)
            .collect()
    }
}

switchyard_plugin::export_router!(Bomb);
