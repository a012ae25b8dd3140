//! Frames of a consume stream: one bidirectional stream per consumer, opened by the client
//! after `Welcome`. A slow consumer stalls only its own stream.
//!
//! The conversation:
//! 1. The client's first frame is [`ConsumeUp::Subscribe`]; the broker answers
//!    [`ConsumeDown::Subscribed`] with the consumer tag, or [`ConsumeDown::Error`] and
//!    finishes the stream (`NOT_FOUND`, `RESOURCE_LOCKED`, `ACCESS_REFUSED`, `PLUGIN_REFUSED`
//!    for a filter expression the plugin rejects).
//! 2. The broker sends [`ConsumeDown::Deliver`] while the consumer has credit: with a
//!    `prefetch` of N, at most N deliveries are unacked at once (0 = no limit), as AMQP's
//!    `basic.qos`. [`ConsumeUp::Credit`] replaces the window at any time.
//! 3. The client settles deliveries with `Ack`, `Nack` or `Reject`, by delivery tag. Tags are
//!    per stream, start at 1 and grow by 1 with each delivery; a redelivery gets a new tag.
//!    `multiple` settles every unsettled delivery up to and including the tag. Settling a tag
//!    that is unknown or already settled is answered with `Error(PRECONDITION_FAILED)`, which
//!    ends the stream, as AMQP closes the channel. With `no_ack` the broker settles on
//!    sending and the client must not settle.
//! 4. [`ConsumeUp::Cancel`] stops deliveries; the broker answers `Cancelled { ClientRequest }`
//!    and sends no `Deliver` after it. The client may still settle outstanding deliveries,
//!    then finishes its side. The broker may cancel on its own ([`CancelReason`]).
//!
//! Unsettled deliveries are requeued, with `redelivered` set and `delivery_count` raised, when
//! the stream ends (cancel, reset, connection loss) or on a nack/reject with `requeue`. A
//! message nacked without `requeue` is dead-lettered if the queue has a dead-letter exchange,
//! and dropped otherwise.

use bytes::Bytes;

use crate::error_code::WireError;
use crate::message::{Headers, Properties};

/// Client → broker on a consume stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConsumeUp {
    /// The first frame of the stream, and only then.
    Subscribe(Subscribe),
    /// Settles a delivery as done: the message leaves the queue.
    Ack { delivery_tag: u64, multiple: bool },
    /// Settles a delivery as failed: requeued, or else dead-lettered or dropped.
    Nack {
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    },
    /// `Nack` of one delivery (AMQP's `basic.reject`).
    Reject { delivery_tag: u64, requeue: bool },
    /// Replaces the prefetch window (0 = no limit). Lowering it delivers nothing more until
    /// the unacked count falls below the new window; nothing is taken back.
    Credit { prefetch: u32 },
    /// Stops deliveries; see the module docs.
    Cancel,
    /// Asks for `Synced { id }` once every settlement sent before it on this stream is applied
    /// and, for a durable queue, recorded durably: after `Synced`, an acked message never comes
    /// back, even if the broker crashes.
    Sync { id: u64 },
}

/// Broker → client on a consume stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConsumeDown {
    /// The subscription is active.
    Subscribed {
        consumer_tag: String,
    },
    Deliver(Delivery),
    /// No more deliveries will come; outstanding ones may still be settled.
    Cancelled {
        reason: CancelReason,
    },
    /// The subscription failed or the client broke the stream's rules; the broker finishes the
    /// stream after this, and unsettled deliveries are requeued.
    Error(WireError),
    /// Answers `Sync { id }`.
    Synced {
        id: u64,
    },
}

/// Starts a consumer on a queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subscribe {
    pub queue: String,
    /// Unique per connection; empty asks the broker to choose one.
    pub consumer_tag: String,
    /// The most unacked deliveries at once; 0 = no limit.
    pub prefetch: u32,
    /// Deliveries count as settled once sent (at-most-once).
    pub no_ack: bool,
    /// The only consumer of the queue: refused with `RESOURCE_LOCKED` if it has others, and
    /// others are refused while this one lasts.
    pub exclusive: bool,
    /// Deliver only messages this filter plugin accepts; the others stay for other consumers.
    pub filter: Option<FilterSpec>,
}

/// A consumer's filter: which filter plugin, and the expression it compiles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilterSpec {
    pub plugin: String,
    pub expression: String,
}

