//! The command line, as clap types. `switchyard serve` runs the broker; every other command is
//! a client of a running broker.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use switchyard_client::{Value, value_json};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A message broker whose exchanges route through WebAssembly plugins"
)]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How client commands reach the broker.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The broker's address.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_SERVER",
        default_value = "127.0.0.1:5680"
    )]
    pub server: SocketAddr,
    /// Trust certificates signed by the CA in this PEM file.
    #[arg(long, global = true, conflicts_with_all = ["pin", "insecure"])]
    pub ca: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256 fingerprint (printed by `serve`).
    #[arg(long, global = true, conflicts_with = "insecure")]
    pub pin: Option<String>,
    /// Trust any certificate (development only: the connection is encrypted but the broker
    /// is not authenticated).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Without --ca, --pin or --insecure, pin the development certificate found in this data
    /// directory (the one `switchyard serve` uses by default).
    #[arg(
        long = "trust-data-dir",
        global = true,
        default_value = "./switchyard-data"
    )]
    pub trust_data_dir: PathBuf,
    #[arg(long, global = true, requires = "password", env = "SWITCHYARD_USER")]
    pub user: Option<String>,
    /// The password; prefer the environment variable, which other users of the machine cannot
    /// read from the process list.
    #[arg(
        long,
        global = true,
        requires = "user",
        env = "SWITCHYARD_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Declare, delete and list exchanges.
    #[command(subcommand)]
    Exchange(ExchangeCommand),
    /// Declare, delete, purge and list queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Bind a queue to an exchange.
    Bind(BindArgs),
    /// Remove a binding.
    Unbind(BindArgs),
    /// Publish messages (the body comes from stdin without --body).
    Publish(PublishArgs),
    /// Consume messages from a queue and print them.
    Consume(ConsumeArgs),
    /// List plugins, or check plugin files offline.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Write your own plugin: create, build, test and deploy it, or run a new version in the
    /// shadow of the serving one.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Read a password from stdin and print its Argon2id hash, for a `[[users]]` entry.
    HashPassword,
    /// Generate load against a broker and report rates and latencies.
    Bench(super::bench::BenchArgs),
    /// Export or import exchanges, queues and bindings as JSON (RabbitMQ's definitions shape).
    #[command(subcommand)]
    Definitions(DefinitionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DefinitionsCommand {
    /// Print every exchange, queue and binding as JSON.
    Export,
    /// Declare what a definitions file lists (`-` reads stdin). Exits non-zero if any item
    /// failed; the others are still declared.
    Import { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// UDP address to listen on.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// TCP address for AMQP 0-9-1 (default 127.0.0.1:5672), or `off`.
    #[arg(long, value_parser = parse_listener)]
    pub amqp_listen: Option<Listener>,
    /// TCP address for AMQP over TLS, with the broker's certificate (default 127.0.0.1:5671),
    /// or `off`.
    #[arg(long, value_parser = parse_listener)]
    pub amqps_listen: Option<Listener>,
    /// Where the broker keeps its state.
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory of `.wasm` plugins, watched for changes (default `<data-dir>/plugins`).
    #[arg(long, env = "SWITCHYARD_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// PEM certificate chain (with --tls-key); without both, a development certificate.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest frame accepted, in bytes.
    #[arg(long)]
    pub max_frame_bytes: Option<u32>,
    /// Largest message body accepted, in bytes.
    #[arg(long)]
    pub max_message_bytes: Option<u32>,
    /// Above this many bytes of queued messages, publishers are held back.
    #[arg(long)]
    pub memory_high_watermark_bytes: Option<u64>,
    /// Microseconds the worker threads keep polling after the last datagram instead of
    /// sleeping (0: never). Lowers latency on VMs, costs CPU while traffic lasts.
    #[arg(long)]
    pub busy_wait_us: Option<u64>,
    /// Deadline of one routing or filter plugin call, in milliseconds.
    #[arg(long)]
    pub plugin_call_deadline_ms: Option<u64>,
    /// Memory cap of one plugin instance, in MiB.
    #[arg(long)]
    pub plugin_memory_mib: Option<usize>,
    /// Routing decisions cached per exchange type (0 disables the cache).
    #[arg(long)]
    pub plugin_decision_cache_entries: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum ExchangeCommand {
    Declare {
        name: String,
        /// The exchange type: a router plugin's name (direct, fanout, topic, headers, …).
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        durable: bool,
        #[arg(long)]
        auto_delete: bool,
        #[arg(long)]
        internal: bool,
        /// An argument for the exchange's plugin: `--arg field=order.region` (a string) or
        /// `--arg NAME:=JSON` for a typed value (see `docs/values.md`).
        #[arg(long = "arg", value_parser = parse_typed)]
        arguments: Vec<(String, Value)>,
    },
    Delete {
        name: String,
        #[arg(long)]
        if_unused: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    Declare {
        name: String,
        #[arg(long)]
        durable: bool,
        #[arg(long)]
        exclusive: bool,
        #[arg(long)]
        auto_delete: bool,
        /// A queue argument: `--arg x-max-length=1000` or `--arg x-max-length:=1000` (numbers
        /// given as strings are read as numbers), `--arg x-dead-letter-exchange=dlx`.
        #[arg(long = "arg", value_parser = parse_typed)]
        arguments: Vec<(String, Value)>,
    },
    Delete {
        name: String,
        #[arg(long)]
        if_unused: bool,
        #[arg(long)]
        if_empty: bool,
    },
    Purge {
        name: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct BindArgs {
    pub exchange: String,
    pub queue: String,
    #[arg(long, default_value = "")]
    pub key: String,
    /// A binding argument: `--arg x-match=all`, `--arg NAME:=JSON` for a typed value.
    #[arg(long = "arg", value_parser = parse_typed)]
    pub arguments: Vec<(String, Value)>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The exchange; `""` is the default exchange (routes to the queue named by --key).
    pub exchange: String,
    #[arg(long, default_value = "")]
    pub key: String,
    /// A header: `--header tenant=acme` (a string) or `--header NAME:=JSON` for a typed value,
    /// e.g. `--header attempt:=3`, `--header 'tags:=["a","b"]'`, `--header 'n:={"$i8": 5}'`.
    #[arg(long = "header", value_parser = parse_typed)]
    pub headers: Vec<(String, Value)>,
    #[arg(long)]
    pub persistent: bool,
    #[arg(long)]
    pub message_id: Option<String>,
    #[arg(long)]
    pub correlation_id: Option<String>,
    #[arg(long)]
    pub reply_to: Option<String>,
    #[arg(long)]
    pub content_type: Option<String>,
    #[arg(long)]
    pub content_encoding: Option<String>,
    /// The application's message type (AMQP's `type` property).
    #[arg(long = "type")]
    pub message_type: Option<String>,
    /// Must be the user the connection authenticates as; the broker refuses it otherwise.
    #[arg(long)]
    pub user_id: Option<String>,
    #[arg(long)]
    pub app_id: Option<String>,
    /// Publish timestamp, milliseconds since the Unix epoch.
    #[arg(long)]
    pub timestamp: Option<u64>,
    /// Hold the message this many milliseconds before it is delivered.
    #[arg(long)]
    pub delay: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub priority: u8,
    /// Per-message time to live, in milliseconds.
    #[arg(long)]
    pub expiration: Option<u64>,
    /// Ask the broker to return the message if no queue takes it.
    #[arg(long)]
    pub mandatory: bool,
    /// The body; read from stdin when absent.
    #[arg(long)]
    pub body: Option<String>,
    /// Publish this many copies.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub queue: String,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when no message arrives for this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// A consumer filter, `PLUGIN=EXPRESSION`, e.g. `--filter "selector=region = 'eu'"`.
    #[arg(long, value_parser = parse_pair)]
    pub filter: Option<(String, String)>,
    /// Do not acknowledge: messages leave the queue when delivered.
    #[arg(long)]
    pub no_ack: bool,
    #[arg(long, default_value_t = 100)]
    pub prefetch: u32,
    /// One JSON object per message.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// The plugins a running broker has loaded, and files that failed to load.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Load plugin files offline the way the broker would, and say what each provides or why
    /// it is refused. Exits non-zero if any is refused.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// Parses a typed `NAME=TEXT` (a string) or `NAME:=JSON` (any value, in the JSON form of
/// `switchyard_protocol::value_json`).
fn parse_typed(text: &str) -> Result<(String, Value), String> {
    let (name, value) = parse_pair(text)?;
    match name.strip_suffix(':') {
        Some(name) => {
            let json: serde_json::Value = serde_json::from_str(&value)
                .map_err(|error| format!("{name}: {value:?} is not JSON ({error})"))?;
            let value = value_json::from_json(&json).map_err(|error| format!("{name}: {error}"))?;
            Ok((name.to_owned(), value))
        }
        None => Ok((name, Value::String(value))),
    }
}

/// Parses `K=V` (splitting at the first `=`).
fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_pairs_are_text_after_equals_and_json_after_colon_equals() {
        assert_eq!(
            parse_typed("tenant=a=b").unwrap(),
            ("tenant".into(), Value::String("a=b".into()))
        );
        assert_eq!(
            parse_typed("x-max-length:=10").unwrap(),
            ("x-max-length".into(), Value::I64(10))
        );
        assert_eq!(
            parse_typed(r#"n:={"$u8": 7}"#).unwrap(),
            ("n".into(), Value::U8(7))
        );
        assert_eq!(
            parse_typed(r#"tags:=["a", null, true]"#).unwrap().1,
            Value::Array(vec!["a".into(), Value::Void, true.into()])
        );
        let error = parse_typed("n:=ten").unwrap_err();
        assert!(error.contains("not JSON"), "{error}");
        assert!(parse_typed("no-equals").is_err());
    }
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate: the SDK, a working example with a unit test, sample messages and
    /// a README.
    New {
        /// The plugin's name: the exchange type (router) or filter name users will ask for.
        name: String,
        #[arg(long, value_enum, default_value = "router")]
        kind: super::plugin_dev::NewKind,
        /// Where to create the crate's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build the component (release, wasm32-wasip2, adding the target if missing) and check it
    /// as the broker will load it.
    Build {
        /// The plugin crate.
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Run the crate's unit tests, build it, then route every message of the samples file
    /// through the component in the broker's own plugin host.
    Test {
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// The samples file (default: samples.json in the crate).
        #[arg(long)]
        samples: Option<PathBuf>,
    },
    /// Build the crate and install the component into the running broker (its plugin
    /// directory, over the control protocol); waits until the new version serves.
    Deploy {
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// Install this component instead of building the crate.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Run FILE, a new version of router NAME, beside the serving one on a sample of live
    /// traffic; the serving version keeps deciding. See the differences with `plugin
    /// divergences`, then `plugin promote` or `plugin discard`.
    Shadow {
        name: String,
        file: PathBuf,
        /// The share of messages routed by both versions, in percent.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=100))]
        sample_percent: u8,
    },
    /// Show how the shadow of router NAME has routed differently so far.
    Divergences {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Make the shadow of router NAME the serving version (its file replaces the plugin's).
    Promote { name: String },
    /// Stop the shadow of router NAME; nothing else changes.
    Discard { name: String },
}

/// A listener's address, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener(pub Option<SocketAddr>);

fn parse_listener(text: &str) -> Result<Listener, String> {
    switchyard::config::parse_address_or_off(text).map(Listener)
}
