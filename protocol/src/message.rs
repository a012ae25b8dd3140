//! The parts of a message that publish and consume frames share: its properties and the
//! header list. (The routing key, headers and body sit directly in `Publish` and `Delivery`.)

/// A message's headers: name → UTF-8 value, in the publisher's order. Names may repeat; at
/// most [`MAX_HEADERS`](crate::MAX_HEADERS) entries.
pub type Headers = Vec<(String, String)>;

/// The standard message properties (AMQP's basic properties), plus a delivery delay. The broker
/// stores and forwards them; only `expiration`, `priority`, `persistent` and `delay_ms` change
/// what it does.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Properties {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    /// The queue a consumer should answer to (RPC).
    pub reply_to: Option<String>,
    /// A MIME type such as `application/json`.
    pub content_type: Option<String>,
    /// Milliseconds since the Unix epoch, as set by the publisher.
    pub timestamp: Option<u64>,
    /// Time to live in milliseconds: an undelivered message older than this is dropped (or
    /// dead-lettered) instead of delivered. The shorter of this and the queue's message-ttl
    /// applies.
    pub expiration: Option<u64>,
    /// 0 (lowest, the default) to 255; honoured up to the queue's max-priority argument.
    pub priority: u8,
    /// Whether a durable queue writes the message to disk before confirming it.
    pub persistent: bool,
    /// Milliseconds to hold the message in the queue before it becomes deliverable.
    pub delay_ms: Option<u64>,
}
