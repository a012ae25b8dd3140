//! What routing through a plugin costs: the `topic` plugin with 100 and 10,000 bindings,
//! uncached (every message calls the plugin), through the decision cache, and the same trie
//! natively (the SDK's `TopicTrie`, no WebAssembly) as the baseline.
//!
//! Run: `cargo run --release -p switchyard-bench --bin plugin-routing`. Prints one line per
//! case with nanoseconds per route (median of rounds) and the plugin/native ratio.
//! Set `PLUGIN_BENCH_ROUTES` to change the routes per round (raise it to profile).

use std::hint::black_box;
use std::time::{Duration, Instant};

use switchyard::plugin::{BindingSpec, PluginConfig, PluginLimits, PluginRegistry, RouterPlugin};
use switchyard::{Message, Table};
use switchyard_plugin::topic::TopicTrie;

const ROUNDS: usize = 7;

/// Routes per timed round; `PLUGIN_BENCH_ROUTES` overrides it (raise it to profile).
fn routes_per_round() -> usize {
    std::env::var("PLUGIN_BENCH_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Binding patterns in the shape of the broker benchmark's W1: `stock.<n>.*`, `#.trade.<n>`,
/// `fx.<n>.quote`, spread over ten queues.
fn patterns(count: usize) -> Vec<(String, u32)> {
    (0..count)
        .map(|i| {
            let pattern = match i % 3 {
                0 => format!("stock.{i}.*"),
                1 => format!("#.trade.{i}"),
                _ => format!("fx.{i}.quote"),
            };
            (pattern, (i % 10) as u32)
        })
        .collect()
}

/// Routing keys that hit some patterns and miss others.
fn keys(bindings: usize) -> Vec<String> {
    (0..1024)
        .map(|i| {
            let n = (i * 7919) % (bindings + bindings / 10 + 1);
            match i % 4 {
                0 => format!("stock.{n}.nyse"),
                1 => format!("eu.desk.trade.{n}"),
                2 => format!("fx.{n}.quote"),
                _ => format!("misc.{n}.other"),
            }
        })
        .collect()
}

fn median_ns_per_op(mut round: impl FnMut() -> Duration) -> f64 {
    round(); // warm-up
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| round().as_nanos() as f64 / routes_per_round() as f64)
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[ROUNDS / 2]
}

fn native(bindings: &[(String, u32)], keys: &[String]) -> f64 {
    let mut trie = TopicTrie::new();
    for (pattern, destination) in bindings {
        trie.insert(pattern, *destination);
    }
    let mut out = Vec::new();
    median_ns_per_op(|| {
        let start = Instant::now();
        for i in 0..routes_per_round() {
            trie.matches_into(&keys[i % keys.len()], &mut out);
            black_box(&out);
        }
        start.elapsed()
    })
}

fn plugin_router(
    plugin: &str,
    cache_entries: usize,
) -> anyhow::Result<std::sync::Arc<RouterPlugin>> {
    let registry = PluginRegistry::new(PluginConfig {
        limits: PluginLimits {
            decision_cache_entries: cache_entries,
            ..PluginLimits::default()
        },
        cache_dir: None,
    })?;
    registry.load_embedded()?;
    Ok(registry.router(plugin)?)
}

fn through_plugin(
    router: &RouterPlugin,
    exchange: u32,
    bindings: &[(String, u32)],
    keys: &[String],
) -> anyhow::Result<f64> {
    router.create_exchange(exchange, Table::new())?;
    for (pattern, destination) in bindings {
        router.bind(exchange, BindingSpec::new(*destination, pattern.clone()))?;
    }
    let messages: Vec<Message> = keys.iter().map(|k| Message::new(k.clone(), "")).collect();
    Ok(median_ns_per_op(|| {
        let start = Instant::now();
        for i in 0..routes_per_round() {
            let routed = router
                .route(exchange, &messages[i % messages.len()])
                .expect("route");
            black_box(routed);
        }
        start.elapsed()
    }))
}

/// Like `through_plugin`, routing `BATCH` messages per call with `route_batch`.
fn through_plugin_batched(router: &RouterPlugin, exchange: u32, keys: &[String]) -> f64 {
    const BATCH: usize = 64;
    let messages: Vec<Message> = keys.iter().map(|k| Message::new(k.clone(), "")).collect();
    median_ns_per_op(|| {
        let start = Instant::now();
        for batch in 0..routes_per_round() / BATCH {
            let first = (batch * BATCH) % (messages.len() - BATCH);
            let routed = router.route_batch(exchange, &messages[first..first + BATCH]);
            black_box(routed);
        }
        start.elapsed()
    })
}

fn main() -> anyhow::Result<()> {
    let uncached = plugin_router("topic", 0)?;
    let cached = plugin_router("topic", 65_536)?;
    println!(
        "{:<10} {:>10} {:>11} {:>14} {:>10} {:>14} {:>14}",
        "bindings",
        "native ns",
        "plugin ns",
        "batch-64 ns",
        "cached ns",
        "plugin/native",
        "batch/native"
    );
    for (exchange, count) in [(1u32, 100usize), (2, 10_000)] {
        let bindings = patterns(count);
        let keys = keys(count);
        let native_ns = native(&bindings, &keys);
        let plugin_ns = through_plugin(&uncached, exchange, &bindings, &keys)?;
        let batch_ns = through_plugin_batched(&uncached, exchange, &keys);
        let cached_ns = through_plugin(&cached, exchange, &bindings, &keys)?;
        println!(
            "{count:<10} {native_ns:>10.0} {plugin_ns:>11.0} {batch_ns:>14.0} {cached_ns:>10.1} {:>14.2} {:>14.2}",
            plugin_ns / native_ns,
            batch_ns / native_ns
        );
    }
    // The fixed cost of a plugin call: `fanout` with one binding does next to nothing.
    let fanout = plugin_router("fanout", 0)?;
    let floor = through_plugin(&fanout, 1, &[("".into(), 1)], &keys(1))?;
    println!("call overhead (fanout, 1 binding, uncached): {floor:.0} ns");
    Ok(())
}
