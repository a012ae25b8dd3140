//! How fast a plugin may write to the broker's log: a token bucket per plugin name, shared by
//! every instance's `host.log`, stdout and stderr. Line length is clipped in `sandbox.rs`; this
//! bounds the rate, so one call cannot emit 10⁵ lines within its deadline. Lines over the rate
//! are dropped and counted; the count is logged once lines flow again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// Lines a plugin may log per second, on average.
pub const LOG_LINES_PER_SECOND: f64 = 100.0;
/// Lines a plugin may log in one burst.
pub const LOG_LINES_BURST: f64 = 1000.0;

#[derive(Debug)]
pub(crate) struct LogBudget {
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    /// Lines dropped since the last one let through.
    dropped: u64,
}

impl LogBudget {
    fn new() -> Self {
        LogBudget {
            bucket: Mutex::new(Bucket {
                tokens: LOG_LINES_BURST,
                refilled_at: Instant::now(),
                dropped: 0,
            }),
        }
    }

    /// Whether `plugin` may log one more line now. Says in the log when it starts dropping
    /// lines, and how many it dropped when it stops.
    pub(crate) fn admit(&self, plugin: &str) -> bool {
        let mut bucket = self.bucket.lock();
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * LOG_LINES_PER_SECOND).min(LOG_LINES_BURST);
        bucket.refilled_at = now;
        if bucket.tokens < 1.0 {
            bucket.dropped += 1;
            if bucket.dropped == 1 {
                tracing::warn!(
                    plugin,
                    "plugin logs faster than {LOG_LINES_PER_SECOND} lines/s; dropping its lines"
                );
            }
            return false;
        }
        bucket.tokens -= 1.0;
        if bucket.dropped > 0 {
            tracing::warn!(
                plugin,
                dropped = bucket.dropped,
                "plugin log lines were dropped over the rate limit"
            );
            bucket.dropped = 0;
        }
        true
    }
}

/// Every plugin's budget, by name: a new instance (after a fault or reload) shares its
/// predecessors' budget, so rebuilding does not refill it.
#[derive(Debug, Default)]
pub(crate) struct LogBudgets {
    by_plugin: Mutex<HashMap<String, Arc<LogBudget>>>,
}

impl LogBudgets {
    pub(crate) fn of(&self, plugin: &str) -> Arc<LogBudget> {
        Arc::clone(
            self.by_plugin
                .lock()
                .entry(plugin.to_owned())
                .or_insert_with(|| Arc::new(LogBudget::new())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst() {
        let budgets = LogBudgets::default();
        let budget = budgets.of("chatty");
        let admitted = (0..100_000).filter(|_| budget.admit("chatty")).count();
        // The loop takes milliseconds: a refill of a few lines at most.
        assert!(
            (LOG_LINES_BURST as usize..LOG_LINES_BURST as usize + 100).contains(&admitted),
            "{admitted}"
        );
        // Another instance of the same plugin shares the spent budget; another plugin does not.
        assert!(!budgets.of("chatty").admit("chatty"));
        assert!(budgets.of("quiet").admit("quiet"));
    }
}
