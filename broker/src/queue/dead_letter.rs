//! What a dead-lettered message carries: why it died and where it came from, in its headers,
//! and the rule that stops dead-letter cycles.
//!
//! Headers a dead-lettered message gets, as RabbitMQ (3.13) writes them (existing ones of these
//! names are replaced):
//! - `x-death`: the whole trail, an array of tables, newest first, one per (queue, reason).
//!   Each table holds `count` (how many times it died there for that reason, an `I64`),
//!   `reason`, `queue`, `time` (a timestamp, seconds since the Unix epoch, of the latest such
//!   death), `exchange` (the exchange it had been published to), `routing-keys` (an array
//!   holding its routing key before dead-lettering) and, when the message had its own
//!   expiration, `original-expiration` (milliseconds, as a string, as RabbitMQ writes it);
//! - `x-first-death-reason`, `x-first-death-queue`, `x-first-death-exchange`: the first death,
//!   set once;
//! - `x-last-death-reason`, `x-last-death-queue`, `x-last-death-exchange`: the newest death.
//!
//! A routing fault happens before any queue, so its `queue` is `""`. Reasons: `rejected`,
//! `expired`, `maxlen`, `delivery-limit`, `routing-fault`.
//!
//! The cycle rule is RabbitMQ's: a dead-lettered message is not enqueued in a queue its trail
//! already names unless some death in the trail is `rejected` (a consumer decided, so the
//! loop is not automatic). The message still reaches every other queue it routes to.
//!
//! The trail belongs to the broker. A publisher's own `x-death`, `x-first-death-*` and
//! `x-last-death-*` headers are removed at publish ([`without_publisher_trail`]), so a forged
//! trail cannot switch the cycle rule off, and a published message has at most
//! [`MAX_PUBLISHED_HEADERS`] headers, so the trail's [`TRAIL_HEADERS`] always fit within the
//! protocol's `MAX_HEADERS`. A trail is one table per (queue, reason), so it stays small.

use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_protocol::{MAX_HEADERS, MAX_TABLE_ITEMS};

use crate::message::{Headers, Message, Table, Value};

/// How many headers a dead-lettering sets: `x-death` and the three `x-first-death-*` and
/// `x-last-death-*` each.
pub const TRAIL_HEADERS: usize = 7;

/// The most headers a published message may carry: the rest are kept for the trail.
pub const MAX_PUBLISHED_HEADERS: usize = MAX_HEADERS - TRAIL_HEADERS;

/// The most `x-death` entries kept: past it the oldest go, so the trail stays bounded however
/// many queues a message dies in.
pub const MAX_DEATHS: usize = 16;

/// Values the trail may take: per entry a table of at most 9 values (count, reason, queue,
/// time, exchange, routing-keys with its key, original-expiration) and the table itself, the
/// `x-death` array, and the six flat headers; rounded up.
pub const TRAIL_VALUES: usize = 256;

/// The most values (counting everything nested) a published message's headers may hold: the
/// rest of a table's [`MAX_TABLE_ITEMS`] is kept for the trail, so a dead-lettered message
/// always encodes.
pub const MAX_PUBLISHED_HEADER_VALUES: usize = MAX_TABLE_ITEMS - TRAIL_VALUES;

const _: () = assert!(MAX_DEATHS * 10 + 1 + 6 <= TRAIL_VALUES);

/// Whether a header is one of those the dead-letter trail is written in.
fn is_trail_header(name: &str) -> bool {
    name == "x-death"
        || name.starts_with("x-death-")
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

/// Removes the trail headers a publisher set itself (see the module docs).
pub fn without_publisher_trail(headers: &mut Headers) {
    if headers.iter().any(|(name, _)| is_trail_header(name)) {
        headers.retain(|name, _| !is_trail_header(name));
    }
}

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// Nacked or rejected without requeue.
    Rejected,
    /// Its TTL (per-queue or per-message) passed before delivery.
    Expired,
    /// Dropped or refused by a length limit.
    MaxLen,
    /// Delivered `x-delivery-limit` times and returned again.
    DeliveryLimit,
    /// Its exchange's routing plugin failed on it.
    RoutingFault,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
            DeathReason::DeliveryLimit => "delivery-limit",
            DeathReason::RoutingFault => "routing-fault",
        }
    }
}

