//! [`Deduplication`]: the message-ids a queue enqueued within its `x-deduplication-window`.
//!
//! An id is remembered from the publish that enqueued it until the window has passed; a
//! duplicate does not extend the window. Messages without a message-id are never duplicates.
//! Ids compare by their bytes (a text id as its UTF-8).
//! Expired ids are pruned on every check, oldest first.
//!
//! With each id goes the LSN of the original's record in a durable queue's log, so that a
//! duplicate is confirmed only once the original is on disk, and refused if its write failed.
//!
//! Memory is bounded: at most [`MAX_IDS`] ids and [`MAX_ID_BYTES`] bytes of ids per queue. Past
//! either, the oldest ids are forgotten before their window ends (a late duplicate of one is
//! then enqueued again: at-least-once, never a loss).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most ids one queue remembers.
pub(super) const MAX_IDS: usize = 1 << 20;
/// The most bytes of ids one queue remembers.
pub(super) const MAX_ID_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub(super) struct Deduplication {
    window: Duration,
    /// Each id with when it was recorded and its original's LSN (for a persistent message in a
    /// durable queue).
    seen: HashMap<Arc<[u8]>, (Instant, Option<u64>)>,
    /// The same ids in the order they were recorded, for pruning.
    order: VecDeque<(Instant, Arc<[u8]>)>,
    bytes: usize,
}

impl Deduplication {
    pub(super) fn new(window: Duration) -> Self {
        Deduplication {
            window,
            seen: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }

    /// When `id` was recorded within the window before `now`: `Some` with the original's LSN.
    pub(super) fn duplicate_of(&mut self, id: &[u8], now: Instant) -> Option<Option<u64>> {
        self.prune(now);
        self.seen.get(id).map(|&(_, lsn)| lsn)
    }

    /// Remembers `id`, enqueued at `now` (with its record's LSN, when it has one).
    pub(super) fn record(&mut self, id: &[u8], now: Instant, lsn: Option<u64>) {
        if self.seen.contains_key(id) {
            return;
        }
        let id: Arc<[u8]> = Arc::from(id);
        self.bytes += id.len();
        self.seen.insert(Arc::clone(&id), (now, lsn));
        self.order.push_back((now, id));
        while self.seen.len() > MAX_IDS || self.bytes > MAX_ID_BYTES {
            self.forget_oldest();
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if *at + self.window > now {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, id)) = self.order.pop_front() {
            self.bytes -= id.len();
            self.seen.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_duplicate_only_within_the_window() {
        let mut dedup = Deduplication::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(dedup.duplicate_of(b"a", start), None);
        dedup.record(b"a", start, Some(7));
        assert_eq!(
            dedup.duplicate_of(b"a", start + Duration::from_secs(9)),
            Some(Some(7))
        );
        assert_eq!(
            dedup.duplicate_of(b"b", start + Duration::from_secs(9)),
            None
        );
        assert_eq!(
            dedup.duplicate_of(b"a", start + Duration::from_secs(10)),
            None
        );
        assert!(dedup.seen.is_empty() && dedup.order.is_empty(), "pruned");
        assert_eq!(dedup.bytes, 0);
    }

    /// Review finding 7: ids were kept for the whole window however many there were.
    #[test]
    fn ids_past_the_bound_forget_the_oldest_first() {
        let mut dedup = Deduplication::new(Duration::from_secs(3600));
        let start = Instant::now();
        let long = "x".repeat(200);
        for n in 0..MAX_IDS + 10 {
            dedup.record(format!("{n}-{long}").as_bytes(), start, None);
        }
        assert!(dedup.seen.len() <= MAX_IDS);
        assert!(dedup.bytes <= MAX_ID_BYTES);
        assert_eq!(dedup.seen.len(), dedup.order.len());
        assert_eq!(
            dedup.duplicate_of(format!("0-{long}").as_bytes(), start),
            None
        );
        let newest = format!("{}-{long}", MAX_IDS + 9);
        assert!(dedup.duplicate_of(newest.as_bytes(), start).is_some());
    }
}
