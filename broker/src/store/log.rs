//! One durable queue's log: appending records, writing them out, reading them back, and
//! deleting segments whose messages have all left the queue.
//!
//! Appending never does IO: a record is encoded into an in-memory chunk for the segment it
//! belongs to, and gets a log sequence number (LSN: the log's running byte count) that says how
//! far the log must be written for it to be on disk. The syncer thread (`sync.rs`) or a reader
//! that needs the bytes writes chunks out, creating segment files as it reaches them; the syncer
//! then fsyncs. Only one writer at a time (`write_lock`), so chunks land in order.
//!
//! A segment is deleted once every message in it has left the queue and every older segment is
//! gone (deleting only a prefix keeps each "removed" record alive as long as the messages it
//! speaks of: a record only ever refers to messages written before it).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::record::{self, StoredMessageRef};
use super::segment::{self, SEGMENT_HEADER_BYTES};
use super::sync::SyncShared;

/// Where a record starts: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// A segment as the log tracks it.
#[derive(Debug, Clone, Copy)]
pub(super) struct SegmentInfo {
    pub(super) id: u64,
    /// Every message in this segment has a sequence number at least this, and every message in
    /// an older segment one below it.
    pub(super) first_seq: u64,
    /// Messages in the segment that are still in the queue.
    pub(super) live: u64,
    /// When its newest message was enqueued (ms since the epoch).
    pub(super) last_enqueued_ms: u64,
}

/// Whether the bytes up to an LSN are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LsnStatus {
    Pending,
    Durable,
    /// The write failed; the record is not on disk.
    Lost,
}

/// The most lost LSN ranges remembered (each is one failed chunk write).
const MAX_LOST_RANGES: usize = 1024;

#[derive(Debug)]
struct Chunk {
    segment: u64,
    bytes: Vec<u8>,
    /// The LSN just past this chunk's last byte.
    lsn_end: u64,
}

#[derive(Debug)]
struct Inner {
    segments: VecDeque<SegmentInfo>,
    /// The segment appends go to, and its size counting unwritten chunks.
    current: u64,
    current_size: u64,
    pending: VecDeque<Chunk>,
    appended_lsn: u64,
    written_lsn: u64,
    durable_lsn: u64,
    lost: VecDeque<(u64, u64)>,
    /// Written bytes per segment that has a file (readers stay below this).
    written: HashMap<u64, u64>,
    /// One above the highest sequence number appended.
    next_seq_floor: u64,
    deleted: bool,
}

/// The files the writer appends to, and what was written since the syncer last took it.
#[derive(Debug, Default)]
struct Files {
    open: Option<(u64, Arc<File>)>,
    unsynced: Vec<Arc<File>>,
    dir_dirty: bool,
}

/// A durable queue's log. Shared by the queue (appends, reads) and the syncer (writes, fsyncs).
#[derive(Debug)]
pub struct QueueLog {
    dir: PathBuf,
    queue: String,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    write_lock: Mutex<Files>,
    pub(super) dirty: AtomicBool,
    sync: Arc<SyncShared>,
    /// Drained segments are kept this long after their newest message was enqueued (a
    /// queue's deduplication window: recovery reads message ids from them).
    retain_ms: u64,
}

/// What the syncer must do after writing a log: fsync these files (and the directory, when a
/// segment was created), then mark `lsn` durable.
#[derive(Debug)]
pub(super) struct Written {
    pub(super) files: Vec<Arc<File>>,
    pub(super) dir: Option<PathBuf>,
    pub(super) lsn: u64,
}

