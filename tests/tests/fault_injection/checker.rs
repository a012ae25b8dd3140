//! The ledger of what the clients saw across every broker life, and the verdict on it.
//!
//! Publishers record each message before it is sent and its outcome when it settles;
//! consumers record each delivery before they settle it, and the acks a successful
//! `Consumer::sync` covered. A message is identified by the `u64` at the start of its body; a
//! *copy* of it is (queue delivered from, id, its `x-death` header): dead-lettering is
//! at-least-once, so after a crash a message may be dead-lettered again and reach a sink as a
//! second, distinct copy.
//!
//! The verdict:
//! - **lost**: a confirmed persistent message published to a strict queue (see
//!   [`Policy::is_strict`](crate::scenario::Policy::is_strict)) that no consumer acked (in
//!   that queue or down its dead-letter chain) and no consumer rejected without requeue in a
//!   queue without a dead-letter exchange;
//! - **unexplained**: a delivery of a message never published, or from a queue it cannot
//!   reach, or from a dead-letter queue without an `x-death` trail naming where it was
//!   published;
//! - **unmarked duplicates**: a copy delivered again without `redelivered`;
//! - **resurrected**: a copy delivered again after its ack was covered by a `sync`;
//! - **hangs**: a broker that did not restart and answer within 10 s, did not stop within
//!   10 s of `SIGTERM`, stopped answering after hostile frames, or did not drain.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::scenario::Scenario;

/// The ledger, shared by every task of a run.
pub type SharedLedger = Arc<Mutex<Ledger>>;

pub fn lock(ledger: &SharedLedger) -> MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One copy of a message: (queue index, message id, `x-death` header).
pub type CopyKey = (usize, u64, Option<String>);

#[derive(Debug, Clone)]
pub struct Published {
    pub queue: usize,
    pub persistent: bool,
    pub life: usize,
    /// Its `x-delay`, in ms.
    pub delay_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub copy: CopyKey,
    pub redelivered: bool,
    /// `x-first-death-queue`, for a dead letter.
    pub first_death_queue: Option<String>,
    pub life: usize,
}

/// How a publish ended, as the publisher saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Confirmed,
    /// A negative confirm.
    Rejected,
    /// The connection went before an answer came.
    Unknown,
}

#[derive(Debug, Default)]
pub struct Ledger {
    next_id: u64,
    pub published: HashMap<u64, Published>,
    pub outcomes: HashMap<u64, Outcome>,
    /// Negative confirms by error code.
    pub rejections: BTreeMap<String, u64>,
    pub deliveries: Vec<DeliveryRecord>,
    /// Messages a consumer acked, anywhere.
    pub acked: HashSet<u64>,
    /// Messages a consumer rejected without requeue in a queue without a dead-letter exchange.
    pub discarded: HashSet<u64>,
    /// Copies whose ack a sync covered, with how many deliveries had been recorded then.
    pub synced: HashMap<CopyKey, usize>,
    /// Deduplicated publishes whose outcome is unknown: published again in the next life.
    pub retry: Vec<u64>,
    pub retried: u64,
    /// When the last delayed message falls due.
    pub last_due: Option<std::time::Instant>,
    pub faults: BTreeMap<&'static str, u64>,
    pub hangs: Vec<String>,
    /// Syncs that did not return in time (a known client bug; not counted as hangs).
    pub sync_stalls: Vec<String>,
    pub life: usize,
    pub cycles: usize,
    /// Lives run under `prlimit --fsize`.
    pub full_disk_lives: HashSet<usize>,
    /// Count unmarked duplicates after a full disk as failures (`FAULT_KNOWN_BUGS`).
    pub strict_full_disk_duplicates: bool,
}

impl Ledger {
    pub fn new_message(&mut self, queue: usize, persistent: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let life = self.life;
        self.published.insert(
            id,
            Published {
                queue,
                persistent,
                life,
                delay_ms: None,
            },
        );
        id
    }

    pub fn settle(&mut self, id: u64, outcome: Outcome) {
        // A confirm is final: a later attempt of a deduplicated message cannot undo it.
        if self.outcomes.get(&id) != Some(&Outcome::Confirmed) {
            self.outcomes.insert(id, outcome);
        }
    }

    pub fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    pub fn hang(&mut self, what: String) {
        eprintln!("HANG: {what}");
        self.hangs.push(what);
    }

    /// Records a delivery; returns its index.
    pub fn delivered(&mut self, record: DeliveryRecord) -> usize {
        self.deliveries.push(record);
        self.deliveries.len() - 1
    }

    /// Acks covered by a successful sync.
    pub fn synced(&mut self, copies: impl IntoIterator<Item = CopyKey>) {
        let seen = self.deliveries.len();
        for copy in copies {
            self.synced.insert(copy, seen);
        }
    }

    pub fn confirmed(&self) -> usize {
        self.outcomes
            .values()
            .filter(|o| **o == Outcome::Confirmed)
            .count()
    }

