//! Rebuilding a durable queue from its log at start, without holding the whole queue in memory.
//!
//! Pass one reads every record's summary (no message is decoded): which messages were removed,
//! how often the rest were delivered, and where the log is damaged. A damaged record (torn
//! write, bad checksum, implausible length) ends its segment: the file is truncated there with a
//! warning and recovery goes on with the next segment. Pass two counts each segment's live
//! messages and decodes only the first `window` of them; the rest stay on disk behind a
//! [`DiskTail`](super::tail::DiskTail) that reads them when the queue gets to them.
//!
//! Records of transient messages (written while a queue was paging to disk) are skipped: a
//! transient message does not survive a restart.

use std::collections::{HashMap, VecDeque};
use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use bytes::Bytes;

use super::log::{Position, SegmentInfo};
use super::range_set::RangeSet;
use super::record::{self, RecordSummary, StoredMessage};
use super::segment::{self, Next, SegmentReader};
use crate::message::Identifier;

/// A message brought back from the log.
#[derive(Debug, Clone)]
pub struct RecoveredMessage {
    pub stored: StoredMessage,
    /// How many times it was delivered before (0: never).
    pub delivery_count: u32,
}

/// Which records of earlier runs a reader skips.
#[derive(Debug, Default)]
pub struct SkipList {
    pub removed: RangeSet,
    /// Segments below this were written by earlier runs.
    pub run_first_segment: u64,
    pub deliveries: HashMap<u64, u32>,
}

impl SkipList {
    /// Whether a message record found in `segment` is still in the queue.
    pub fn keeps(&self, segment: u64, seq: u64, persistent: bool) -> bool {
        segment >= self.run_first_segment || (persistent && !self.removed.contains(seq))
    }
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub(super) segments: VecDeque<SegmentInfo>,
    pub next_seq: u64,
    /// The first `window` messages, oldest first.
    pub messages: Vec<RecoveredMessage>,
    /// Where the messages not loaded begin, and how many there are.
    pub tail: Option<(Position, u64)>,
    pub skip: SkipList,
    /// Damage found and repaired, one line each.
    pub repairs: Vec<String>,
    /// Message ids enqueued since the deduplication horizon asked for, with when (ms since the
    /// epoch), whether or not the messages are still queued.
    pub dedup_ids: Vec<(Identifier, u64)>,
}

