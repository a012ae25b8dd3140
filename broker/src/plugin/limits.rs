//! The bounds every plugin runs under, and the resource limiter that enforces the memory cap
//! inside a store. Deadlines are enforced by epoch interruption (see `engine.rs`); this module
//! only holds their configured values.

use std::time::Duration;

/// Bounds applied to every plugin call and instance.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// Wall-clock budget of one `route` or `matches` call.
    pub call_deadline: Duration,
    /// Wall-clock budget of the other calls (`create`, `bind`, replaying bindings, `compile`).
    pub admin_deadline: Duration,
    /// The most linear memory one instance may use, in bytes.
    pub memory_bytes: usize,
    /// The most table elements one instance may use.
    pub table_elements: usize,
    /// How many faults quarantine a plugin: that many calls in a row that fault (for at least
    /// `quarantine_after`), or that many failures to build an instance within `fault_window`
    /// (see `quarantine.rs`).
    pub quarantine_faults: usize,
    pub fault_window: Duration,
    /// How long every call of a plugin must have faulted, with no call succeeding, before call
    /// faults quarantine it: a burst of poison messages amid good traffic never does.
    pub quarantine_after: Duration,
    /// How long a quarantine lasts before the plugin is tried again.
    pub quarantine_period: Duration,
    /// Entries in the routing decision cache of one exchange type; 0 disables it.
    pub decision_cache_entries: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            call_deadline: Duration::from_millis(100),
            admin_deadline: Duration::from_secs(2),
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            quarantine_faults: 10,
            fault_window: Duration::from_secs(60),
            quarantine_after: Duration::from_secs(10),
            quarantine_period: Duration::from_secs(30),
            decision_cache_entries: 65_536,
        }
    }
}

/// Refuses growth past the caps and remembers that it did, so a failed call can be reported
/// as a memory-limit error rather than as the generic trap the guest turns it into.
///
/// The caps hold for the whole store, not each memory or table in it: a component may hold
/// several core modules, each with its own linear memory, and they share one budget. Memories
/// and tables never shrink and die with their store, so the sum of what growth was allowed is
/// what the store holds.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    memory_bytes: usize,
    table_elements: usize,
    memory_in_use: usize,
    table_elements_in_use: usize,
    /// Set by a refused memory growth: the store's total bytes that growth asked for.
    pub(crate) refused_memory: Option<usize>,
    /// Set by a refused table growth: the store's total elements it asked for.
    pub(crate) refused_table: Option<usize>,
}

impl MemoryLimiter {
    pub(crate) fn new(limits: &PluginLimits) -> Self {
        MemoryLimiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            memory_in_use: 0,
            table_elements_in_use: 0,
            refused_memory: None,
            refused_table: None,
        }
    }

    /// The linear memory the store's instances hold, in bytes.
    pub(crate) fn memory_in_use(&self) -> usize {
        self.memory_in_use
    }

    pub(crate) fn table_elements(&self) -> usize {
        self.table_elements
    }

    /// Forgets the refusals of an earlier call.
    pub(crate) fn clear_refusals(&mut self) {
        self.refused_memory = None;
        self.refused_table = None;
    }

    /// Grows `in_use` by `desired - current` if the new total stays within `cap`.
    fn grow(
        in_use: &mut usize,
        cap: usize,
        current: usize,
        desired: usize,
        refused: &mut Option<usize>,
    ) -> bool {
        let total = in_use.saturating_sub(current).saturating_add(desired);
        if total > cap {
            *refused = Some(total);
            return false;
        }
        *in_use = total;
        true
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(Self::grow(
            &mut self.memory_in_use,
            self.memory_bytes,
            current,
            desired,
            &mut self.refused_memory,
        ))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(Self::grow(
            &mut self.table_elements_in_use,
            self.table_elements,
            current,
            desired,
            &mut self.refused_table,
        ))
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    fn limiter(memory_bytes: usize) -> MemoryLimiter {
        MemoryLimiter::new(&PluginLimits {
            memory_bytes,
            ..PluginLimits::default()
        })
    }

    #[test]
    fn memories_of_one_store_share_one_cap() {
        let mut limiter = limiter(100);
        // A first memory grows to 60 bytes, in two steps.
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(limiter.memory_growing(40, 60, None).unwrap());
        // A second memory of the same store gets what is left, not a cap of its own.
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(!limiter.memory_growing(40, 41, None).unwrap());
        assert_eq!(limiter.refused_memory, Some(101));
        // The first cannot take the room either.
        assert!(!limiter.memory_growing(60, 61, None).unwrap());
    }

    #[test]
    fn tables_of_one_store_share_one_cap() {
        let mut limiter = MemoryLimiter::new(&PluginLimits {
            table_elements: 10,
            ..PluginLimits::default()
        });
        assert!(limiter.table_growing(0, 6, None).unwrap());
        assert!(!limiter.table_growing(0, 5, None).unwrap());
        assert_eq!(limiter.refused_table, Some(11));
        assert!(limiter.table_growing(0, 4, None).unwrap());
    }
}
