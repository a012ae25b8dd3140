//! Taking single messages on request (AMQP's `basic.get`): a [`Getter`] is a session's
//! passive consumer of one queue. It is never dispatched to and does not count as a consumer
//! (a queue's exclusive consumer does not stop it, and it keeps no auto-delete queue alive);
//! what it takes unacknowledged is settled through it like a subscription's deliveries, and
//! goes back to the queue when it closes.

use std::sync::Arc;

use crate::error::BrokerError;
use crate::queue::{
    ConsumerId, ConsumerSpec, Delivery, DeliveryReceiver, Queue, Settlement, SubscribeRefusal,
    delivery_channel,
};
use crate::topology::Topology;

/// A message taken by [`Getter::get`].
#[derive(Debug)]
pub struct Got {
    pub delivery: Delivery,
    /// Ready messages left in the queue (AMQP's `message-count`).
    pub remaining: u64,
}

/// One session's gets from one queue. Call [`close`](Self::close) when the session ends.
#[derive(Debug)]
pub struct Getter {
    queue: Arc<Queue>,
    consumer: ConsumerId,
    /// Where the queue would say it was deleted; gets need no other events.
    _events: DeliveryReceiver,
}

impl Getter {
    pub(super) fn open(
        topology: &Topology,
        connection: u64,
        queue: &str,
    ) -> Result<Getter, BrokerError> {
        let queue = topology.queue(queue, connection)?;
        let (events, receiver) = delivery_channel(4);
        let spec = ConsumerSpec {
            tag: format!("sy.get-{connection}"),
            prefetch: 0,
            no_ack: false,
            exclusive: false,
            filter: None,
            getter: true,
        };
        let consumer = queue
            .subscribe(spec, events)
            .map_err(|refusal| match refusal {
                SubscribeRefusal::QueueDeleted => BrokerError::not_found("queue", queue.name()),
                // A getter is not held back by consumers.
                SubscribeRefusal::HeldExclusively | SubscribeRefusal::HasConsumers => {
                    BrokerError::not_found("queue", queue.name())
                }
            })?;
        Ok(Getter {
            queue,
            consumer,
            _events: receiver,
        })
    }

    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// The next ready message, if any; acknowledged at once when `no_ack`, else held until
    /// settled. May dead-letter expired messages on the way (routing them): call it off the
    /// async workers, as other queue operations.
    pub fn get(&self, no_ack: bool) -> Option<Got> {
        self.queue
            .get(self.consumer, no_ack)
            .map(|(delivery, remaining)| Got {
                delivery,
                remaining,
            })
    }

    /// Settles taken messages by their delivery tags; answers, per settlement, how many it
    /// settled (0: unknown tag).
    pub fn settle(&self, settlements: &[Settlement]) -> Vec<usize> {
        self.queue.settle(self.consumer, settlements)
    }

    /// Ends the getter: what it took and did not settle returns to the queue. (Not being a
    /// consumer, its end deletes no auto-delete queue.)
    pub fn close(self) {
        self.queue.unsubscribe(self.consumer);
    }
}
