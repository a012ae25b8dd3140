//! A bounded cache of routing decisions for exchange types whose plugin reads only the routing
//! key: (exchange, routing key) → destinations. A hit skips the plugin call entirely.
//!
//! Invariant: an entry never outlives a change that could alter it. Every bind, unbind,
//! exchange deletion and reload calls [`DecisionCache::invalidate`], which bumps the generation
//! and then clears each shard under its lock; an insert carries the generation read before the
//! decision was computed and is dropped, under the same shard lock, if the generation moved. So
//! a decision computed against old bindings is either refused or cleared.
//!
//! The cache is sharded by key hash to keep lock hold times short, and the key is hashed once
//! for both shard and slot; a full shard is cleared rather than tracked for recency, which keeps
//! hits cheap and misses bounded.

use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;
use parking_lot::Mutex;
use rustc_hash::FxHasher;

const SHARDS: usize = 16;

/// Routing keys longer than this are not cached (AMQP caps routing keys at 255 bytes).
const MAX_CACHED_KEY: usize = 255;

/// The destinations a message goes to; shared between the cache and its callers.
pub type Destinations = Arc<[u32]>;

#[derive(Debug)]
struct Entry {
    exchange: u32,
    key: Box<str>,
    destinations: Destinations,
}

#[derive(Debug)]
pub(crate) struct DecisionCache {
    generation: AtomicU64,
    shard_capacity: usize,
    shards: Box<[Mutex<HashTable<Entry>>]>,
}

fn hash_of(exchange: u32, key: &str) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one((exchange, key))
}

impl DecisionCache {
    /// A cache of about `capacity` entries; 0 disables caching.
    pub(crate) fn new(capacity: usize) -> Self {
        DecisionCache {
            generation: AtomicU64::new(0),
            shard_capacity: capacity.div_ceil(SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.shard_capacity > 0
    }

    /// Read before computing a decision that may be inserted.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn shard(&self, hash: u64) -> &Mutex<HashTable<Entry>> {
        // The table uses the low bits; pick the shard with the high ones.
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    pub(crate) fn get(&self, exchange: u32, key: &str) -> Option<Destinations> {
        if !self.enabled() {
            return None;
        }
        let hash = hash_of(exchange, key);
        let shard = self.shard(hash).lock();
        shard
            .find(hash, |e| e.exchange == exchange && &*e.key == key)
            .map(|e| e.destinations.clone())
    }

    pub(crate) fn insert(
        &self,
        generation: u64,
        exchange: u32,
        key: &str,
        destinations: &Destinations,
    ) {
        if key.len() > MAX_CACHED_KEY || self.shard_capacity == 0 {
            return;
        }
        let hash = hash_of(exchange, key);
        let mut shard = self.shard(hash).lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if shard.len() >= self.shard_capacity {
            shard.clear();
        }
        let rehash = |e: &Entry| hash_of(e.exchange, &e.key);
        match shard.entry(hash, |e| e.exchange == exchange && &*e.key == key, rehash) {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                occupied.get_mut().destinations = destinations.clone();
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(Entry {
                    exchange,
                    key: key.into(),
                    destinations: destinations.clone(),
                });
            }
        }
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
        let total: usize = cache.shards.iter().map(|s| s.lock().len()).sum();
        assert!(total <= 32 + SHARDS, "{total} entries");
    }
}