impl QueueLog {
    /// A log over `segments` (already recovered and valid), appending to a new segment.
    pub(super) fn new(
        dir: PathBuf,
        queue: String,
        segment_bytes: u64,
        segments: VecDeque<SegmentInfo>,
        next_seq_floor: u64,
        sync: Arc<SyncShared>,
        retain_ms: u64,
    ) -> Self {
        let current = segments.back().map_or(0, |s| s.id + 1);
        let mut written = HashMap::new();
        for info in &segments {
            written.insert(info.id, u64::MAX);
        }
        let mut segments = segments;
        segments.push_back(SegmentInfo {
            id: current,
            first_seq: next_seq_floor,
            live: 0,
            last_enqueued_ms: 0,
        });
        QueueLog {
            dir,
            queue,
            segment_bytes,
            inner: Mutex::new(Inner {
                segments,
                current,
                current_size: SEGMENT_HEADER_BYTES,
                pending: VecDeque::new(),
                appended_lsn: 0,
                written_lsn: 0,
                durable_lsn: 0,
                lost: VecDeque::new(),
                written,
                next_seq_floor,
                deleted: false,
            }),
            write_lock: Mutex::new(Files::default()),
            dirty: AtomicBool::new(false),
            sync,
            retain_ms,
        }
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a message record; returns where it starts and the LSN that makes it durable.
    /// Sequence numbers must increase from one append to the next.
    pub fn append_message(self: &Arc<Self>, stored: &StoredMessageRef<'_>) -> (Position, u64) {
        let mut bytes = Vec::with_capacity(stored.message.body.len() + 128);
        record::encode_message(&mut bytes, stored);
        self.append_message_record(stored.seq, stored.enqueued_at_ms, bytes)
    }

    /// Appends a framed message record (in any format the reader knows: the upgrade test
    /// writes old ones).
    pub(super) fn append_message_record(
        self: &Arc<Self>,
        seq: u64,
        enqueued_at_ms: u64,
        bytes: Vec<u8>,
    ) -> (Position, u64) {
        let (position, lsn) = {
            let mut inner = self.inner.lock();
            debug_assert!(seq >= inner.next_seq_floor, "sequence went backwards");
            let position = inner.push(bytes, self.segment_bytes, Some(seq));
            inner.next_seq_floor = seq + 1;
            if let Some(segment) = inner.segment_mut(seq) {
                segment.live += 1;
                segment.last_enqueued_ms = segment.last_enqueued_ms.max(enqueued_at_ms);
            }
            (position, inner.appended_lsn)
        };
        self.mark_dirty();
        (position, lsn)
    }

    /// Records that messages left the queue for good (only ones appended to this log), and
    /// deletes segments that no longer hold any message still queued. Returns the LSN that makes
    /// the record durable.
    pub fn removed(self: &Arc<Self>, seqs: &[u64]) -> u64 {
        if seqs.is_empty() {
            return self.inner.lock().appended_lsn;
        }
        let lsn = {
            let mut inner = self.inner.lock();
            let mut bytes = Vec::new();
            record::encode_runs(&mut bytes, true, &record::runs_of(seqs));
            inner.push(bytes, self.segment_bytes, None);
            for &seq in seqs {
                if let Some(segment) = inner.segment_mut(seq) {
                    segment.live = segment.live.saturating_sub(1);
                }
            }
            self.delete_drained_segments(&mut inner);
            inner.appended_lsn
        };
        self.mark_dirty();
        lsn
    }

    /// Records one more delivery of each message.
    pub fn delivered(self: &Arc<Self>, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        {
            let mut inner = self.inner.lock();
            let mut bytes = Vec::new();
            record::encode_runs(&mut bytes, false, &record::runs_of(seqs));
            inner.push(bytes, self.segment_bytes, None);
        }
        self.mark_dirty();
    }

    /// The LSN of everything appended so far.
    pub fn appended_lsn(&self) -> u64 {
        self.inner.lock().appended_lsn
    }

    /// Whether a failed write or fsync lost any record ending in `oldest..=newest`.
    pub fn lost_between(&self, oldest: u64, newest: u64) -> bool {
        let inner = self.inner.lock();
        inner
            .lost
            .iter()
            .any(|&(from, to)| to >= oldest && from < newest)
    }

    /// Whether the fate of everything up to `lsn` is known: durable, or lost.
    pub fn is_resolved(&self, lsn: u64) -> bool {
        self.inner.lock().durable_lsn >= lsn
    }

    pub fn status(&self, lsn: u64) -> LsnStatus {
        let inner = self.inner.lock();
        if inner.lost.iter().any(|&(from, to)| lsn > from && lsn <= to) {
            LsnStatus::Lost
        } else if inner.durable_lsn >= lsn {
            LsnStatus::Durable
        } else {
            LsnStatus::Pending
        }
    }

    /// How many bytes of segment `position.segment` can be read, or `None` when it has no
    /// file. When `position` is at or past the written part, pending chunks are written first
    /// (and any write in progress is waited for). `u64::MAX` means "the whole file".
    pub fn readable_limit(&self, position: Position) -> Option<u64> {
        let written = self.inner.lock().written.get(&position.segment).copied();
        if written.is_none_or(|written| written <= position.offset) {
            // A failed write is reported to publishers through their LSNs; the reader then
            // sees only what did get written.
            self.write_pending();
        }
        self.inner.lock().written.get(&position.segment).copied()
    }

    /// The segment after `id` that exists or will, if any.
    pub fn next_segment(&self, id: u64) -> Option<u64> {
        let inner = self.inner.lock();
        inner.segments.iter().map(|s| s.id).find(|&s| s > id)
    }

    /// Writes every pending chunk and hands the syncer what to fsync: every file written since
    /// it last asked (by it or by a reader), and the LSN they cover.
    pub(super) fn write_for_sync(&self) -> Written {
        let mut files = self.write_lock.lock();
        self.write_locked(&mut files);
        Written {
            files: std::mem::take(&mut files.unsynced),
            dir: std::mem::take(&mut files.dir_dirty).then(|| self.dir.clone()),
            lsn: self.inner.lock().written_lsn,
        }
    }

    /// Writes what is pending to the operating system now (no fsync; the syncer does that).
    pub fn write_out(&self) {
        self.write_pending();
    }

    /// Writes every pending chunk to its segment file, creating files as needed.
    fn write_pending(&self) {
        let mut files = self.write_lock.lock();
        self.write_locked(&mut files);
    }

    fn write_locked(&self, files: &mut Files) {
        loop {
            let Some(chunk) = self.inner.lock().pending.pop_front() else {
                break;
            };
            match self.write_chunk(files, &chunk) {
                Ok(()) => {
                    let mut inner = self.inner.lock();
                    inner.written_lsn = chunk.lsn_end;
                    *inner
                        .written
                        .entry(chunk.segment)
                        .or_insert(SEGMENT_HEADER_BYTES) += chunk.bytes.len() as u64;
                }
                Err(error) => {
                    tracing::error!(
                        queue = %self.queue,
                        segment = chunk.segment,
                        %error,
                        "writing to the queue's log failed; the records are not stored"
                    );
                    let mut inner = self.inner.lock();
                    inner.lose(&chunk);
                    // The records appended after this chunk to the same segment were given
                    // positions past the bytes that are missing now: lose them too, and
                    // start a new segment, so every position handed out from now on is true.
                    while let Some(next) = inner.pending.front() {
                        if next.segment != chunk.segment {
                            break;
                        }
                        let next = inner.pending.pop_front().expect("front exists");
                        inner.lose(&next);
                    }
                    if inner.current == chunk.segment {
                        inner.start_segment(None);
                    }
                    drop(inner);
                    // The file may hold a torn record past the good part; a fresh segment
                    // follows, so it is not appended to again.
                    if files
                        .open
                        .as_ref()
                        .is_some_and(|(id, _)| *id == chunk.segment)
                    {
                        files.open = None;
                    }
                }
            }
        }
    }

    fn write_chunk(&self, files: &mut Files, chunk: &Chunk) -> io::Result<()> {
        let file = match &files.open {
            Some((id, file)) if *id == chunk.segment => Arc::clone(file),
            _ => {
                let file = match segment::create_segment(&self.dir, chunk.segment) {
                    Ok(file) => file,
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                        segment::open_segment_for_append(&self.dir, chunk.segment)?
                    }
                    Err(error) => return Err(error),
                };
                self.inner
                    .lock()
                    .written
                    .entry(chunk.segment)
                    .or_insert(SEGMENT_HEADER_BYTES);
                files.dir_dirty = true;
                let file = Arc::new(file);
                files.open = Some((chunk.segment, Arc::clone(&file)));
                file
            }
        };
        if !files.unsynced.iter().any(|f| Arc::ptr_eq(f, &file)) {
            files.unsynced.push(Arc::clone(&file));
        }
        let good_len = self
            .inner
            .lock()
            .written
            .get(&chunk.segment)
            .copied()
            .unwrap_or(SEGMENT_HEADER_BYTES);
        if let Err(error) = (&*file).write_all(&chunk.bytes) {
            // Cut off whatever part did land so later records follow the last good one.
            let _ = file.set_len(good_len);
            return Err(error);
        }
        Ok(())
    }

