//! The part of a durable queue that lives only on disk: a position in the queue's log from
//! which its remaining messages are read back, in order, when the queue gets to them.
//!
//! A queue pages to disk when its in-memory window is full: from then on new messages are
//! appended to the log (transient ones too, though never fsynced for their sake) and only
//! counted here. Reading skips records that are not messages and, for records of earlier runs,
//! messages that were removed or were transient.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::log::{Position, QueueLog};
use super::record::{self, RecordError};
use super::recovery::{RecoveredMessage, SkipList};
use super::segment::{Next, SegmentReader};

#[derive(Debug)]
pub struct DiskTail {
    log: Arc<QueueLog>,
    position: Position,
    remaining: u64,
    skip: Arc<SkipList>,
    /// Messages written into the tail's range while it exists but held by the queue in
    /// memory (delayed ones): not the tail's to read back.
    held_in_memory: HashSet<u64>,
}

impl DiskTail {
    pub fn new(
        log: Arc<QueueLog>,
        position: Position,
        remaining: u64,
        skip: Arc<SkipList>,
    ) -> Self {
        DiskTail {
            log,
            position,
            remaining,
            skip,
            held_in_memory: HashSet::new(),
        }
    }

    /// Says that message `seq`, appended to the log behind the tail's position, is held in
    /// memory by the queue: reading skips it (review finding 5: it was read back a second
    /// time, delivered twice and its segment's live count went wrong).
    pub fn held_in_memory(&mut self, seq: u64) {
        self.held_in_memory.insert(seq);
    }

    /// Messages still on disk.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Counts one more message appended to the log behind the ones already here.
    pub fn push(&mut self) {
        self.remaining += 1;
    }

    /// Reads up to `max_messages` (and about `max_bytes` of bodies) from the front. Fewer than
    /// asked with `remaining() > 0` afterwards means the rest is not written yet; an empty
    /// answer with `remaining()` reset to 0 means the log ended early (its end was lost).
    pub fn read(
        &mut self,
        max_messages: usize,
        max_bytes: u64,
    ) -> io::Result<Vec<RecoveredMessage>> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut payload = Vec::new();
        let wants_more = |this: &Self, out: &Vec<RecoveredMessage>, bytes: u64| {
            this.remaining > 0 && out.len() < max_messages && bytes < max_bytes
        };
        while wants_more(self, &out, bytes) {
            let Some(limit) = self.log.readable_limit(self.position) else {
                if !self.next_segment() {
                    break;
                }
                continue;
            };
            let before = self.position;
            let limit = (limit != u64::MAX).then_some(limit);
            let mut reader = SegmentReader::open(
                self.log.dir(),
                self.position.segment,
                self.position.offset,
                limit,
            )?;
            while wants_more(self, &out, bytes) {
                let Next::Record { crc, .. } = reader.next(&mut payload)? else {
                    break;
                };
                self.position.offset = reader.position();
                if let Some(message) = self.decode(&payload, crc)? {
                    bytes += message.stored.message.body.len() as u64;
                    self.remaining -= 1;
                    out.push(message);
                }
            }
            // At the end of what this segment holds (no progress even after writing what was
            // pending): the next segment, if any.
            if self.position == before && !self.next_segment() {
                break;
            }
        }
        Ok(out)
    }

    /// Moves to the start of the next segment; at the last one, the log ended early.
    fn next_segment(&mut self) -> bool {
        match self.log.next_segment(self.position.segment) {
            Some(next) => {
                self.position = Position {
                    segment: next,
                    offset: 0,
                };
                true
            }
            None => {
                self.lost_end();
                false
            }
        }
    }

    fn decode(&mut self, payload: &[u8], crc: u32) -> io::Result<Option<RecoveredMessage>> {
        let summary = record::summarize(payload, crc).map_err(invalid)?;
        let record::RecordSummary::Message {
            seq, persistent, ..
        } = summary
        else {
            return Ok(None);
        };
        if self.held_in_memory.remove(&seq) {
            return Ok(None);
        }
        if !self.skip.keeps(self.position.segment, seq, persistent) {
            return Ok(None);
        }
        let Some(stored) =
            record::decode_message(Bytes::copy_from_slice(payload)).map_err(invalid)?
        else {
            return Ok(None);
        };
        let delivery_count = self.skip.deliveries.get(&seq).copied().unwrap_or(0);
        Ok(Some(RecoveredMessage {
            stored,
            delivery_count,
        }))
    }

    fn lost_end(&mut self) {
        tracing::error!(
            queue = %self.log.queue(),
            missing = self.remaining,
            "the queue's log ended before its last messages; they were lost with a failed write"
        );
        self.remaining = 0;
    }
}

fn invalid(error: RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
