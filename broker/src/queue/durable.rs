//! A durable queue's link to its log: which messages are written, the bounded in-memory
//! window, and the disk tail behind it.
//!
//! Persistent messages are appended to the log as they arrive; the publisher's confirm waits
//! for the returned LSN. While the ready list is within the window (a count and a byte size),
//! messages are kept in memory too. Once it is full the queue pages: every new message
//! (transient ones as well) is appended to the log and only counted in the [`DiskTail`]; as
//! consumers drain the window it is refilled from the tail, in order. When the tail is empty the
//! queue stops paging. A transient message never makes a publisher wait, even when written.

use std::sync::Arc;

use crate::store::{self, DiskTail, QueueLog, RecoveredMessage, StoredMessageRef};

use super::QueuedMessage;

/// How much of a durable queue's ready list is kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub messages: usize,
    pub bytes: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            messages: 20_000,
            bytes: 64 << 20,
        }
    }
}

/// Where an arriving message goes, and the LSN that makes it durable when it is persistent.
#[derive(Debug)]
pub(super) enum Admit {
    Memory(QueuedMessage, Option<u64>),
    /// Written to the log and counted in the tail.
    Disk(Option<u64>),
}

#[derive(Debug)]
pub(super) struct Durability {
    log: Arc<QueueLog>,
    tail: Option<DiskTail>,
    window: Window,
    /// Messages delivered since the last flush; recorded in one "delivered" record.
    delivered: Vec<u64>,
}

impl Durability {
    pub(super) fn new(log: Arc<QueueLog>, window: Window) -> Self {
        Durability {
            log,
            tail: None,
            window,
            delivered: Vec::new(),
        }
    }

    pub(super) fn log(&self) -> &Arc<QueueLog> {
        &self.log
    }

    /// Messages on disk only.
    pub(super) fn on_disk(&self) -> u64 {
        self.tail.as_ref().map_or(0, DiskTail::remaining)
    }

    /// Takes an arriving message (its `seq` given), given the ready list's size. `may_page`
    /// is false for messages that must stay in memory (delayed ones, those of priority and
    /// length-limited queues). Returns where it goes, with a persistent message's own LSN (the
    /// end of its record: a publisher's confirm waits for exactly that).
    pub(super) fn admit(
        &mut self,
        mut message: QueuedMessage,
        may_page: bool,
        ready_len: usize,
        ready_bytes: u64,
    ) -> Admit {
        let persistent = message.message.properties.persistent;
        let paging = may_page
            && (self.on_disk() > 0
                || ready_len >= self.window.messages
                || ready_bytes >= self.window.bytes);
        if !persistent && !paging {
            return Admit::Memory(message, None);
        }
        let (position, lsn) = self.log.append_message(&StoredMessageRef {
            seq: message.seq,
            enqueued_at_ms: store::now_ms(),
            persistent,
            exchange: &message.exchange,
            message: &message.message,
        });
        let lsn = persistent.then_some(lsn);
        message.stored = true;
        if !paging {
            // Behind a tail that reads this part of the log, it must skip this record.
            if let Some(tail) = self.tail.as_mut().filter(|tail| tail.remaining() > 0) {
                tail.held_in_memory(message.seq);
            }
            return Admit::Memory(message, lsn);
        }
        match &mut self.tail {
            Some(tail) if tail.remaining() > 0 => tail.push(),
            _ => {
                let mut tail = DiskTail::new(
                    Arc::clone(&self.log),
                    position,
                    0,
                    Arc::new(store::SkipList::default()),
                );
                tail.push();
                self.tail = Some(tail);
            }
        }
        Admit::Disk(lsn)
    }

    /// Starts reading recovered messages beyond the window from the log.
    pub(super) fn set_tail(&mut self, tail: DiskTail) {
        self.tail = Some(tail);
    }

    /// Refills the window from the tail when it has fallen below half; each message comes
    /// with when it was enqueued (ms since the epoch).
    pub(super) fn page_in(
        &mut self,
        ready_len: usize,
        ready_bytes: u64,
    ) -> Vec<(QueuedMessage, u64)> {
        let Some(tail) = &mut self.tail else {
            return Vec::new();
        };
        if tail.remaining() == 0
            || ready_len >= self.window.messages / 2
            || ready_bytes >= self.window.bytes / 2
        {
            return Vec::new();
        }
        let want = self.window.messages - ready_len;
        let want_bytes = self.window.bytes - ready_bytes;
        match tail.read(want, want_bytes) {
            Ok(messages) => messages.into_iter().map(from_recovered).collect(),
            Err(error) => {
                tracing::error!(queue = %self.log.queue(), %error, "reading the queue's log back failed");
                Vec::new()
            }
        }
    }

    /// Notes a delivery of a message in the log (written with the next flush).
    pub(super) fn delivered(&mut self, message: &QueuedMessage) {
        if message.stored {
            self.delivered.push(message.seq);
        }
    }

    /// Records the deliveries noted since the last flush and writes the log out to the
    /// operating system, so a broker killed after the deliveries leave still knows they were
    /// made (and marks the messages redelivered when they come back). Not fsynced: after a power
    /// loss a delivered message may come back unmarked.
    pub(super) fn flush_delivered(&mut self) {
        if !self.delivered.is_empty() {
            self.log.delivered(&self.delivered);
            self.delivered.clear();
            self.log.write_out();
        }
    }

    /// Records that messages left the queue for good.
    pub(super) fn removed<'a>(&mut self, messages: impl IntoIterator<Item = &'a QueuedMessage>) {
        let seqs: Vec<u64> = messages
            .into_iter()
            .filter(|m| m.stored)
            .map(|m| m.seq)
            .collect();
        if !seqs.is_empty() {
            self.flush_delivered();
            self.log.removed(&seqs);
        }
    }

    /// Drops everything on disk (purge): reads the tail through and records it removed.
    pub(super) fn purge_tail(&mut self) -> u64 {
        let mut purged = 0;
        while let Some(tail) = &mut self.tail {
            let batch = match tail.read(4096, 64 << 20) {
                Ok(batch) if !batch.is_empty() => batch,
                Ok(_) => break,
                Err(error) => {
                    tracing::error!(queue = %self.log.queue(), %error, "reading the queue's log to purge it failed");
                    break;
                }
            };
            purged += batch.len() as u64;
            let seqs: Vec<u64> = batch.iter().map(|m| m.stored.seq).collect();
            self.log.removed(&seqs);
        }
        self.tail = None;
        purged
    }
}

/// A message read back from the log, as the queue holds it, and when it was enqueued (ms since
/// the epoch).
pub(super) fn from_recovered(recovered: RecoveredMessage) -> (QueuedMessage, u64) {
    let store::StoredMessage {
        seq,
        exchange,
        message,
        enqueued_at_ms,
        ..
    } = recovered.stored;
    let mut queued = QueuedMessage::new(Arc::from(exchange), Arc::new(message));
    queued.redelivered = recovered.delivery_count > 0;
    queued.delivery_count = recovered.delivery_count;
    queued.seq = seq;
    queued.stored = true;
    (queued, enqueued_at_ms)
}