/// Recovers the log in `dir` (which must exist), loading at most `window` messages, and
/// collecting the ids of messages enqueued since `dedup_since_ms` when given.
pub fn recover(dir: &Path, window: usize, dedup_since_ms: Option<u64>) -> io::Result<Recovered> {
    let mut recovered = Recovered::default();
    let mut ids = segment::list_segments(dir)?;
    let mut payload = Vec::new();
    let mut usable = Vec::with_capacity(ids.len());
    // Pass one: removals, deliveries, damage.
    for &id in &ids {
        let mut reader = match SegmentReader::open(dir, id, 0, None) {
            Ok(reader) => reader,
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                recovered.repairs.push(format!(
                    "segment {id}: {error}; set aside as {id:020}.seg.damaged"
                ));
                let path = segment::segment_path(dir, id);
                std::fs::rename(&path, path.with_extension("seg.damaged"))?;
                continue;
            }
            Err(error) => return Err(error),
        };
        usable.push(id);
        loop {
            match reader.next(&mut payload)? {
                Next::End => break,
                Next::Damaged { offset, reason } => {
                    truncate(dir, id, offset, &reason, &mut recovered.repairs)?;
                    break;
                }
                Next::Record { offset, crc } => match record::summarize(&payload, crc) {
                    Ok(RecordSummary::Message { seq, .. }) => {
                        recovered.next_seq = recovered.next_seq.max(seq + 1);
                    }
                    // Numbering continues past every seq a record names, not only past the
                    // messages still on disk: after a drained log's message segments are
                    // deleted, its removed runs survive, and must never name a new message.
                    Ok(RecordSummary::Removed(runs)) => {
                        for run in runs {
                            recovered.next_seq = recovered
                                .next_seq
                                .max(run.first.saturating_add(u64::from(run.count)));
                            recovered
                                .skip
                                .removed
                                .insert_range(run.first, run.first + u64::from(run.count));
                            for seq in run.seqs() {
                                recovered.skip.deliveries.remove(&seq);
                            }
                        }
                    }
                    Ok(RecordSummary::Delivered(runs)) => {
                        for run in &runs {
                            recovered.next_seq = recovered
                                .next_seq
                                .max(run.first.saturating_add(u64::from(run.count)));
                        }
                        for seq in runs.iter().flat_map(|run| run.seqs()) {
                            *recovered.skip.deliveries.entry(seq).or_default() += 1;
                        }
                    }
                    Err(error) => {
                        truncate(dir, id, offset, &error.to_string(), &mut recovered.repairs)?;
                        break;
                    }
                },
            }
        }
    }
    ids = usable;
    recovered.skip.run_first_segment = ids.last().map_or(0, |last| last + 1);
    recovered
        .skip
        .deliveries
        .retain(|seq, _| !recovered.skip.removed.contains(*seq));
    // Pass two: live counts per segment, the first `window` messages, where the tail starts.
    let mut tail_count = 0u64;
    for &id in &ids {
        let mut reader = SegmentReader::open(dir, id, 0, None)?;
        let mut info = SegmentInfo {
            id,
            first_seq: u64::MAX,
            live: 0,
            last_enqueued_ms: 0,
        };
        while let Next::Record { offset, crc } = reader.next(&mut payload)? {
            let Ok(RecordSummary::Message {
                seq,
                enqueued_at_ms,
                persistent,
            }) = record::summarize(&payload, crc)
            else {
                continue;
            };
            info.first_seq = info.first_seq.min(seq);
            info.last_enqueued_ms = info.last_enqueued_ms.max(enqueued_at_ms);
            if persistent
                && dedup_since_ms.is_some_and(|since| enqueued_at_ms >= since)
                && let Ok(Some(stored)) = record::decode_message(Bytes::copy_from_slice(&payload))
                && let Some(id) = stored.message.properties.into_properties().message_id
            {
                recovered.dedup_ids.push((id, enqueued_at_ms));
            }
            if !recovered.skip.keeps(id, seq, persistent) {
                continue;
            }
            info.live += 1;
            if recovered.messages.len() < window && tail_count == 0 {
                let stored = match record::decode_message(Bytes::copy_from_slice(&payload)) {
                    Ok(Some(stored)) => stored,
                    // Its checksum held, so the bytes are as written but this broker cannot
                    // read them. Said, not silently dropped; the segment is kept (it counts
                    // the message as live) so the bytes stay for a broker that can.
                    unreadable => {
                        let error = match unreadable {
                            Err(error) => error.to_string(),
                            Ok(_) => "not a message".to_owned(),
                        };
                        recovered.repairs.push(format!(
                            "segment {id}: message {seq} at byte {offset} cannot be read ({error}); skipped, segment kept"
                        ));
                        continue;
                    }
                };
                let delivery_count = recovered.skip.deliveries.get(&seq).copied().unwrap_or(0);
                recovered.messages.push(RecoveredMessage {
                    stored,
                    delivery_count,
                });
            } else {
                if tail_count == 0 {
                    recovered.tail = Some((
                        Position {
                            segment: id,
                            offset,
                        },
                        0,
                    ));
                }
                tail_count += 1;
            }
        }
        recovered.segments.push_back(info);
    }
    if let Some((_, count)) = &mut recovered.tail {
        *count = tail_count;
    }
    // A segment's first sequence number must order it among the others even when it holds no
    // message: borrow the next one's (or the end).
    let mut next_first = recovered.next_seq;
    for info in recovered.segments.iter_mut().rev() {
        if info.first_seq == u64::MAX {
            info.first_seq = next_first;
        }
        next_first = info.first_seq;
    }
    Ok(recovered)
}

fn truncate(
    dir: &Path,
    id: u64,
    offset: u64,
    reason: &str,
    repairs: &mut Vec<String>,
) -> io::Result<()> {
    let path = segment::segment_path(dir, id);
    let len = std::fs::metadata(&path)?.len();
    repairs.push(format!(
        "segment {id}: {reason} at byte {offset}; truncated {} damaged bytes",
        len - offset
    ));
    let file = OpenOptions::new().write(true).open(&path)?;
    file.set_len(offset)?;
    file.sync_all()
}
