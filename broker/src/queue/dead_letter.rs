//! What a dead-lettered message carries: why it died and where it came from, in its headers,
//! and the rule that stops dead-letter cycles.
//!
//! Headers a dead-lettered message gets (existing ones of these names are replaced):
//! - `x-death`: the whole trail as a JSON array, newest first, one entry per (queue, reason)
//!   with a count — RabbitMQ's `x-death` table, as a string since headers are strings:
//!   `[{"reason":"expired","queue":"orders","exchange":"shop","routing-key":"eu","count":1,"time":1718000000000}]`;
//! - `x-death-reason`, `x-death-queue`, `x-death-exchange`, `x-death-routing-key`,
//!   `x-death-count`, `x-death-time`: the newest entry, flat, for clients that only want that;
//! - `x-first-death-reason`, `x-first-death-queue`, `x-first-death-exchange`: the first death,
//!   set once.
//!
//! `time` is milliseconds since the Unix epoch. A routing fault happens before any queue, so
//! its `queue` is `""`. Reasons: `rejected`, `expired`, `maxlen`, `delivery-limit`,
//! `routing-fault`.
//!
//! The cycle rule is RabbitMQ's: a dead-lettered message is not enqueued in a queue its trail
//! already names unless some death in the trail is `rejected` (a consumer decided, so the
//! loop is not automatic). The message still reaches every other queue it routes to.
//!
//! The trail belongs to the broker. A publisher's own `x-death*` and `x-first-death-*`
//! headers are removed at publish ([`without_publisher_trail`]), so a forged trail cannot
//! switch the cycle rule off, and a published message has at most [`MAX_PUBLISHED_HEADERS`]
//! headers, so the trail's [`TRAIL_HEADERS`] always fit within the protocol's `MAX_HEADERS`.

use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_protocol::MAX_HEADERS;

use crate::message::Message;

/// How many headers a dead-lettering sets: `x-death`, its six flat copies and the three
/// `x-first-death-*`.
pub const TRAIL_HEADERS: usize = 10;

/// The most headers a published message may carry: the rest are kept for the trail.
pub const MAX_PUBLISHED_HEADERS: usize = MAX_HEADERS - TRAIL_HEADERS;

/// Whether a header is one of those the dead-letter trail is written in.
fn is_trail_header(name: &str) -> bool {
    name == "x-death" || name.starts_with("x-death-") || name.starts_with("x-first-death-")
}

/// Removes the trail headers a publisher set itself (see the module docs).
pub fn without_publisher_trail(headers: &mut Vec<(String, String)>) {
    if headers.iter().any(|(name, _)| is_trail_header(name)) {
        headers.retain(|(name, _)| !is_trail_header(name));
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

/// One entry of the `x-death` trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Death {
    reason: String,
    queue: String,
    exchange: String,
    #[serde(rename = "routing-key")]
    routing_key: String,
    count: u64,
    time: u64,
}

/// Where the message died.
#[derive(Debug, Clone, Copy)]
pub struct DeathPlace<'a> {
    /// The queue (`""` for a routing fault).
    pub queue: &'a str,
    /// The exchange the message was published to.
    pub exchange: &'a str,
}

