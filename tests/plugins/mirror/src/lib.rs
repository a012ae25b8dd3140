//! A router that routes a message to every destination whose binding arguments equal the
//! message's headers exactly (same names, order, types and values), and whose creation
//! arguments, if any, must equal them too. Tests that typed values cross the plugin contract
//! both ways, headers and arguments, without losing a type.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct Mirror {
    created_with: Table,
    bindings: Vec<Binding>,
}

impl Router for Mirror {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "mirror",
            "0.1.0",
            "routes where binding arguments equal the headers",
        )
        .reads_headers()
    }

    fn create(arguments: &Table) -> Result<Self, String> {
        Ok(Mirror {
            created_with: arguments.clone(),
            bindings: Vec::new(),
        })
    }

    fn bind(&mut self, binding: Binding) {
        self.bindings.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) {
        self.bindings.retain(|b| b != binding);
    }

    fn route(&self, message: &Message) -> Vec<Destination> {
        if !self.created_with.is_empty() && self.created_with != message.headers {
            return Vec::new();
        }
        self.bindings
            .iter()
            .filter(|b| b.arguments == message.headers)
            .map(|b| b.destination)
            .collect()
    }
}

switchyard_plugin::export_router!(Mirror);
