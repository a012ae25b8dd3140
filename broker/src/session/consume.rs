//! Consuming through a session: a [`Subscription`] is one consumer on one queue. Deliveries
//! arrive on the channel given at subscribe; the frontend writes them in its protocol and
//! settles them here (ack, nack, reject with or without requeue, credit changes), cancels
//! (after which it may still settle what it holds), syncs (settlements made durable) and
//! closes (what is still unacked goes back to the queue).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::BrokerError;
use crate::queue::{ConsumerId, ConsumerSpec, DeliverySender, Queue, Settlement, SubscribeRefusal};
use crate::topology::Topology;

static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

/// What a consumer asks for.
#[derive(Debug)]
pub struct SubscribeOptions {
    pub queue: String,
    /// Empty: the broker picks one.
    pub consumer_tag: String,
    /// Unacked deliveries at most (0: no limit).
    pub prefetch: u32,
    /// Deliveries count as acked when sent.
    pub no_ack: bool,
    /// The only consumer of the queue while it lasts.
    pub exclusive: bool,
    /// A filter plugin and its expression: only matching messages are delivered.
    pub filter: Option<(String, String)>,
    /// Where deliveries go.
    pub deliveries: DeliverySender,
}

/// One consumer. Call [`close`](Self::close) when it ends.
#[derive(Debug)]
pub struct Subscription {
    topology: Arc<Topology>,
    queue: Arc<Queue>,
    consumer: ConsumerId,
    tag: String,
}

impl Subscription {
    /// Subscribes (compiling the filter, if any). Blocks on the filter plugin.
    pub(super) fn open(
        topology: Arc<Topology>,
        connection: u64,
        options: SubscribeOptions,
    ) -> Result<Subscription, BrokerError> {
        let queue = topology.queue(&options.queue, connection)?;
        let filter = match options.filter {
            Some((plugin, expression)) => {
                let plugin = topology
                    .plugins()
                    .filter(&plugin)
                    .map_err(BrokerError::from_admin_plugin_error)?;
                let compiled = plugin
                    .compile(&expression)
                    .map_err(BrokerError::from_admin_plugin_error)?;
                Some(Arc::new(compiled))
            }
            None => None,
        };
        let tag = if options.consumer_tag.is_empty() {
            format!(
                "sy.ctag-{connection}-{}",
                NEXT_TAG.fetch_add(1, Ordering::Relaxed)
            )
        } else {
            options.consumer_tag
        };
        let spec = ConsumerSpec {
            tag: tag.clone(),
            prefetch: options.prefetch,
            no_ack: options.no_ack,
            exclusive: options.exclusive,
            filter,
            getter: false,
        };
        let consumer =
            queue
                .subscribe(spec, options.deliveries)
                .map_err(|refusal| match refusal {
                    SubscribeRefusal::QueueDeleted => BrokerError::not_found("queue", queue.name()),
                    SubscribeRefusal::HeldExclusively => BrokerError::ExclusiveConsumer {
                        queue: queue.name().to_owned(),
                        reason: "an exclusive consumer holds it",
                    },
                    SubscribeRefusal::HasConsumers => BrokerError::ExclusiveConsumer {
                        queue: queue.name().to_owned(),
                        reason: "an exclusive consumer was asked for and it has consumers",
                    },
                })?;
        Ok(Subscription {
            topology,
            queue,
            consumer,
            tag,
        })
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Applies settlements in order under one queue lock; answers, per settlement, how many
    /// deliveries it settled (0: its tag was unknown).
    pub fn settle(&self, settlements: &[Settlement]) -> Vec<usize> {
        self.queue.settle(self.consumer, settlements)
    }

    /// Delivers what the consumer can take now (after the frontend drained its channel).
    pub fn dispatch(&self) {
        self.queue.dispatch();
    }

    /// Rejects deliveries the frontend could not send (too large for its frames), without
    /// requeueing: at the head of the queue such a message would be offered again and again
    /// and wedge every consumer (review finding 6). Dead-lettered, or dropped without a
    /// dead-letter exchange.
    pub fn refuse_unsendable(&self, tags: &[u64]) {
        tracing::error!(
            queue = self.queue.name(),
            count = tags.len(),
            "deliveries too large for a frame were rejected (dead-lettered or dropped)"
        );
        let settlements: Vec<Settlement> = tags
            .iter()
            .map(|&tag| Settlement::Nack {
                tag,
                multiple: false,
                requeue: false,
            })
            .collect();
        self.queue.settle(self.consumer, &settlements);
    }

    /// Stops deliveries; what was handed over stays the client's to settle.
    pub fn cancel(&self) {
        self.queue.cancel(self.consumer);
    }

    /// After a cancel: deletes an auto-delete queue that has no consumer left.
    pub fn after_cancel(&self) {
        self.topology.consumer_left(&self.queue);
    }

    /// Where the queue's log is now: a later [`synced`](Self::synced) covers every settlement
    /// after it.
    pub fn sync_point(&self) -> u64 {
        self.queue.log().map_or(0, |log| log.appended_lsn())
    }

    /// Waits until every settlement since `since` (a [`sync_point`](Self::sync_point)) is on
    /// disk; answers the new sync point, or an error if any of it was lost.
    pub async fn synced(&self, since: u64) -> Result<u64, BrokerError> {
        let (Some(log), Some(store)) = (self.queue.log(), self.topology.store()) else {
            return Ok(since);
        };
        let lsn = log.appended_lsn();
        // Every settlement since the last sync must be on disk, not only the newest record: a
        // write can fail for one chunk and not the next.
        let durable = crate::store::wait_durable(store.progress(), &[(Arc::clone(&log), lsn)])
            .await
            && !log.lost_between(since, lsn);
        if durable {
            Ok(lsn)
        } else {
            Err(BrokerError::storage("recording settlements on disk failed"))
        }
    }

    /// Ends the consumer: its unacked deliveries return to the queue, and an auto-delete queue
    /// left without consumers goes.
    pub fn close(self) {
        self.queue.unsubscribe(self.consumer);
        self.topology.consumer_left(&self.queue);
    }
}
