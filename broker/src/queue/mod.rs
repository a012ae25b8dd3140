//! Queues: the messages waiting for consumers, the deliveries awaiting acknowledgement, the
//! consumers with their credit, dispatch between them, and the queue policies (TTL,
//! dead-lettering, length limits, delivery limit, consumer timeout, delayed delivery,
//! deduplication, priorities — see `docs/queues.md`).
//!
//! One [`Queue`] is one mutex-protected `QueueState`; every operation takes the lock, changes
//! the state and then dispatches: while a ready message and a consumer with credit exist, the
//! message goes to the next such consumer in round-robin order whose filter (if any) accepts it.
//! Delivery is at-least-once: a message leaves the queue only when acked (or when delivered to
//! a no-ack consumer); a nack with requeue, a cancelled consumer, a lost connection or the
//! consumer timeout puts its unacked messages back at the head of the queue, marked
//! redelivered.
//!
//! Lock order: a queue never holds its lock while calling out of the queue. Dead letters are
//! collected under the lock and routed (through the [`QueueHost`], i.e. the topology) after
//! it is released; only then are they removed from the source. Routing them is iterative, one
//! hop at a time (`dead_letter_work.rs`), so no chain of dead-letterings deepens the stack.
//! The topology may call into a queue while holding its own lock, but only operations that
//! never dead-letter (declare, touch, delete); the queue never calls the topology while
//! holding its own.
//!
//! Time: one broker-wide [`QueueTimer`] thread wakes each queue at its next deadline.
//!
//! Filters and routing plugins are WebAssembly calls that block for up to their deadline, so
//! operations that may dispatch or dead-letter must run off the async runtime's worker threads
//! (the server wraps them in `block_in_place`; the timer is its own thread).
//!
//! The ready list lives in memory (`ready.rs`). A durable queue also writes to its log in the
//! store (`durable.rs`), hooked into `QueueState::admit` (persistent messages as they arrive),
//! `QueueState::remove_for_good` (messages leaving), and dispatch (deliveries); its ready list
//! is kept in memory only up to a window, the rest read back from the log when due.

mod consumer;
mod dead_letter;
mod dead_letter_work;
mod dedup;
mod delay;
mod delivery_channel;
mod durable;
mod memory;
mod policy;
mod ready;
mod state;
#[cfg(test)]
mod tests;
mod timer;

pub use consumer::{ConsumerId, ConsumerSpec, Delivery, DeliveryEvent};
pub use dead_letter::{
    DeathPlace, DeathReason, MAX_DEATHS, MAX_PUBLISHED_HEADER_VALUES, MAX_PUBLISHED_HEADERS,
    closes_cycle, dead_lettered, without_publisher_trail,
};
pub use dead_letter_work::MAX_DEAD_LETTER_HOPS;
pub use delay::visible_at;
pub use delivery_channel::{DeliveryReceiver, DeliverySender, delivery_channel};
pub use durable::Window;
pub use memory::MemoryGauge;
pub use policy::{KNOWN_ARGUMENTS, Overflow, QueuePolicy};
pub use state::{Admission, QueueCounts};
pub use timer::QueueTimer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};

use crate::message::{Message, Table};
use crate::store::{QueueLog, Recovered};
use durable::Durability;
use state::QueueState;

/// A message as it sits in a queue.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// The exchange it was published to.
    pub exchange: Arc<str>,
    pub message: Arc<Message>,
    /// Whether it was delivered before and came back.
    pub redelivered: bool,
    /// How many times it has been delivered.
    pub delivery_count: u32,
    /// Its number in this queue, given on arrival, kept through redeliveries.
    pub seq: u64,
    /// A delayed message becomes visible at this time.
    pub not_before: Option<Instant>,
    /// When it expires (set when it becomes ready, from the queue's and its own TTL).
    pub expires_at: Option<Instant>,
    /// Whether it is in the queue's log (under `seq`).
    pub stored: bool,
}

