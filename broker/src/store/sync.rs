//! The syncer: one thread that writes out every dirty log and fsyncs, so that one fsync covers
//! many publishes from many connections (group commit), then tells waiters how far each log is
//! durable. It also watches free disk space.
//!
//! Under [`FsyncPolicy::Always`] a record counts as durable after the fsync that follows its
//! write. Under [`FsyncPolicy::Interval`] it counts as durable once written to the operating
//! system (it survives the broker being killed, not the machine losing power), and the syncer
//! fsyncs at most once per interval.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::disk_space;
use super::log::{LsnStatus, QueueLog};

/// When confirmed records reach the disk platter (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    Interval(Duration),
}

/// How often free disk space is read.
const DISK_CHECK_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct State {
    dirty: Vec<Arc<QueueLog>>,
    shutdown: bool,
}

/// What appenders and the syncer thread share.
#[derive(Debug)]
pub(super) struct SyncShared {
    state: Mutex<State>,
    wake: Condvar,
    /// Bumped after every round; waiters re-check their logs.
    progress: watch::Sender<u64>,
    policy: FsyncPolicy,
    data_dir: PathBuf,
    low_watermark_bytes: u64,
    disk_low: AtomicBool,
}

impl SyncShared {
    pub(super) fn push(&self, log: Arc<QueueLog>) {
        let mut state = self.state.lock();
        state.dirty.push(log);
        if state.dirty.len() == 1 {
            self.wake.notify_one();
        }
    }

    pub(super) fn disk_low(&self) -> bool {
        self.disk_low.load(Ordering::Relaxed)
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }
}

/// The syncer thread and its handle.
#[derive(Debug)]
pub(super) struct Syncer {
    shared: Arc<SyncShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Syncer {
    pub(super) fn start(
        policy: FsyncPolicy,
        data_dir: &Path,
        low_watermark_bytes: u64,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(SyncShared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            progress: watch::Sender::new(0),
            policy,
            data_dir: data_dir.to_owned(),
            low_watermark_bytes,
            disk_low: AtomicBool::new(false),
        });
        check_disk(&shared);
        let thread = std::thread::Builder::new()
            .name("switchyard-syncer".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&shared)
            })?;
        Ok(Syncer {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Writes and fsyncs everything appended so far, then stops the thread. Later appends are
    /// never made durable: call it when nothing appends any more.
    pub(super) fn stop(&self) {
        self.shared.state.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }

    pub(super) fn shared(&self) -> &Arc<SyncShared> {
        &self.shared
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &SyncShared) {
    let mut unsynced: Vec<(Arc<File>, Arc<QueueLog>, u64)> = Vec::new();
    let mut unsynced_dirs: Vec<PathBuf> = Vec::new();
    let mut last_fsync = Instant::now();
    let mut last_disk_check = Instant::now();
    let mut round: u64 = 0;
    loop {
        let (dirty, shutdown) = {
            let mut state = shared.state.lock();
            while state.dirty.is_empty() && !state.shutdown {
                let timeout = match shared.policy {
                    FsyncPolicy::Interval(interval) if !unsynced.is_empty() => {
                        interval.saturating_sub(last_fsync.elapsed())
                    }
                    _ => DISK_CHECK_EVERY,
                };
                if shared.wake.wait_for(&mut state, timeout).timed_out() {
                    break;
                }
            }
            if state.shutdown && state.dirty.is_empty() && unsynced.is_empty() {
                return;
            }
            (std::mem::take(&mut state.dirty), state.shutdown)
        };
        let mut written_logs = Vec::with_capacity(dirty.len());
        for log in dirty {
            log.dirty.store(false, Ordering::Release);
            let written = log.write_for_sync();
            if written.files.is_empty() {
                // Nothing written since the last fsync: all of it is durable already.
                log.set_durable(written.lsn);
            }
            for file in written.files {
                unsynced.push((file, Arc::clone(&log), written.lsn));
            }
            if let Some(dir) = written.dir
                && !unsynced_dirs.contains(&dir)
            {
                unsynced_dirs.push(dir);
            }
            written_logs.push((log, written.lsn));
        }
        let fsync_now = match shared.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(interval) => shutdown || last_fsync.elapsed() >= interval,
        };
        if fsync_now && (!unsynced.is_empty() || !unsynced_dirs.is_empty()) {
            fsync_all(&mut unsynced, &mut unsynced_dirs);
            last_fsync = Instant::now();
        }
        if shared.policy != FsyncPolicy::Always {
            // Written counts as durable under an interval policy (see the module docs).
            for (log, lsn) in &written_logs {
                log.set_durable(*lsn);
            }
        }
        round += 1;
        shared.progress.send_replace(round);
        if last_disk_check.elapsed() >= DISK_CHECK_EVERY {
            check_disk(shared);
            last_disk_check = Instant::now();
        }
    }
}

/// Fsyncs every written file and new directory entry, then marks the logs durable. After a
/// failed fsync the page cache cannot be trusted, so the records it covered count as lost
/// (their publishers get negative confirms); it is never retried as a success.
fn fsync_all(
    unsynced: &mut Vec<(Arc<File>, Arc<QueueLog>, u64)>,
    unsynced_dirs: &mut Vec<PathBuf>,
) {
    for dir in unsynced_dirs.drain(..) {
        if let Err(error) = super::segment::sync_dir(&dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(dir = %dir.display(), %error, "fsync of a log directory failed");
        }
    }
    let mut synced: Vec<Arc<File>> = Vec::new();
    let mut failed: Vec<Arc<File>> = Vec::new();
    for (file, log, lsn) in unsynced.drain(..) {
        let ok = if synced.iter().any(|f| Arc::ptr_eq(f, &file)) {
            true
        } else if failed.iter().any(|f| Arc::ptr_eq(f, &file)) {
            false
        } else {
            match file.sync_data() {
                Ok(()) => {
                    synced.push(file);
                    true
                }
                Err(error) => {
                    tracing::error!(queue = %log.queue(), %error, "fsync failed; the records it covered count as lost");
                    failed.push(file);
                    false
                }
            }
        };
        if ok {
            log.set_durable(lsn);
        } else {
            log.mark_lost_through(lsn);
        }
    }
}

fn check_disk(shared: &SyncShared) {
    match disk_space::free_bytes(&shared.data_dir) {
        Ok(free) => {
            let low = free < shared.low_watermark_bytes;
            let was = shared.disk_low.swap(low, Ordering::Relaxed);
            if low != was {
                if low {
                    tracing::warn!(
                        free,
                        watermark = shared.low_watermark_bytes,
                        "free disk space is below the low watermark: refusing persistent publishes"
                    );
                } else {
                    tracing::info!(
                        free,
                        "free disk space recovered: accepting persistent publishes"
                    );
                }
            }
        }
        Err(error) => tracing::warn!(%error, "could not read free disk space"),
    }
}

/// Waits until the fate of every `(log, lsn)` is known (the syncer has written and fsynced up
/// to it, or failed to); true when all of them are durable, false when any was lost. It does
/// not stop at the first loss, so that a caller checking other positions after it finds them
/// settled too.
pub async fn wait_durable(
    mut progress: watch::Receiver<u64>,
    logs: &[(Arc<QueueLog>, u64)],
) -> bool {
    loop {
        progress.borrow_and_update();
        if logs.iter().all(|(log, lsn)| log.is_resolved(*lsn)) {
            return logs
                .iter()
                .all(|(log, lsn)| log.status(*lsn) == LsnStatus::Durable);
        }
        if progress.changed().await.is_err() {
            return false;
        }
    }
}
