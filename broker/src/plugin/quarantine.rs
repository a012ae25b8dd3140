//! Quarantine of a plugin that keeps faulting: a circuit breaker for faults no single message
//! explains.
//!
//! A call that faults on one message (a trap, an overrun deadline, the memory cap, an invalid
//! answer) is that message's fault: the message is refused or dead-lettered, the instance is
//! replaced, and the plugin goes on serving everyone else. So call faults quarantine a plugin
//! only when [`PluginLimits::quarantine_faults`] calls in a row have faulted, with no call
//! succeeding, for at least [`PluginLimits::quarantine_after`]: the plugin then fails whatever
//! it is given, and refusing calls at once saves each caller its deadline. Faults outside any call (an instance cannot be built or brought up
//! to date) are the plugin's alone: that many of them within `fault_window` quarantine it too.
//! A quarantine refuses every call for the quarantine period, after which calls are tried
//! again. A new version of the plugin lifts the quarantine at once.
//!
//! The hot path reads one atomic to check, and one to note a success; the fault history is
//! locked only when a fault happens.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::error::PluginError;
use super::limits::PluginLimits;

#[derive(Debug)]
pub(crate) struct Quarantine {
    plugin: String,
    epoch: Instant,
    /// Nanoseconds after `epoch` when the quarantine ends; 0 when there is none.
    until_nanos: AtomicU64,
    /// Call faults since the last call that succeeded.
    consecutive_call_faults: AtomicU32,
    history: Mutex<FaultHistory>,
}

#[derive(Debug, Default)]
struct FaultHistory {
    /// When recent instance faults happened (within the fault window).
    recent: VecDeque<Instant>,
    total: u64,
    last: Option<String>,
    /// How many faults started the current (or last) quarantine.
    tripped_by: usize,
    /// When the current run of call faults (with no success since) began.
    streak_started: Option<Instant>,
}

/// Where a fault happened, which decides how it counts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultSite {
    /// A call on one message or request.
    Call,
    /// Building or updating an instance, before any call.
    Instance,
}

/// What the plugin list shows about a plugin's faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultReport {
    pub total_faults: u64,
    pub last_fault: Option<String>,
    pub quarantined_for: Option<Duration>,
}

impl Quarantine {
    pub(crate) fn new(plugin: &str) -> Self {
        Quarantine {
            plugin: plugin.to_owned(),
            epoch: Instant::now(),
            until_nanos: AtomicU64::new(0),
            consecutive_call_faults: AtomicU32::new(0),
            history: Mutex::new(FaultHistory::default()),
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Refuses the call while quarantined.
    pub(crate) fn check(&self) -> Result<(), PluginError> {
        let until = self.until_nanos.load(Ordering::Relaxed);
        if until == 0 {
            return Ok(());
        }
        let now = self.now_nanos();
        if now >= until {
            return Ok(());
        }
        let history = self.history.lock();
        Err(PluginError::Quarantined {
            plugin: self.plugin.clone(),
            faults: history.tripped_by,
            remaining: Duration::from_nanos(until - now),
            last_fault: history.last.clone().unwrap_or_default(),
        })
    }

    /// Notes a call that succeeded: the faults before it were the messages' own.
    pub(crate) fn record_success(&self) {
        if self.consecutive_call_faults.load(Ordering::Relaxed) != 0 {
            self.consecutive_call_faults.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a fault; quarantines the plugin when it fails everything (see the module docs).
    pub(crate) fn record(&self, error: &PluginError, site: FaultSite, limits: &PluginLimits) {
        let now = Instant::now();
        let mut history = self.history.lock();
        history.total += 1;
        history.last = Some(error.to_string());
        let (count, long_enough) = match site {
            FaultSite::Call => {
                let before = self.consecutive_call_faults.fetch_add(1, Ordering::Relaxed);
                if before == 0 {
                    history.streak_started = Some(now);
                }
                let failing_for = history
                    .streak_started
                    .map_or(Duration::ZERO, |since| now.duration_since(since));
                (before as usize + 1, failing_for >= limits.quarantine_after)
            }
            FaultSite::Instance => {
                history.recent.push_back(now);
                while history
                    .recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > limits.fault_window)
                {
                    history.recent.pop_front();
                }
                (history.recent.len(), true)
            }
        };
        if count >= limits.quarantine_faults && long_enough {
            let until = self.now_nanos().saturating_add(
                u64::try_from(limits.quarantine_period.as_nanos()).unwrap_or(u64::MAX),
            );
            self.until_nanos.store(until.max(1), Ordering::Relaxed);
            tracing::error!(
                plugin = self.plugin.as_str(),
                faults = count,
                site = ?site,
                period = ?limits.quarantine_period,
                error = %error,
                "plugin quarantined"
            );
            history.tripped_by = count;
            history.recent.clear();
            self.consecutive_call_faults.store(0, Ordering::Relaxed);
        }
    }

    /// Lifts the quarantine and forgets recent faults (a new version was loaded).
    pub(crate) fn reset(&self) {
        self.until_nanos.store(0, Ordering::Relaxed);
        self.consecutive_call_faults.store(0, Ordering::Relaxed);
        self.history.lock().recent.clear();
    }

    pub(crate) fn report(&self) -> FaultReport {
        let history = self.history.lock();
        let until = self.until_nanos.load(Ordering::Relaxed);
        let now = self.now_nanos();
        FaultReport {
            total_faults: history.total,
            last_fault: history.last.clone(),
            quarantined_for: (until > now).then(|| Duration::from_nanos(until - now)),
        }
    }
}