/// Where the message died.
#[derive(Debug, Clone, Copy)]
pub struct DeathPlace<'a> {
    /// The queue (`""` for a routing fault).
    pub queue: &'a str,
    /// The exchange the message was published to.
    pub exchange: &'a str,
}

/// The `x-death` entries of a message, newest first (none when it has no trail). Entries that
/// are not tables are skipped: the trail is the broker's own, so they do not occur.
fn trail(message: &Message) -> Vec<&Table> {
    match message.headers.get("x-death") {
        Some(Value::Array(deaths)) => deaths.iter().filter_map(Value::as_table).collect(),
        _ => Vec::new(),
    }
}

fn names(death: &Table, queue: &str, reason: &str) -> bool {
    death.get_str("queue") == Some(queue) && death.get_str("reason") == Some(reason)
}

fn set_header(headers: &mut Headers, name: &str, value: impl Into<Value>) {
    if headers.contains(name) || headers.len() < MAX_HEADERS {
        headers.insert(name, value);
    } else {
        // Unreachable for published messages (they leave room for the trail); kept so a
        // delivery never exceeds what a client can decode.
        tracing::debug!(
            header = name,
            "dead-letter header left out: the message has the most headers allowed"
        );
    }
}

/// The message as its dead-letter exchange receives it: the trail headers updated, the
/// per-message expiration removed (so it does not expire again where it lands, as in
/// RabbitMQ), and the routing key replaced when `routing_key` is given.
pub fn dead_lettered(
    message: &Message,
    reason: DeathReason,
    place: DeathPlace<'_>,
    routing_key: Option<&str>,
) -> Message {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let earlier = trail(message);
    let first = earlier.is_empty();
    let count = earlier
        .iter()
        .find(|death| names(death, place.queue, reason.as_str()))
        .and_then(|death| death.get_i64("count"))
        .unwrap_or(0);
    let mut death = Table::new()
        .with("count", count.saturating_add(1))
        .with("reason", reason.as_str())
        .with("queue", place.queue)
        .with("time", Value::Timestamp(seconds))
        .with("exchange", place.exchange)
        .with(
            "routing-keys",
            Value::Array(vec![message.routing_key.as_str().into()]),
        );
    if let Some(expiration) = message.properties.expiration {
        death.push("original-expiration", expiration.to_string());
    }
    let mut deaths = vec![Value::Table(death)];
    deaths.extend(
        earlier
            .into_iter()
            .filter(|death| !names(death, place.queue, reason.as_str()))
            .take(MAX_DEATHS - 1)
            .map(|death| Value::Table(death.clone())),
    );

    let mut out = message.clone();
    if out.properties.expiration.is_some() {
        // Only when set: writing allocates the properties (see `MessageProperties`).
        out.properties.expiration = None;
    }
    if let Some(key) = routing_key {
        out.routing_key = key.to_owned();
    }
    set_header(&mut out.headers, "x-death", Value::Array(deaths));
    if first {
        set_header(&mut out.headers, "x-first-death-reason", reason.as_str());
        set_header(&mut out.headers, "x-first-death-queue", place.queue);
        set_header(&mut out.headers, "x-first-death-exchange", place.exchange);
    }
    set_header(&mut out.headers, "x-last-death-reason", reason.as_str());
    set_header(&mut out.headers, "x-last-death-queue", place.queue);
    set_header(&mut out.headers, "x-last-death-exchange", place.exchange);
    out
}

