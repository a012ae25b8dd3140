//! The only place the WIT contract is turned into Rust for the host (`bindgen!`), and the
//! conversions from the broker's message type into the generated records. Nothing outside
//! `plugin/` sees a generated type.

use crate::message::Message;

/// Host bindings of the `router` world.
pub(crate) mod router_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "switchyard:plugin/router@0.1.0",
    });
}

/// Host bindings of the `filter` world; shares the `types` and `host` interfaces with
/// `router_world`, so one linker serves both.
pub(crate) mod filter_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "switchyard:plugin/filter@0.1.0",
        with: {
            "switchyard:plugin/types": super::router_world::switchyard::plugin::types,
            "switchyard:plugin/host": super::router_world::switchyard::plugin::host,
        },
    });
}

pub(crate) use router_world::switchyard::plugin::{host, types};

use super::info::{PluginInfo, Reads};

/// The message as the plugin may see it: only the parts its `info` declared.
pub(crate) fn message_for_plugin(message: &Message, reads: Reads) -> types::Message {
    types::Message {
        routing_key: message.routing_key.clone(),
        headers: if reads.headers {
            message
                .headers
                .iter()
                .map(|(name, value)| types::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
        properties: if reads.properties {
            let p = &message.properties;
            types::Properties {
                message_id: p.message_id.clone(),
                correlation_id: p.correlation_id.clone(),
                reply_to: p.reply_to.clone(),
                content_type: p.content_type.clone(),
                timestamp: p.timestamp,
                expiration: p.expiration,
                priority: p.priority,
                persistent: p.persistent,
            }
        } else {
            types::Properties {
                message_id: None,
                correlation_id: None,
                reply_to: None,
                content_type: None,
                timestamp: None,
                expiration: None,
                priority: 0,
                persistent: false,
            }
        },
        body: reads.body.then(|| message.body.to_vec()),
    }
}

pub(crate) fn headers_to_wit(arguments: &[(String, String)]) -> Vec<types::Header> {
    arguments
        .iter()
        .map(|(name, value)| types::Header {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(crate) fn info_from_wit(info: types::PluginInfo) -> PluginInfo {
    PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        reads: Reads {
            headers: info.reads.contains(types::Reads::HEADERS),
            properties: info.reads.contains(types::Reads::PROPERTIES),
            body: info.reads.contains(types::Reads::BODY),
        },
    }
}
