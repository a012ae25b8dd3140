//! The only place the WIT contract is turned into Rust for the host (`bindgen!`), and the
//! conversions from the broker's message type into the generated records. Nothing outside
//! `plugin/` sees a generated type.

use crate::message::{Message, Table};

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

/// An empty message record, reused by an instance for every call so the routing key's buffer
/// is allocated once.
pub(crate) fn empty_message() -> types::Message {
    types::Message {
        routing_key: String::new(),
        headers: Vec::new(),
        properties: Vec::new(),
        body: None,
    }
}

/// Fills `out` with the message as the plugin may see it: only the parts its `info` declared.
pub(crate) fn fill_message_for_plugin(out: &mut types::Message, message: &Message, reads: Reads) {
    out.routing_key.clear();
    out.routing_key.push_str(&message.routing_key);
    out.headers.clear();
    if reads.headers {
        out.headers.extend(headers_to_wit(&message.headers));
    }
    out.properties.clear();
    if reads.properties {
        properties_to_wit(&message.properties, &mut out.properties);
    }
    out.body = reads.body.then(|| message.body.to_vec());
}

fn properties_to_wit(p: &crate::message::Properties, out: &mut Vec<types::Property>) {
    use types::Property as P;
    let ids = [
        (&p.message_id, P::MessageId as fn(String) -> P),
        (&p.correlation_id, P::CorrelationId),
    ];
    for (id, case) in ids {
        if let Some(id) = id {
            out.push(case(id.to_string()));
        }
    }
    let strings = [
        (&p.reply_to, P::ReplyTo as fn(String) -> P),
        (&p.content_type, P::ContentType),
    ];
    for (value, case) in strings {
        if let Some(value) = value {
            out.push(case(value.clone()));
        }
    }
    out.extend(p.timestamp.map(P::Timestamp));
    out.extend(p.expiration.map(P::Expiration));
    if p.priority != 0 {
        out.push(P::Priority(p.priority));
    }
    if p.persistent {
        out.push(P::Persistent(true));
    }
}

/// Headers or arguments as contract 0.1.0 carries them: every value as text (a string as
/// itself, numbers and booleans as written, byte arrays in hex; see `Value`'s `Display`).
pub(crate) fn headers_to_wit(table: &Table) -> impl Iterator<Item = types::Header> + '_ {
    table.iter().map(|(name, value)| types::Header {
        name: name.to_owned(),
        value: value.to_string(),
    })
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
