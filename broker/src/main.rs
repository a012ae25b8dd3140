//! The `switchyard` binary: parses the command line and runs the chosen command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use switchyard::plugin::{
    PluginConfig, PluginDirectory, PluginLimits, PluginRegistry, PluginSource, PluginStatus,
};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A message broker whose exchanges route through WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Work with plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Where the broker keeps its state (compiled plugin cache, …).
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    data_dir: PathBuf,
    /// Directory of `.wasm` plugins, watched for changes; defaults to `<data-dir>/plugins`.
    #[arg(long, env = "SWITCHYARD_PLUGIN_DIR")]
    plugin_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Load plugin files the way the broker would and report what each provides or why it
    /// was refused. Exits non-zero if any file is refused.
    Check {
        /// `.wasm` files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON object per plugin instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Plugins(PluginsCommand::Check { files, json }) => check_plugins(&files, json),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("switchyard: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let plugin_dir = args
        .plugin_dir
        .unwrap_or_else(|| args.data_dir.join("plugins"));
    let registry = PluginRegistry::new(PluginConfig {
        limits: PluginLimits::default(),
        cache_dir: Some(args.data_dir.join("plugin-cache")),
    })?;
    registry.load_embedded()?;
    let watch = PluginDirectory::watch(Arc::clone(&registry), &plugin_dir)?;
    print_plugin_table(&registry.list());
    tracing::info!(plugin_dir = %watch.dir().display(), "watching the plugin directory; Ctrl-C stops");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tokio::signal::ctrl_c())?;
    tracing::info!("stopping");
    Ok(ExitCode::SUCCESS)
}

fn check_plugins(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
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
        print_plugin_table(&rows);
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_plugin_table(rows: &[PluginStatus]) {
    println!(
        "{:<18} {:<8} {:<12} {:<12} {:<10} LAST ERROR",
        "NAME", "KIND", "VERSION", "SOURCE", "STATUS"
    );
    for row in rows {
        let source = match &row.source {
            PluginSource::Embedded => "embedded".to_owned(),
            PluginSource::File(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        println!(
            "{:<18} {:<8} {:<12} {:<12} {:<10} {}",
            row.name,
            row.kind
                .map(|k| k.to_string())
                .unwrap_or_else(|| "-".into()),
            row.version.as_deref().unwrap_or("-"),
            source,
            format!("{:?}", row.health).to_lowercase(),
            row.last_error.as_deref().unwrap_or("")
        );
    }
}
