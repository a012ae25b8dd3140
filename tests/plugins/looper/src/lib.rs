//! A router whose `route` never returns when the routing key is `loop`; otherwise it routes
//! like `direct`. Tests that the host stops it at the deadline and keeps serving.

use switchyard_plugin::{Binding, Destination, Header, Message, PluginInfo, Router};

#[derive(Debug, Default)]
pub struct Looper {
    bindings: Vec<Binding>,
}

impl Router for Looper {
    fn info() -> PluginInfo {
        PluginInfo::new("looper", "0.1.0", "loops forever on the key `loop`")
    }

    fn create(_arguments: &[Header]) -> Result<Self, String> {
        Ok(Looper::default())
    }

    fn bind(&mut self, binding: Binding) {
        self.bindings.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) {
        self.bindings.retain(|b| b != binding);
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        if message.routing_key == "loop" {
            let mut counter: u64 = 0;
            loop {
                counter = std::hint::black_box(counter.wrapping_add(1));
            }
        }
        self.bindings
            .iter()
            .filter(|b| b.key == message.routing_key)
            .map(|b| b.destination)
            .collect()
    }
}

switchyard_plugin::export_router!(Looper);
