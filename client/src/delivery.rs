//! A delivered message as the user holds it, and how a consume stream's `Deliver` frame
//! becomes one.
//!
//! A consumer receives the same few exchange names and routing keys over and over, and most
//! messages carry no properties. So a delivery's names are [`SharedStr`]s handed out by the
//! stream's [`DeliveryDecoder`] (a name it saw recently is shared, not allocated again), its
//! properties are shared with every other delivery that has none, and a large body is a slice
//! of the receive buffer. What is left to allocate per delivery is a small body's copy (a small
//! body sharing the receive buffer would keep the whole buffer alive as long as the message).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use switchyard_protocol::{ConsumeUp, DeliveryView, Headers, Properties, SHARE_BODIES_FROM};
use tokio::sync::mpsc;

use crate::error::ClientError;

/// An immutable string shared between deliveries (an exchange name, a routing key): cloning
/// it costs a reference count, not an allocation. Compares and prints like a `str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedStr {
    fn from(text: &str) -> Self {
        SharedStr(Arc::from(text))
    }
}

impl From<String> for SharedStr {
    fn from(text: String) -> Self {
        SharedStr(Arc::from(text))
    }
}

impl From<SharedStr> for String {
    fn from(text: SharedStr) -> Self {
        text.as_str().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivery_tag: u64,
    pub exchange: SharedStr,
    pub routing_key: SharedStr,
    pub redelivered: bool,
    /// Deliveries before this one.
    pub delivery_count: u32,
    pub headers: Headers,
    pub properties: Arc<Properties>,
    pub body: Bytes,
    acks: mpsc::UnboundedSender<ConsumeUp>,
}

impl Delivery {
    fn settle(&self, frame: ConsumeUp) -> Result<(), ClientError> {
        self.acks
            .send(frame)
            .map_err(|_| ClientError::closed("the consume stream is gone"))
    }

    pub fn ack(&self) -> Result<(), ClientError> {
        self.settle(ConsumeUp::Ack {
            delivery_tag: self.delivery_tag,
            multiple: false,
        })
    }

    /// Acknowledges this and every earlier delivery of the consumer.
    pub fn ack_multiple(&self) -> Result<(), ClientError> {
        self.settle(ConsumeUp::Ack {
            delivery_tag: self.delivery_tag,
            multiple: true,
        })
    }

    pub fn nack(&self, multiple: bool, requeue: bool) -> Result<(), ClientError> {
        self.settle(ConsumeUp::Nack {
            delivery_tag: self.delivery_tag,
            multiple,
            requeue,
        })
    }

    pub fn reject(&self, requeue: bool) -> Result<(), ClientError> {
        self.settle(ConsumeUp::Reject {
            delivery_tag: self.delivery_tag,
            requeue,
        })
    }
}

/// Names remembered per stream: a consumer usually sees a handful of routing keys in turn.
const REMEMBERED_NAMES: usize = 16;

/// Turns one consume stream's `Deliver` frames into [`Delivery`]s, sharing what repeats.
#[derive(Debug)]
pub(crate) struct DeliveryDecoder {
    /// The stream's ack channel: a delivery's tag means nothing on another stream.
    acks: mpsc::UnboundedSender<ConsumeUp>,
    /// Recently seen exchange names and routing keys, the newest last.
    names: Vec<SharedStr>,
    no_properties: Arc<Properties>,
}

impl DeliveryDecoder {
    pub(crate) fn new(acks: mpsc::UnboundedSender<ConsumeUp>) -> Self {
        DeliveryDecoder {
            acks,
            names: Vec::with_capacity(REMEMBERED_NAMES),
            no_properties: Arc::default(),
        }
    }