fn trail(message: &Message) -> Vec<Death> {
    message
        .headers
        .iter()
        .find(|(name, _)| name == "x-death")
        .and_then(|(_, value)| serde_json::from_str(value).ok())
        .unwrap_or_default()
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    if let Some(existing) = headers.iter_mut().find(|(n, _)| n == name) {
        existing.1 = value;
    } else if headers.len() < MAX_HEADERS {
        headers.push((name.to_owned(), value));
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
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut deaths = trail(message);
    let first = deaths.is_empty();
    let position = deaths
        .iter()
        .position(|d| d.queue == place.queue && d.reason == reason.as_str());
    let mut death = match position {
        Some(index) => deaths.remove(index),
        None => Death {
            reason: reason.as_str().to_owned(),
            queue: place.queue.to_owned(),
            exchange: place.exchange.to_owned(),
            routing_key: message.routing_key.clone(),
            count: 0,
            time,
        },
    };
    death.count += 1;
    death.time = time;
    death.exchange = place.exchange.to_owned();
    death.routing_key.clone_from(&message.routing_key);
    deaths.insert(0, death.clone());

    let mut out = message.clone();
    if out.properties.expiration.is_some() {
        // Only when set: writing allocates the properties (see `MessageProperties`).
        out.properties.expiration = None;
    }
    if let Some(key) = routing_key {
        out.routing_key = key.to_owned();
    }
    let json = serde_json::to_string(&deaths).expect("plain strings and numbers serialize");
    set_header(&mut out.headers, "x-death", json);
    set_header(&mut out.headers, "x-death-reason", death.reason.clone());
    set_header(&mut out.headers, "x-death-queue", death.queue.clone());
    set_header(&mut out.headers, "x-death-exchange", death.exchange.clone());
    set_header(
        &mut out.headers,
        "x-death-routing-key",
        death.routing_key.clone(),
    );
    set_header(&mut out.headers, "x-death-count", death.count.to_string());
    set_header(&mut out.headers, "x-death-time", death.time.to_string());
    if first {
        set_header(
            &mut out.headers,
            "x-first-death-reason",
            death.reason.clone(),
        );
        set_header(&mut out.headers, "x-first-death-queue", death.queue);
        set_header(&mut out.headers, "x-first-death-exchange", death.exchange);
    }
    out
}

/// Whether enqueueing a dead-lettered `message` in `queue` would close a cycle (see the
/// module docs).
pub fn closes_cycle(message: &Message, queue: &str) -> bool {
    let deaths = trail(message);
    deaths.iter().any(|d| d.queue == queue)
        && !deaths
            .iter()
            .any(|d| d.reason == DeathReason::Rejected.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
        message
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_trail_counts_per_queue_and_reason_newest_first() {
        let mut message = Message::new("eu", "b").with_header("app", "shop");
        message.properties.expiration = Some(10);
        let place = |queue| DeathPlace {
            queue,
            exchange: "shop",
        };
        let once = dead_lettered(&message, DeathReason::Expired, place("a"), Some("dead"));
        assert_eq!(once.routing_key, "dead");
        assert_eq!(once.properties.expiration, None);
        assert_eq!(header(&once, "x-death-reason"), Some("expired"));
        assert_eq!(header(&once, "x-death-routing-key"), Some("eu"));
        assert_eq!(header(&once, "x-first-death-queue"), Some("a"));
        assert_eq!(header(&once, "app"), Some("shop"));

        let twice = dead_lettered(&once, DeathReason::MaxLen, place("b"), None);
        let thrice = dead_lettered(&twice, DeathReason::Expired, place("a"), None);
        let deaths = trail(&thrice);
        let summary: Vec<(&str, &str, u64)> = deaths
            .iter()
            .map(|d| (d.queue.as_str(), d.reason.as_str(), d.count))
            .collect();
        assert_eq!(summary, [("a", "expired", 2), ("b", "maxlen", 1)]);
        assert_eq!(header(&thrice, "x-death-count"), Some("2"));
        assert_eq!(header(&thrice, "x-first-death-queue"), Some("a"));
        assert_eq!(header(&thrice, "x-first-death-reason"), Some("expired"));
        assert_eq!(
            thrice
                .headers
                .iter()
                .filter(|(n, _)| n == "x-death")
                .count(),
            1
        );
    }

    #[test]
    fn a_publishers_trail_headers_are_removed_and_the_trail_always_fits() {
        let mut headers = vec![
            ("x-death".to_owned(), "[]".to_owned()),
            ("x-death-reason".to_owned(), "rejected".to_owned()),
            ("x-first-death-queue".to_owned(), "z".to_owned()),
            ("x-deathly".to_owned(), "kept".to_owned()),
            ("app".to_owned(), "kept".to_owned()),
        ];
        without_publisher_trail(&mut headers);
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-deathly", "app"]);

        let mut full = Message::new("k", "b");
        full.headers = (0..MAX_PUBLISHED_HEADERS)
            .map(|i| (format!("h{i}"), String::new()))
            .collect();
        let place = |queue| DeathPlace {
            queue,
            exchange: "",
        };
        let dead = dead_lettered(&full, DeathReason::Expired, place("a"), None);
        assert_eq!(dead.headers.len(), MAX_HEADERS);
        assert!(closes_cycle(&dead, "a"), "the trail was written");
    }

    #[test]
    fn a_queue_in_the_trail_closes_a_cycle_unless_a_consumer_rejected() {
        let place = |queue| DeathPlace {
            queue,
            exchange: "",
        };
        let message = Message::new("k", "b");
        let expired = dead_lettered(&message, DeathReason::Expired, place("a"), None);
        assert!(closes_cycle(&expired, "a"));
        assert!(!closes_cycle(&expired, "b"));
        assert!(!closes_cycle(&message, "a"));
        let rejected = dead_lettered(&expired, DeathReason::Rejected, place("b"), None);
        assert!(!closes_cycle(&rejected, "a"));
    }
}
