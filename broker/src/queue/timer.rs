//! [`QueueTimer`]: the one broker-wide timer that wakes queues at their next deadline (a
//! delayed message due, a head message expiring, a delivery's consumer timeout, the queue's
//! own `x-expires`).
//!
//! A queue schedules at most one pending wake-up per earlier deadline (it remembers what it
//! scheduled), so the timer holds about one entry per queue however many delayed or expiring
//! messages the queue has. The timer is a dedicated OS thread, not a Tokio task: a wake-up
//! dispatches (filter plugins) and dead-letters (routing plugins), which block. Entries hold
//! queues weakly; a deleted queue's entries just lapse. Dropping the timer stops the thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::Queue;

#[derive(Debug, Default)]
struct Schedule {
    /// Wake-ups by (time, serial): the serial keeps two queues due at once apart.
    entries: BTreeMap<(Instant, u64), Weak<Queue>>,
    next_serial: u64,
    stopped: bool,
    /// While set, nothing runs: wake-ups keep until it is cleared (see [`QueueTimer::hold`]).
    held: bool,
}

#[derive(Debug, Default)]
struct Shared {
    schedule: Mutex<Schedule>,
    changed: Condvar,
}

#[derive(Debug)]
pub struct QueueTimer {
    shared: Arc<Shared>,
}

impl QueueTimer {
    /// Starts the timer thread.
    pub fn start() -> QueueTimer {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("switchyard-queue-timer".into())
            .spawn(move || run(&thread_shared))
            .expect("spawning the queue timer thread");
        QueueTimer { shared }
    }

    /// Wakes `queue` (calls its `on_timer`) at `at` or soon after.
    pub(super) fn schedule(&self, at: Instant, queue: Weak<Queue>) {
        let mut schedule = self.shared.schedule.lock();
        let serial = schedule.next_serial;
        schedule.next_serial += 1;
        let earliest = schedule
            .entries
            .first_key_value()
            .is_none_or(|((first, _), _)| at < *first);
        schedule.entries.insert((at, serial), queue);
        if earliest {
            self.shared.changed.notify_one();
        }
    }

    /// Holds every wake-up until [`QueueTimer::release`]. The topology holds the timer while
    /// it restores durable definitions: a queue recovered with due or expired messages must not
    /// dead-letter them before the bindings they route through are back.
    pub fn hold(&self) {
        self.shared.schedule.lock().held = true;
    }

    /// Runs what was held, and what comes due from now on.
    pub fn release(&self) {
        self.shared.schedule.lock().held = false;
        self.shared.changed.notify_one();
    }

    /// Wake-ups scheduled and not yet run.
    pub fn pending(&self) -> usize {
        self.shared.schedule.lock().entries.len()
    }
}

impl Drop for QueueTimer {
    fn drop(&mut self) {
        // Not joined: the last reference may be dropped on the timer thread itself.
        self.shared.schedule.lock().stopped = true;
        self.shared.changed.notify_one();
    }
}

fn run(shared: &Shared) {
    let mut schedule = shared.schedule.lock();
    loop {
        if schedule.stopped {
            return;
        }
        let now = Instant::now();
        match schedule.entries.first_key_value() {
            _ if schedule.held => shared.changed.wait(&mut schedule),
            None => shared.changed.wait(&mut schedule),
            Some(((at, _), _)) if *at > now => {
                let at = *at;
                shared.changed.wait_until(&mut schedule, at);
            }
            Some(_) => {
                let mut due = Vec::new();
                while let Some(entry) = schedule.entries.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    due.push(entry.remove());
                }
                parking_lot::MutexGuard::unlocked(&mut schedule, || {
                    for queue in due {
                        if let Some(queue) = queue.upgrade() {
                            queue.on_timer();
                        }
                    }
                });
            }
        }
    }
}
