//! Queues: the messages waiting for consumers, the deliveries awaiting acknowledgement, the
//! consumers with their credit, and dispatch between them.
//!
//! One [`Queue`] is one mutex-protected [`QueueState`]; every operation takes the lock, changes
//! the state and then dispatches: while a ready message and a consumer with credit exist, the
//! message goes to the next such consumer in round-robin order whose filter (if any) accepts it.
//! Delivery is at-least-once: a message leaves the queue only when acked (or when delivered to
//! a no-ack consumer); a nack with requeue, a cancelled consumer or a lost connection puts its
//! unacked messages back at the head of the queue, marked redelivered.
//!
//! Filters are WebAssembly calls that block for up to their deadline, so operations that may
//! dispatch must run off the async runtime's worker threads (the server wraps them in
//! `block_in_place`).
//!
//! A durable queue also writes to its log in the store (`durable.rs`): persistent messages as
//! they arrive, deliveries, and messages leaving for good; its ready list is kept in memory only
//! up to a window, the rest read back from the log when due.

mod consumer;
mod durable;
mod memory;
mod state;
#[cfg(test)]
mod tests;

pub use consumer::{ConsumerId, ConsumerSpec, Delivery, DeliveryEvent};
pub use durable::Window;
pub use memory::MemoryGauge;
pub use state::QueueCounts;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::message::Message;
use crate::store::{DiskTail, QueueLog, Recovered};
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
    /// Its sequence number in the queue's log, when it was written there.
    pub stored_seq: Option<u64>,
}

impl QueuedMessage {
    pub fn new(exchange: Arc<str>, message: Arc<Message>) -> Self {
        QueuedMessage {
            exchange,
            message,
            redelivered: false,
            delivery_count: 0,
            stored_seq: None,
        }
    }

    fn body_len(&self) -> u64 {
        self.message.body.len() as u64
    }
}

/// A queue's declared properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProperties {
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: Vec<(String, String)>,
}

/// Why a consumer's subscription ended without it asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    QueueDeleted,
}

#[derive(Debug)]
pub struct Queue {
    name: String,
    /// The destination handle routing plugins answer for this queue.
    id: u32,
    properties: QueueProperties,
    state: Mutex<QueueState>,
    next_consumer: AtomicU64,
}

impl Queue {
    /// A queue whose message bytes count towards `memory`.
    pub fn new(
        name: String,
        id: u32,
        properties: QueueProperties,
        memory: Arc<MemoryGauge>,
    ) -> Self {
        Queue {
            name,
            id,
            properties,
            state: Mutex::new(QueueState::new(memory)),
            next_consumer: AtomicU64::new(1),
        }
    }

    /// A durable queue over its log, holding what recovery found.
    pub fn durable(
        name: String,
        id: u32,
        properties: QueueProperties,
        memory: Arc<MemoryGauge>,
        log: Arc<QueueLog>,
        recovered: Recovered,
        window: Window,
    ) -> Self {
        let Recovered {
            next_seq,
            messages,
            tail,
            skip,
            ..
        } = recovered;
        let tail = tail.map(|(position, remaining)| {
            DiskTail::new(Arc::clone(&log), position, remaining, Arc::new(skip))
        });
        let durability = Durability::new(log, tail, window);
        let mut state = QueueState::new(memory);
        state.restore(
            next_seq,
            messages.into_iter().map(durable::from_recovered),
            durability,
        );
        Queue {
            name,
            id,
            properties,
            state: Mutex::new(state),
            next_consumer: AtomicU64::new(1),
        }
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

    pub fn counts(&self) -> QueueCounts {
        self.state.lock().counts()
    }

    /// Appends messages and delivers what consumers can take. A queue deleted meanwhile (a
    /// publish racing a delete) takes nothing, as if the publish had come after the delete.
    /// Returns the log LSN that makes the persistent ones durable, if any was written.
    pub fn enqueue(&self, messages: impl IntoIterator<Item = QueuedMessage>) -> Option<u64> {
        let mut state = self.state.lock();
        if state.deleted {
            return None;
        }
        let mut lsn = None;
        for message in messages {
            lsn = state.push_ready(message).or(lsn);
        }
        state.dispatch();
        lsn
    }

    /// Adds a consumer; deliveries and the end of the subscription arrive on `events`.
    pub fn subscribe(
        &self,
        spec: ConsumerSpec,
        events: mpsc::Sender<DeliveryEvent>,
    ) -> Result<ConsumerId, Cancellation> {
        let id = ConsumerId(self.next_consumer.fetch_add(1, Ordering::Relaxed));
        let mut state = self.state.lock();
        if state.deleted {
            return Err(Cancellation::QueueDeleted);
        }
        state.add_consumer(id, spec, events);
        state.dispatch();
        Ok(id)
    }

    /// Changes a consumer's prefetch (0 = unlimited).
    pub fn set_prefetch(&self, consumer: ConsumerId, prefetch: u32) {
        let mut state = self.state.lock();
        state.set_prefetch(consumer, prefetch);
        state.dispatch();
    }

    /// Acknowledges `tag` (and every earlier one when `multiple`). Returns how many messages
    /// were acknowledged; 0 means the tag was unknown.
    pub fn ack(&self, consumer: ConsumerId, tag: u64, multiple: bool) -> usize {
        let mut state = self.state.lock();
        let settled = state.settle(consumer, tag, multiple);
        let count = settled.len();
        state.forget(&settled);
        state.dispatch();
        count
    }

    /// Negatively acknowledges; requeued messages go back to the head of the queue marked
    /// redelivered, the others are dropped. Returns how many messages were settled.
    pub fn nack(&self, consumer: ConsumerId, tag: u64, multiple: bool, requeue: bool) -> usize {
        let mut state = self.state.lock();
        let settled = state.settle(consumer, tag, multiple);
        let count = settled.len();
        if requeue {
            state.requeue_front(settled);
        } else {
            state.forget(&settled);
        }
        state.dispatch();
        count
    }

    /// Removes a consumer; its unacked messages return to the head of the queue.
    pub fn unsubscribe(&self, consumer: ConsumerId) {
        let mut state = self.state.lock();
        if let Some(unacked) = state.remove_consumer(consumer) {
            state.requeue_front(unacked);
        }
        state.dispatch();
    }

    /// Delivers what consumers can take now. A consumer's connection calls this after draining
    /// its delivery channel, since a full channel holds messages back.
    pub fn dispatch(&self) {
        self.state.lock().dispatch();
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u64 {
        self.state.lock().purge()
    }

    /// Marks the queue deleted, cancels its consumers and returns how many messages it held.
    pub fn delete(&self) -> u64 {
        let mut state = self.state.lock();
        state.deleted = true;
        let held = state.counts().ready + state.counts().unacked;
        let unacked = state.cancel_all(Cancellation::QueueDeleted);
        state.forget_in_memory(&unacked);
        state.drop_ready();
        if let Some(log) = state.log()
            && let Err(error) = log.delete()
        {
            tracing::error!(queue = %self.name, %error, "deleting the queue's log failed");
        }
        held
    }

    pub fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// The messages ready for delivery, oldest first (for tests and inspection).
    pub fn peek_ready(&self, max: usize) -> VecDeque<QueuedMessage> {
        self.state.lock().peek_ready(max)
    }
}
