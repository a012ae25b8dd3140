//! Watching the plugin directory: every `*.wasm` in it is loaded at start, and a new, changed
//! or removed file is picked up while the broker runs, without a restart.
//!
//! Change notification comes from the OS (inotify on Linux) and is debounced: a file being
//! copied in produces a burst of events, and the directory is re-examined once the burst has
//! been quiet for [`SETTLE`]. A partially written file that fails to load is simply tried again
//! when its writes finish. A periodic rescan catches anything the notifications miss. Files are
//! compared by content digest, so touching a file does not reload it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::error::PluginError;
use super::registry::PluginRegistry;

/// Quiet time after the last change before the directory is re-examined.
pub const SETTLE: Duration = Duration::from_millis(150);

/// Interval of the safety-net rescan.
const RESCAN: Duration = Duration::from_secs(5);

/// Keeps the directory watched until dropped.
pub struct PluginDirectory {
    dir: PathBuf,
    /// Dropped first on shutdown: that disconnects the event channel and wakes the thread.
    watcher: Option<notify::RecommendedWatcher>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PluginDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDirectory")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PluginDirectory {
    /// Loads every plugin in `dir` (creating it if missing), then watches it. Load failures are
    /// reported and recorded in the plugin list; they do not fail the call.
    pub fn watch(registry: Arc<PluginRegistry>, dir: &Path) -> Result<Self, PluginError> {
        let io_error = |source: std::io::Error| PluginError::Io {
            path: dir.to_owned(),
            source: source.into(),
        };
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let dir = dir.canonicalize().map_err(io_error)?;
        sync_directory(&registry, &dir);

        let (events_tx, events_rx) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    let _ = events_tx.send(());
                }
            })
            .map_err(|e| io_error(std::io::Error::other(e)))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| io_error(std::io::Error::other(e)))?;

        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread_dir = dir.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-reload".into())
            .spawn(move || watch_loop(&registry, &thread_dir, &events_rx, &stop_rx))
            .map_err(io_error)?;
        Ok(PluginDirectory {
            dir,
            watcher: Some(watcher),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PluginDirectory {
    fn drop(&mut self) {
        drop(self.stop.take());
        drop(self.watcher.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch_loop(
    registry: &PluginRegistry,
    dir: &Path,
    events: &mpsc::Receiver<()>,
    stop: &mpsc::Receiver<()>,
) {
    loop {
        match events.recv_timeout(RESCAN) {
            Ok(()) => {
                // Let the burst settle.
                loop {
                    match events.recv_timeout(SETTLE) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if matches!(stop.try_recv(), Err(mpsc::TryRecvError::Disconnected)) {
            return;
        }
        sync_directory(registry, dir);
    }
}

/// Makes the registry match the directory: loads new and changed files, withdraws removed ones.
pub(crate) fn sync_directory(registry: &PluginRegistry, dir: &Path) {
    let present: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
            .collect(),
        Err(error) => {
            tracing::error!(dir = %dir.display(), %error, "cannot read the plugin directory");
            return;
        }
    };
    for known in registry.known_files() {
        if known.parent() == Some(dir) && !present.contains(&known) {
            registry.remove_file(&known);
        }
    }
    for path in present {
        // Errors are logged and recorded by the registry.
        let _ = registry.load_file(&path);
    }
}
