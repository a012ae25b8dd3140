//! The broker's message: what a publisher sends, what routing plugins and filters inspect and
//! what queues hold. The body is [`Bytes`] so copies of a message in many queues share it.

use bytes::Bytes;

pub use switchyard_protocol::Properties;

/// A published message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub routing_key: String,
    /// Header name → UTF-8 value, in the publisher's order.
    pub headers: Vec<(String, String)>,
    pub properties: Properties,
    pub body: Bytes,
}

impl Message {
    /// A message with this routing key and body and nothing else.
    pub fn new(routing_key: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            routing_key: routing_key.into(),
            body: body.into(),
            ..Message::default()
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}
