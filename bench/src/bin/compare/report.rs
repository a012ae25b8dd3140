//! Results: one JSON line per run (and per median and memory figure), and the summary table
//! of medians over the repetitions, with their spread and the ratio to RabbitMQ.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Value, json};

use crate::memory::MemoryFigures;
use crate::workloads::{Outcome, Workload};

/// One run of one workload against one broker.
#[derive(Debug, Clone)]
pub struct Record {
    /// The broker's label (see `brokers.rs`).
    pub broker: String,
    pub switchyard: bool,
    pub workload: Workload,
    pub repetition: usize,
    pub outcome: Outcome,
}

/// Where the JSON lines go (nowhere without `--json`).
#[derive(Debug)]
pub struct JsonLines {
    file: Option<std::fs::File>,
}

impl JsonLines {
    pub fn create(path: Option<&std::path::Path>) -> anyhow::Result<JsonLines> {
        Ok(JsonLines {
            file: path.map(std::fs::File::create).transpose()?,
        })
    }

    pub fn write(&mut self, value: &Value) -> anyhow::Result<()> {
        if let Some(file) = &mut self.file {
            writeln!(file, "{value}")?;
            file.flush()?;
        }
        Ok(())
    }
}

/// Whether Switchyard's W2 confirms follow an fsync (false until durable storage lands).
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub scale: f64,
    pub switchyard_fsync: bool,
}

fn finite(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

fn durability(switchyard: bool, workload: Workload, context: Context) -> Value {
    match (switchyard, workload) {
        (true, Workload::W2) => json!(context.switchyard_fsync),
        (false, Workload::W2) => json!(true),
        _ => Value::Null,
    }
}

pub fn run_json(record: &Record, context: Context) -> Value {
    let o = &record.outcome;
    json!({
        "kind": "run",
        "broker": record.broker,
        "workload": record.workload.id(),
        "title": record.workload.title(),
        "repetition": record.repetition,
        "scale": context.scale,
        "rate": finite(o.rate),
        "rate_unit": record.workload.rate_unit(),
        "messages": o.messages,
        "elapsed_s": o.elapsed.as_secs_f64(),
        "p50_us": finite(o.p50_us),
        "p99_us": finite(o.p99_us),
        "server_cpu_s": o.server_cpu_s,
        "server_cpu_s_per_million": finite(o.cpu_s_per_million()),
        "client_cpu_s": o.client_cpu_s,
        "complete": o.complete,
        "fsyncs": o.fsyncs,
        "fsyncs_per_s": finite(o.fsyncs_per_s()),
        "msgs_per_fsync": finite(o.msgs_per_fsync()),
        "confirms_after_fsync": durability(record.switchyard, record.workload, context),
        "switchyard_fsync": context.switchyard_fsync,
    })
}

/// Medians of each metric over the repetitions of one broker and workload.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub rate: f64,
    pub min_rate: f64,
    pub max_rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_s_per_million: f64,
    /// W2 only, where perf could count them (NaN otherwise).
    pub fsyncs_per_s: f64,
    pub msgs_per_fsync: f64,
    pub runs: usize,
    pub all_complete: bool,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

pub fn summarise(records: &[Record], broker: &str, workload: Workload) -> Option<Summary> {
    let runs: Vec<&Outcome> = records
        .iter()
        .filter(|r| r.broker == broker && r.workload == workload)
        .map(|r| &r.outcome)
        .collect();
    if runs.is_empty() {
        return None;
    }
    let metric = |f: fn(&Outcome) -> f64| median(runs.iter().map(|o| f(o)).collect());
    let rates = runs.iter().map(|o| o.rate).filter(|r| r.is_finite());
    Some(Summary {
        rate: metric(|o| o.rate),
        min_rate: rates.clone().fold(f64::INFINITY, f64::min),
        max_rate: rates.fold(f64::NEG_INFINITY, f64::max),
        p50_us: metric(|o| o.p50_us),
        p99_us: metric(|o| o.p99_us),
        cpu_s_per_million: metric(Outcome::cpu_s_per_million),
        fsyncs_per_s: metric(Outcome::fsyncs_per_s),
        msgs_per_fsync: metric(Outcome::msgs_per_fsync),
        runs: runs.len(),
        all_complete: runs.iter().all(|o| o.complete),
    })
}

pub fn summary_json(
    broker: &str,
    switchyard: bool,
    workload: Workload,
    s: &Summary,
    context: Context,
) -> Value {
    json!({
        "kind": "median",
        "broker": broker,
        "workload": workload.id(),
        "title": workload.title(),
        "runs": s.runs,
        "scale": context.scale,
        "rate": finite(s.rate),
        "min_rate": finite(s.min_rate),
        "max_rate": finite(s.max_rate),
        "rate_unit": workload.rate_unit(),
        "p50_us": finite(s.p50_us),
        "p99_us": finite(s.p99_us),
        "server_cpu_s_per_million": finite(s.cpu_s_per_million),
        "fsyncs_per_s": finite(s.fsyncs_per_s),
        "msgs_per_fsync": finite(s.msgs_per_fsync),
        "all_complete": s.all_complete,
        "confirms_after_fsync": durability(switchyard, workload, context),
        "switchyard_fsync": context.switchyard_fsync,
    })
}

fn number(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn cell(summary: Option<&Summary>, f: impl Fn(&Summary) -> String) -> String {
    match summary {
        Some(s) if s.all_complete => f(s),
        Some(s) => format!("{} (incomplete)", f(s)),
        None => "-".into(),
    }
}

/// The comparison table (Markdown): per workload, a row per broker (in `labels` order) with
/// the median rate, its spread over the repetitions, the ratio of medians to RabbitMQ's,
/// latency and server CPU.
pub fn table(
    records: &[Record],
    workloads: &[Workload],
    labels: &[&str],
    context: Context,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | broker | rate | min–max | × RabbitMQ | p50 / p99 µs | server CPU s per M msgs |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|");
    for &workload in workloads {
        let reference = summarise(records, crate::brokers::REFERENCE, workload);
        for &label in labels {
            let Some(summary) = summarise(records, label, workload) else {
                continue;
            };
            let ratio = match &reference {
                Some(r) if r.rate > 0.0 => format!("{:.2}×", summary.rate / r.rate),
                _ => "-".into(),
            };
            let mark = if workload == Workload::W2
                && !context.switchyard_fsync
                && label != crate::brokers::REFERENCE
            {
                " †"
            } else {
                ""
            };
            let s = Some(&summary);
            let _ = writeln!(
                out,
                "| {} {}{mark} ({}) | {label} | {} | {} | {ratio} | {} | {} |",
                workload.id(),
                workload.title(),
                workload.rate_unit(),
                cell(s, |s| number(s.rate)),
                cell(s, |s| format!(
                    "{}–{}",
                    number(s.min_rate),
                    number(s.max_rate)
                )),
                cell(s, |s| format!(
                    "{} / {}",
                    number(s.p50_us),
                    number(s.p99_us)
                )),
                cell(s, |s| number(s.cpu_s_per_million)),
            );
        }
    }
    if workloads.contains(&Workload::W2) {
        let _ = writeln!(
            out,
            "\n| W2 durable | fsyncs/s | msgs per fsync |\n|---|--:|--:|"
        );
        for &label in labels {
            if let Some(s) = summarise(records, label, Workload::W2) {
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} |",
                    number(s.fsyncs_per_s),
                    number(s.msgs_per_fsync)
                );
            }
        }
    }
    if workloads.contains(&Workload::W2) && !context.switchyard_fsync {
        let _ = writeln!(
            out,
            "\n† Switchyard ran with `fsync = \"interval\"`: its W2 confirms come from memory, not after an fsync (`\"switchyard_fsync\": false`). RabbitMQ's W2 confirms follow its fsync."
        );
    }
    out
}

