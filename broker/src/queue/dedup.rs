//! [`Deduplication`]: the message-ids a queue enqueued within its `x-deduplication-window`.
//!
//! An id is remembered from the publish that enqueued it until the window has passed; a
//! duplicate does not extend the window. Messages without a message-id are never duplicates.
//! Memory is one entry per distinct id published within one window; expired ids are pruned on
//! every check, oldest first.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct Deduplication {
    window: Duration,
    seen: HashMap<String, Instant>,
    /// The same ids in the order they were recorded, for pruning.
    order: VecDeque<(Instant, String)>,
}

impl Deduplication {
    pub(super) fn new(window: Duration) -> Self {
        Deduplication {
            window,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `id` was recorded within the window before `now`.
    pub(super) fn is_duplicate(&mut self, id: &str, now: Instant) -> bool {
        self.prune(now);
        self.seen.contains_key(id)
    }

    /// Remembers `id`, enqueued at `now`.
    pub(super) fn record(&mut self, id: &str, now: Instant) {
        if self.seen.insert(id.to_owned(), now).is_none() {
            self.order.push_back((now, id.to_owned()));
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if *at + self.window > now {
                break;
            }
            let (_, id) = self.order.pop_front().expect("front exists");
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
        assert!(!dedup.is_duplicate("a", start));
        dedup.record("a", start);
        assert!(dedup.is_duplicate("a", start + Duration::from_secs(9)));
        assert!(!dedup.is_duplicate("b", start + Duration::from_secs(9)));
        assert!(!dedup.is_duplicate("a", start + Duration::from_secs(10)));
        assert!(dedup.seen.is_empty() && dedup.order.is_empty(), "pruned");
    }
}
