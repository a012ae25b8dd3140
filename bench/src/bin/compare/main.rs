//! Switchyard against RabbitMQ on the same workloads, in one run on loopback.
//!
//! Each repetition starts every broker in turn ([`brokers`]: RabbitMQ from Debian's package,
//! Switchyard's release build with and without its routing decision cache, and any other
//! Switchyard binary given, for a before/after comparison), in an order rotated from one
//! repetition to the next so the machine's drift spreads over all of them, and all under the
//! same spin policy. It runs W1–W4 with the same client logic against each ([`client`], over
//! lapin or the Switchyard SDK), samples the server's CPU time around each measured interval,
//! then measures the resident memory of a fresh server with idle connections, idle queues and
//! a backlog. Prints the medians, their spread and the ratios to RabbitMQ as one table and
//! writes every run as a JSON line.
//!
//! Run it through `bench/run.sh` (installs RabbitMQ if missing, builds, invokes this).

mod amqp;
mod brokers;
mod client;
mod fsyncs;
mod memory;
mod report;
mod sdk;
mod servers;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use crate::brokers::{BrokerKind, BrokerSpec, Spin};
use crate::report::{Context, JsonLines, Record};
use crate::servers::{RabbitServer, Server, SwitchyardServer};
use crate::workloads::{Settings, Workload};

#[derive(Debug, Parser)]
#[command(about = "Switchyard vs RabbitMQ: W1 topic, W2 durable, W3 fanout, W4 round trip")]
struct Args {
    /// Workloads to run, comma-separated.
    #[arg(long, default_value = "W1,W2,W3,W4", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Brokers to run against, comma-separated: switchyard, switchyard-amqp (the same broker
    /// over AMQP with lapin), switchyard-nocache (W1 only), rabbitmq, and LABEL=PATH for another switchyard binary (LABEL-nocache=PATH without its
    /// decision cache).
    #[arg(
        long,
        default_value = "switchyard,switchyard-amqp,switchyard-nocache,rabbitmq",
        value_delimiter = ','
    )]
    brokers: Vec<String>,
    /// Whether the brokers may busy-wait for work; both always run under the same policy.
    #[arg(long, value_enum, default_value_t = Spin::Off)]
    spin: Spin,
    /// Runs of each workload per broker, interleaved; the table shows medians.
    #[arg(long, default_value_t = 3)]
    repetitions: usize,
    /// Fraction of the message counts (and memory-test counts) to run.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Write every run, median and memory figure as a JSON line here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Skip the memory figures.
    #[arg(long)]
    no_memory: bool,
    /// Switchyard's W2 confirms follow an fsync (its default `fsync = "always"`); `false`
    /// marks the results as confirmed from memory.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    switchyard_fsync: bool,
    /// The `switchyard` binary of the `switchyard` entries (default: next to this one, i.e.
    /// the same release build).
    #[arg(long)]
    switchyard_bin: Option<PathBuf>,
    /// RabbitMQ's start script.
    #[arg(long, default_value = "/usr/lib/rabbitmq/bin/rabbitmq-server")]
    rabbitmq_server: PathBuf,
    /// Upper bound on one workload's measured interval, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Dropping `run` on a signal drops the server guards, which stop the servers.
        tokio::select! {
            result = run(args) => result,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; servers stopped"),
            _ = terminate.recv() => anyhow::bail!("terminated; servers stopped"),
        }
    })
}