    pub fn verdict(&self, scenario: &Scenario) -> Verdict {
        let mut verdict = Verdict::default();
        for (&id, published) in &self.published {
            let queue = &scenario.queues[published.queue];
            if self.outcomes.get(&id) == Some(&Outcome::Confirmed)
                && published.persistent
                && queue.policy.is_strict()
                && !self.acked.contains(&id)
                && !self.discarded.contains(&id)
            {
                let deliveries: Vec<String> = self
                    .deliveries
                    .iter()
                    .filter(|d| d.copy.1 == id)
                    .map(|d| {
                        format!(
                            "{} in life {}{}",
                            scenario.queues[d.copy.0].name,
                            d.life,
                            if d.redelivered { " redelivered" } else { "" }
                        )
                    })
                    .collect();
                let delay = published
                    .delay_ms
                    .map(|ms| format!(" with x-delay {ms} ms"))
                    .unwrap_or_default();
                verdict.lost.push(format!(
                    "{}: message {id} published in life {}{delay}, delivered {deliveries:?}",
                    queue.name, published.life
                ));
            }
        }
        let mut seen: HashSet<&CopyKey> = HashSet::new();
        for (index, delivery) in self.deliveries.iter().enumerate() {
            let (queue, id, death) = &delivery.copy;
            let name = &scenario.queues[*queue].name;
            match self.published.get(id) {
                None => verdict
                    .unexplained
                    .push(format!("{name}: message {id} was never published")),
                Some(published) if !scenario.reaches(published.queue, *queue) => {
                    verdict.unexplained.push(format!(
                        "{name}: message {id} was published to {}, which does not lead here",
                        scenario.queues[published.queue].name
                    ));
                }
                Some(published) if published.queue != *queue => {
                    let origin = &scenario.queues[published.queue].name;
                    if death.is_none() || delivery.first_death_queue.as_deref() != Some(origin) {
                        verdict.unexplained.push(format!(
                            "{name}: dead letter {id} without an x-death trail to {origin} (x-first-death-queue {:?})",
                            delivery.first_death_queue
                        ));
                    }
                }
                Some(_) => {}
            }
            if !seen.insert(&delivery.copy) && !delivery.redelivered {
                let earlier: Vec<&DeliveryRecord> = self.deliveries[..index]
                    .iter()
                    .filter(|d| d.copy == delivery.copy)
                    .collect();
                let published_in = self.published.get(id).map_or(0, |p| p.life);
                let what = format!(
                    "{name}: message {id} published in life {published_in}, delivered again in life {} after {:?}",
                    delivery.life,
                    earlier
                        .iter()
                        .map(|d| (d.life, d.redelivered))
                        .collect::<Vec<_>>()
                );
                // Known: a delivery made while the disk was full may not have been recorded,
                // so after a kill the message comes back unmarked.
                let after_full_disk = self.full_disk_lives.contains(&published_in)
                    || earlier
                        .iter()
                        .any(|d| self.full_disk_lives.contains(&d.life));
                if after_full_disk && !self.strict_full_disk_duplicates {
                    verdict.tolerated.push(what);
                } else {
                    verdict.unmarked_duplicates.push(what);
                }
            }
            if let Some(&synced_at) = self.synced.get(&delivery.copy)
                && index >= synced_at
            {
                verdict
                    .resurrected
                    .push(format!("{name}: message {id} (life {})", delivery.life));
            }
        }
        verdict.lost.sort();
        verdict.hangs.clone_from(&self.hangs);
        verdict
    }

    /// Totals for the summary line.
    pub fn totals(&self) -> String {
        let strict_unconfirmed = self.outcomes.len() - self.confirmed();
        format!(
            "cycles {}, messages published {} (republished after a lost outcome {}), confirmed {}, not confirmed {} (negative confirms {:?}), deliveries {}, acked {}, faults {:?}",
            self.cycles,
            self.published.len(),
            self.retried,
            self.confirmed(),
            strict_unconfirmed,
            self.rejections,
            self.deliveries.len(),
            self.acked.len(),
            self.faults,
        )
    }
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub lost: Vec<String>,
    pub unexplained: Vec<String>,
    pub unmarked_duplicates: Vec<String>,
    pub resurrected: Vec<String>,
    pub hangs: Vec<String>,
    /// Unmarked duplicates of messages published or delivered while the disk was full
    /// (suspected known bug; failures with `FAULT_KNOWN_BUGS`).
    pub tolerated: Vec<String>,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.unexplained.is_empty()
            && self.unmarked_duplicates.is_empty()
            && self.resurrected.is_empty()
            && self.hangs.is_empty()
    }
}

fn first<T: fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<&T> = items.iter().take(10).collect();
    format!("{shown:?}")
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lost {}, unexplained {}, unmarked duplicates {}, resurrected acks {}, hangs {}, tolerated {}",
            self.lost.len(),
            self.unexplained.len(),
            self.unmarked_duplicates.len(),
            self.resurrected.len(),
            self.hangs.len(),
            self.tolerated.len()
        )?;
        for (what, list) in [
            ("lost", &self.lost),
            ("unexplained", &self.unexplained),
            ("unmarked duplicates", &self.unmarked_duplicates),
            ("resurrected", &self.resurrected),
            ("hangs", &self.hangs),
            (
                "tolerated (unmarked duplicates after a full disk)",
                &self.tolerated,
            ),
        ] {
            if !list.is_empty() {
                write!(f, "\n  {what}: {}", first(list))?;
            }
        }
        Ok(())
    }
}
