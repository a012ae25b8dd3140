//! The only place the WIT contract is turned into Rust for the host (`bindgen!`), and the
//! conversions from the broker's message type into the generated records. Nothing outside
//! `plugin/` sees a generated type.

use crate::message::{Identifier, Message, Table, Value};

/// The version of `switchyard:plugin` this broker loads (`wit/switchyard-plugin.wit`).
pub(crate) const CONTRACT_VERSION: &str = "0.2.0";

/// Host bindings of the `router` world.
pub(crate) mod router_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "switchyard:plugin/router@0.2.0",
    });
}

/// Host bindings of the `filter` world; shares the `types` and `host` interfaces with
/// `router_world`, so one linker serves both.
pub(crate) mod filter_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "switchyard:plugin/filter@0.2.0",
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
        fields_to_wit(&message.headers, &mut out.headers);
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
        (&p.message_id, P::MessageId as fn(types::Id) -> P),
        (&p.correlation_id, P::CorrelationId),
    ];
    for (id, case) in ids {
        if let Some(id) = id {
            out.push(case(match id {
                Identifier::Text(text) => types::Id::Text(text.clone()),
                Identifier::Binary(bytes) => types::Id::Binary(bytes.to_vec()),
            }));
        }
    }
    let strings = [
        (&p.reply_to, P::ReplyTo as fn(String) -> P),
        (&p.content_type, P::ContentType),
        (&p.content_encoding, P::ContentEncoding),
        (&p.message_type, P::MessageType),
        (&p.user_id, P::UserId),
        (&p.app_id, P::AppId),
        (&p.cluster_id, P::ClusterId),
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

/// Appends headers or arguments to `out` flattened as the contract carries them: depth first,
/// an array or table followed by its children (see `value` in the WIT).
pub(crate) fn fields_to_wit(table: &Table, out: &mut Vec<types::Field>) {
    for (name, value) in table.iter() {
        push_field(name, value, out);
    }
}

/// Headers or arguments, flattened into a new list.
pub(crate) fn table_to_wit(table: &Table) -> Vec<types::Field> {
    let mut fields = Vec::with_capacity(table.len());
    fields_to_wit(table, &mut fields);
    fields
}

fn push_field(name: &str, value: &Value, out: &mut Vec<types::Field>) {
    use types::Value as W;
    let scalar = match value {
        Value::Void => W::Void,
        Value::Bool(b) => W::Boolean(*b),
        Value::I8(n) => W::Int8(*n),
        Value::U8(n) => W::Uint8(*n),
        Value::I16(n) => W::Int16(*n),
        Value::U16(n) => W::Uint16(*n),
        Value::I32(n) => W::Int32(*n),
        Value::U32(n) => W::Uint32(*n),
        Value::I64(n) => W::Int64(*n),
        Value::U64(n) => W::Uint64(*n),
        Value::F32(x) => W::Float32(*x),
        Value::F64(x) => W::Float64(*x),
        Value::Decimal(d) => W::Decimal(types::Decimal {
            scale: d.scale,
            value: d.value,
        }),
        Value::String(text) => W::Text(text.clone()),
        Value::Bytes(bytes) => W::Bytes(bytes.clone()),
        Value::Timestamp(t) => W::Timestamp(*t),
        Value::Array(items) => {
            out.push(types::Field {
                name: name.to_owned(),
                value: W::Array(items.len() as u32),
            });
            for item in items {
                push_field("", item, out);
            }
            return;
        }
        Value::Table(table) => {
            out.push(types::Field {
                name: name.to_owned(),
                value: W::Table(table.len() as u32),
            });
            fields_to_wit(table, out);
            return;
        }
    };
    out.push(types::Field {
        name: name.to_owned(),
        value: scalar,
    });
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
