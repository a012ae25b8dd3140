//! Format 1 of a message record's metadata: what brokers wrote before headers were typed and
//! the properties grew (record kind 1; see [`record`](super::record)). Kept so that logs
//! written then are read now, each header becoming a string value and the new properties
//! unset. Nothing writes it, but the upgrade test, which needs logs as the old broker wrote
//! them: its encoder is a copy of the old one.
//!
//! Field order is the format: bincode has no names, so these structs must not change.
//!
//! Format 1's dead-letter trail was strings: `x-death` a JSON array (`reason`, `queue`,
//! `exchange`, `routing-key`, `count`, `time` in ms) and flat `x-death-*` copies of the newest
//! entry. It is read into today's trail (see `queue::dead_letter`): `x-death` an array of
//! tables, the flat reason, queue and exchange as `x-last-death-*`, the rest dropped (they are
//! in the array), so a message dead-lettered again keeps its counts and its first death.

use serde::{Deserialize, Serialize};

use super::record;
use crate::message::{Identifier, Properties, Table, Value};

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
            headers: upgrade_headers(old.headers),
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

/// Format 1's headers as today's (see the module docs for the trail).
fn upgrade_headers(headers: Vec<(String, String)>) -> Table {
    let mut table = Table::new();
    for (name, value) in headers {
        match name.as_str() {
            "x-death" => table.push(name, upgrade_trail(value)),
            "x-death-reason" | "x-death-queue" | "x-death-exchange" => {
                let last = name.replacen("x-death-", "x-last-death-", 1);
                table.push(last, value);
            }
            "x-death-routing-key" | "x-death-count" | "x-death-time" => {}
            _ => table.push(name, value),
        }
    }
    table
}

/// Format 1's `x-death` JSON as today's array of tables; kept as the string if it does not
/// parse (the broker wrote it, so it does).
fn upgrade_trail(json: String) -> Value {
    #[derive(Deserialize)]
    struct OldDeath {
        reason: String,
        queue: String,
        exchange: String,
        #[serde(rename = "routing-key")]
        routing_key: String,
        count: u64,
        time: u64,
    }
    match serde_json::from_str::<Vec<OldDeath>>(&json) {
        Ok(deaths) => Value::Array(
            deaths
                .into_iter()
                .map(|d| {
                    Table::new()
                        .with("count", i64::try_from(d.count).unwrap_or(i64::MAX))
                        .with("reason", d.reason)
                        .with("queue", d.queue)
                        .with("time", Value::Timestamp(d.time / 1000))
                        .with("exchange", d.exchange)
                        .with("routing-keys", Value::Array(vec![d.routing_key.into()]))
                        .into()
                })
                .collect(),
        ),
        Err(_) => Value::String(json),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_1_trail_becomes_todays_and_keeps_its_counts() {
        let old = vec![
            ("app".to_owned(), "shop".to_owned()),
            (
                "x-death".to_owned(),
                r#"[{"reason":"expired","queue":"b","exchange":"shop","routing-key":"eu","count":2,"time":1718000000999},{"reason":"rejected","queue":"a","exchange":"shop","routing-key":"eu","count":1,"time":1717000000000}]"#.to_owned(),
            ),
            ("x-death-reason".to_owned(), "expired".to_owned()),
            ("x-death-queue".to_owned(), "b".to_owned()),
            ("x-death-exchange".to_owned(), "shop".to_owned()),
            ("x-death-routing-key".to_owned(), "eu".to_owned()),
            ("x-death-count".to_owned(), "2".to_owned()),
            ("x-death-time".to_owned(), "1718000000999".to_owned()),
            ("x-first-death-queue".to_owned(), "a".to_owned()),
        ];
        let death = |count: i64, reason: &str, queue: &str, time: u64| -> Value {
            Table::new()
                .with("count", count)
                .with("reason", reason)
                .with("queue", queue)
                .with("time", Value::Timestamp(time))
                .with("exchange", "shop")
                .with("routing-keys", Value::Array(vec!["eu".into()]))
                .into()
        };
        let expected = Table::new()
            .with("app", "shop")
            .with(
                "x-death",
                Value::Array(vec![
                    death(2, "expired", "b", 1_718_000_000),
                    death(1, "rejected", "a", 1_717_000_000),
                ]),
            )
            .with("x-last-death-reason", "expired")
            .with("x-last-death-queue", "b")
            .with("x-last-death-exchange", "shop")
            .with("x-first-death-queue", "a");
        assert_eq!(upgrade_headers(old), expected);
    }
}
