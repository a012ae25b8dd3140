//! Durable storage: the definitions file and one append-only log per durable queue.
//!
//! ```text
//! <data_dir>/store/definitions.json        durable exchanges, queues, bindings (definitions.rs)
//! <data_dir>/store/queues/<dir>/name        the queue's name, for humans and for recovery checks
//! <data_dir>/store/queues/<dir>/<id>.seg    the queue's log segments (segment.rs, record.rs)
//! ```
//!
//! `<dir>` is the queue name with every character outside `[A-Za-z0-9._-]` replaced by `_`,
//! cut to 40 bytes, then `-` and the first 16 hex digits of the SHA-256 of the full name (names
//! may be 255 bytes of any UTF-8; file names may not).
//!
//! A durable queue's log holds its persistent messages (and, while the queue pages to disk, its
//! transient ones), "removed" records when messages leave for good, and "delivered" records.
//! Appends are buffered and written and fsynced by one syncer thread for all queues (group
//! commit, `sync.rs`); a publisher's confirm waits for the LSN of its record to be durable. A
//! segment is deleted when all its messages have left and all older segments are gone
//! (`log.rs`). On start each queue is rebuilt from its log (`recovery.rs`), and the part of a
//! queue beyond its in-memory window is read back when due (`tail.rs`).
//!
//! Departure from DESIGN.md's single log: one log per queue. A queue's messages are then
//! contiguous on disk, so reading a long queue back is a sequential read of its own files and
//! deleting a drained queue is deleting a directory; the price is one fsync per queue written in
//! a round instead of one in all, which group commit keeps small.

mod definitions;
mod disk_space;
mod log;
mod range_set;
mod record;
mod record_v1;
mod recovery;
mod segment;
mod sync;
mod tail;
#[cfg(test)]
mod tests;

pub use definitions::{
    BindingDefinition, DEFINITIONS_VERSION, Definitions, ExchangeDefinition, QueueDefinition,
};
pub use log::{LsnStatus, Position, QueueLog};
pub use record::{StoredMessage, StoredMessageRef};

/// Encodes `message` as a log record would hold it (panics if it cannot be encoded).
#[cfg(test)]
pub(crate) fn encode_message_for_test(out: &mut Vec<u8>, message: &crate::message::Message) {
    record::encode_message(
        out,
        &StoredMessageRef {
            seq: 0,
            enqueued_at_ms: 0,
            persistent: true,
            exchange: "",
            message,
        },
    );
}
pub use recovery::{Recovered, RecoveredMessage, SkipList};
pub use sync::{FsyncPolicy, wait_durable};
pub use tail::DiskTail;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use sync::Syncer;

/// How the store behaves; from the `[store]` configuration table.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `<data_dir>/store`.
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Below this much free space, persistent publishes to durable queues are refused.
    pub disk_free_low_watermark_bytes: u64,
}

/// Why a persistent publish is refused before it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreRefusal {
    #[error(
        "free disk space is below the low watermark of {watermark} bytes: persistent messages to durable queues are refused"
    )]
    DiskLow { watermark: u64 },
}

/// The open store.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    syncer: Syncer,
}

impl Store {
    pub fn open(config: StoreConfig) -> io::Result<Store> {
        std::fs::create_dir_all(config.dir.join("queues"))?;
        let syncer = Syncer::start(
            config.fsync,
            &config.dir,
            config.disk_free_low_watermark_bytes,
        )?;
        Ok(Store { config, syncer })
    }

    fn definitions_path(&self) -> PathBuf {
        self.config.dir.join("definitions.json")
    }

    pub fn load_definitions(&self) -> io::Result<Definitions> {
        Definitions::load(&self.definitions_path())
    }

    pub fn save_definitions(&self, definitions: &Definitions) -> io::Result<()> {
        definitions.save(&self.definitions_path())
    }

    /// Opens (creating if needed) the log of durable queue `name` and recovers what it holds,
    /// loading at most `window` messages into memory. With a deduplication window, drained
    /// segments are kept that long and the ids enqueued within it are recovered.
    pub fn open_queue(
        &self,
        name: &str,
        window: usize,
        dedup_window: Option<std::time::Duration>,
    ) -> io::Result<(Arc<QueueLog>, Recovered)> {
        let dir = self.queue_dir(name);
        std::fs::create_dir_all(&dir)?;
        let name_file = dir.join("name");
        if !name_file.exists() {
            std::fs::write(&name_file, name)?;
            segment::sync_dir(&dir)?;
            segment::sync_dir(&self.config.dir.join("queues"))?;
        }
        let retain_ms = dedup_window.map_or(0, |w| w.as_millis() as u64);
        let since = dedup_window.map(|_| now_ms().saturating_sub(retain_ms));
        let mut recovered = recovery::recover(&dir, window, since)?;
        for repair in &recovered.repairs {
            tracing::warn!(queue = name, "{repair}");
        }
        let log = Arc::new(QueueLog::new(
            dir,
            name.to_owned(),
            self.config.segment_bytes,
            std::mem::take(&mut recovered.segments),
            recovered.next_seq,
            Arc::clone(self.syncer.shared()),
            retain_ms,
        ));
        Ok((log, recovered))
    }

    /// Clears away the logs of queues not in `keep`: left behind by a crash during a delete,
    /// or (review finding 14) written for a queue whose definition never reached the file. A
    /// log that still holds segments is never deleted: it is set aside as
    /// `<dir>.set-aside-<ms>` with an error in the log, so no confirmed message is destroyed
    /// on the strength of a definitions file that may be stale. Empty ones are removed.
    pub fn remove_queues_except(&self, keep: &[&str]) -> io::Result<()> {
        let keep: Vec<PathBuf> = keep.iter().map(|name| self.queue_dir(name)).collect();
        for entry in std::fs::read_dir(self.config.dir.join("queues"))? {
            let path = entry?.path();
            let set_aside_before = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().contains(".set-aside-"));
            if !path.is_dir() || keep.contains(&path) || set_aside_before {
                continue;
            }
            if segment::list_segments(&path)?.is_empty() {
                tracing::info!(dir = %path.display(), "removing the empty log of a queue that is no longer defined");
                std::fs::remove_dir_all(&path)?;
                continue;
            }
            let queue = std::fs::read_to_string(path.join("name")).unwrap_or_default();
            let aside = path.with_file_name(format!(
                "{}.set-aside-{}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                now_ms()
            ));
            tracing::error!(
                queue = queue.trim_end(),
                dir = %aside.display(),
                "the log of a queue that is not in the definitions still holds messages; set aside, not deleted"
            );
            std::fs::rename(&path, &aside)?;
        }
        Ok(())
    }

    pub fn queue_dir(&self, name: &str) -> PathBuf {
        self.config.dir.join("queues").join(queue_dir_name(name))
    }

    /// Refuses persistent publishes while free disk space is below the low watermark.
    pub fn check_disk(&self) -> Result<(), StoreRefusal> {
        if self.syncer.shared().disk_low() {
            Err(StoreRefusal::DiskLow {
                watermark: self.config.disk_free_low_watermark_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Ticks after every syncer round; see [`wait_durable`].
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.syncer.shared().subscribe()
    }

    /// Makes everything appended so far durable and stops the syncer (at shutdown).
    pub fn close(&self) {
        self.syncer.stop();
    }
}

fn queue_dir_name(name: &str) -> String {
    let readable: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let digest = Sha256::digest(name.as_bytes());
    format!("{readable}-{}", &hex::encode(digest)[..16])
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