impl QueuedMessage {
    pub fn new(exchange: Arc<str>, message: Arc<Message>) -> Self {
        QueuedMessage {
            exchange,
            message,
            redelivered: false,
            delivery_count: 0,
            seq: 0,
            not_before: None,
            expires_at: None,
            stored: false,
        }
    }

    /// The same message, invisible until `at` (if given).
    pub fn visible_at(mut self, at: Option<Instant>) -> Self {
        self.not_before = at;
        self
    }

    fn body_len(&self) -> u64 {
        self.message.body.len() as u64
    }

    /// What the message counts against the memory watermark: all it carries, not only its
    /// body (review finding 7).
    fn memory_len(&self) -> u64 {
        self.message.size_bytes() as u64
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A queue's declared properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProperties {
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: Table,
}

/// Why a consumer's subscription ended without it asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    QueueDeleted,
}

/// Why a queue refused a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeRefusal {
    QueueDeleted,
    /// An exclusive consumer holds the queue.
    HeldExclusively,
    /// An exclusive subscription was asked for, and the queue has consumers.
    HasConsumers,
}

/// What a queue needs from the broker around it. The topology implements it; a queue calls
/// it only with its own lock released.
pub trait QueueHost: Send + Sync + std::fmt::Debug {
    /// Publishes a dead-lettered `message` to `exchange` and enqueues it where it routes,
    /// except in queues where it would close a dead-letter cycle. Returns the log positions
    /// that make it durable in the durable queues that took it, or `Err` when routing failed
    /// for a reason that may pass (the exchange's plugin faulted or is quarantined): the
    /// source keeps the message and tries again later. An exchange that does not exist, or
    /// routes the message nowhere, drops it (as in RabbitMQ).
    #[expect(
        clippy::result_unit_err,
        reason = "the only failure is 'try again later'"
    )]
    fn dead_letter(
        &self,
        exchange: &str,
        message: Message,
    ) -> Result<Vec<(Arc<QueueLog>, u64)>, ()>;

    /// Blocks until those log positions are durable or lost (the store's fsync policy);
    /// false when any was lost.
    fn wait_durable(&self, logs: &[(Arc<QueueLog>, u64)]) -> bool;

    /// `queue` has been unused for its `x-expires`: delete it if it still is.
    fn queue_unused(&self, queue: &Queue);
}

/// What every queue of a broker shares: the memory gauge, the timer and the host.
#[derive(Debug)]
pub struct QueueContext {
    memory: Arc<MemoryGauge>,
    timer: QueueTimer,
    host: Weak<dyn QueueHost>,
}

impl QueueContext {
    /// Starts the timer thread; `host` receives dead letters and expired queues.
    pub fn new(host: Weak<dyn QueueHost>) -> Self {
        QueueContext {
            memory: Arc::default(),
            timer: QueueTimer::start(),
            host,
        }
    }

    /// Bytes of message bodies held in all queues.
    pub fn memory(&self) -> &MemoryGauge {
        &self.memory
    }

    pub fn timer(&self) -> &QueueTimer {
        &self.timer
    }
}

/// One settlement of a consumer's deliveries, for [`Queue::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
    Prefetch(u32),
}

/// What a queue did with the messages of one [`Queue::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Enqueued {
    pub accepted: usize,
    pub duplicates: usize,
    /// Refused by a length limit (`reject-publish`, `reject-publish-dlx`): their positions
    /// among the messages offered, in order.
    pub refused: Vec<usize>,
    /// For each persistent message written to the log (or a duplicate of one): its position
    /// among the messages offered and the LSN that makes it durable, in order.
    pub durable_lsns: Vec<(usize, u64)>,
}

#[derive(Debug)]
pub struct Queue {
    name: String,
    /// The destination handle routing plugins answer for this queue.
    id: u32,
    properties: QueueProperties,
    policy: QueuePolicy,
    context: Arc<QueueContext>,
    /// This queue, for the timer to hold weakly.
    this: Weak<Queue>,
    state: Mutex<QueueState>,
    next_consumer: AtomicU64,
}

