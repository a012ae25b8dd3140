//! Busy-waiting after traffic, as Erlang's schedulers do (`+sbwt`): for a short while after the
//! last datagram, the CPUs are kept from going idle, so that the next datagram does not have
//! to wake a halted one.
//!
//! Why: on a virtual machine, waking a thread whose CPU has halted costs a trip through the
//! hypervisor, tens of microseconds, and every message through the broker wakes threads: the
//! broker's when it arrives, its consumer's when it leaves. Measured with `bench/` W4
//! (ping-pong through the broker, client and broker on one 2-CPU VM): p50 141–149 µs without,
//! 92–93 µs with (the 2026-12-01 20:05 run in `bench/README.md`).
//!
//! How: one spinner thread per worker thread of the runtime. While traffic was seen within
//! `window`, a spinner only calls `sched_yield`: any other runnable thread on its CPU (the
//! broker's own workers, a client's threads) runs first, so a spinner never holds a CPU that
//! someone wants, it only keeps an otherwise idle CPU from halting. When a yield comes back
//! late, other threads are keeping that CPU busy and it will not halt anyway: the spinner
//! steps aside for [`BUSY_BACK_OFF`], so a saturated broker pays next to nothing for it.
//! Once the window has passed without traffic, spinners sleep until the next datagram. The
//! cost is CPU time while traffic lasts and for `window` after it, shown in the broker's CPU
//! usage; `busy_wait_us = 0` turns it off.
//!
//! [`BusyWait::saw_traffic`] is called by [`TrafficSocket`](super::traffic_socket) for every
//! datagram sent or received: one clock read and one relaxed store, plus waking the spinners
//! when they sleep.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A yield that takes longer than this means other threads ran on the spinner's CPU.
const LATE_YIELD: Duration = Duration::from_micros(500);

/// How long a spinner steps aside when its CPU is busy anyway.
const BUSY_BACK_OFF: Duration = Duration::from_micros(500);

/// The longest a sleeping spinner goes without looking at the clock and the shutdown flag.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// When traffic was last seen, and the spinners that act on it.
#[derive(Debug)]
pub(crate) struct BusyWait {
    window: Duration,
    /// The clock `last_traffic` counts from.
    origin: Instant,
    /// Nanoseconds since `origin` (plus `window`, see `now_ns`) at the last datagram.
    last_traffic: AtomicU64,
    /// Set by a spinner before it sleeps; traffic then wakes the spinners.
    sleeping: AtomicBool,
    stopped: AtomicBool,
    spinners: Mutex<Vec<Thread>>,
}

impl BusyWait {
    pub(crate) fn new(window: Duration) -> Arc<BusyWait> {
        Arc::new(BusyWait {
            window,
            origin: Instant::now(),
            last_traffic: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            spinners: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// Records a datagram; wakes the spinners if they sleep.
    pub(crate) fn saw_traffic(&self) {
        if !self.enabled() {
            return;
        }
        self.last_traffic.store(self.now_ns(), Ordering::Relaxed);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            for spinner in self.spinners.lock().iter() {
                spinner.unpark();
            }
        }
    }

    /// Whether traffic was seen within the window.
    fn recent(&self) -> bool {
        let last = self.last_traffic.load(Ordering::Relaxed);
        self.now_ns().saturating_sub(last) <= self.window.as_nanos() as u64
    }

    /// Offset by more than the window, so that `last_traffic`'s initial 0 is long ago.
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64 + self.window.as_nanos() as u64 + 1
    }

    /// Starts `count` spinner threads (one per worker thread of the runtime). They end on
    /// [`stop`](Self::stop), or once this `BusyWait` is dropped.
    pub(crate) fn start(self: &Arc<Self>, count: usize) -> std::io::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let mut spinners = self.spinners.lock();
        for n in 0..count {
            let busy_wait = Arc::downgrade(self);
            let spinner = std::thread::Builder::new()
                .name(format!("busy-wait-{n}"))
                .spawn(move || spin(&busy_wait))?;
            spinners.push(spinner.thread().clone());
        }
        Ok(())
    }

    /// Ends the spinners: awake or asleep, they notice at once.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for spinner in self.spinners.lock().iter() {
            spinner.unpark();
        }
    }
}

/// A spinner thread's life: see the module docs. It holds the `BusyWait` only while awake.
fn spin(busy_wait: &Weak<BusyWait>) {
    while let Some(busy_wait) = busy_wait.upgrade() {
        while busy_wait.recent() && !busy_wait.stopped.load(Ordering::Relaxed) {
            let yielded = Instant::now();
            std::thread::yield_now();
            if yielded.elapsed() > LATE_YIELD {
                std::thread::park_timeout(BUSY_BACK_OFF);
            }
        }
        if busy_wait.stopped.load(Ordering::Acquire) {
            return;
        }
        // Announce sleep before the last look, so traffic in between is not missed (and an
        // unpark that comes before the park makes the park return at once).
        busy_wait.sleeping.store(true, Ordering::Release);
        let quiet = !busy_wait.recent();
        drop(busy_wait);
        if quiet {
            std::thread::park_timeout(MAX_SLEEP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_recent_within_the_window_and_not_after_it() {
        let long = BusyWait::new(Duration::from_secs(10));
        assert!(!long.recent(), "no traffic yet");
        long.saw_traffic();
        assert!(long.recent());
        let short = BusyWait::new(Duration::from_millis(1));
        short.saw_traffic();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!short.recent());
    }

    #[test]
    fn a_zero_window_turns_it_off() {
        let busy = BusyWait::new(Duration::ZERO);
        assert!(!busy.enabled());
        busy.saw_traffic();
        assert!(!busy.recent());
        busy.start(2).unwrap();
        assert!(busy.spinners.lock().is_empty(), "no spinners");
    }

    /// Polls `condition` for up to 10 s.
    fn eventually(condition: impl Fn() -> bool) -> bool {
        for _ in 0..2000 {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn spinners_sleep_without_traffic_wake_on_it_and_stop() {
        let busy = BusyWait::new(Duration::from_millis(20));
        busy.start(2).unwrap();
        let asleep = || busy.sleeping.load(Ordering::Acquire);
        assert!(eventually(asleep), "asleep with no traffic");
        busy.saw_traffic();
        assert!(!asleep(), "traffic wakes them");
        assert!(eventually(asleep), "asleep once the window has passed");
        assert_eq!(busy.spinners.lock().len(), 2);
        busy.stop();
    }
}
