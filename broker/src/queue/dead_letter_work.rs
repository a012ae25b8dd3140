//! The work list that routes dead letters one hop at a time, so that a chain of dead-letterings
//! never becomes a chain of nested calls.
//!
//! Routing a dead letter enqueues it in its targets, and an enqueue can make a target
//! dead-letter in turn (a length limit drops its head, say). Done by recursion, a queue that
//! dead-letters into itself, or two that dead-letter into each other, would nest one call per
//! hop until the thread's stack overflowed and the process aborted. Instead, the first queue on
//! a thread to have dead letters becomes the *driver*: it routes its letters, and every queue
//! that produces letters meanwhile on the same thread only appends them to this thread's list,
//! which the driver works through until it is empty. The stack depth stays constant.
//!
//! Each batch carries its hop: 1 for letters of an operation a client or the timer started,
//! one more for letters produced while routing letters of hop `n`. Letters past
//! [`MAX_DEAD_LETTER_HOPS`] are dropped with a warning instead of routed: an automatic
//! dead-letter cycle that the trail rule lets through (a message some consumer once rejected,
//! going round a loop of length-limited queues) ends there instead of spinning forever.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;

use super::dead_letter::DeathReason;
use super::{Queue, QueuedMessage};

/// How many dead-letter hops one operation may cause before further letters are dropped.
pub const MAX_DEAD_LETTER_HOPS: u32 = 32;

/// One queue's dead letters, waiting to be routed.
struct Batch {
    source: Arc<Queue>,
    letters: Vec<(QueuedMessage, DeathReason)>,
    hop: u32,
}

thread_local! {
    /// The letters waiting on this thread; `Some` while a driver works through them.
    static PENDING: RefCell<Option<VecDeque<Batch>>> = const { RefCell::new(None) };
    /// The hop of the batch being routed on this thread (0 outside any).
    static CURRENT_HOP: Cell<u32> = const { Cell::new(0) };
}

/// Routes `letters` of `source` (see the module docs): now, when no dead letters are being
/// routed on this thread, or else after the batch being routed, by the driver that routes it.
pub(super) fn route(source: Arc<Queue>, letters: Vec<(QueuedMessage, DeathReason)>) {
    let batch = Batch {
        source,
        letters,
        hop: CURRENT_HOP.get() + 1,
    };
    let first = PENDING.with_borrow_mut(|pending| match pending {
        Some(queue) => {
            queue.push_back(batch);
            None
        }
        None => {
            *pending = Some(VecDeque::new());
            Some(batch)
        }
    });
    let Some(first) = first else { return };
    // Resets the list even if routing panics, so this thread is not left queueing forever.
    let _driver = Driver;
    let mut next = Some(first);
    while let Some(batch) = next {
        CURRENT_HOP.set(batch.hop);
        if batch.hop > MAX_DEAD_LETTER_HOPS {
            batch.source.drop_looping_letters(batch.letters);
        } else {
            batch.source.route_dead_letters(batch.letters);
        }
        next = PENDING.with_borrow_mut(|pending| pending.as_mut().and_then(VecDeque::pop_front));
    }
}

/// Ends a driver's turn: the thread routes no dead letters any more.
struct Driver;

impl Drop for Driver {
    fn drop(&mut self) {
        CURRENT_HOP.set(0);
        PENDING.with_borrow_mut(|pending| *pending = None);
    }
}