    /// Marks everything written up to `lsn` durable (the syncer calls this after fsync).
    pub(super) fn set_durable(&self, lsn: u64) {
        let mut inner = self.inner.lock();
        inner.durable_lsn = inner.durable_lsn.max(lsn);
    }

    /// Counts everything not yet durable up to `lsn` as lost (after a failed fsync).
    pub(super) fn mark_lost_through(&self, lsn: u64) {
        let mut inner = self.inner.lock();
        let from = inner.durable_lsn;
        if lsn > from {
            inner.lost.push_back((from, lsn));
            if inner.lost.len() > MAX_LOST_RANGES {
                inner.lost.pop_front();
            }
            inner.durable_lsn = lsn;
        }
    }

    /// Deletes the log's files; later appends are dropped.
    pub fn delete(&self) -> io::Result<()> {
        let _files = self.write_lock.lock();
        let mut inner = self.inner.lock();
        inner.deleted = true;
        inner.pending.clear();
        inner.durable_lsn = inner.appended_lsn;
        drop(inner);
        match std::fs::remove_dir_all(&self.dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    fn mark_dirty(self: &Arc<Self>) {
        if !self.dirty.swap(true, Ordering::AcqRel) {
            self.sync.push(Arc::clone(self));
        }
    }

    fn delete_drained_segments(&self, inner: &mut Inner) {
        let first_pending = inner.pending.front().map(|c| c.segment);
        let now_ms = super::now_ms();
        while let Some(oldest) = inner.segments.front().copied() {
            let unwritten = first_pending.is_some_and(|pending| oldest.id >= pending);
            let retained = self.retain_ms > 0
                && oldest.last_enqueued_ms.saturating_add(self.retain_ms) > now_ms;
            if oldest.live > 0 || oldest.id == inner.current || unwritten || retained {
                break;
            }
            inner.segments.pop_front();
            inner.written.remove(&oldest.id);
            match std::fs::remove_file(segment::segment_path(&self.dir, oldest.id)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => tracing::warn!(
                    queue = %self.queue, segment = oldest.id, %error,
                    "could not delete a drained segment"
                ),
            }
        }
    }

    #[cfg(test)]
    pub(super) fn segment_ids(&self) -> Vec<u64> {
        self.inner.lock().segments.iter().map(|s| s.id).collect()
    }
}

impl Inner {
    /// Adds an encoded record to the current segment, starting a new segment first when this
    /// one is full (a message record also sets the new segment's first sequence number).
    fn push(&mut self, bytes: Vec<u8>, segment_bytes: u64, seq: Option<u64>) -> Position {
        if self.deleted {
            return Position {
                segment: self.current,
                offset: self.current_size,
            };
        }
        let len = bytes.len() as u64;
        if self.current_size > SEGMENT_HEADER_BYTES && self.current_size + len > segment_bytes {
            self.start_segment(seq);
        }
        let position = Position {
            segment: self.current,
            offset: self.current_size,
        };
        self.current_size += len;
        self.appended_lsn += len;
        match self.pending.back_mut() {
            Some(chunk) if chunk.segment == self.current && chunk.bytes.len() < 4 << 20 => {
                chunk.bytes.extend_from_slice(&bytes);
                chunk.lsn_end = self.appended_lsn;
            }
            _ => self.pending.push_back(Chunk {
                segment: self.current,
                bytes,
                lsn_end: self.appended_lsn,
            }),
        }
        position
    }

    /// Makes appends go to a new segment (whose first message will be `seq`, when known).
    fn start_segment(&mut self, seq: Option<u64>) {
        self.current += 1;
        self.current_size = SEGMENT_HEADER_BYTES;
        self.segments.push_back(SegmentInfo {
            id: self.current,
            first_seq: seq.unwrap_or(self.next_seq_floor),
            live: 0,
            last_enqueued_ms: 0,
        });
    }

    /// Counts a chunk that was not written as lost, and the log as written past it.
    fn lose(&mut self, chunk: &Chunk) {
        let from = chunk.lsn_end - chunk.bytes.len() as u64;
        self.lost.push_back((from, chunk.lsn_end));
        if self.lost.len() > MAX_LOST_RANGES {
            self.lost.pop_front();
        }
        self.written_lsn = chunk.lsn_end;
    }

    /// The segment holding message `seq` (the newest whose first sequence number is ≤ it).
    fn segment_mut(&mut self, seq: u64) -> Option<&mut SegmentInfo> {
        let index = self.segments.partition_point(|s| s.first_seq <= seq);
        index.checked_sub(1).map(|index| &mut self.segments[index])
    }
}