impl Queue {
    /// A queue governed by `policy` (parsed from `properties.arguments`).
    pub fn new(
        name: String,
        id: u32,
        properties: QueueProperties,
        policy: QueuePolicy,
        context: Arc<QueueContext>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Queue {
            name,
            id,
            properties,
            state: Mutex::new(QueueState::new(Arc::clone(&context), policy.clone())),
            policy,
            context,
            this: this.clone(),
            next_consumer: AtomicU64::new(1),
        })
    }

    /// A durable queue over its log, holding what recovery found.
    #[expect(clippy::too_many_arguments, reason = "a queue is made of these parts")]
    pub fn durable(
        name: String,
        id: u32,
        properties: QueueProperties,
        policy: QueuePolicy,
        context: Arc<QueueContext>,
        log: Arc<QueueLog>,
        recovered: Recovered,
        window: Window,
    ) -> Arc<Self> {
        let queue = Queue::new(name, id, properties, policy, context);
        // The topology declares a recovered queue under its lock, so this must not route:
        // recovery applies no limit and expires nothing, and so makes no dead letters.
        let mut state = queue.state.lock();
        state.restore(Durability::new(log, window), recovered, Instant::now());
        debug_assert!(state.dead_letters.is_empty(), "recovery made dead letters");
        drop(state);
        queue.touch();
        queue
    }

    /// The queue's log, when it is durable.
    pub fn log(&self) -> Option<Arc<QueueLog>> {
        self.state.lock().log().cloned()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn properties(&self) -> &QueueProperties {
        &self.properties
    }

    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    pub fn counts(&self) -> QueueCounts {
        self.state.lock().counts()
    }

    /// Runs `operation` under the lock, then asks the timer for the next deadline, releases
    /// the lock and routes the dead letters the operation produced.
    fn operate<R>(&self, operation: impl FnOnce(&mut QueueState, Instant) -> R) -> R {
        let now = Instant::now();
        let mut state = self.state.lock();
        let result = operation(&mut state, now);
        self.finish(state);
        result
    }

    fn finish(&self, mut state: MutexGuard<'_, QueueState>) {
        if !state.deleted
            && state.may_have_deadlines()
            && let Some(at) = state.next_deadline()
            && state.scheduled.is_none_or(|scheduled| at < scheduled)
        {
            state.scheduled = Some(at);
            self.context.timer.schedule(at, self.this.clone());
        }
        let letters = std::mem::take(&mut state.dead_letters);
        drop(state);
        if letters.is_empty() {
            return;
        }
        match self.this.upgrade() {
            Some(this) => dead_letter_work::route(this, letters),
            // Only while the last handle is dropped: nobody can consume them any more.
            None => {
                tracing::warn!(queue = %self.name, count = letters.len(), "dead letters of a queue being dropped are lost")
            }
        }
    }

    /// Lets go of letters that went round a dead-letter loop [`MAX_DEAD_LETTER_HOPS`] times
    /// within one operation, instead of routing them again.
    fn drop_looping_letters(&self, letters: Vec<(QueuedMessage, DeathReason)>) {
        tracing::warn!(
            queue = %self.name,
            count = letters.len(),
            hops = MAX_DEAD_LETTER_HOPS,
            "dead letters dropped: they went round a dead-letter loop"
        );
        let dropped: Vec<QueuedMessage> = letters.into_iter().map(|(message, _)| message).collect();
        self.state
            .lock()
            .remove_for_good(&dropped, state::Removal::Dropped(DeathReason::MaxLen));
    }

    /// Routes dead letters to the dead-letter exchange, then lets go of them: at-least-once,
    /// the source holds a message until its target does — for a persistent message, until the
    /// durable targets have it on disk, so a crash in between can duplicate it, never lose it.
    fn route_dead_letters(&self, letters: Vec<(QueuedMessage, DeathReason)>) {
        if letters.is_empty() {
            return;
        }
        let exchange = self
            .policy
            .dead_letter_exchange
            .as_deref()
            .expect("dead letters are only collected with a dead-letter exchange");
        let Some(host) = self.context.host.upgrade() else {
            // The broker is going away: the messages stay where they are.
            return;
        };
        let mut routed = Vec::with_capacity(letters.len());
        let mut durable = Vec::new();
        let mut failed = Vec::new();
        for (queued, reason) in letters {
            let message = dead_lettered(
                &queued.message,
                reason,
                DeathPlace {
                    queue: &self.name,
                    exchange: &queued.exchange,
                },
                self.policy.dead_letter_routing_key.as_deref(),
            );
            match host.dead_letter(exchange, message) {
                Ok(positions) => {
                    durable.extend(positions);
                    routed.push((queued, reason));
                }
                Err(()) => failed.push((queued, reason)),
            }
        }
        // The targets must hold the letters on disk before the source lets go; if a write
        // failed, the letters are tried again later (a target may then hold a duplicate).
        if !durable.is_empty() && !host.wait_durable(&durable) {
            let (persistent, transient): (Vec<_>, Vec<_>) = routed
                .into_iter()
                .partition(|(queued, _)| queued.message.properties.persistent);
            failed.extend(persistent);
            routed = transient;
        }
        let done: Vec<QueuedMessage> = routed.into_iter().map(|(queued, _)| queued).collect();
        self.operate(|state, now| {
            state.remove_for_good(&done, state::Removal::DeadLettered);
            state.retry_dead_letters_later(failed, now);
        });
    }

    /// Offers messages and delivers what consumers can take. A queue deleted meanwhile (a
    /// publish racing a delete) takes nothing, as if the publish had come after the delete.
    pub fn enqueue(&self, messages: impl IntoIterator<Item = QueuedMessage>) -> Enqueued {
        self.operate(|state, now| {
            let mut outcome = Enqueued::default();
            if state.deleted {
                return outcome;
            }
            for (at, message) in messages.into_iter().enumerate() {
                let (admission, lsn) = state.admit(message, now);
                match admission {
                    Admission::Accepted => outcome.accepted += 1,
                    Admission::Duplicate => outcome.duplicates += 1,
                    Admission::Refused => outcome.refused.push(at),
                }
                if let Some(lsn) = lsn {
                    outcome.durable_lsns.push((at, lsn));
                }
            }
            state.dispatch(now);
            outcome
        })
    }

    /// Adds a consumer; deliveries and the end of the subscription arrive on `events`.
    pub fn subscribe(
        &self,
        spec: ConsumerSpec,
        events: DeliverySender,
    ) -> Result<ConsumerId, SubscribeRefusal> {
        let id = ConsumerId(self.next_consumer.fetch_add(1, Ordering::Relaxed));
        self.operate(|state, now| {
            if state.deleted {
                return Err(SubscribeRefusal::QueueDeleted);
            }
            if !spec.getter {
                state.may_subscribe(spec.exclusive)?;
            }
            state.add_consumer(id, spec, events);
            state.touch(now);
            state.dispatch(now);
            Ok(id)
        })
    }

    /// Takes the next ready message for the getter `getter` (subscribed with
    /// [`ConsumerSpec::getter`]): AMQP's `basic.get`. Answers the delivery (settled like a
    /// consumer's, unless `no_ack`) and how many ready messages remain; `None` when none is
    /// ready.
    pub fn get(&self, getter: ConsumerId, no_ack: bool) -> Option<(Delivery, u64)> {
        self.operate(|state, now| state.get(getter, no_ack, now))
    }

    /// Changes a consumer's prefetch (0 = unlimited).
    pub fn set_prefetch(&self, consumer: ConsumerId, prefetch: u32) {
        self.operate(|state, now| {
            state.set_prefetch(consumer, prefetch);
            state.dispatch(now);
        });
    }

    /// Acknowledges `tag` (and every earlier one when `multiple`). Returns how many tags were
    /// known; 0 means the tag was unknown. A tag the consumer timeout took back counts as
    /// known: its late ack is accepted and changes nothing.
    pub fn ack(&self, consumer: ConsumerId, tag: u64, multiple: bool) -> usize {
        self.operate(|state, now| {
            let known = state.ack(consumer, tag, multiple);
            state.dispatch(now);
            known
        })
    }

    /// Negatively acknowledges; requeued messages go back to the head of the queue marked
    /// redelivered (or are dead-lettered at the delivery limit), the others are
    /// dead-lettered (reason `rejected`) or dropped. Returns how many tags were known.
    pub fn nack(&self, consumer: ConsumerId, tag: u64, multiple: bool, requeue: bool) -> usize {
        self.operate(|state, now| {
            let known = state.nack(consumer, tag, multiple, requeue);
            state.dispatch(now);
            known
        })
    }

    /// Applies a run of a consumer's settlements under one lock, then dispatches once (a
    /// consume stream hands over every frame it has buffered). Returns, per settlement, how
    /// many tags were known (1 for a prefetch change).
    pub fn settle(&self, consumer: ConsumerId, settlements: &[Settlement]) -> Vec<usize> {
        self.operate(|state, now| {
            let known = settlements
                .iter()
                .map(|settlement| match *settlement {
                    Settlement::Ack { tag, multiple } => state.ack(consumer, tag, multiple),
                    Settlement::Nack {
                        tag,
                        multiple,
                        requeue,
                    } => state.nack(consumer, tag, multiple, requeue),
                    Settlement::Prefetch(prefetch) => {
                        state.set_prefetch(consumer, prefetch);
                        1
                    }
                })
                .collect();
            state.dispatch(now);
            known
        })
    }

    /// Stops deliveries to a consumer its client cancelled. Its unacked deliveries stay its
    /// own: the client may still settle them, until [`Queue::unsubscribe`] returns the rest.
    /// From now on it no longer counts as a consumer of the queue (for `if-unused`,
    /// auto-delete, `x-expires` and exclusivity).
    pub fn cancel(&self, consumer: ConsumerId) {
        self.operate(|state, now| {
            state.cancel_consumer(consumer, now);
            state.dispatch(now);
        });
    }

    /// Removes a consumer; its unacked messages return to the head of the queue.
    pub fn unsubscribe(&self, consumer: ConsumerId) {
        self.operate(|state, now| {
            state.remove_consumer(consumer, now);
            state.dispatch(now);
        });
    }

    /// Marks the queue used (a redeclare), restarting its `x-expires` clock. Never
    /// dead-letters, so the topology may call it while holding its own lock.
    pub fn touch(&self) {
        self.operate(|state, now| state.touch(now));
    }

    /// Delivers what consumers can take now. A consumer's connection calls this after draining
    /// its delivery channel, since a full channel holds messages back.
    pub fn dispatch(&self) {
        self.operate(|state, now| state.dispatch(now));
    }

    /// The timer's wake-up: delayed messages due become ready, expired ones leave, timed-out
    /// deliveries return, and an unused queue past its `x-expires` is deleted.
    fn on_timer(&self) {
        let unused = self.operate(|state, now| {
            state.scheduled = None;
            if state.deleted {
                return false;
            }
            let unused = state.run_due(now);
            state.dispatch(now);
            unused
        });
        if unused && let Some(host) = self.context.host.upgrade() {
            host.queue_unused(self);
        }
    }

    /// Drops every ready and delayed message; returns how many.
    pub fn purge(&self) -> u64 {
        self.operate(|state, _| state.purge())
    }

    /// Marks the queue deleted, cancels its consumers and returns how many messages it held.
    pub fn delete(&self) -> u64 {
        let mut state = self.state.lock();
        let counts = state.counts();
        state.delete();
        if let Some(log) = state.log()
            && let Err(error) = log.delete()
        {
            tracing::error!(queue = %self.name, %error, "deleting the queue's log failed");
        }
        counts.ready + counts.unacked + counts.delayed
    }

    pub fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// The messages ready for delivery, in delivery order (for tests and inspection).
    pub fn peek_ready(&self, max: usize) -> Vec<QueuedMessage> {
        self.state.lock().peek_ready(max)
    }
}
