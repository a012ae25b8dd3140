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

/// Where an arriving message goes.
#[derive(Debug)]
pub(super) enum Admit {
    Memory(QueuedMessage),
    /// Written to the log and counted in the tail.
    Disk,
}

#[derive(Debug)]
pub(super) struct Durability {
    log: Arc<QueueLog>,
    tail: Option<DiskTail>,
    window: Window,
    /// Messages delivered since the last flush; recorded in one "delivered" record.
    delivered: Vec<u64>,
    /// The LSN of the newest persistent append (what a publisher waits for).
    last_persistent_lsn: u64,
}

impl Durability {
    pub(super) fn new(log: Arc<QueueLog>, tail: Option<DiskTail>, window: Window) -> Self {
        Durability {
            log,
            tail,
            window,
            delivered: Vec::new(),
            last_persistent_lsn: 0,
        }
    }

    pub(super) fn log(&self) -> &Arc<QueueLog> {
        &self.log
    }

    /// Messages on disk only.
    pub(super) fn on_disk(&self) -> u64 {
        self.tail.as_ref().map_or(0, DiskTail::remaining)
    }

    /// Takes an arriving message with queue sequence number `seq`, given the ready list's size.
    /// Returns where it goes and, for a persistent message, the LSN that makes it durable.
    pub(super) fn admit(
        &mut self,
        seq: u64,
        mut message: QueuedMessage,
        ready_len: usize,
        ready_bytes: u64,
    ) -> (Admit, Option<u64>) {
        let persistent = message.message.properties.persistent;
        let paging = self.on_disk() > 0
            || ready_len >= self.window.messages
            || ready_bytes >= self.window.bytes;
        if !persistent && !paging {
            return (Admit::Memory(message), None);
        }
        let (position, lsn) = self.log.append_message(&StoredMessageRef {
            seq,
            enqueued_at_ms: store::now_ms(),
            persistent,
            exchange: &message.exchange,
            message: &message.message,
        });
        if persistent {
            self.last_persistent_lsn = lsn;
        }
        let lsn = persistent.then_some(lsn);
        message.stored_seq = Some(seq);
        if !paging {
            return (Admit::Memory(message), lsn);
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
        (Admit::Disk, lsn)
    }

    /// Refills the window from the tail when it has fallen below half.
    pub(super) fn page_in(&mut self, ready_len: usize, ready_bytes: u64) -> Vec<QueuedMessage> {
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
        if let Some(seq) = message.stored_seq {
            self.delivered.push(seq);
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
        let seqs: Vec<u64> = messages.into_iter().filter_map(|m| m.stored_seq).collect();
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

/// A message read back from the log, as the queue holds it.
pub(super) fn from_recovered(recovered: RecoveredMessage) -> QueuedMessage {
    let store::StoredMessage {
        seq,
        exchange,
        message,
        ..
    } = recovered.stored;
    QueuedMessage {
        exchange: Arc::from(exchange),
        message: Arc::new(message),
        redelivered: recovered.delivery_count > 0,
        delivery_count: recovered.delivery_count,
        stored_seq: Some(seq),
    }
}
