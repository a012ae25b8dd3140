//! What router and filter plugins share: the current version behind an atomic swap, a pool of
//! instances ("replicas") of each version kept up to date from the host's replay log, hot
//! replacement and quarantine.
//!
//! Instances are pooled rather than pinned to threads: a call checks one out (creating it from
//! the current version if the pool is empty), brings it up to date with the log (see
//! `replay.rs`), calls it, and checks it back in. In steady state that is one instance per
//! thread calling concurrently — the "instance per worker" of the design, without tying the
//! broker to a thread model. A call holds the version it checked out from, so messages in
//! flight during a reload finish on the version they started on.
//!
//! Lock order: `log` before a version's `pool`. Guest calls are made while holding `log` only
//! on administrative paths (create, bind, compile, reload), never on the per-message path,
//! which takes `log` briefly and only when its instance is behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};

use super::engine::PluginEngine;
use super::error::PluginError;
use super::info::{PluginInfo, PluginSource};
use super::quarantine::{FaultSite, Quarantine, Scope};
use super::replay::{CatchUp, ReplayLog, ReplayState};

/// Idle instances kept per version; more are dropped when checked in.
const MAX_POOLED_INSTANCES: usize = 32;

/// A live instance of some plugin version that replays the host's operations.
pub(crate) trait Replica: Sized {
    type State: ReplayState;
    /// The pre-linked component instances are made from.
    type Pre;

    fn instantiate(
        engine: &PluginEngine,
        pre: &Self::Pre,
        plugin: &str,
        version: &str,
    ) -> Result<Self, PluginError>;

    fn apply(
        &mut self,
        engine: &PluginEngine,
        op: &<Self::State as ReplayState>::Op,
    ) -> Result<(), PluginError>;

    /// Number of the last log operation applied.
    fn applied(&self) -> u64;

    fn set_applied(&mut self, applied: u64);
}

/// One loaded version of a plugin.
pub(crate) struct Version<R: Replica> {
    pub(crate) info: PluginInfo,
    pub(crate) source: PluginSource,
    pub(crate) loaded_at: SystemTime,
    pre: R::Pre,
    pool: Mutex<Vec<R>>,
}

