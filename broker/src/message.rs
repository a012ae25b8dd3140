//! The broker's message: what a publisher sends, what routing plugins and filters inspect and
//! what queues hold. The body is [`Bytes`] so copies of a message in many queues share it.
//! A queue may hold millions of messages, most of which set no property, so the properties
//! are allocated only when one is set ([`MessageProperties`]).

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytes::Bytes;

pub use switchyard_protocol::{Headers, Identifier, Properties, Table, Value};

/// A published message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub routing_key: String,
    /// Named typed values, in the publisher's order.
    pub headers: Headers,
    pub properties: MessageProperties,
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
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// The bytes the message carries: body, routing key, headers (names and values) and the
    /// properties' strings. What `max_message_bytes` limits and the memory watermark counts
    /// (a message with an empty body and megabytes of headers is not small).
    pub fn size_bytes(&self) -> usize {
        self.body.len()
            + self.routing_key.len()
            + self.headers.data_bytes()
            + self.properties.data_bytes()
    }
}

/// A message's [`Properties`], boxed only when any differs from the default: an unset
/// `Properties` is ~150 bytes, a pointer is 8. Reading derefs to the properties (the defaults
/// when none is set); writing through `DerefMut` allocates them, so a caller that only may
/// change a field should check first.
#[derive(Clone, Default)]
pub struct MessageProperties(Option<Box<Properties>>);

/// What an unset [`MessageProperties`] reads as (`Properties::default()`, which is not const).
static NO_PROPERTIES: Properties = Properties {
    message_id: None,
    correlation_id: None,
    reply_to: None,
    content_type: None,
    content_encoding: None,
    message_type: None,
    user_id: None,
    app_id: None,
    cluster_id: None,
    timestamp: None,
    expiration: None,
    priority: 0,
    persistent: false,
    delay_ms: None,
};

impl MessageProperties {
    /// The properties themselves, for a frame or a record.
    pub fn into_properties(self) -> Properties {
        self.0.map(|boxed| *boxed).unwrap_or_default()
    }
}

impl From<Properties> for MessageProperties {
    fn from(properties: Properties) -> Self {
        if properties == NO_PROPERTIES {
            MessageProperties(None)
        } else {
            MessageProperties(Some(Box::new(properties)))
        }
    }
}

impl Deref for MessageProperties {
    type Target = Properties;

    fn deref(&self) -> &Properties {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

impl DerefMut for MessageProperties {
    fn deref_mut(&mut self) -> &mut Properties {
        self.0.get_or_insert_with(Box::default)
    }
}

impl PartialEq for MessageProperties {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for MessageProperties {}

impl fmt::Debug for MessageProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_properties_are_not_allocated_and_read_as_the_defaults() {
        let unset = MessageProperties::from(Properties::default());
        assert!(unset.0.is_none());
        assert_eq!(*unset, Properties::default());
        assert_eq!(unset.into_properties(), Properties::default());
    }

    #[test]
    fn a_set_property_is_kept_and_writing_one_allocates() {
        let mut properties = MessageProperties::from(Properties::default());
        properties.persistent = true;
        assert!(properties.0.is_some());
        assert!(properties.persistent);
        let set = Properties {
            persistent: true,
            ..Properties::default()
        };
        assert_eq!(properties, MessageProperties::from(set.clone()));
        assert_eq!(properties.into_properties(), set);
    }
}
