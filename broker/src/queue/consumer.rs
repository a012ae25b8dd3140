//! A consumer as its queue sees it: credit (prefetch), the deliveries it has not acknowledged,
//! its optional filter, and the channel its deliveries travel on to the connection.
//!
//! A delivery not acknowledged within the queue's consumer timeout is taken back
//! ([`Consumer::take_timed_out`]); its tag is remembered for a while so that a late ack or nack
//! of it is accepted and ignored instead of failing the consumer.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::delivery_channel::DeliverySender;
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
    /// The queue's only consumer: refused while the queue has others, and others are refused
    /// while it lasts.
    pub exclusive: bool,
    /// Takes messages only when asked ([`Queue::get`](super::Queue::get), AMQP's `basic.get`):
    /// never dispatched to, and not counted as a consumer (for exclusivity, `if-unused`,
    /// auto-delete and `x-expires`). Its unacked messages are settled as any consumer's.
    pub getter: bool,
    pub filter: Option<Arc<CompiledFilter>>,
}

/// One message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Unique per consumer, increasing; what the consumer acks.
    pub tag: u64,
    pub queued: QueuedMessage,
}

/// What travels on a consumer's channel (see `delivery_channel`).
#[derive(Debug)]
pub enum DeliveryEvent {
    /// What one dispatch delivered to the consumer, in tag order.
    Deliver(Vec<Delivery>),
    Cancelled(Cancellation),
}

/// Bounds the filter rejections remembered per consumer (see `rejected`).
const MAX_REMEMBERED_REJECTIONS: usize = 4096;

/// Bounds the timed-out tags remembered per consumer (see `timed_out`).
const MAX_REMEMBERED_TIMEOUTS: usize = 4096;

/// A delivery awaiting its ack.
#[derive(Debug)]
pub(super) struct Outstanding {
    pub(super) message: QueuedMessage,
    pub(super) delivered_at: Instant,
}

/// What settling a tag found.
#[derive(Debug, Default)]
pub(super) struct Settled {
    /// The messages settled, in delivery order.
    pub(super) messages: Vec<QueuedMessage>,
    /// Tags that had timed out and were taken back already: known, with nothing to settle.
    pub(super) timed_out: usize,
}

#[derive(Debug)]
pub(super) struct Consumer {
    pub(super) id: ConsumerId,
    pub(super) spec: ConsumerSpec,
    events: DeliverySender,
    /// Tags and delivery times increase together.
    pub(super) unacked: Unacked,
    next_tag: u64,
    /// Tags taken back by the consumer timeout and not settled since.
    timed_out: BTreeSet<u64>,
    /// Sequence numbers of ready messages the filter refused: a filter is a pure function of
    /// the message, so each message is evaluated at most once per consumer.
    rejected: HashSet<u64>,
    /// Deliveries made by the current dispatch, sent when it ends (after a durable queue has
    /// recorded them, so a crash cannot hide that they were delivered).
    outbox: Vec<Delivery>,
    /// Cancelled by its client: it gets no more deliveries, but its unacked ones stay its own
    /// to settle until it is removed.
    pub(super) cancelled: bool,
}

impl Consumer {
    pub(super) fn new(id: ConsumerId, spec: ConsumerSpec, events: DeliverySender) -> Self {
        Consumer {
            id,
            spec,
            events,
            unacked: Unacked::default(),
            next_tag: 1,
            timed_out: BTreeSet::new(),
            rejected: HashSet::new(),
            outbox: Vec::new(),
            cancelled: false,
        }
    }

    /// Whether it can take another delivery now. One channel slot is always kept free so a
    /// cancellation can be sent without waiting.
    pub(super) fn has_credit(&self) -> bool {
        if self.cancelled || self.spec.getter {
            return false;
        }
        let within_prefetch = self.spec.no_ack
            || self.spec.prefetch == 0
            || self.unacked.len() < self.spec.prefetch as usize;
        within_prefetch && self.events.has_room(1 + self.outbox.len())
    }

