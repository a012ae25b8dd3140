//! The parts of a message that publish and consume frames share: its properties and headers.
//! (The routing key, headers and body sit directly in `Publish` and `Delivery`.)

use std::fmt;

use bytes::Bytes;

use crate::value::Table;

/// A message's headers: named [typed values](crate::Value), in the publisher's order. Names
/// may repeat; at most [`MAX_HEADERS`](crate::MAX_HEADERS) of them, and at most
/// [`MAX_TABLE_ITEMS`](crate::MAX_TABLE_ITEMS) values counting everything nested.
pub type Headers = Table;

/// A message id or correlation id: text in AMQP 0-9-1 and STOMP, bytes where a protocol needs
/// them (MQTT 5's correlation data is binary). A frontend whose protocol has only text ids
/// decides how to carry a binary one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Identifier {
    Text(String),
    Binary(#[serde(with = "crate::body")] Bytes),
}

impl Identifier {
    /// The id as text, when it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Identifier::Text(text) => Some(text),
            Identifier::Binary(_) => None,
        }
    }

    /// The id's bytes (a text id's UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Identifier::Text(text) => text.as_bytes(),
            Identifier::Binary(bytes) => bytes,
        }
    }

    /// How many bytes it holds.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for Identifier {
    fn from(text: &str) -> Self {
        Identifier::Text(text.to_owned())
    }
}

impl From<String> for Identifier {
    fn from(text: String) -> Self {
        Identifier::Text(text)
    }
}

impl From<Bytes> for Identifier {
    fn from(bytes: Bytes) -> Self {
        Identifier::Binary(bytes)
    }
}

/// Text as is; bytes as lowercase hex after `0x`.
impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Text(text) => f.write_str(text),
            Identifier::Binary(bytes) => {
                f.write_str("0x")?;
                bytes.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
            }
        }
    }
}

/// The standard message properties (AMQP 0-9-1's basic properties but `headers`), plus a
/// delivery delay. The broker stores and forwards them; only `expiration`, `priority`,
/// `persistent`, `delay_ms` and `user_id` change what it does.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Properties {
    pub message_id: Option<Identifier>,
    pub correlation_id: Option<Identifier>,
    /// The queue a consumer should answer to (RPC).
    pub reply_to: Option<String>,
    /// A MIME type such as `application/json`.
    pub content_type: Option<String>,
    /// How the body is encoded on top of its content type, such as `gzip`.
    pub content_encoding: Option<String>,
    /// The application's name for the kind of message (AMQP's `type`), such as `order.created`.
    pub message_type: Option<String>,
    /// The user who published it. When set, the broker refuses the publish unless it names the
    /// authenticated user (as RabbitMQ does), so consumers can trust it.
    pub user_id: Option<String>,
    /// The publishing application's name.
    pub app_id: Option<String>,
    /// AMQP 0-9-1's deprecated `cluster-id`, carried unchanged.
    pub cluster_id: Option<String>,
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

/// Properties in frames: one byte (`0`) when every property is unset, which most messages are,
/// else `1` and the fields. `#[serde(with = "crate::message::compact")]` on a `Properties`
/// field; [`compact::Boxed`] for a `Box<Properties>`.
pub(crate) mod compact {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Properties;

    /// The wire form of a `&Properties`: `None` when they are all unset.
    pub(crate) struct Ref<'a>(pub(crate) &'a Properties);

    impl Serialize for Ref<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let set = (*self.0 != Properties::default()).then_some(self.0);
            set.serialize(serializer)
        }
    }

    pub(crate) fn serialize<S: Serializer>(p: &Properties, s: S) -> Result<S::Ok, S::Error> {
        Ref(p).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Properties, D::Error> {
        Ok(Option::<Properties>::deserialize(d)?.unwrap_or_default())
    }

    /// The same for a `Box<Properties>` field.
    pub(crate) mod boxed {
        use serde::{Deserializer, Serializer};

        use super::Properties;

        pub(crate) fn serialize<S: Serializer>(p: &Properties, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(p, s)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Box<Properties>, D::Error> {
            super::deserialize(d).map(Box::new)
        }
    }
}

impl Properties {
    /// The bytes its strings and ids hold; part of a message's size.
    pub fn data_bytes(&self) -> usize {
        let ids = [&self.message_id, &self.correlation_id]
            .into_iter()
            .flatten()
            .map(Identifier::len)
            .sum::<usize>();
        let strings = [
            &self.reply_to,
            &self.content_type,
            &self.content_encoding,
            &self.message_type,
            &self.user_id,
            &self.app_id,
            &self.cluster_id,
        ]
        .into_iter()
        .flatten()
        .map(String::len)
        .sum::<usize>();
        ids + strings
    }
}
