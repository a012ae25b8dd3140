//! Quarantine of a plugin that keeps faulting: a circuit breaker for faults no single message
//! explains, scoped to whoever suffers them.
//!
//! A call that faults on one message (a trap, an overrun deadline, the memory cap, an invalid
//! answer) is that message's fault: the message is refused or dead-lettered, the instance is
//! replaced, and the plugin goes on serving everyone else. So call faults quarantine only when
//! [`PluginLimits::quarantine_faults`] calls in a row have faulted, with no call succeeding,
//! for at least [`PluginLimits::quarantine_after`]: the plugin then fails whatever it is given,
//! and refusing calls at once saves each caller its deadline.
//!
//! Call faults are counted per [`Scope`]: one exchange (routers) or one compiled filter
//! (filters). One tenant's bindings or filter expression can then only quarantine that
//! exchange or filter, never the plugin for every other exchange or consumer (review finding
//! 8). Calls with no scope (compiling a filter) count for the plugin. Faults outside any call
//! (an instance cannot be built or brought up to date) are the plugin's alone: that many of
//! them within `fault_window` quarantine the whole plugin. A quarantine refuses calls for the
//! quarantine period, after which calls are tried again. A new version of the plugin lifts
//! every quarantine at once.
//!
//! The hot path reads two atomics to check, and one to note a success; the fault history is
//! locked only when a fault happens or a scope is in trouble.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::error::PluginError;
use super::limits::PluginLimits;

/// Who a call serves, and so whose faults it counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// The plugin as a whole.
    Plugin,
    /// One exchange of a router, by handle.
    Exchange(u32),
    /// One compiled filter expression, by id.
    Filter(u64),
}

impl Scope {
    fn describe(self) -> &'static str {
        match self {
            Scope::Plugin => "",
            Scope::Exchange(_) => " on this exchange",
            Scope::Filter(_) => " for this filter",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Quarantine {
    plugin: String,
    epoch: Instant,
    /// Nanoseconds after `epoch` when the plugin-wide quarantine ends; 0 when there is none.
    until_nanos: AtomicU64,
    /// How many scopes have a fault streak or a quarantine (entries in `history.streaks`):
    /// while 0, checks and successes need no lock.
    scopes_in_trouble: AtomicUsize,
    history: Mutex<FaultHistory>,
}

#[derive(Debug, Default)]
struct FaultHistory {
    /// When recent instance faults happened (within the fault window).
    recent: VecDeque<Instant>,
    total: u64,
    last: Option<String>,
    /// How many faults started the current (or last) plugin-wide quarantine.
    tripped_by: usize,
    /// The call-fault streaks and quarantines of scopes (the plugin's own included).
    streaks: HashMap<Scope, Streak>,
}

/// A run of call faults in one scope with no success since.
#[derive(Debug)]
struct Streak {
    faults: usize,
    since: Instant,
    /// When this scope's quarantine ends, if it is quarantined.
    until: Option<Instant>,
    tripped_by: usize,
    last: String,
}

/// Where a fault happened, which decides how it counts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultSite {
    /// A call on one message or request, for a scope.
    Call(Scope),
    /// Building or updating an instance, before any call.
    Instance,
}

/// What the plugin list shows about a plugin's faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultReport {
    pub total_faults: u64,
    pub last_fault: Option<String>,
    /// How long the plugin-wide quarantine lasts still, if there is one.
    pub quarantined_for: Option<Duration>,
    /// How many exchanges or filters of the plugin are quarantined on their own.
    pub quarantined_scopes: usize,
}

