//! How many bidirectional streams a client may have open at once, grown as it uses them.
//!
//! quinn-proto allocates state for every stream a peer is allowed to open as soon as it is
//! allowed (an entry in two hash maps per stream id), so a connection that starts with the full
//! ceiling carries its cost even when idle. A connection therefore starts with
//! [`INITIAL_BIDI_STREAMS`]; whenever the streams it has open reach half the current limit, the
//! limit doubles, up to the configured ceiling. The limit never shrinks: quinn keeps the maps it
//! grew, so lowering it would only make the client wait. A client that opens streams faster than
//! the limit grows is not refused: its `open_bi` waits for the `MAX_STREAMS` credit that follows.
//!
//! Only the connection's accept loop calls [`BidiStreamLimit::accepted`]; the stream tasks hold
//! an [`OpenStream`] and release it when they end, from any thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The limit a connection starts with: the control stream plus a few publishers and consumers.
pub(crate) const INITIAL_BIDI_STREAMS: u32 = 32;

/// The most bidirectional streams one connection may have open.
pub(crate) const MAX_BIDI_STREAMS: u32 = 1024;

/// One connection's bidirectional stream limit and its open streams.
#[derive(Debug)]
pub(crate) struct BidiStreamLimit {
    open: Arc<AtomicU32>,
    limit: u32,
    ceiling: u32,
}

/// Counts one accepted stream as open until dropped.
#[derive(Debug)]
pub(crate) struct OpenStream(Arc<AtomicU32>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BidiStreamLimit {
    /// A connection's limit, starting at `initial` (which must match the transport config's
    /// `max_concurrent_bidi_streams`) and growing to `ceiling`.
    pub(crate) fn new(initial: u32, ceiling: u32) -> Self {
        BidiStreamLimit {
            open: Arc::default(),
            limit: initial,
            ceiling: ceiling.max(initial),
        }
    }

    /// Counts a newly accepted stream. Returns the new limit when it should be raised (the
    /// caller passes it to `quinn::Connection::set_max_concurrent_bi_streams`).
    pub(crate) fn accepted(&mut self) -> (OpenStream, Option<u32>) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = OpenStream(Arc::clone(&self.open));
        if open >= self.limit / 2 && self.limit < self.ceiling {
            self.limit = self.limit.saturating_mul(2).min(self.ceiling);
            return (guard, Some(self.limit));
        }
        (guard, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_doubles_when_half_the_streams_are_open_up_to_the_ceiling() {
        let mut limit = BidiStreamLimit::new(4, 16);
        let (first, raised) = limit.accepted();
        assert_eq!(raised, None);
        let (second, raised) = limit.accepted();
        assert_eq!(raised, Some(8));
        let (third, raised) = limit.accepted();
        assert_eq!(raised, None);
        let (_fourth, raised) = limit.accepted();
        assert_eq!(raised, Some(16));
        drop((first, second, third));
        let mut held = Vec::new();
        for _ in 0..20 {
            let (stream, raised) = limit.accepted();
            assert_eq!(raised, None, "never past the ceiling");
            held.push(stream);
        }
    }

    #[test]
    fn closed_streams_no_longer_count() {
        let mut limit = BidiStreamLimit::new(8, 64);
        for _ in 0..10 {
            let (stream, raised) = limit.accepted();
            assert_eq!(raised, None);
            drop(stream);
        }
    }
}