/// Whether enqueueing a dead-lettered `message` in `queue` would close a cycle (see the
/// module docs).
pub fn closes_cycle(message: &Message, queue: &str) -> bool {
    let deaths = trail(message);
    deaths.iter().any(|d| d.get_str("queue") == Some(queue))
        && !deaths
            .iter()
            .any(|d| d.get_str("reason") == Some(DeathReason::Rejected.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use switchyard_protocol::MAX_TABLE_ITEMS;

    fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
        message.headers.get_str(name)
    }

    fn place(queue: &str) -> DeathPlace<'_> {
        DeathPlace {
            queue,
            exchange: "shop",
        }
    }

    #[test]
    fn the_trail_is_rabbitmqs_array_of_tables_counted_per_queue_and_reason_newest_first() {
        let mut message = Message::new("eu", "b").with_header("app", "shop");
        message.properties.expiration = Some(10);
        let once = dead_lettered(&message, DeathReason::Expired, place("a"), Some("dead"));
        assert_eq!(once.routing_key, "dead");
        assert_eq!(once.properties.expiration, None);
        let death = trail(&once)[0].clone();
        let Some(Value::Timestamp(time)) = death.get("time").cloned() else {
            panic!("time is a timestamp: {death}");
        };
        let expected = Table::new()
            .with("count", 1_i64)
            .with("reason", "expired")
            .with("queue", "a")
            .with("time", Value::Timestamp(time))
            .with("exchange", "shop")
            .with("routing-keys", Value::Array(vec!["eu".into()]))
            .with("original-expiration", "10");
        assert_eq!(death, expected);
        assert_eq!(header(&once, "x-first-death-queue"), Some("a"));
        assert_eq!(header(&once, "x-last-death-reason"), Some("expired"));
        assert_eq!(header(&once, "app"), Some("shop"));

        let twice = dead_lettered(&once, DeathReason::MaxLen, place("b"), None);
        let thrice = dead_lettered(&twice, DeathReason::Expired, place("a"), None);
        let summary: Vec<(&str, &str, i64)> = trail(&thrice)
            .iter()
            .map(|d| {
                (
                    d.get_str("queue").unwrap(),
                    d.get_str("reason").unwrap(),
                    d.get_i64("count").unwrap(),
                )
            })
            .collect();
        assert_eq!(summary, [("a", "expired", 2), ("b", "maxlen", 1)]);
        assert_eq!(header(&thrice, "x-first-death-queue"), Some("a"));
        assert_eq!(header(&thrice, "x-first-death-reason"), Some("expired"));
        assert_eq!(header(&twice, "x-last-death-queue"), Some("b"));
        assert_eq!(header(&twice, "x-last-death-reason"), Some("maxlen"));
        assert_eq!(
            thrice
                .headers
                .iter()
                .filter(|(n, _)| *n == "x-death")
                .count(),
            1
        );
    }

    #[test]
    fn a_publishers_trail_headers_are_removed_and_the_trail_always_fits() {
        let mut headers = Table::new()
            .with("x-death", Value::Array(vec![]))
            .with("x-death-reason", "rejected")
            .with("x-first-death-queue", "z")
            .with("x-last-death-queue", "z")
            .with("x-deathly", "kept")
            .with("app", "kept");
        without_publisher_trail(&mut headers);
        let names: Vec<&str> = headers.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["x-deathly", "app"]);

        let mut full = Message::new("k", "b");
        full.headers = (0..MAX_PUBLISHED_HEADERS)
            .map(|i| (format!("h{i}"), ""))
            .collect();
        let dead = dead_lettered(&full, DeathReason::Expired, place("a"), None);
        assert_eq!(dead.headers.len(), MAX_HEADERS);
        assert!(closes_cycle(&dead, "a"), "the trail was written");
    }

    #[test]
    fn the_trail_keeps_the_newest_deaths_and_a_full_message_still_encodes() {
        let mut message = Message::new("k", "b");
        // As many values as a publish may carry: one array holding the rest.
        message.headers = Table::new().with(
            "h",
            Value::Array(vec![Value::Void; MAX_PUBLISHED_HEADER_VALUES - 1]),
        );
        message.properties.expiration = Some(5);
        let queues: Vec<String> = (0..MAX_DEATHS + 30).map(|n| format!("q{n}")).collect();
        for queue in &queues {
            message = dead_lettered(&message, DeathReason::Expired, place(queue), None);
            let mut record = Vec::new();
            crate::store::encode_message_for_test(&mut record, &message);
        }
        assert!(message.headers.items() <= MAX_TABLE_ITEMS);
        let trail = trail(&message);
        assert_eq!(trail.len(), MAX_DEATHS);
        assert_eq!(
            trail[0].get_str("queue"),
            Some(queues.last().unwrap().as_str())
        );
        assert_eq!(message.headers.get_str("x-first-death-queue"), Some("q0"));
    }

    #[test]
    fn a_queue_in_the_trail_closes_a_cycle_unless_a_consumer_rejected() {
        let message = Message::new("k", "b");
        let expired = dead_lettered(&message, DeathReason::Expired, place("a"), None);
        assert!(closes_cycle(&expired, "a"));
        assert!(!closes_cycle(&expired, "b"));
        assert!(!closes_cycle(&message, "a"));
        let rejected = dead_lettered(&expired, DeathReason::Rejected, place("b"), None);
        assert!(!closes_cycle(&rejected, "a"));
    }
}
