//! Exchanges: a name, the routing plugin that serves its type, and its declared properties.
//! The plugin holds the exchange's derived index under the exchange's handle; the broker's
//! authoritative bindings live in the topology.

use std::sync::Arc;

use crate::plugin::RouterPlugin;

/// What a client declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    pub name: String,
    /// The routing plugin's name: `direct`, `topic`, …
    pub kind: String,
    pub durable: bool,
    /// Deleted when its last binding (as a source) is removed.
    pub auto_delete: bool,
    /// Cannot be published to directly, only through exchange-to-exchange bindings.
    pub internal: bool,
    pub arguments: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Exchange {
    pub spec: ExchangeSpec,
    /// The handle the plugin knows this exchange by; also its destination handle when it is
    /// bound to another exchange.
    pub id: u32,
    pub router: Arc<RouterPlugin>,
}

impl Exchange {
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}
