//! A bounded cache of routing decisions for exchange types whose plugin reads only the routing
//! key: (exchange, routing key) → destinations. A hit skips the plugin call entirely.
//!
//! Invariant: an entry never outlives a change that could alter it. Every bind, unbind,
//! exchange deletion and reload calls [`DecisionCache::invalidate`], which bumps the generation
//! and then clears each shard under its lock; an insert carries the generation read before the
//! decision was computed and is dropped, under the same shard lock, if the generation moved. So
//! a decision computed against old bindings is either refused or cleared.
//!
//! The cache is sharded by key hash to keep lock hold times short; a full shard is cleared
//! rather than tracked for recency, which keeps hits cheap and misses bounded.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHasher;

const SHARDS: usize = 16;

/// Routing keys longer than this are not cached (AMQP caps routing keys at 255 bytes).
const MAX_CACHED_KEY: usize = 255;

/// The destinations a message goes to; shared between the cache and its callers.
pub type Destinations = Arc<[u32]>;

type FxBuild = BuildHasherDefault<FxHasher>;

#[derive(Debug)]
pub(crate) struct DecisionCache {
    generation: AtomicU64,
    shard_capacity: usize,
    shards: Box<[Mutex<Shard>]>,
}

type Shard = HashMap<u32, HashMap<Box<str>, Destinations, FxBuild>, FxBuild>;

impl DecisionCache {
    pub(crate) fn new(capacity: usize) -> Self {
        DecisionCache {
            generation: AtomicU64::new(0),
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// Read before computing a decision that may be inserted.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn shard(&self, exchange: u32, key: &str) -> &Mutex<Shard> {
        let hash = FxBuild::default().hash_one((exchange, key));
        &self.shards[(hash as usize) % SHARDS]
    }

    pub(crate) fn get(&self, exchange: u32, key: &str) -> Option<Destinations> {
        let shard = self.shard(exchange, key).lock();
        shard.get(&exchange)?.get(key).cloned()
    }

    pub(crate) fn insert(
        &self,
        generation: u64,
        exchange: u32,
        key: &str,
        destinations: &Destinations,
    ) {
        if key.len() > MAX_CACHED_KEY {
            return;
        }
        let mut shard = self.shard(exchange, key).lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let entries: usize = shard.values().map(HashMap::len).sum();
        if entries >= self.shard_capacity {
            shard.clear();
        }
        shard
            .entry(exchange)
            .or_default()
            .insert(key.into(), destinations.clone());
    }

    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            shard.lock().clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_computed_before_an_invalidation_is_not_cached() {
        let cache = DecisionCache::new(64);
        let before = cache.generation();
        cache.invalidate();
        cache.insert(before, 1, "k", &Arc::from(vec![7]));
        assert_eq!(cache.get(1, "k"), None);
        let now = cache.generation();
        cache.insert(now, 1, "k", &Arc::from(vec![7]));
        assert_eq!(cache.get(1, "k").as_deref(), Some(&[7][..]));
        assert_eq!(cache.get(2, "k"), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = DecisionCache::new(32);
        let generation = cache.generation();
        for i in 0..10_000 {
            cache.insert(generation, 1, &format!("key-{i}"), &Arc::from(vec![i]));
        }
        let total: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().values().map(HashMap::len).sum::<usize>())
            .sum();
        assert!(total <= 32 + SHARDS, "{total} entries");
    }
}
