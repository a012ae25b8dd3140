//! Shadow deploys: a new version of a router run beside the serving one on a sample of live
//! traffic. The serving version's decision is the one used; the shadow's is only compared with
//! it, and every difference is recorded (message, serving destinations, shadow destinations)
//! until the author promotes the shadow or discards it.
//!
//! The shadow shares the exchange type's replay log with the serving version, so its instances
//! hold exactly the exchanges and bindings the serving ones do. Its faults are its own: they are
//! counted here and never reach the serving version's quarantine or the publisher. What the
//! serving path pays is one atomic load per message, and for sampled messages the shadow's call.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::decision_cache::Destinations;
use super::replicas::{ReplicaSet, Version};
use super::router::RouterInstance;
use crate::message::{Identifier, Message};

/// Divergences kept per shadow (the newest); the counters go on counting past it.
pub const MAX_KEPT_DIVERGENCES: usize = 1000;

/// A shadow version and what it has found so far.
pub(crate) struct Shadow {
    pub(crate) version: Version<RouterInstance>,
    /// The component, for `promote` to install.
    pub(crate) wasm: Arc<[u8]>,
    sample_percent: u64,
    seen: AtomicU64,
    sampled: AtomicU64,
    agreed: AtomicU64,
    failed: AtomicU64,
    diverged: AtomicU64,
    found: Mutex<Found>,
}

#[derive(Default)]
struct Found {
    divergences: VecDeque<Divergence>,
    last_error: Option<String>,
}

/// One message the two versions routed differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The exchange's handle (the topology names it).
    pub exchange: u32,
    pub routing_key: String,
    /// The message's id, when it has a textual one.
    pub message_id: Option<String>,
    /// What the serving version answered (and the broker did).
    pub serving: Destinations,
    /// What the shadow answered.
    pub shadow: Destinations,
}

/// A shadow's findings, as reported to its author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowReport {
    pub plugin: String,
    pub serving_version: String,
    pub shadow_version: String,
    pub sample_percent: u8,
    /// Messages routed by the serving version since the shadow started.
    pub seen: u64,
    /// Of those, the ones also routed by the shadow.
    pub sampled: u64,
    pub agreed: u64,
    pub diverged: u64,
    /// Sampled messages the shadow failed on (trap, deadline, memory, invalid answer).
    pub failed: u64,
    /// The newest [`MAX_KEPT_DIVERGENCES`], oldest first.
    pub divergences: Vec<Divergence>,
    pub last_error: Option<String>,
}

impl Shadow {
    pub(crate) fn new(
        version: Version<RouterInstance>,
        wasm: Arc<[u8]>,
        sample_percent: u8,
    ) -> Self {
        Shadow {
            version,
            wasm,
            sample_percent: u64::from(sample_percent.clamp(1, 100)),
            seen: AtomicU64::new(0),
            sampled: AtomicU64::new(0),
            agreed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            diverged: AtomicU64::new(0),
            found: Mutex::new(Found::default()),
        }
    }

    /// Whether this message is in the sample: exactly `sample_percent` of every hundred, spread
    /// evenly, so a test at 100 % sees every message and a small run at 10 % sees some.
    fn samples_next(&self) -> bool {
        in_sample(
            self.seen.fetch_add(1, Ordering::Relaxed),
            self.sample_percent,
        )
    }

    /// Routes `message` through the shadow if it is in the sample, and records how the answer
    /// compares with `serving`'s.
    pub(crate) fn observe(
        &self,
        replicas: &ReplicaSet<RouterInstance>,
        exchange: u32,
        message: &Message,
        serving: &Destinations,
    ) {
        if !self.samples_next() {
            return;
        }
        self.sampled.fetch_add(1, Ordering::Relaxed);
        let answer = replicas
            .check_out_uncounted(&self.version)
            .and_then(|mut instance| {
                let reads = self.version.info.reads;
                match instance.route(&replicas.engine, exchange, message, reads) {
                    Ok(destinations) => {
                        self.version.check_in(instance);
                        Ok(destinations)
                    }
                    // A trapped instance cannot be entered again: it is dropped here.
                    Err(error) => Err(error),
                }
            });
        match answer {
            Ok(mut destinations) => {
                destinations.sort_unstable();
                destinations.dedup();
                if destinations[..] == serving[..] {
                    self.agreed.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.diverged.fetch_add(1, Ordering::Relaxed);
                    let mut found = self.found.lock();
                    if found.divergences.len() == MAX_KEPT_DIVERGENCES {
                        found.divergences.pop_front();
                    }
                    found.divergences.push_back(Divergence {
                        exchange,
                        routing_key: message.routing_key.clone(),
                        message_id: match &message.properties.message_id {
                            Some(Identifier::Text(id)) => Some(id.clone()),
                            _ => None,
                        },
                        serving: serving.clone(),
                        shadow: destinations.into(),
                    });
                }
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.found.lock().last_error = Some(error.to_string());
            }
        }
    }

    pub(crate) fn report(&self, plugin: &str, serving_version: &str) -> ShadowReport {
        let found = self.found.lock();
        ShadowReport {
            plugin: plugin.to_owned(),
            serving_version: serving_version.to_owned(),
            shadow_version: self.version.info.version.clone(),
            sample_percent: self.sample_percent as u8,
            seen: self.seen.load(Ordering::Relaxed),
            sampled: self.sampled.load(Ordering::Relaxed),
            agreed: self.agreed.load(Ordering::Relaxed),
            diverged: self.diverged.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            divergences: found.divergences.iter().cloned().collect(),
            last_error: found.last_error.clone(),
        }
    }
}

/// Whether the `n`th message (from 0) is in a `percent` % sample.
fn in_sample(n: u64, percent: u64) -> bool {
    n * percent / 100 != (n + 1) * percent / 100
}

#[cfg(test)]
mod tests {
    use super::in_sample;

    #[test]
    fn the_sample_is_exactly_the_asked_share_spread_evenly() {
        for percent in [1u64, 10, 33, 50, 100] {
            let picked: Vec<u64> = (0..200u64).filter(|&n| in_sample(n, percent)).collect();
            assert_eq!(picked.len() as u64, 2 * percent, "{percent}%");
            if percent == 10 {
                assert_eq!(&picked[..3], &[9, 19, 29]);
            }
        }
    }
}
