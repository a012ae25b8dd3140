//! The host-owned record a plugin's instances are rebuilt from: the authoritative state
//! (exchanges and their bindings, or compiled filter expressions) plus a bounded log of recent
//! operations, each numbered.
//!
//! An instance remembers the number of the last operation it applied. Before each use it
//! catches up on the operations after that number; if they have already left the log, or the
//! instance is new, it is (re)built from a snapshot of the whole state instead. This lets
//! `bind` and `unbind` return without visiting every instance, and makes a reload, a trap and a
//! fresh worker all the same thing: replay the snapshot.

use std::collections::VecDeque;

/// How many recent operations are kept for catch-up; an instance further behind is rebuilt.
const RECENT_OPERATIONS: usize = 4096;

/// State that operations apply to and that can be described as operations.
pub(crate) trait ReplayState: Default {
    type Op: Clone;

    fn apply(&mut self, op: &Self::Op);

    /// Operations that rebuild the whole state into an empty instance.
    fn snapshot(&self) -> Vec<Self::Op>;
}

/// What an instance must do to be current.
#[derive(Debug)]
pub(crate) enum CatchUp<Op> {
    Current,
    Apply(Vec<Op>),
    Rebuild,
}

#[derive(Debug)]
pub(crate) struct ReplayLog<S: ReplayState> {
    state: S,
    recent: VecDeque<S::Op>,
    /// Number of the next operation; an instance that applied everything holds this value.
    next: u64,
}

impl<S: ReplayState> Default for ReplayLog<S> {
    fn default() -> Self {
        ReplayLog {
            state: S::default(),
            recent: VecDeque::new(),
            next: 0,
        }
    }
}

impl<S: ReplayState> ReplayLog<S> {
    pub(crate) fn state(&self) -> &S {
        &self.state
    }

    /// Number an instance holds once it has applied everything so far.
    pub(crate) fn current(&self) -> u64 {
        self.next
    }

    /// Applies `op` to the authoritative state and logs it; returns the new current number.
    pub(crate) fn push(&mut self, op: S::Op) -> u64 {
        self.state.apply(&op);
        self.recent.push_back(op);
        if self.recent.len() > RECENT_OPERATIONS {
            self.recent.pop_front();
        }
        self.next += 1;
        self.next
    }

    pub(crate) fn catch_up(&self, applied: u64) -> CatchUp<S::Op> {
        if applied == self.next {
            return CatchUp::Current;
        }
        let first = self.next - self.recent.len() as u64;
        if applied < first || applied > self.next {
            return CatchUp::Rebuild;
        }
        let skip = usize::try_from(applied - first).unwrap_or(usize::MAX);
        CatchUp::Apply(self.recent.iter().skip(skip).cloned().collect())
    }

    /// The operations that rebuild everything, and the number the rebuilt instance holds.
    pub(crate) fn snapshot(&self) -> (u64, Vec<S::Op>) {
        (self.next, self.state.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counter(Vec<u32>);

    impl ReplayState for Counter {
        type Op = u32;
        fn apply(&mut self, op: &u32) {
            self.0.push(*op);
        }
        fn snapshot(&self) -> Vec<u32> {
            self.0.clone()
        }
    }

    #[test]
    fn an_instance_catches_up_on_recent_operations_and_rebuilds_when_too_far_behind() {
        let mut log = ReplayLog::<Counter>::default();
        assert!(matches!(log.catch_up(0), CatchUp::Current));
        log.push(1);
        log.push(2);
        match log.catch_up(1) {
            CatchUp::Apply(ops) => assert_eq!(ops, vec![2]),
            other => panic!("expected Apply, got {other:?}"),
        }
        for i in 0..RECENT_OPERATIONS as u32 {
            log.push(i);
        }
        assert!(matches!(log.catch_up(1), CatchUp::Rebuild));
        let (current, ops) = log.snapshot();
        assert_eq!(current, log.current());
        assert_eq!(ops.len(), RECENT_OPERATIONS + 2);
    }
}
