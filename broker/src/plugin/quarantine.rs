//! Quarantine of a plugin that keeps faulting: a circuit breaker. Faults (traps, overrun
//! deadlines, the memory cap, invalid answers) are counted over a sliding window; reaching the
//! limit refuses every call for the quarantine period, after which calls are tried again. A
//! new version of the plugin lifts the quarantine at once.
//!
//! The hot path reads one atomic; the fault history is locked only when a fault happens.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
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
    history: Mutex<FaultHistory>,
}

#[derive(Debug, Default)]
struct FaultHistory {
    recent: VecDeque<Instant>,
    total: u64,
    last: Option<String>,
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
            faults: history.recent.len(),
            remaining: Duration::from_nanos(until - now),
            last_fault: history.last.clone().unwrap_or_default(),
        })
    }

    /// Counts a fault; quarantines the plugin when the window holds too many.
    pub(crate) fn record(&self, error: &PluginError, limits: &PluginLimits) {
        let now = Instant::now();
        let mut history = self.history.lock();
        history.total += 1;
        history.last = Some(error.to_string());
        history.recent.push_back(now);
        while history
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > limits.fault_window)
        {
            history.recent.pop_front();
        }
        if history.recent.len() >= limits.quarantine_faults {
            let until = self.now_nanos().saturating_add(
                u64::try_from(limits.quarantine_period.as_nanos()).unwrap_or(u64::MAX),
            );
            self.until_nanos.store(until.max(1), Ordering::Relaxed);
            tracing::error!(
                plugin = self.plugin.as_str(),
                faults = history.recent.len(),
                period = ?limits.quarantine_period,
                error = %error,
                "plugin quarantined"
            );
            history.recent.clear();
        }
    }

    /// Lifts the quarantine and forgets recent faults (a new version was loaded).
    pub(crate) fn reset(&self) {
        self.until_nanos.store(0, Ordering::Relaxed);
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
