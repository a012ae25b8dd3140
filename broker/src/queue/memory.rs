//! The broker-wide count of message bytes held in queues (ready and unacknowledged), which
//! the memory high-watermark is checked against, and the event of crossing it.
//!
//! Counting is one atomic add per message and queue. Whether the count is above the watermark
//! is mirrored in an atomic flag, so the common case (no crossing) costs one more load; only a
//! crossing takes the watch channel's lock, to tell the sessions waiting on it
//! ([`MemoryGauge::subscribe`]). Counts and flag are sequentially consistent, and whoever
//! settles the flag re-reads the count after storing it: a count that raced past a settling
//! thread (and saw the old flag) is then seen by that thread, so the flag never stays wrong.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::watch;

#[derive(Debug)]
pub struct MemoryGauge {
    bytes: AtomicU64,
    /// Above this many bytes publishers are held back; `u64::MAX` until set.
    watermark: AtomicU64,
    /// Mirrors `above`'s value, read on every count.
    above_flag: AtomicBool,
    /// Whether the count is above the watermark, for whoever waits for a change.
    above: watch::Sender<bool>,
}

impl Default for MemoryGauge {
    fn default() -> Self {
        MemoryGauge {
            bytes: AtomicU64::new(0),
            watermark: AtomicU64::new(u64::MAX),
            above_flag: AtomicBool::new(false),
            above: watch::Sender::new(false),
        }
    }
}

impl MemoryGauge {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The watermark the gauge reports crossings of.
    pub fn watermark(&self) -> u64 {
        self.watermark.load(Ordering::Relaxed)
    }

    pub(crate) fn set_watermark(&self, bytes: u64) {
        self.watermark.store(bytes, Ordering::Relaxed);
        self.recheck();
    }

    /// Whether queued bytes are above the watermark now, and every change of that from here.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.above.subscribe()
    }

    pub(crate) fn add(&self, bytes: u64) {
        let now = self
            .bytes
            .fetch_add(bytes, Ordering::SeqCst)
            .wrapping_add(bytes);
        self.note(now);
    }

    pub(crate) fn sub(&self, bytes: u64) {
        let now = self
            .bytes
            .fetch_sub(bytes, Ordering::SeqCst)
            .wrapping_sub(bytes);
        self.note(now);
    }

    fn note(&self, now: u64) {
        if (now > self.watermark()) != self.above_flag.load(Ordering::SeqCst) {
            self.recheck();
        }
    }

    /// Settles the flag and the channel under the channel's lock, from the count as it is then
    /// (two racing counts may each have seen a crossing the other undid).
    fn recheck(&self) {
        loop {
            self.above.send_if_modified(|above| {
                let now = self.bytes.load(Ordering::SeqCst) > self.watermark();
                self.above_flag.store(now, Ordering::SeqCst);
                let changed = *above != now;
                *above = now;
                changed
            });
            let settled = (self.bytes.load(Ordering::SeqCst) > self.watermark())
                == self.above_flag.load(Ordering::SeqCst);
            if settled {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_the_watermark_either_way_is_told_once() {
        let gauge = MemoryGauge::default();
        gauge.set_watermark(100);
        let mut above = gauge.subscribe();
        assert!(!*above.borrow_and_update());
        gauge.add(60);
        gauge.add(40);
        assert!(!above.has_changed().unwrap(), "100 is not above 100");
        gauge.add(1);
        assert!(above.has_changed().unwrap());
        assert!(*above.borrow_and_update());
        gauge.add(500);
        gauge.sub(400);
        assert!(!above.has_changed().unwrap(), "still above: no event");
        gauge.sub(101);
        assert!(above.has_changed().unwrap());
        assert!(!*above.borrow_and_update());
        assert_eq!(gauge.bytes(), 100);
    }
}