async fn start(broker: &BrokerSpec, args: &Args) -> anyhow::Result<Box<dyn Server>> {
    Ok(match &broker.kind {
        BrokerKind::Switchyard {
            binary,
            decision_cache,
            over_amqp,
        } => {
            let binary = match binary.as_ref().or(args.switchyard_bin.as_ref()) {
                Some(path) => path.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .context("no directory for this executable")?
                    .join("switchyard"),
            };
            let mut extra = args.spin.switchyard_args();
            if !decision_cache {
                extra.extend(["--plugin-decision-cache-entries".into(), "0".into()]);
            }
            eprintln!(
                "starting {} ({} {})",
                broker.label,
                binary.display(),
                extra.join(" ")
            );
            Box::new(SwitchyardServer::start(&binary, &extra, *over_amqp).await?)
        }
        BrokerKind::RabbitMq => {
            eprintln!(
                "starting {} ({}, {})",
                broker.label,
                args.rabbitmq_server.display(),
                args.spin.erlang_args()
            );
            Box::new(RabbitServer::start(&args.rabbitmq_server, args.spin.erlang_args()).await?)
        }
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let workloads: Vec<Workload> = args
        .workloads
        .iter()
        .map(|w| Workload::parse(w))
        .collect::<anyhow::Result<_>>()?;
    let brokers: Vec<BrokerSpec> = args
        .brokers
        .iter()
        .map(|b| BrokerSpec::parse(b))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(args.scale > 0.0, "--scale must be positive");
    let settings = Settings {
        scale: args.scale,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let context = Context {
        scale: args.scale,
        switchyard_fsync: args.switchyard_fsync,
    };
    let mut json = JsonLines::create(args.json.as_deref())?;
    let machine = machine_description();
    eprintln!("{machine}");
    json.write(&serde_json::json!({
        "kind": "machine", "description": machine, "spin": format!("{:?}", args.spin),
        "brokers": brokers.iter().map(|b| b.label.clone()).collect::<Vec<_>>(),
    }))?;

    let mut records = Vec::new();
    for repetition in 1..=args.repetitions {
        for broker in brokers::order(&brokers, repetition) {
            let chosen: Vec<Workload> = workloads
                .iter()
                .copied()
                .filter(|&w| broker.runs(w))
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let server = start(broker, &args).await?;
            for workload in chosen {
                let tag = format!("r{repetition}");
                let connector = server.connector();
                let result = workloads::run(
                    workload,
                    connector.as_ref(),
                    server.measured_pid(),
                    settings,
                    &tag,
                )
                .await;
                match result {
                    Ok(outcome) => {
                        eprintln!(
                            "  {} {} #{repetition}: {:.0} {} (p50 {:.0} µs, p99 {:.0} µs, server {:.2} CPU s per M msgs, server/client CPU {:.2}/{:.2} s{})",
                            broker.label,
                            workload.id(),
                            outcome.rate,
                            workload.rate_unit(),
                            outcome.p50_us,
                            outcome.p99_us,
                            outcome.cpu_s_per_million(),
                            outcome.server_cpu_s,
                            outcome.client_cpu_s,
                            if outcome.complete { "" } else { ", INCOMPLETE" }
                        );
                        let record = Record {
                            broker: broker.label.clone(),
                            switchyard: broker.is_switchyard(),
                            workload,
                            repetition,
                            outcome,
                        };
                        json.write(&report::run_json(&record, context))?;
                        records.push(record);
                    }
                    Err(error) => {
                        eprintln!(
                            "  {} {} #{repetition} failed: {error:#}",
                            broker.label,
                            workload.id()
                        );
                        json.write(&serde_json::json!({
                            "kind": "error", "broker": broker.label, "workload": workload.id(),
                            "repetition": repetition, "error": format!("{error:#}"),
                        }))?;
                    }
                }
                // Let queue deletions and garbage collection finish before the next run.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            eprintln!("stopping {}", broker.label);
            drop(server);
        }
    }

    let mut memory = Vec::new();
    if !args.no_memory {
        for broker in brokers.iter().filter(|b| b.measures_memory()) {
            let server = start(broker, &args).await?;
            eprintln!("measuring {}'s memory", broker.label);
            match memory::measure(
                server.connector().as_ref(),
                server.measured_pid(),
                args.scale,
            )
            .await
            {
                Ok(figures) => {
                    json.write(&report::memory_json(&broker.label, &figures, args.scale))?;
                    memory.push((broker.label.clone(), figures));
                }
                Err(error) => eprintln!("  memory of {} failed: {error:#}", broker.label),
            }
            drop(server);
        }
    }

    for &workload in &workloads {
        for broker in &brokers {
            if let Some(summary) = report::summarise(&records, &broker.label, workload) {
                json.write(&report::summary_json(
                    &broker.label,
                    broker.is_switchyard(),
                    workload,
                    &summary,
                    context,
                ))?;
            }
        }
    }
    println!("\n{machine}");
    println!(
        "{} repetition(s), interleaved, medians (min–max); spin {:?}; scale {}\n",
        args.repetitions, args.spin, args.scale
    );
    let labels: Vec<&str> = brokers.iter().map(|b| b.label.as_str()).collect();
    println!("{}", report::table(&records, &workloads, &labels, context));
    if !memory.is_empty() {
        println!("{}", report::memory_table(&memory));
    }
    Ok(())
}

/// Date, CPU count and model, and memory, for the record.
fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    format!(
        "{} — {cpus} CPUs ({model}), {mem_gib:.0} GiB RAM",
        date.trim()
    )
}
