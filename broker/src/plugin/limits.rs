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
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    memory_bytes: usize,
    table_elements: usize,
    pub(crate) hit: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limits: &PluginLimits) -> Self {
        MemoryLimiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.hit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.table_elements;
        self.hit |= !allowed;
        Ok(allowed)
    }
}
