//! A consumer as its queue sees it: credit (prefetch), the deliveries it has not acknowledged,
//! its optional filter, and the channel its deliveries travel on to the connection.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Cancellation, QueuedMessage};
use crate::plugin::CompiledFilter;

/// Identifies a consumer within its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub u64);

/// What a consumer asked for when it subscribed.
#[derive(Debug)]
pub struct ConsumerSpec {
    pub tag: String,
    /// The most unacknowledged deliveries at once; 0 = no limit but the channel's.
    pub prefetch: u32,
    /// Deliveries count as acknowledged as soon as they are sent.
    pub no_ack: bool,
    pub filter: Option<Arc<CompiledFilter>>,
}

/// One message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Unique per consumer, increasing; what the consumer acks.
    pub tag: u64,
    pub queued: QueuedMessage,
}

/// What travels on a consumer's channel.
#[derive(Debug)]
pub enum DeliveryEvent {
    Deliver(Delivery),
    Cancelled(Cancellation),
}

/// Bounds the filter rejections remembered per consumer (see `rejected`).
const MAX_REMEMBERED_REJECTIONS: usize = 4096;

#[derive(Debug)]
pub(super) struct Consumer {
    pub(super) id: ConsumerId,
    pub(super) spec: ConsumerSpec,
    events: mpsc::Sender<DeliveryEvent>,
    pub(super) unacked: BTreeMap<u64, QueuedMessage>,
    next_tag: u64,
    /// Sequence numbers of ready messages the filter refused: a filter is a pure function of
    /// the message, so each message is evaluated at most once per consumer.
    rejected: HashSet<u64>,
    /// Deliveries made by the current dispatch, sent when it ends (after a durable queue has
    /// recorded them, so a crash cannot hide that they were delivered).
    outbox: Vec<DeliveryEvent>,
}

impl Consumer {
    pub(super) fn new(
        id: ConsumerId,
        spec: ConsumerSpec,
        events: mpsc::Sender<DeliveryEvent>,
    ) -> Self {
        Consumer {
            id,
            spec,
            events,
            unacked: BTreeMap::new(),
            next_tag: 1,
            rejected: HashSet::new(),
            outbox: Vec::new(),
        }
    }

    /// Whether it can take another delivery now. One channel slot is always kept free so a
    /// cancellation can be sent without waiting.
    pub(super) fn has_credit(&self) -> bool {
        let within_prefetch = self.spec.no_ack
            || self.spec.prefetch == 0
            || self.unacked.len() < self.spec.prefetch as usize;
        within_prefetch
            && self.events.capacity() > 1 + self.outbox.len()
            && !self.events.is_closed()
    }

    /// Whether its filter (if any) lets `message` through.
    pub(super) fn accepts(&mut self, seq: u64, message: &QueuedMessage) -> bool {
        let Some(filter) = &self.spec.filter else {
            return true;
        };
        if self.rejected.contains(&seq) {
            return false;
        }
        let pass = filter.matches(&message.message).unwrap_or_else(|error| {
            tracing::warn!(consumer = self.spec.tag.as_str(), error = %error, "filter failed; the message is not delivered to this consumer");
            false
        });
        if !pass {
            if self.rejected.len() >= MAX_REMEMBERED_REJECTIONS {
                self.rejected.clear();
            }
            self.rejected.insert(seq);
        }
        pass
    }

    /// Delivers `message` (sent by [`Consumer::send_outbox`]); keeps it as unacked unless the
    /// consumer is no-ack. The delivery shows how many times the message was delivered before.
    pub(super) fn deliver(&mut self, seq: u64, mut message: QueuedMessage) {
        self.rejected.remove(&seq);
        let tag = self.next_tag;
        self.next_tag += 1;
        let delivery = Delivery {
            tag,
            queued: message.clone(),
        };
        message.delivery_count += 1;
        self.outbox.push(DeliveryEvent::Deliver(delivery));
        if !self.spec.no_ack {
            self.unacked.insert(tag, message);
        }
    }

    /// Sends the deliveries made since the last call.
    pub(super) fn send_outbox(&mut self) {
        for event in self.outbox.drain(..) {
            if self.events.try_send(event).is_err() {
                // has_credit counted the outbox against the channel's capacity under the queue
                // lock; only a closed channel fails, and then the connection is gone and the
                // message stays unacked, to come back.
            }
        }
    }

    pub(super) fn cancel(&self, reason: Cancellation) {
        let _ = self.events.try_send(DeliveryEvent::Cancelled(reason));
    }
}
