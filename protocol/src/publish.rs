//! Frames of a publish stream: a bidirectional stream the client opens after `Welcome` to
//! publish on. A client may open any number; each is independent (its own sequence numbers,
//! its own flow control), so one blocked by a slow exchange does not hold up another.
//!
//! Publisher confirms are on for every publish with a `seq` above 0, as in RabbitMQ's confirm
//! mode:
//! - the client numbers its publishes with `seq`, strictly increasing on the stream (1, 2, 3,
//!   … is usual; gaps are allowed);
//! - every publish gets exactly one outcome: it is inside one [`PublishDown::Confirm`] range,
//!   or it is [`PublishDown::Reject`]ed. Outcomes are sent in `seq` order, so a client can
//!   keep its unconfirmed publishes in a queue and pop from the front;
//! - a confirm means the broker took responsibility: the message is in every queue it was
//!   routed to, and for a persistent message in a durable queue, on disk (fsynced). A message
//!   routed to no queue is confirmed too (as in AMQP), after a [`PublishDown::Returned`] if it
//!   was `mandatory`;
//! - a reject means no queue got the message (`ROUTING_FAULT`, `MESSAGE_TOO_LARGE`,
//!   `NOT_FOUND` for an unknown exchange, `QUEUE_FULL`, `ACCESS_REFUSED`, …); the stream goes on.
//!
//! A publish with `seq` [`UNCONFIRMED`] (0) is fire-and-forget, as AMQP without confirm mode
//! or NATS' core publish: the broker routes and enqueues it exactly the same way (a persistent
//! one is still written to its durable queues' logs) but sends no outcome for it, neither
//! confirm nor reject nor return, and waits for no disk. Such publishes may be mixed with
//! confirmed ones on a stream; the confirmed ones keep their rules.
//!
//! Flow control: while the broker is above a memory or disk watermark it sends
//! [`PublishDown::Blocked`] and stops reading the stream (QUIC flow control then stalls the
//! publisher), and [`PublishDown::Unblocked`] when it reads again, as RabbitMQ's
//! `connection.blocked`. Batching needs no frame of its own: write many `Publish` frames in one
//! stream write.
//!
//! Closing the stream's send side ends publishing on it; the broker answers what it read, then
//! finishes its side. Outcomes not yet received when a stream or connection is lost are unknown:
//! republish (at-least-once).

use bytes::Bytes;

use crate::error_code::WireError;
use crate::message::{Headers, Properties};

/// Client → broker on a publish stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PublishUp {
    Publish(Publish),
}

/// The `seq` of a publish that wants no outcome (see the module docs).
pub const UNCONFIRMED: u64 = 0;

/// Broker → client on a publish stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PublishDown {
    /// Every publish with `first <= seq <= last` was accepted. Ranges are contiguous and
    /// never overlap; seqs the client skipped are simply absent from them.
    Confirm { first: u64, last: u64 },
    /// The publish with this seq was refused; no queue has it.
    Reject { seq: u64, error: WireError },
    /// The `mandatory` publish with this seq reached no queue (`reason.code` is `NO_ROUTE`).
    /// It is still confirmed afterwards. The body is not sent back: the client has it.
    Returned { seq: u64, reason: WireError },
    /// The broker stopped reading this stream; `reason.code` is usually `OVERLOADED`.
    Blocked { reason: WireError },
    /// The broker reads this stream again.
    Unblocked,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Publish {
    /// The client's number for this publish; see the module docs.
    pub seq: u64,
    /// `""` is the default exchange, which routes to the queue named by the routing key.
    pub exchange: String,
    pub routing_key: String,
    /// Ask for a `Returned` if no queue gets the message.
    pub mandatory: bool,
    pub headers: Headers,
    #[serde(with = "crate::message::compact")]
    pub properties: Properties,
    #[serde(with = "crate::body")]
    pub body: Bytes,
}