impl<R: Replica> Version<R> {
    pub(crate) fn new(info: PluginInfo, source: PluginSource, pre: R::Pre) -> Self {
        Version {
            info,
            source,
            loaded_at: SystemTime::now(),
            pre,
            pool: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn check_in(&self, instance: R) {
        let mut pool = self.pool.lock();
        if pool.len() < MAX_POOLED_INSTANCES {
            pool.push(instance);
        }
    }

    /// Instantiates this version and replays `ops` into it.
    fn build(
        &self,
        engine: &PluginEngine,
        applied: u64,
        ops: &[<R::State as ReplayState>::Op],
    ) -> Result<R, PluginError> {
        let mut instance = R::instantiate(engine, &self.pre, &self.info.name, &self.info.version)?;
        for op in ops {
            instance.apply(engine, op)?;
        }
        instance.set_applied(applied);
        Ok(instance)
    }
}

/// A plugin's versions, instances, replay log and quarantine.
pub(crate) struct ReplicaSet<R: Replica> {
    pub(crate) name: String,
    pub(crate) engine: Arc<PluginEngine>,
    current: ArcSwap<Version<R>>,
    log: Mutex<ReplayLog<R::State>>,
    /// Mirror of `log.current()`, read without the lock on the per-message path.
    log_current: AtomicU64,
    pub(crate) quarantine: Quarantine,
}

impl<R: Replica> ReplicaSet<R> {
    pub(crate) fn new(engine: Arc<PluginEngine>, version: Version<R>) -> Self {
        let name = version.info.name.clone();
        ReplicaSet {
            quarantine: Quarantine::new(&name),
            name,
            engine,
            current: ArcSwap::from_pointee(version),
            log: Mutex::new(ReplayLog::default()),
            log_current: AtomicU64::new(0),
        }
    }

    /// The current version; holding the guard keeps that version alive (cheaply, without a
    /// reference-count update in the common case).
    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<Version<R>>> {
        self.current.load()
    }

    pub(crate) fn lock_log(&self) -> MutexGuard<'_, ReplayLog<R::State>> {
        self.log.lock()
    }

    /// Logs an operation the host has accepted; returns the new log number.
    pub(crate) fn push(
        &self,
        log: &mut ReplayLog<R::State>,
        op: <R::State as ReplayState>::Op,
    ) -> u64 {
        let current = log.push(op);
        self.log_current.store(current, Ordering::Release);
        current
    }

    /// An up-to-date instance of `version`, for the per-message path.
    pub(crate) fn check_out(&self, version: &Version<R>) -> Result<R, PluginError> {
        self.check_out_uncounted(version)
            .map_err(|error| self.count_fault(error, FaultSite::Instance))
    }

    /// A new instance of `version` with the whole log replayed into it: what an instance
    /// holds when nothing but the log's state has grown its memory.
    pub(crate) fn fresh_instance(
        &self,
        version: &Version<R>,
        log: &ReplayLog<R::State>,
    ) -> Result<R, PluginError> {
        self.bring_up_to_date(version, None, log)
    }

    /// Like `check_out`, for callers that already hold the log.
    pub(crate) fn check_out_locked(
        &self,
        version: &Version<R>,
        log: &ReplayLog<R::State>,
    ) -> Result<R, PluginError> {
        let pooled = version.pool.lock().pop();
        self.bring_up_to_date(version, pooled, log)
    }

    /// Like `check_out`, for a version that is not serving (a shadow): a failure to build the
    /// instance is returned without counting against the serving version.
    pub(crate) fn check_out_uncounted(&self, version: &Version<R>) -> Result<R, PluginError> {
        let pooled = version.pool.lock().pop();
        match pooled {
            Some(instance) if instance.applied() == self.log_current.load(Ordering::Acquire) => {
                Ok(instance)
            }
            pooled => {
                let log = self.log.lock();
                self.catch_up(version, pooled, &log)
            }
        }
    }

    fn bring_up_to_date(
        &self,
        version: &Version<R>,
        pooled: Option<R>,
        log: &ReplayLog<R::State>,
    ) -> Result<R, PluginError> {
        self.catch_up(version, pooled, log)
            .map_err(|error| self.count_fault(error, FaultSite::Instance))
    }

    fn catch_up(
        &self,
        version: &Version<R>,
        pooled: Option<R>,
        log: &ReplayLog<R::State>,
    ) -> Result<R, PluginError> {
        match pooled.map(|instance| (log.catch_up(instance.applied()), instance)) {
            Some((CatchUp::Current, instance)) => Ok(instance),
            Some((CatchUp::Apply(ops), mut instance)) => ops
                .iter()
                .try_for_each(|op| instance.apply(&self.engine, op))
                .map(|()| {
                    instance.set_applied(log.current());
                    instance
                }),
            Some((CatchUp::Rebuild, _)) | None => {
                let (current, ops) = log.snapshot();
                version.build(&self.engine, current, &ops)
            }
        }
    }

    /// A fresh instance of a version that is not serving yet, with the whole log replayed into
    /// it: proof that the version can take over this plugin's state.
    pub(crate) fn build_beside(&self, version: &Version<R>) -> Result<R, PluginError> {
        let log = self.log.lock();
        let (current, ops) = log.snapshot();
        version.build(&self.engine, current, &ops)
    }

    /// Notes a call for `scope` that succeeded (see `quarantine.rs`).
    pub(crate) fn after_success(&self, scope: Scope) {
        self.quarantine.record_success(scope);
    }

    /// Disposes of an instance after a failed call and counts the fault. An instance that
    /// trapped or overran is dropped (a trapped component cannot be entered again); one that
    /// only refused or answered wrongly goes back to the pool.
    pub(crate) fn after_failure(
        &self,
        version: &Version<R>,
        instance: R,
        error: PluginError,
        scope: Scope,
    ) -> PluginError {
        match error {
            PluginError::Refused { .. }
            | PluginError::UnknownHandle { .. }
            | PluginError::InvalidDestination { .. } => version.check_in(instance),
            _ => drop(instance),
        }
        self.count_fault(error, FaultSite::Call(scope))
    }

    fn count_fault(&self, error: PluginError, site: FaultSite) -> PluginError {
        if error.is_fault() {
            if !error.is_logged_by_caller() {
                let backtrace = error.backtrace();
                tracing::warn!(plugin = self.name.as_str(), error = %error, backtrace, "plugin fault");
            }
            self.quarantine.record(&error, site, &self.engine.limits);
        }
        error
    }

    /// Swaps in `version` after replaying the whole log into a fresh instance of it. On any
    /// failure the current version keeps serving. Returns the replaced version.
    pub(crate) fn replace(&self, version: Version<R>) -> Result<Arc<Version<R>>, PluginError> {
        let log = self.log.lock();
        let (current, ops) = log.snapshot();
        let instance = version.build(&self.engine, current, &ops)?;
        version.check_in(instance);
        let old = self.current.swap(Arc::new(version));
        drop(log);
        self.quarantine.reset();
        let new = self.current.load();
        tracing::info!(
            plugin = self.name.as_str(),
            from = old.info.version.as_str(),
            to = new.info.version.as_str(),
            source = %new.source,
            "plugin replaced"
        );
        Ok(old)
    }
}
