//! Publishing through a session: a batch of messages is checked, routed and enqueued in one go,
//! and each message gets an [`Outcome`], final once [`settle_durability`] has seen its records
//! on disk.
//!
//! Checks every protocol gets: the size limit counts every byte a message carries (body, key,
//! headers, property strings; review finding 7), a routing key is at most
//! [`MAX_ROUTING_KEY_BYTES`] (each frontend holds it to its own protocol's limit first), a
//! `user_id` property must name the authenticated user (RabbitMQ's rule, so consumers can trust
//! it; on a broker without users, where nobody is authenticated, it is passed on unchecked),
//! a publisher's `x-death*` headers are dropped
//! (the trail is the broker's) and the trail always has room, a delay header must parse, and a
//! persistent message bound for a durable queue is refused while the disk is below its
//! watermark. A message routed to several queues stays in those that accepted it even when one
//! refused it, and the publisher hears of the refusal (RabbitMQ's rule). A message routed to no
//! queue is `Returned` when the publisher asked (`mandatory`), else accepted and dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::error::BrokerError;
use crate::message::Message;
use crate::queue::{self, QueuedMessage};
use crate::store::{LsnStatus, QueueLog, Store, wait_durable};
use crate::topology::Topology;

/// The longest routing key the core takes (MQTT topics may be this long); frontends whose
/// protocol allows less check that first.
pub const MAX_ROUTING_KEY_BYTES: usize = 65_535;

/// One message to publish.
#[derive(Debug)]
pub struct PublishRequest {
    pub exchange: String,
    pub message: Message,
    /// Return the message when no queue takes it (AMQP's `mandatory`).
    pub mandatory: bool,
}

/// How one publish ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Every queue it was routed to holds it (or none was bound and it was not mandatory).
    Accepted,
    /// Routed to no queue, and the publisher asked to hear of that.
    Returned,
    Refused(BrokerError),
}

/// A publish's outcome, and the log positions that must be durable before it is final.
#[derive(Debug)]
pub struct PendingPublish {
    pub outcome: Outcome,
    durable: Vec<(Arc<QueueLog>, u64)>,
}

impl PendingPublish {
    /// A publish refused before it reached the session (a frontend's own protocol limits).
    pub fn refused(error: BrokerError) -> PendingPublish {
        PendingPublish {
            outcome: Outcome::Refused(error),
            durable: Vec::new(),
        }
    }
}

/// A publisher: one per publishing stream or channel. Remembers the exchange it last published
/// to, so the queued copies of its messages share one name allocation.
#[derive(Debug)]
pub struct Publisher {
    topology: Arc<Topology>,
    max_message_bytes: usize,
    /// The authenticated user, `None` on a broker without users.
    user: Option<String>,
    last_exchange: Option<Arc<str>>,
}

/// What a publish became after its checks and routing.
enum Prepared {
    /// Nothing to enqueue: refused, or routed to no queue.
    Done(Outcome),
    /// To be enqueued into every one of `queues`.
    Enqueue {
        queues: Vec<Arc<queue::Queue>>,
        message: QueuedMessage,
    },
}

impl Publisher {
    pub(super) fn new(
        topology: Arc<Topology>,
        max_message_bytes: usize,
        user: Option<String>,
    ) -> Publisher {
        Publisher {
            topology,
            max_message_bytes,
            user,
            last_exchange: None,
        }
    }

