//! A router whose self-chosen name is not a valid plugin name. Tests that loading refuses it.

use switchyard_plugin::{Binding, Destination, Message, PluginInfo, Router, Table};

#[derive(Debug, Default)]
pub struct BadName;

impl Router for BadName {
    fn info() -> PluginInfo {
        PluginInfo::new("Bad Name!", "0.1.0", "an invalid name")
    }

    fn create(_arguments: &Table) -> Result<Self, String> {
        Ok(BadName)
    }

    fn bind(&mut self, _binding: Binding) {}

    fn unbind(&mut self, _binding: &Binding) {}

    fn route(&self, _message: &Message) -> Vec<Destination> {
        Vec::new()
    }
}

switchyard_plugin::export_router!(BadName);