/// One message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// What `Ack`, `Nack` and `Reject` name this delivery by.
    pub delivery_tag: u64,
    /// The exchange it was published to (`""` for the default exchange).
    pub exchange: String,
    pub routing_key: String,
    /// Delivered before and not acked (AMQP's flag).
    pub redelivered: bool,
    /// How many times it was delivered before this one (0 on first delivery), counted across
    /// consumers; a queue's `x-delivery-limit` dead-letters past it.
    pub delivery_count: u32,
    pub headers: Headers,
    /// Boxed: a delivery is moved several times between the stream and the user, and the
    /// properties are most of its size.
    #[serde(with = "crate::message::compact::boxed")]
    pub properties: Box<Properties>,
    #[serde(with = "crate::body")]
    pub body: Bytes,
}

/// A [`ConsumeDown::Deliver`] frame made of borrowed parts. It encodes to exactly the bytes of
/// the owned frame, so the broker can send a queued message without first copying its names,
/// headers and properties into a [`Delivery`].
#[derive(Debug, Clone, Copy)]
pub struct DeliverRef<'a> {
    pub delivery_tag: u64,
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub redelivered: bool,
    pub delivery_count: u32,
    pub headers: &'a Headers,
    pub properties: &'a Properties,
    pub body: &'a [u8],
}

/// `ConsumeDown::Deliver`'s position among `ConsumeDown`'s variants.
const DELIVER_VARIANT: u32 = 1;

impl serde::Serialize for DeliverRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_variant(
            "ConsumeDown",
            DELIVER_VARIANT,
            "Deliver",
            &Fields(self),
        )
    }
}

/// The `Delivery` struct inside a [`DeliverRef`].
struct Fields<'b, 'a>(&'b DeliverRef<'a>);

impl serde::Serialize for Fields<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct BodyRef<'a>(&'a [u8]);
        impl serde::Serialize for BodyRef<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        let delivery = self.0;
        let mut fields = serializer.serialize_struct("Delivery", 8)?;
        fields.serialize_field("delivery_tag", &delivery.delivery_tag)?;
        fields.serialize_field("exchange", delivery.exchange)?;
        fields.serialize_field("routing_key", delivery.routing_key)?;
        fields.serialize_field("redelivered", &delivery.redelivered)?;
        fields.serialize_field("delivery_count", &delivery.delivery_count)?;
        fields.serialize_field("headers", delivery.headers)?;
        fields.serialize_field(
            "properties",
            &crate::message::compact::Ref(delivery.properties),
        )?;
        fields.serialize_field("body", &BodyRef(delivery.body))?;
        fields.end()
    }
}

/// [`ConsumeDown`] decoded in place (see [`FrameDecoder::decode_view`]): a delivery's names
/// and body borrow from the frame's payload instead of being allocated, so a client can share
/// them or slice the body out of the payload. Its variants and fields mirror [`ConsumeDown`]
/// exactly, so it decodes the same bytes.
///
/// [`FrameDecoder::decode_view`]: crate::FrameDecoder::decode_view
// Unboxed on purpose: a view lives only while its frame is turned into what the caller keeps.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub enum ConsumeDownView<'a> {
    Subscribed { consumer_tag: String },
    Deliver(#[serde(borrow)] DeliveryView<'a>),
    Cancelled { reason: CancelReason },
    Error(WireError),
    Synced { id: u64 },
}

/// A [`Delivery`] borrowing its exchange, routing key and body from the frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct DeliveryView<'a> {
    pub delivery_tag: u64,
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub redelivered: bool,
    pub delivery_count: u32,
    pub headers: Headers,
    #[serde(with = "crate::message::compact")]
    pub properties: Properties,
    pub body: &'a [u8],
}

/// Names [`ConsumeDownView`] for [`FrameDecoder::decode_view`](crate::FrameDecoder::decode_view).
#[derive(Debug, Clone, Copy)]
pub struct ConsumeDownFrames;

impl crate::codec::FrameView for ConsumeDownFrames {
    type Frame<'p> = ConsumeDownView<'p>;
}

/// Why the broker ended a subscription.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CancelReason {
    /// The client sent `Cancel`.
    ClientRequest,
    /// The queue was deleted.
    QueueDeleted,
    /// The broker is shutting down.
    ServerShutdown,
    /// Something else went wrong, such as the consumer's filter plugin being removed.
    Error(WireError),
}