    /// Checks and routes a batch, then enqueues it queue by queue: each queue takes its share of
    /// the batch, in publish order, under one lock and with one dispatch (a fanout message would
    /// otherwise lock and dispatch every queue once per message). Answers one
    /// [`PendingPublish`] per request, in order. Blocks on routing plugins and may write to the
    /// page cache: call it off the async workers where plugins may run.
    pub fn publish_batch(&mut self, batch: Vec<PublishRequest>) -> Vec<PendingPublish> {
        let publishes = batch.len();
        let mut pending: Vec<PendingPublish> = Vec::with_capacity(publishes);
        // Per queue: the queue, and its messages with the index of their publish in `pending`.
        let mut shares: Vec<(Arc<queue::Queue>, Vec<usize>, Vec<QueuedMessage>)> = Vec::new();
        let mut share_of: HashMap<*const queue::Queue, usize> = HashMap::new();
        for request in batch {
            let at = pending.len();
            let outcome = match self.prepare(request) {
                Prepared::Done(outcome) => outcome,
                Prepared::Enqueue { queues, message } => {
                    for queue in queues {
                        let share = *share_of.entry(Arc::as_ptr(&queue)).or_insert_with(|| {
                            // Room for every publish left in the batch (a fanout queue takes
                            // them all): a share then never grows.
                            let room = publishes - at;
                            shares.push((
                                Arc::clone(&queue),
                                Vec::with_capacity(room),
                                Vec::with_capacity(room),
                            ));
                            shares.len() - 1
                        });
                        shares[share].1.push(at);
                        shares[share].2.push(message.clone());
                    }
                    Outcome::Accepted
                }
            };
            pending.push(PendingPublish {
                outcome,
                durable: Vec::new(),
            });
        }
        let mut full: HashMap<usize, Vec<String>> = HashMap::new();
        for (queue, publishes, messages) in shares {
            let enqueued = queue.enqueue(messages);
            for position in enqueued.refused {
                full.entry(publishes[position])
                    .or_default()
                    .push(queue.name().to_owned());
            }
            if !enqueued.durable_lsns.is_empty()
                && let Some(log) = queue.log()
            {
                for (position, lsn) in enqueued.durable_lsns {
                    pending[publishes[position]]
                        .durable
                        .push((Arc::clone(&log), lsn));
                }
            }
        }
        for (at, queues) in full {
            pending[at].outcome = Outcome::Refused(BrokerError::QueueFull { queues });
        }
        pending
    }

    fn prepare(&mut self, request: PublishRequest) -> Prepared {
        let refused = |error| Prepared::Done(Outcome::Refused(error));
        let PublishRequest {
            exchange,
            mut message,
            mandatory,
        } = request;
        let limit = self.max_message_bytes;
        if message.body.len() > limit {
            return refused(BrokerError::MessageTooLarge {
                size: message.body.len(),
                limit,
            });
        }
        if message.routing_key.len() > MAX_ROUTING_KEY_BYTES {
            return refused(BrokerError::invalid(format!(
                "routing key is {} bytes long, at most {MAX_ROUTING_KEY_BYTES} are allowed",
                message.routing_key.len()
            )));
        }
        if let (Some(claimed), Some(user)) = (&message.properties.user_id, &self.user)
            && claimed != user
        {
            return refused(BrokerError::precondition(format!(
                "user_id property set to {claimed:?} but the connection authenticated as {user:?}"
            )));
        }
        queue::without_publisher_trail(&mut message.headers);
        if message.headers.len() > queue::MAX_PUBLISHED_HEADERS {
            return refused(BrokerError::invalid(format!(
                "{} headers; a published message may have at most {} (the rest are kept for the dead-letter trail)",
                message.headers.len(),
                queue::MAX_PUBLISHED_HEADERS
            )));
        }
        // A dead-lettered copy must still encode: leave the trail room within the table bounds
        // (a frontend's decoder holds these already; the session does not count on it).
        let values = message.headers.items();
        if values > queue::MAX_PUBLISHED_HEADER_VALUES
            || message.headers.depth() >= switchyard_protocol::MAX_VALUE_DEPTH
        {
            return refused(BrokerError::invalid(format!(
                "headers hold {values} values nested {} deep; a published message may have at most {} values (the rest are kept for the dead-letter trail) nested less than {} deep",
                message.headers.depth(),
                queue::MAX_PUBLISHED_HEADER_VALUES,
                switchyard_protocol::MAX_VALUE_DEPTH
            )));
        }
        // Everything the message carries counts, not only its body (review finding 7); and so
        // a delivery of it always fits a frame (see `BrokerConfig::validate`).
        let size = message.size_bytes();
        if size > limit {
            return refused(BrokerError::MessageTooLarge { size, limit });
        }
        let visible_at = match queue::visible_at(&message, Instant::now(), SystemTime::now()) {
            Ok(at) => at,
            Err(error) => return refused(error),
        };
        let routed = match self.topology.route(&exchange, &message) {
            Ok(routed) => routed,
            Err(error) => return refused(error),
        };
        if routed.queues.is_empty() {
            return Prepared::Done(if mandatory {
                Outcome::Returned
            } else {
                Outcome::Accepted
            });
        }
        if message.properties.persistent
            && let Some(store) = self.topology.store()
            && routed.queues.iter().any(|q| q.properties().durable)
            && let Err(refusal) = store.check_disk()
        {
            return refused(BrokerError::storage(refusal.to_string()));
        }
        let (exchange, message, visible_at) = match routed.dead_lettered {
            // A routing fault dead-lettered it: it is no longer the publisher's delayed message.
            Some((target, letter)) => (Arc::<str>::from(target), Arc::new(letter), None),
            None => (self.exchange_name(exchange), Arc::new(message), visible_at),
        };
        Prepared::Enqueue {
            queues: routed.queues,
            message: QueuedMessage::new(exchange, message).visible_at(visible_at),
        }
    }

