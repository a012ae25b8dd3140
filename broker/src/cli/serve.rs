//! `switchyard serve`, and the offline `plugins check`.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::plugin::{PluginConfig, PluginRegistry, PluginSource, PluginStatus};
use switchyard::{Broker, BrokerConfig};
use tokio::signal::unix::{SignalKind, signal};

use super::args::ServeArgs;
use super::table::print_table;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(listener) = args.amqp_listen {
        config.amqp.listen = listener.0;
    }
    if let Some(listener) = args.amqps_listen {
        config.amqp.listen_tls = listener.0;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(dir) = args.plugin_dir {
        config.plugin_dir = Some(dir);
    }
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert;
        config.tls_key = args.tls_key;
    }
    if let Some(bytes) = args.max_frame_bytes {
        config.max_frame_bytes = bytes;
    }
    if let Some(bytes) = args.max_message_bytes {
        config.max_message_bytes = bytes;
    }
    if let Some(bytes) = args.memory_high_watermark_bytes {
        config.memory_high_watermark_bytes = bytes;
    }
    if let Some(us) = args.busy_wait_us {
        config.busy_wait_us = us;
    }
    if let Some(ms) = args.plugin_call_deadline_ms {
        config.plugins.call_deadline_ms = ms;
    }
    if let Some(mib) = args.plugin_memory_mib {
        config.plugins.memory_mib = mib;
    }
    if let Some(entries) = args.plugin_decision_cache_entries {
        config.plugins.decision_cache_entries = entries;
    }
    let broker = Broker::start(config.clone()).await?;
    // Before saying it listens: a supervisor that stops it as soon as it has said so gets a
    // clean shutdown, not the default death by SIGTERM.
    let mut terminate = signal(SignalKind::terminate())?;
    print_table(
        &["NAME", "KIND", "VERSION", "SOURCE", "STATUS"],
        broker.plugins().list().iter().map(plugin_row).collect(),
    );
    println!(
        "switchyard listening on {} (plugins in {})",
        broker.local_addr(),
        config.plugin_dir().display()
    );
    println!("certificate fingerprint (sha256): {}", broker.fingerprint());
    if config.tls_cert.is_none() {
        println!(
            "development certificate in {}; clients: --pin {}",
            config.data_dir.join("tls").display(),
            broker.fingerprint()
        );
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    broker.shutdown().await;
    Ok(())
}

pub fn check_plugins(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let registry = PluginRegistry::new(PluginConfig::default())?;
    let mut refused = 0;
    for file in files {
        if let Err(error) = registry.load_file(file) {
            refused += 1;
            if !json {
                eprintln!("{}: refused: {error}", file.display());
            }
        }
    }
    let rows = registry.list();
    if json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        print_table(
            &["NAME", "KIND", "VERSION", "SOURCE", "STATUS"],
            rows.iter().map(plugin_row).collect(),
        );
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plugin_row(row: &PluginStatus) -> Vec<String> {
    vec![
        row.name.clone(),
        row.kind
            .map(|k| k.to_string())
            .unwrap_or_else(|| "-".into()),
        row.version.clone().unwrap_or_else(|| "-".into()),
        match &row.source {
            PluginSource::Embedded => "embedded".to_owned(),
            PluginSource::File(path) => path.display().to_string(),
            PluginSource::Uploaded => "uploaded".to_owned(),
        },
        format!("{:?}", row.health).to_lowercase(),
    ]
}