impl Quarantine {
    pub(crate) fn new(plugin: &str) -> Self {
        Quarantine {
            plugin: plugin.to_owned(),
            epoch: Instant::now(),
            until_nanos: AtomicU64::new(0),
            scopes_in_trouble: AtomicUsize::new(0),
            history: Mutex::new(FaultHistory::default()),
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Refuses the call while the plugin, or `scope`, is quarantined.
    pub(crate) fn check(&self, scope: Scope) -> Result<(), PluginError> {
        let until = self.until_nanos.load(Ordering::Relaxed);
        if until != 0 {
            let now = self.now_nanos();
            if now < until {
                let history = self.history.lock();
                return Err(PluginError::Quarantined {
                    plugin: self.plugin.clone(),
                    scope: Scope::Plugin.describe(),
                    faults: history.tripped_by,
                    remaining: Duration::from_nanos(until - now),
                    last_fault: history.last.clone().unwrap_or_default(),
                });
            }
        }
        if self.scopes_in_trouble.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let history = self.history.lock();
        let now = Instant::now();
        for scope in [Scope::Plugin, scope] {
            if let Some(streak) = history.streaks.get(&scope)
                && let Some(until) = streak.until.filter(|until| *until > now)
            {
                return Err(PluginError::Quarantined {
                    plugin: self.plugin.clone(),
                    scope: scope.describe(),
                    faults: streak.tripped_by,
                    remaining: until - now,
                    last_fault: streak.last.clone(),
                });
            }
        }
        Ok(())
    }

    /// Notes a call for `scope` that succeeded: the faults before it were the messages' own.
    pub(crate) fn record_success(&self, scope: Scope) {
        if self.scopes_in_trouble.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut history = self.history.lock();
        // A success anywhere shows the plugin itself works.
        for scope in [scope, Scope::Plugin] {
            history.streaks.remove(&scope);
        }
        self.scopes_in_trouble
            .store(history.streaks.len(), Ordering::Relaxed);
    }

    /// Forgets a scope that is gone (a destroyed exchange, a released filter).
    pub(crate) fn forget(&self, scope: Scope) {
        if self.scopes_in_trouble.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut history = self.history.lock();
        history.streaks.remove(&scope);
        self.scopes_in_trouble
            .store(history.streaks.len(), Ordering::Relaxed);
    }

    /// Counts a fault; quarantines the scope, or the plugin, when it fails everything (see
    /// the module docs).
    pub(crate) fn record(&self, error: &PluginError, site: FaultSite, limits: &PluginLimits) {
        let now = Instant::now();
        let mut history = self.history.lock();
        history.total += 1;
        history.last = Some(error.to_string());
        match site {
            FaultSite::Call(scope) => {
                let streak = history.streaks.entry(scope).or_insert_with(|| Streak {
                    faults: 0,
                    since: now,
                    until: None,
                    tripped_by: 0,
                    last: String::new(),
                });
                if streak.until.is_some_and(|until| until <= now) {
                    // A quarantine ran out and the next call faulted again: a new streak.
                    streak.until = None;
                    streak.faults = 0;
                    streak.since = now;
                }
                streak.faults += 1;
                streak.last = error.to_string();
                let failing_for = now.duration_since(streak.since);
                if streak.faults >= limits.quarantine_faults
                    && failing_for >= limits.quarantine_after
                {
                    streak.until = Some(now + limits.quarantine_period);
                    streak.tripped_by = streak.faults;
                    streak.faults = 0;
                    tracing::error!(
                        plugin = self.plugin.as_str(),
                        scope = ?scope,
                        faults = streak.tripped_by,
                        period = ?limits.quarantine_period,
                        error = %error,
                        "plugin quarantined{}",
                        scope.describe()
                    );
                }
                self.scopes_in_trouble
                    .store(history.streaks.len(), Ordering::Relaxed);
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
                let count = history.recent.len();
                if count >= limits.quarantine_faults {
                    let until = self.now_nanos().saturating_add(
                        u64::try_from(limits.quarantine_period.as_nanos()).unwrap_or(u64::MAX),
                    );
                    self.until_nanos.store(until.max(1), Ordering::Relaxed);
                    tracing::error!(
                        plugin = self.plugin.as_str(),
                        faults = count,
                        period = ?limits.quarantine_period,
                        error = %error,
                        "plugin quarantined: its instances cannot be built"
                    );
                    history.tripped_by = count;
                    history.recent.clear();
                }
            }
        }
    }

    /// Lifts every quarantine and forgets recent faults (a new version was loaded).
    pub(crate) fn reset(&self) {
        self.until_nanos.store(0, Ordering::Relaxed);
        let mut history = self.history.lock();
        history.recent.clear();
        history.streaks.clear();
        self.scopes_in_trouble.store(0, Ordering::Relaxed);
    }

    pub(crate) fn report(&self) -> FaultReport {
        let history = self.history.lock();
        let until = self.until_nanos.load(Ordering::Relaxed);
        let now = self.now_nanos();
        let instant = Instant::now();
        let scoped = |scope: &Scope| !matches!(scope, Scope::Plugin);
        let plugin_streak = history
            .streaks
            .get(&Scope::Plugin)
            .and_then(|streak| streak.until)
            .filter(|until| *until > instant)
            .map(|until| until - instant);
        FaultReport {
            total_faults: history.total,
            last_fault: history.last.clone(),
            quarantined_for: (until > now)
                .then(|| Duration::from_nanos(until - now))
                .or(plugin_streak),
            quarantined_scopes: history
                .streaks
                .iter()
                .filter(|(scope, streak)| {
                    scoped(scope) && streak.until.is_some_and(|until| until > instant)
                })
                .count(),
        }
    }
}
