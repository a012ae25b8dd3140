//! The state behind a queue's lock and the dispatch loop. See `mod.rs` for the rules.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::consumer::{Consumer, ConsumerId, ConsumerSpec, DeliveryEvent};
use super::durable::{Admit, Durability};
use super::memory::MemoryGauge;
use super::{Cancellation, QueuedMessage};
use crate::store::QueueLog;

/// How far past the head dispatch looks for a message a filtering consumer accepts.
const FILTER_LOOKAHEAD: usize = 256;

/// A queue's sizes, as `queue list` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u32,
    pub ready_bytes: u64,
}

impl QueueCounts {
    #[cfg(test)]
    pub(super) fn with_consumers(mut self, consumers: u32) -> Self {
        self.consumers = consumers;
        self
    }
}

#[derive(Debug)]
pub(super) struct QueueState {
    /// Bytes of every message this queue holds, ready or unacked, counted broker-wide.
    memory: Arc<MemoryGauge>,
    /// Ready messages with their queue sequence numbers, oldest first.
    ready: VecDeque<(u64, QueuedMessage)>,
    ready_bytes: u64,
    next_seq: u64,
    consumers: Vec<Consumer>,
    /// Round-robin position: the consumer tried first by the next dispatch.
    cursor: usize,
    pub(super) deleted: bool,
    /// Present for a durable queue.
    durable: Option<Durability>,
}

impl QueueState {
    pub(super) fn new(memory: Arc<MemoryGauge>) -> Self {
        QueueState {
            memory,
            ready: VecDeque::new(),
            ready_bytes: 0,
            next_seq: 0,
            consumers: Vec::new(),
            cursor: 0,
            deleted: false,
            durable: None,
        }
    }

    /// Sets up a durable queue from what recovery found.
    pub(super) fn restore(
        &mut self,
        next_seq: u64,
        messages: impl Iterator<Item = QueuedMessage>,
        durability: Durability,
    ) {
        for message in messages {
            self.memory.add(message.body_len());
            self.ready_bytes += message.body_len();
            let seq = message.stored_seq.unwrap_or(self.next_seq);
            self.ready.push_back((seq, message));
        }
        self.next_seq = next_seq;
        self.durable = Some(durability);
    }

    pub(super) fn log(&self) -> Option<&Arc<QueueLog>> {
        self.durable.as_ref().map(Durability::log)
    }

    /// Messages that have left the queue for good.
    pub(super) fn forget(&mut self, messages: &[QueuedMessage]) {
        self.forget_in_memory(messages);
        if let Some(durable) = &mut self.durable {
            durable.removed(messages);
        }
    }

    /// Releases the memory of messages that left, without recording it (the log goes too).
    pub(super) fn forget_in_memory(&self, messages: &[QueuedMessage]) {
        self.memory
            .sub(messages.iter().map(QueuedMessage::body_len).sum());
    }

    pub(super) fn counts(&self) -> QueueCounts {
        let on_disk = self.durable.as_ref().map_or(0, Durability::on_disk);
        QueueCounts {
            ready: self.ready.len() as u64 + on_disk,
            unacked: self.consumers.iter().map(|c| c.unacked.len() as u64).sum(),
            consumers: self.consumers.len() as u32,
            ready_bytes: self.ready_bytes,
        }
    }