    /// The delivery `view` describes; `payload` is the frame it was decoded from.
    pub(crate) fn delivery(&mut self, view: DeliveryView<'_>, payload: &Bytes) -> Delivery {
        let body = if view.body.len() >= SHARE_BODIES_FROM {
            payload.slice_ref(view.body)
        } else {
            Bytes::copy_from_slice(view.body)
        };
        let properties = if view.properties == *self.no_properties {
            Arc::clone(&self.no_properties)
        } else {
            Arc::new(view.properties)
        };
        Delivery {
            delivery_tag: view.delivery_tag,
            exchange: self.name(view.exchange),
            routing_key: self.name(view.routing_key),
            redelivered: view.redelivered,
            delivery_count: view.delivery_count,
            headers: view.headers,
            properties,
            body,
            acks: self.acks.clone(),
        }
    }

    /// `text` as a shared name: one seen recently, or a new one remembered in place of the
    /// oldest.
    fn name(&mut self, text: &str) -> SharedStr {
        if let Some(at) = self.names.iter().rposition(|name| name.as_str() == text) {
            return self.names[at].clone();
        }
        let name = SharedStr::from(text);
        if self.names.len() == REMEMBERED_NAMES {
            self.names.remove(0);
        }
        self.names.push(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(exchange: &'a str, key: &'a str, body: &'a [u8]) -> DeliveryView<'a> {
        DeliveryView {
            delivery_tag: 1,
            exchange,
            routing_key: key,
            redelivered: false,
            delivery_count: 0,
            headers: Headers::new(),
            properties: Properties::default(),
            body,
        }
    }

    #[test]
    fn repeated_names_and_empty_properties_are_shared_and_new_ones_are_not_confused() {
        let (acks, _rx) = mpsc::unbounded_channel();
        let mut decoder = DeliveryDecoder::new(acks);
        let payload = Bytes::from_static(b"xx");
        let first = decoder.delivery(view("market", "stock.ibm", b"a"), &payload);
        let second = decoder.delivery(view("market", "stock.ibm", b"b"), &payload);
        assert!(Arc::ptr_eq(&first.exchange.0, &second.exchange.0));
        assert!(Arc::ptr_eq(&first.routing_key.0, &second.routing_key.0));
        assert!(Arc::ptr_eq(&first.properties, &second.properties));
        let mut with_reply = view("market", "stock.sap", b"c");
        with_reply.properties.reply_to = Some("answers".into());
        let third = decoder.delivery(with_reply, &payload);
        assert_eq!(third.routing_key, "stock.sap");
        assert_eq!(third.properties.reply_to.as_deref(), Some("answers"));
        assert!(!Arc::ptr_eq(&first.properties, &third.properties));
        assert_eq!(first.body, "a");
        assert_eq!(second.body, "b");
    }

    #[test]
    fn past_the_remembered_names_the_oldest_is_forgotten_and_every_name_stays_right() {
        let (acks, _rx) = mpsc::unbounded_channel();
        let mut decoder = DeliveryDecoder::new(acks);
        let payload = Bytes::new();
        let keys: Vec<String> = (0..REMEMBERED_NAMES * 3).map(|n| format!("k{n}")).collect();
        for round in 0..2 {
            for key in &keys {
                let delivery = decoder.delivery(view("", key, b""), &payload);
                assert_eq!(delivery.routing_key, *key, "round {round}");
            }
        }
        assert_eq!(decoder.names.len(), REMEMBERED_NAMES);
    }

    #[test]
    fn a_large_body_is_a_slice_of_the_frame_and_a_small_one_a_copy() {
        let (acks, _rx) = mpsc::unbounded_channel();
        let mut decoder = DeliveryDecoder::new(acks);
        let payload = Bytes::from(vec![1u8; SHARE_BODIES_FROM + 10]);
        let inside = |body: &Bytes| payload.as_ptr_range().contains(&body.as_ptr());
        let large = decoder.delivery(view("", "k", &payload[5..]), &payload);
        let small = decoder.delivery(view("", "k", &payload[..5]), &payload);
        assert!(inside(&large.body));
        assert!(!inside(&small.body));
        assert_eq!(large.body.len(), SHARE_BODIES_FROM + 5);
    }
}
