//! Format 1 of a message record's metadata: what brokers wrote before headers were typed and
//! the properties grew (record kind 1; see [`record`](super::record)). Kept so that logs
//! written then are read now, each header becoming a string value and the new properties
//! unset. Nothing writes it, but the upgrade test, which needs logs as the old broker wrote
//! them: its encoder is a copy of the old one.
//!
//! Field order is the format: bincode has no names, so these structs must not change.

use serde::{Deserialize, Serialize};

use super::record;
use crate::message::{Identifier, Properties};

/// The old properties, field for field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PropertiesV1 {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub content_type: Option<String>,
    pub timestamp: Option<u64>,
    pub expiration: Option<u64>,
    pub priority: u8,
    pub persistent: bool,
    pub delay_ms: Option<u64>,
}

/// The old metadata, field for field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredMeta {
    pub exchange: String,
    pub routing_key: String,
    pub headers: Vec<(String, String)>,
    pub properties: PropertiesV1,
}

impl From<StoredMeta> for record::StoredMeta {
    fn from(old: StoredMeta) -> Self {
        let p = old.properties;
        record::StoredMeta {
            exchange: old.exchange,
            routing_key: old.routing_key,
            headers: old.headers.into_iter().collect(),
            properties: Properties {
                message_id: p.message_id.map(Identifier::Text),
                correlation_id: p.correlation_id.map(Identifier::Text),
                reply_to: p.reply_to,
                content_type: p.content_type,
                timestamp: p.timestamp,
                expiration: p.expiration,
                priority: p.priority,
                persistent: p.persistent,
                delay_ms: p.delay_ms,
                ..Properties::default()
            },
        }
    }
}

/// Appends one framed kind-1 message record, byte for byte as the old broker did.
#[cfg(test)]
pub(super) fn encode_message(
    out: &mut Vec<u8>,
    seq: u64,
    enqueued_at_ms: u64,
    meta: &StoredMeta,
    body: &[u8],
) {
    use bytes::BufMut;
    let start = record::begin_frame(out);
    out.put_u8(1);
    out.put_u64_le(seq);
    out.put_u64_le(enqueued_at_ms);
    out.put_u8(u8::from(meta.properties.persistent));
    let meta_len_at = out.len();
    out.put_u32_le(0);
    let meta_start = out.len();
    bincode::serde::encode_into_std_write(meta, out, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    let meta_len = (out.len() - meta_start) as u32;
    out[meta_len_at..meta_len_at + 4].copy_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(body);
    record::end_frame(out, start);
}