    /// Whether its filter (if any) lets `message` through.
    pub(super) fn accepts(&mut self, message: &QueuedMessage) -> bool {
        let seq = message.seq;
        let Some(filter) = &self.spec.filter else {
            return true;
        };
        if self.rejected.contains(&seq) {
            return false;
        }
        let pass = filter.matches(&message.message).unwrap_or_else(|error| {
            tracing::warn!(
                consumer = self.spec.tag.as_str(),
                routing_key = message.message.routing_key.as_str(),
                error = %error,
                backtrace = error.backtrace(),
                "filter failed; the message is not delivered to this consumer"
            );
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
    pub(super) fn deliver(&mut self, message: QueuedMessage, now: Instant) {
        self.deliver_as(message, now, self.spec.no_ack);
    }

    /// [`deliver`](Self::deliver), acknowledged at once when `no_ack` (a get chooses per call).
    pub(super) fn deliver_as(&mut self, mut message: QueuedMessage, now: Instant, no_ack: bool) {
        if self.spec.filter.is_some() {
            self.rejected.remove(&message.seq);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        let delivery = Delivery {
            tag,
            queued: message.clone(),
        };
        message.delivery_count += 1;
        self.outbox.push(delivery);
        if !no_ack {
            self.unacked.push(
                tag,
                Outstanding {
                    message,
                    delivered_at: now,
                },
            );
        }
    }

    /// Takes the deliveries made since the last call, instead of sending them (a get answers
    /// its caller directly).
    pub(super) fn take_outbox(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.outbox)
    }

    /// Sends the deliveries made since the last call, as one batch.
    pub(super) fn send_outbox(&mut self) {
        if !self.outbox.is_empty() {
            self.events.send(std::mem::take(&mut self.outbox));
        }
    }

    /// Takes `tag` (and with `multiple` every earlier tag) out of the unacked set.
    pub(super) fn settle(&mut self, tag: u64, multiple: bool) -> Settled {
        if multiple {
            let timed_out_rest = self.timed_out.split_off(&(tag.saturating_add(1)));
            let timed_out = std::mem::replace(&mut self.timed_out, timed_out_rest);
            Settled {
                messages: self.unacked.take_through(tag),
                timed_out: timed_out.len(),
            }
        } else {
            Settled {
                messages: self.unacked.remove(tag).into_iter().collect(),
                timed_out: usize::from(self.timed_out.remove(&tag)),
            }
        }
    }

    /// When its oldest unacked delivery was sent.
    pub(super) fn oldest_delivery(&self) -> Option<Instant> {
        self.unacked.oldest().map(|o| o.delivered_at)
    }

    /// Takes back the deliveries sent `timeout` or longer before `now`, oldest first.
    pub(super) fn take_timed_out(&mut self, now: Instant, timeout: Duration) -> Vec<QueuedMessage> {
        let mut taken = Vec::new();
        while let Some(oldest) = self.unacked.oldest() {
            if oldest.delivered_at + timeout > now {
                break;
            }
            let (tag, outstanding) = self.unacked.pop_oldest().expect("an oldest entry exists");
            taken.push(outstanding.message);
            if self.timed_out.len() >= MAX_REMEMBERED_TIMEOUTS {
                self.timed_out.pop_first();
            }
            self.timed_out.insert(tag);
            tracing::debug!(
                consumer = self.spec.tag.as_str(),
                tag,
                "delivery not acked within the consumer timeout; returned to the queue"
            );
        }
        taken
    }

    /// Its unacked messages, in delivery order, leaving none.
    pub(super) fn take_unacked(&mut self) -> Vec<QueuedMessage> {
        self.unacked.take_through(u64::MAX)
    }

    pub(super) fn cancel(&self, reason: Cancellation) {
        self.events.cancel(reason);
    }
}

/// A consumer's unacked deliveries in tag order. Tags only grow, so a delivery is appended at
/// the back, and the usual settlements (the oldest tag, or every tag up to one) come off the
/// front without searching or rebalancing a tree. Settling a tag out of order finds it by
/// binary search and closes the gap, at a cost bounded by the prefetch window.
#[derive(Debug, Default)]
pub(super) struct Unacked {
    entries: VecDeque<(u64, Outstanding)>,
}

impl Unacked {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds the delivery tagged `tag`, which is newer than every tag held.
    fn push(&mut self, tag: u64, outstanding: Outstanding) {
        debug_assert!(self.entries.back().is_none_or(|(last, _)| *last < tag));
        self.entries.push_back((tag, outstanding));
    }

    fn oldest(&self) -> Option<&Outstanding> {
        self.entries.front().map(|(_, o)| o)
    }

    fn pop_oldest(&mut self) -> Option<(u64, Outstanding)> {
        self.entries.pop_front()
    }

    fn remove(&mut self, tag: u64) -> Option<QueuedMessage> {
        if self.entries.front().is_some_and(|(first, _)| *first == tag) {
            return self.entries.pop_front().map(|(_, o)| o.message);
        }
        let at = self.entries.binary_search_by_key(&tag, |(t, _)| *t).ok()?;
        self.entries.remove(at).map(|(_, o)| o.message)
    }

    /// Removes every delivery tagged `tag` or older, oldest first.
    fn take_through(&mut self, tag: u64) -> Vec<QueuedMessage> {
        let end = self.entries.partition_point(|(t, _)| *t <= tag);
        self.entries.drain(..end).map(|(_, o)| o.message).collect()
    }
}

#[cfg(test)]
mod unacked_tests {
    use super::*;
    use crate::message::Message;

    fn outstanding(seq: u64) -> Outstanding {
        let mut message = QueuedMessage::new("".into(), Arc::new(Message::new("k", "b")));
        message.seq = seq;
        Outstanding {
            message,
            delivered_at: Instant::now(),
        }
    }

    fn seqs(messages: &[QueuedMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn settles_in_order_out_of_order_and_up_to_a_tag() {
        let mut unacked = Unacked::default();
        for tag in 1..=10 {
            unacked.push(tag, outstanding(tag * 100));
        }
        assert_eq!(unacked.remove(1).map(|m| m.seq), Some(100));
        assert_eq!(unacked.remove(5).map(|m| m.seq), Some(500));
        assert!(unacked.remove(5).is_none(), "settled already");
        assert!(unacked.remove(42).is_none(), "never delivered");
        assert_eq!(seqs(&unacked.take_through(7)), [200, 300, 400, 600, 700]);
        assert_eq!(unacked.len(), 3);
        assert_eq!(unacked.pop_oldest().map(|(tag, _)| tag), Some(8));
        assert_eq!(seqs(&unacked.take_through(u64::MAX)), [900, 1000]);
        assert_eq!(unacked.len(), 0);
        assert!(unacked.oldest().is_none());
    }
}
