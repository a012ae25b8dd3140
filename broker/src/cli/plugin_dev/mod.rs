//! `switchyard plugin …`: the plugin author's commands. `new`, `build` and `test` run locally
//! (no broker); `deploy`, `shadow`, `divergences`, `promote` and `discard` talk to a running
//! broker over the control protocol.

mod compile;
mod samples;
mod scaffold;

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use bytes::Bytes;
use switchyard::plugin::{PluginConfig, PluginInfo, PluginRegistry};
use switchyard_client::Connection;

pub use scaffold::NewKind;

use super::args::PluginCommand;
use super::table::print_table;

/// Runs the commands that need no broker; `None` for the others.
pub fn run_local(command: &PluginCommand) -> Option<anyhow::Result<ExitCode>> {
    Some(match command {
        PluginCommand::New { name, kind, dir } => new(name, *kind, dir),
        PluginCommand::Build { path } => build(path).map(|_| ExitCode::SUCCESS),
        PluginCommand::Test { path, samples } => test(path, samples.as_deref()),
        _ => return None,
    })
}

fn new(name: &str, kind: NewKind, parent: &Path) -> anyhow::Result<ExitCode> {
    let dir = scaffold::new_plugin(name, kind, parent)?;
    println!("created {}", dir.display());
    println!(
        "next: switchyard plugin test --path {0}, then switchyard plugin deploy --path {0}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds the crate at `path` and checks the component; returns it with what it says it is.
fn build(path: &Path) -> anyhow::Result<(compile::Built, PluginInfo)> {
    let built = compile::build(path)?;
    let registry = PluginRegistry::new(PluginConfig::default())?;
    let info = registry
        .load_file(&built.wasm)
        .with_context(|| format!("the broker would refuse {}", built.wasm.display()))?
        .context("the component did not load")?;
    println!(
        "built {} {}: {} ({} KiB)",
        info.name,
        info.version,
        built.wasm.display(),
        built.bytes.div_ceil(1024)
    );
    Ok((built, info))
}

fn test(path: &Path, samples: Option<&Path>) -> anyhow::Result<ExitCode> {
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(path)
        .arg("test")
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("the unit tests failed ({status})");
    }
    let (built, _) = build(path)?;
    let file = samples.map_or_else(|| path.join("samples.json"), Path::to_path_buf);
    let outcome = samples::run(&built.wasm, &file)?;
    println!("{} passed, {} failed", outcome.passed, outcome.failed);
    Ok(if outcome.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the commands that talk to a broker.
pub async fn run_remote(connection: &Connection, command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Deploy { path, file } => {
            let wasm = match file {
                Some(file) => file,
                None => {
                    tokio::task::spawn_blocking(move || build(&path))
                        .await??
                        .0
                        .wasm
                }
            };
            let bytes = read_component(&wasm)?;
            let info = connection.install_plugin(bytes).await?;
            println!(
                "deployed {} {}: serving from {}",
                info.name,
                info.version.as_deref().unwrap_or("?"),
                wire_source(&info.source)
            );
        }
        PluginCommand::Shadow {
            name,
            file,
            sample_percent,
        } => {
            let version = connection
                .start_shadow(&name, read_component(&file)?, sample_percent)
                .await?;
            println!(
                "shadowing {name} with version {version} on {sample_percent}% of its messages; \
                 see `switchyard plugin divergences {name}`"
            );
        }
        PluginCommand::Divergences { name, json } => {
            let report = connection.shadow_report(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
            } else {
                print_report(&report);
            }
        }
        PluginCommand::Promote { name } => {
            let info = connection.promote_shadow(&name).await?;
            println!(
                "promoted {} {}: serving from {}",
                info.name,
                info.version.as_deref().unwrap_or("?"),
                wire_source(&info.source)
            );
        }
        PluginCommand::Discard { name } => {
            connection.discard_shadow(&name).await?;
            println!("discarded the shadow of {name}");
        }
        PluginCommand::New { .. } | PluginCommand::Build { .. } | PluginCommand::Test { .. } => {
            unreachable!("run locally")
        }
    }
    Ok(())
}

fn read_component(path: &Path) -> anyhow::Result<Bytes> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let limit = switchyard_protocol::DEFAULT_MAX_FRAME as usize - 1024;
    if bytes.len() > limit {
        bail!(
            "{} is {} bytes; a component sent to the broker may be at most {limit}",
            path.display(),
            bytes.len()
        );
    }
    Ok(Bytes::from(bytes))
}

fn wire_source(source: &switchyard_protocol::PluginSource) -> String {
    match source {
        switchyard_protocol::PluginSource::Embedded => "embedded".to_owned(),
        switchyard_protocol::PluginSource::File(path) => path.clone(),
    }
}

fn print_report(report: &switchyard_protocol::ShadowReport) {
    println!(
        "{}: serving {}, shadow {} on {}% of messages",
        report.plugin, report.serving_version, report.shadow_version, report.sample_percent
    );
    println!(
        "routed {}, sampled {}: {} agreed, {} diverged, {} failed in the shadow",
        report.seen, report.sampled, report.agreed, report.diverged, report.failed
    );
    if let Some(error) = &report.last_error {
        println!("the shadow's last error: {error}");
    }
    if !report.divergences.is_empty() {
        print_table(
            &["EXCHANGE", "ROUTING KEY", "MESSAGE ID", "SERVING", "SHADOW"],
            report
                .divergences
                .iter()
                .map(|d| {
                    vec![
                        d.exchange.clone(),
                        d.routing_key.clone(),
                        d.message_id.clone().unwrap_or_else(|| "-".into()),
                        destinations(&d.serving),
                        destinations(&d.shadow),
                    ]
                })
                .collect(),
        );
    }
}

fn destinations(names: &[String]) -> String {
    if names.is_empty() {
        "(unroutable)".to_owned()
    } else {
        names.join(",")
    }
}

fn report_json(report: &switchyard_protocol::ShadowReport) -> serde_json::Value {
    serde_json::json!({
        "plugin": report.plugin,
        "serving_version": report.serving_version,
        "shadow_version": report.shadow_version,
        "sample_percent": report.sample_percent,
        "seen": report.seen,
        "sampled": report.sampled,
        "agreed": report.agreed,
        "diverged": report.diverged,
        "failed": report.failed,
        "last_error": report.last_error,
        "divergences": report.divergences.iter().map(|d| serde_json::json!({
            "exchange": d.exchange,
            "routing_key": d.routing_key,
            "message_id": d.message_id,
            "serving": d.serving,
            "shadow": d.shadow,
        })).collect::<Vec<_>>(),
    })
}
