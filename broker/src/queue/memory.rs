//! The broker-wide count of message bytes held in queues (ready and unacknowledged), which
//! the memory high-watermark is checked against.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct MemoryGauge {
    bytes: AtomicU64,
}

impl MemoryGauge {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, bytes: u64) {
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}
