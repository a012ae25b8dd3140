//! The channel between a queue and one consumer's stream: each dispatch sends everything it
//! delivered to that consumer as one batch, so a busy queue pays for the channel (and for
//! waking the stream's task) once per dispatch rather than once per message.
//!
//! The channel counts deliveries, not batches: the queue may hand a consumer more only while
//! fewer than `limit` of its deliveries wait in the channel (with the prefetch window, this
//! bounds what a consumer that stopped reading holds in broker memory). One slot is always
//! free for a cancellation, so [`DeliverySender::cancel`] never waits and never fails for lack
//! of room.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::Cancellation;
use super::consumer::{Delivery, DeliveryEvent};

/// Makes a channel holding at most `limit` deliveries (and one cancellation).
pub fn delivery_channel(limit: usize) -> (DeliverySender, DeliveryReceiver) {
    let limit = limit.max(1);
    let (events, receiver) = mpsc::channel(limit + 1);
    let waiting = Arc::new(AtomicUsize::new(0));
    (
        DeliverySender {
            events,
            waiting: Arc::clone(&waiting),
            limit,
        },
        DeliveryReceiver { receiver, waiting },
    )
}

/// The queue's end.
#[derive(Debug)]
pub struct DeliverySender {
    events: mpsc::Sender<DeliveryEvent>,
    /// Deliveries sent and not yet taken by the receiver.
    waiting: Arc<AtomicUsize>,
    limit: usize,
}

impl DeliverySender {
    /// Whether `more` deliveries beyond those already waiting would fit.
    pub(super) fn has_room(&self, more: usize) -> bool {
        self.waiting.load(Ordering::Acquire) + more < self.limit + 1 && !self.events.is_closed()
    }

    /// Sends one dispatch's deliveries. The caller checked [`has_room`](Self::has_room) for
    /// them under the queue lock (the only place deliveries are sent from), so this fails
    /// only when the receiver is gone; the deliveries then stay unacked, to come back.
    pub(super) fn send(&self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let count = deliveries.len();
        self.waiting.fetch_add(count, Ordering::AcqRel);
        if self
            .events
            .try_send(DeliveryEvent::Deliver(deliveries))
            .is_err()
        {
            self.waiting.fetch_sub(count, Ordering::AcqRel);
        }
    }

    pub(super) fn cancel(&self, reason: Cancellation) {
        let _ = self.events.try_send(DeliveryEvent::Cancelled(reason));
    }
}

/// The consumer stream's end.
#[derive(Debug)]
pub struct DeliveryReceiver {
    receiver: mpsc::Receiver<DeliveryEvent>,
    waiting: Arc<AtomicUsize>,
}

impl DeliveryReceiver {
    /// The next batch or cancellation; `None` once the queue has dropped the consumer.
    pub async fn recv(&mut self) -> Option<DeliveryEvent> {
        let event = self.receiver.recv().await?;
        Some(self.taken(event))
    }

    /// A batch or cancellation already waiting, without waiting for one.
    pub fn try_recv(&mut self) -> Option<DeliveryEvent> {
        let event = self.receiver.try_recv().ok()?;
        Some(self.taken(event))
    }

    fn taken(&self, event: DeliveryEvent) -> DeliveryEvent {
        if let DeliveryEvent::Deliver(deliveries) = &event {
            self.waiting.fetch_sub(deliveries.len(), Ordering::AcqRel);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::queue::QueuedMessage;

    fn delivery(tag: u64) -> Delivery {
        Delivery {
            tag,
            queued: QueuedMessage::new("".into(), Arc::new(Message::new("k", "b"))),
        }
    }

    #[test]
    fn room_counts_deliveries_and_frees_as_the_receiver_takes_them() {
        let (sender, mut receiver) = delivery_channel(3);
        assert!(sender.has_room(3));
        assert!(!sender.has_room(4));
        sender.send(vec![delivery(1), delivery(2)]);
        assert!(sender.has_room(1));
        assert!(!sender.has_room(2));
        sender.send(vec![delivery(3)]);
        assert!(!sender.has_room(1));
        // The cancellation slot is kept even when full.
        sender.cancel(Cancellation::QueueDeleted);
        match receiver.try_recv() {
            Some(DeliveryEvent::Deliver(batch)) => assert_eq!(batch.len(), 2),
            other => panic!("expected a batch, got {other:?}"),
        }
        assert!(sender.has_room(2));
        assert!(matches!(
            receiver.try_recv(),
            Some(DeliveryEvent::Deliver(_))
        ));
        assert!(matches!(
            receiver.try_recv(),
            Some(DeliveryEvent::Cancelled(Cancellation::QueueDeleted))
        ));
        assert!(receiver.try_recv().is_none());
        assert!(sender.has_room(3));
    }

    #[test]
    fn a_closed_receiver_leaves_no_room_and_sends_are_dropped() {
        let (sender, receiver) = delivery_channel(2);
        drop(receiver);
        assert!(!sender.has_room(1));
        sender.send(vec![delivery(1)]);
    }
}
