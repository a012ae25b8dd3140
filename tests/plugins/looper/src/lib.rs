//! A router whose `route` never returns when the routing key is `loop`, and whose binding
//! validation never returns for the binding key `loop`; otherwise it routes like `direct`.
//! Tests that the host stops it at the deadline and keeps serving.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct Looper {
    bindings: Vec<Binding>,
}

impl Router for Looper {
    fn info() -> PluginInfo {
        PluginInfo::new("looper", "0.1.0", "loops forever on the key `loop`")
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(Looper::default())
    }

    fn validate_binding(&self, binding: &Binding) -> Result<(), String> {
        if binding.key == "loop" {
            spin_for_ever();
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
        if message.routing_key == "loop" {
            spin_for_ever();
        }
        self.bindings
            .iter()
            .filter(|b| b.key == message.routing_key)
            .map(|b| b.destination)
            .collect()
    }
}

fn spin_for_ever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

switchyard_plugin::export_router!(Looper);