    /// Takes an arriving message; returns the LSN that makes it durable when it was written.
    pub(super) fn push_ready(&mut self, message: QueuedMessage) -> Option<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let (message, lsn) = match &mut self.durable {
            Some(durable) => {
                match durable.admit(seq, message, self.ready.len(), self.ready_bytes) {
                    (Admit::Memory(message), lsn) => (message, lsn),
                    (Admit::Disk, lsn) => return lsn,
                }
            }
            None => (message, None),
        };
        self.memory.add(message.body_len());
        self.ready_bytes += message.body_len();
        self.ready.push_back((seq, message));
        lsn
    }

    /// Refills the in-memory window of a durable queue from its log.
    fn page_in(&mut self) {
        let Some(durable) = &mut self.durable else {
            return;
        };
        for message in durable.page_in(self.ready.len(), self.ready_bytes) {
            self.memory.add(message.body_len());
            self.ready_bytes += message.body_len();
            let seq = message.stored_seq.unwrap_or(self.next_seq);
            self.ready.push_back((seq, message));
        }
    }

    /// Puts settled messages back at the head, in their original order, marked redelivered.
    pub(super) fn requeue_front(&mut self, messages: Vec<QueuedMessage>) {
        for mut message in messages.into_iter().rev() {
            message.redelivered = true;
            self.ready_bytes += message.body_len();
            self.ready.push_front((self.next_seq, message));
            self.next_seq += 1;
        }
    }

    pub(super) fn add_consumer(
        &mut self,
        id: ConsumerId,
        spec: ConsumerSpec,
        events: mpsc::Sender<DeliveryEvent>,
    ) {
        self.consumers.push(Consumer::new(id, spec, events));
    }

    pub(super) fn set_prefetch(&mut self, id: ConsumerId, prefetch: u32) {
        if let Some(consumer) = self.consumers.iter_mut().find(|c| c.id == id) {
            consumer.spec.prefetch = prefetch;
        }
    }

    /// Removes a consumer; returns its unacked messages in delivery order.
    pub(super) fn remove_consumer(&mut self, id: ConsumerId) -> Option<Vec<QueuedMessage>> {
        let index = self.consumers.iter().position(|c| c.id == id)?;
        let consumer = self.consumers.remove(index);
        if self.cursor > index {
            self.cursor -= 1;
        }
        Some(consumer.unacked.into_values().collect())
    }

    /// Takes `tag` (and with `multiple` every earlier tag) out of the consumer's unacked set.
    pub(super) fn settle(
        &mut self,
        id: ConsumerId,
        tag: u64,
        multiple: bool,
    ) -> Vec<QueuedMessage> {
        let Some(consumer) = self.consumers.iter_mut().find(|c| c.id == id) else {
            return Vec::new();
        };
        if multiple {
            let rest = consumer.unacked.split_off(&(tag + 1));
            let settled = std::mem::replace(&mut consumer.unacked, rest);
            settled.into_values().collect()
        } else {
            consumer.unacked.remove(&tag).into_iter().collect()
        }
    }

    /// Drops every ready message, in memory and on disk; returns how many.
    pub(super) fn purge(&mut self) -> u64 {
        let ready: Vec<QueuedMessage> = self.ready.iter().map(|(_, m)| m.clone()).collect();
        let count = self.drop_ready();
        match &mut self.durable {
            Some(durable) => {
                durable.removed(&ready);
                count + durable.purge_tail()
            }
            None => count,
        }
    }

    /// Drops the ready messages held in memory, recording nothing; returns how many.
    pub(super) fn drop_ready(&mut self) -> u64 {
        let count = self.ready.len() as u64;
        self.ready.clear();
        self.memory.sub(self.ready_bytes);
        self.ready_bytes = 0;
        count
    }

    /// Cancels every consumer; returns their unacked messages.
    pub(super) fn cancel_all(&mut self, reason: Cancellation) -> Vec<QueuedMessage> {
        let mut unacked = Vec::new();
        for consumer in self.consumers.drain(..) {
            consumer.cancel(reason.clone());
            unacked.extend(consumer.unacked.into_values());
        }
        unacked
    }

    pub(super) fn peek_ready(&self, max: usize) -> VecDeque<QueuedMessage> {
        self.ready
            .iter()
            .take(max)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Delivers ready messages to consumers with credit, round-robin, until one runs out.
    pub(super) fn dispatch(&mut self) {
        self.page_in();
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            if !self.deliver_one() {
                break;
            }
            if self.ready.is_empty() {
                self.page_in();
            }
        }
        if let Some(durable) = &mut self.durable {
            durable.flush_delivered();
        }
        for consumer in &mut self.consumers {
            consumer.send_outbox();
        }
    }

    /// Finds the next consumer (from the cursor) with credit that accepts one of the first
    /// messages, and delivers it. Returns false when nobody can take anything.
    fn deliver_one(&mut self) -> bool {
        let count = self.consumers.len();
        for offset in 0..count {
            let index = (self.cursor + offset) % count;
            let consumer = &mut self.consumers[index];
            if !consumer.has_credit() {
                continue;
            }
            let window = self.ready.len().min(FILTER_LOOKAHEAD);
            let Some(position) = (0..window).find(|&i| {
                let (seq, message) = &self.ready[i];
                consumer.accepts(*seq, message)
            }) else {
                continue;
            };
            let (seq, message) = self.ready.remove(position).expect("position within ready");
            self.ready_bytes -= message.body_len();
            if let Some(durable) = &mut self.durable {
                if consumer.spec.no_ack {
                    durable.removed([&message]);
                } else {
                    durable.delivered(&message);
                }
            }
            if consumer.spec.no_ack {
                self.memory.sub(message.body_len());
            }
            consumer.deliver(seq, message);
            self.cursor = (index + 1) % count;
            return true;
        }
        false
    }
}