    /// The exchange's name, shared with the previous publish's when it is the same.
    fn exchange_name(&mut self, exchange: String) -> Arc<str> {
        match &self.last_exchange {
            Some(last) if **last == *exchange => Arc::clone(last),
            _ => {
                let name = Arc::<str>::from(exchange);
                self.last_exchange = Some(Arc::clone(&name));
                name
            }
        }
    }
}

/// Makes publish outcomes final: held by whoever answers the publisher (a writer task, say),
/// apart from the [`Publisher`] that keeps routing meanwhile.
#[derive(Debug, Clone)]
pub struct DurabilityWait {
    store: Option<Arc<Store>>,
}

impl Publisher {
    /// What waits for this publisher's messages to be on disk.
    pub fn durability(&self) -> DurabilityWait {
        DurabilityWait {
            store: self.topology.store().cloned(),
        }
    }
}

impl DurabilityWait {
    /// Waits until the log positions of `batch` are durable or lost; a publish whose record
    /// was lost becomes a refusal. Each publish carries its own record's LSN: the wait asks
    /// only for the newest per log (a log becomes durable in order), but a write can fail for
    /// one chunk and succeed for the next, so where a log lost anything within the batch's
    /// range each publish is checked on its own (review finding 4).
    pub async fn settle<'a>(&self, batch: impl IntoIterator<Item = &'a mut PendingPublish>) {
        settle_durability(self.store.as_deref(), batch).await;
    }
}

async fn settle_durability<'a>(
    store: Option<&Store>,
    batch: impl IntoIterator<Item = &'a mut PendingPublish>,
) {
    let batch: Vec<&mut PendingPublish> = batch.into_iter().collect();
    // Per log: the oldest and the newest LSN in the batch.
    let mut ranges: Vec<(Arc<QueueLog>, u64, u64)> = Vec::new();
    for (log, lsn) in batch.iter().flat_map(|p| p.durable.iter()) {
        match ranges.iter_mut().find(|(l, ..)| Arc::ptr_eq(l, log)) {
            Some((_, oldest, newest)) => {
                *oldest = (*oldest).min(*lsn);
                *newest = (*newest).max(*lsn);
            }
            None => ranges.push((Arc::clone(log), *lsn, *lsn)),
        }
    }
    let Some(store) = store else {
        return;
    };
    if ranges.is_empty() {
        return;
    }
    let newest: Vec<(Arc<QueueLog>, u64)> = ranges
        .iter()
        .map(|(log, _, newest)| (Arc::clone(log), *newest))
        .collect();
    wait_durable(store.progress(), &newest).await;
    let damaged: Vec<&Arc<QueueLog>> = ranges
        .iter()
        .filter(|(log, oldest, newest)| log.lost_between(*oldest, *newest))
        .map(|(log, ..)| log)
        .collect();
    if damaged.is_empty() {
        return;
    }
    for pending in batch {
        let lost = pending.durable.iter().any(|(log, lsn)| {
            damaged.iter().any(|d| Arc::ptr_eq(d, log)) && log.status(*lsn) == LsnStatus::Lost
        });
        if lost {
            pending.outcome = Outcome::Refused(BrokerError::storage(
                "writing the message to disk failed; it may or may not be delivered",
            ));
        }
    }
}