pub fn memory_json(broker: &str, m: &MemoryFigures, scale: f64) -> Value {
    json!({
        "kind": "memory",
        "broker": broker,
        "scale": scale,
        "baseline_rss_bytes": m.baseline.rss_bytes,
        "idle_connections": m.connections,
        "rss_bytes_per_idle_connection": m.per_connection_bytes,
        "idle_queues": m.queues,
        "rss_bytes_per_idle_queue": m.per_queue_bytes,
        "queued_messages": m.messages,
        "queued_payload_bytes": m.payload_bytes,
        "backlog_rss_growth_bytes": m.backlog_rss_growth,
        "backlog_rss_per_payload_byte": m.backlog_ratio(),
        "vm_rss_bytes_with_backlog": m.with_backlog.rss_bytes,
        "vm_hwm_bytes_with_backlog": m.with_backlog.hwm_bytes,
    })
}

pub fn memory_table(figures: &[(String, MemoryFigures)]) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| broker | per idle connection | per idle queue | queued 256 B messages: RSS growth | growth / payload | VmRSS / VmHWM with backlog | baseline VmRSS |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|");
    for (broker, m) in figures {
        let _ = writeln!(
            out,
            "| {broker} | {:.1} KiB ({} conns) | {:.2} KiB ({} queues) | {:.0} MiB ({} msgs, {:.0} MiB payload) | {:.2}× | {:.0} / {:.0} MiB | {:.0} MiB |",
            m.per_connection_bytes / 1024.0,
            m.connections,
            m.per_queue_bytes / 1024.0,
            m.queues,
            m.backlog_rss_growth as f64 / MIB,
            m.messages,
            m.payload_bytes as f64 / MIB,
            m.backlog_ratio(),
            m.with_backlog.rss_bytes as f64 / MIB,
            m.with_backlog.hwm_bytes as f64 / MIB,
            m.baseline.rss_bytes as f64 / MIB,
        );
    }
    let _ = writeln!(
        out,
        "\nTargets (Switchyard): idle connection ≤ 64 KiB, idle queue ≤ 4 KiB, queued messages ≤ 2× their payload."
    );
    out
}
