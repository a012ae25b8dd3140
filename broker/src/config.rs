//! The broker's configuration: a TOML file, every option of which can also be given as a
//! command-line flag (flags win). Defaults suit a development machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::plugin::PluginLimits;
use crate::queue::Window;
use crate::store::{FsyncPolicy, StoreConfig};

/// The UDP port Switchyard listens on by default.
pub const DEFAULT_PORT: u16 = 5680;

/// Microseconds of busy-waiting after traffic by default: none. On the 2-CPU benchmark VM,
/// with clients sharing the CPUs, spinning made the broker slower and costlier, and RabbitMQ as
/// Debian runs it does not spin either (`+sbwt none`); the figures are in
/// `docs/configuration.md`.
pub const DEFAULT_BUSY_WAIT_US: u64 = 0;

/// Room a delivery frame keeps beyond the message it carries: the delivery's own fields, the
/// exchange name, the frame encoding of up to 256 headers, and the dead-letter trail headers.
pub const DELIVERY_HEADROOM_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// UDP address of the QUIC endpoint.
    pub listen: SocketAddr,
    /// Where the broker keeps its state: TLS development certificate, compiled plugins, …
    pub data_dir: PathBuf,
    /// Watched directory of `.wasm` plugins; `<data_dir>/plugins` when unset.
    pub plugin_dir: Option<PathBuf>,
    /// PEM certificate chain and key; with neither, a development certificate is generated.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest frame accepted on any stream, in bytes.
    pub max_frame_bytes: u32,
    /// Largest message body accepted, in bytes.
    pub max_message_bytes: u32,
    /// Above this many bytes of queued message bodies, publishers are slowed down.
    pub memory_high_watermark_bytes: u64,
    /// How long the worker threads keep polling after the last datagram instead of sleeping,
    /// in microseconds (0: never); see `frontend::quic::busy_wait`.
    pub busy_wait_us: u64,
    pub plugins: PluginSettings,
    pub store: StoreSettings,
    pub limits: LimitSettings,
    /// The AMQP 0-9-1 listeners (`[amqp]`).
    pub amqp: AmqpSettings,
    /// Users allowed to connect (`[[users]]` tables); none means anonymous development mode.
    pub users: Vec<UserConfig>,
}

/// The `[limits]` table: what one broker holds at most, so that no client can exhaust it. A
/// request past a limit is refused with `LIMIT_REACHED`, and everyone else carries on.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Open client connections, in all.
    pub max_connections: u32,
    /// Open client connections from one IP address.
    pub max_connections_per_address: u32,
    /// How long a new connection may take to send its `Hello`, in milliseconds.
    pub hello_timeout_ms: u64,
    /// Password checks (Argon2, about 19 MiB and tens of milliseconds each) run at once; more
    /// wait their turn.
    pub max_concurrent_password_checks: u32,
    /// Publish answers (confirms, rejects) a connection may owe its client at once; a client
    /// that does not read them is no longer read from until it does.
    pub max_unread_answers_per_connection: u32,
    pub max_queues: u64,
    pub max_exchanges: u64,
    pub max_bindings: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_connections: 10_000,
            max_connections_per_address: 1_000,
            hello_timeout_ms: 10_000,
            max_concurrent_password_checks: 4,
            max_unread_answers_per_connection: 65_536,
            max_queues: 100_000,
            max_exchanges: 10_000,
            max_bindings: 1_000_000,
        }
    }
}

/// The `[store]` table: durable queues and definitions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `always`: a persistent message is confirmed after the fsync that covers it. `interval`:
    /// confirmed once written to the operating system (survives a broker crash, not a power
    /// loss), with an fsync every `fsync_interval_ms`.
    pub fsync: FsyncMode,
    pub fsync_interval_ms: u64,
    /// Size at which a queue's log segment is closed and a new one started, in MiB.
    pub segment_mib: u64,
    /// Below this much free disk space persistent publishes to durable queues are refused, in
    /// MiB.
    pub disk_free_low_watermark_mib: u64,
    /// A durable queue keeps at most this many ready messages (and `window_mib` of bodies) in
    /// memory; the rest are read back from its log when due.
    pub window_messages: usize,
    pub window_mib: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    Always,
    Interval,
}

impl Default for StoreSettings {
    fn default() -> Self {
        let window = Window::default();
        StoreSettings {
            fsync: FsyncMode::Always,
            fsync_interval_ms: 200,
            segment_mib: 64,
            disk_free_low_watermark_mib: 64,
            window_messages: window.messages,
            window_mib: window.bytes >> 20,
        }
    }
}

/// One `[[users]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// An Argon2id PHC string, as `switchyard hash-password` prints.
    pub password_hash: String,
    /// What the user may do beyond messaging and declaring, as RabbitMQ's user tags:
    /// `administrator` may load plugin code (`switchyard plugin deploy`, shadows).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The `[plugins]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Deadline of one route or filter call, in milliseconds.
    pub call_deadline_ms: u64,
    /// Memory cap of one plugin instance, in MiB.
    pub memory_mib: usize,
    /// Routing decisions cached per exchange type (0 disables the cache).
    pub decision_cache_entries: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            data_dir: PathBuf::from("./switchyard-data"),
            plugin_dir: None,
            tls_cert: None,
            tls_key: None,
            max_frame_bytes: 16 << 20,
            max_message_bytes: 8 << 20,
            memory_high_watermark_bytes: 1 << 30,
            busy_wait_us: DEFAULT_BUSY_WAIT_US,
            plugins: PluginSettings::default(),
            store: StoreSettings::default(),
            limits: LimitSettings::default(),
            amqp: AmqpSettings::default(),
            users: Vec::new(),
        }
    }
}

/// The AMQP port RabbitMQ's clients use by default.
pub const DEFAULT_AMQP_PORT: u16 = 5672;

/// The AMQPS (AMQP over TLS) port.
pub const DEFAULT_AMQPS_PORT: u16 = 5671;

/// The `[amqp]` table: AMQP 0-9-1 over TCP and over TLS (with the broker's certificate).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// TCP address of the AMQP listener; `"off"` switches it off.
    #[serde(deserialize_with = "address_or_off")]
    pub listen: Option<SocketAddr>,
    /// TCP address of the AMQPS listener; `"off"` switches it off.
    #[serde(deserialize_with = "address_or_off")]
    pub listen_tls: Option<SocketAddr>,
    /// The most channels a connection may open (offered in `connection.tune`).
    pub channel_max: u16,
    /// The largest frame, in bytes (offered in `connection.tune`; at least 4096).
    pub frame_max: u32,
    /// The heartbeat interval offered, in seconds (0: none unless the client asks).
    pub heartbeat_s: u16,
    /// How long a client may take from connecting to `connection.open`, in milliseconds.
    pub handshake_timeout_ms: u64,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        AmqpSettings {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], DEFAULT_AMQP_PORT))),
            listen_tls: Some(SocketAddr::from(([127, 0, 0, 1], DEFAULT_AMQPS_PORT))),
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat_s: 60,
            handshake_timeout_ms: 10_000,
        }
    }
}

impl AmqpSettings {
    /// Both listeners off: what a broker embedded in a test wants unless it tests AMQP.
    pub fn off() -> Self {
        AmqpSettings {
            listen: None,
            listen_tls: None,
            ..AmqpSettings::default()
        }
    }

    /// Both listeners on `127.0.0.1` with ports the system picks.
    pub fn on_any_port() -> Self {
        AmqpSettings {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            listen_tls: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..AmqpSettings::default()
        }
    }
}

/// Reads a listener address, or `"off"` for none.
pub fn parse_address_or_off(text: &str) -> Result<Option<SocketAddr>, String> {
    match text.trim() {
        "off" | "" => Ok(None),
        address => address.parse().map(Some).map_err(|e| {
            format!("{address:?} is neither an address (127.0.0.1:5672) nor `off`: {e}")
        }),
    }
}

fn address_or_off<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_address_or_off(&text).map_err(serde::de::Error::custom)
}

impl Default for PluginSettings {
    fn default() -> Self {
        let limits = PluginLimits::default();
        PluginSettings {
            call_deadline_ms: limits.call_deadline.as_millis() as u64,
            memory_mib: limits.memory_bytes >> 20,
            decision_cache_entries: limits.decision_cache_entries,
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file; unknown keys are errors so typos do not pass silently.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Checks what the fields mean together: frames fit the protocol's limit, and the largest
    /// message fits a delivery frame with room for what the broker adds to it (the delivery's
    /// own fields and a dead-letter trail).
    pub fn validate(&self) -> Result<(), String> {
        let protocol_max = switchyard_protocol::DEFAULT_MAX_FRAME;
        if self.max_frame_bytes > protocol_max {
            return Err(format!(
                "max_frame_bytes is {}; the protocol's limit is {protocol_max}",
                self.max_frame_bytes
            ));
        }
        let needed = u64::from(self.max_message_bytes) + DELIVERY_HEADROOM_BYTES;
        if needed > u64::from(self.max_frame_bytes) {
            return Err(format!(
                "max_message_bytes ({}) plus {DELIVERY_HEADROOM_BYTES} bytes for what a delivery adds must fit max_frame_bytes ({})",
                self.max_message_bytes, self.max_frame_bytes
            ));
        }
        if self.amqp.frame_max < switchyard_amqp::FRAME_MIN_SIZE {
            return Err(format!(
                "[amqp] frame_max is {}; AMQP 0-9-1 needs at least {}",
                self.amqp.frame_max,
                switchyard_amqp::FRAME_MIN_SIZE
            ));
        }
        Ok(())
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.plugin_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugins"))
    }

    pub fn store_config(&self) -> StoreConfig {
        let settings = &self.store;
        StoreConfig {
            dir: self.data_dir.join("store"),
            fsync: match settings.fsync {
                FsyncMode::Always => FsyncPolicy::Always,
                FsyncMode::Interval => {
                    FsyncPolicy::Interval(Duration::from_millis(settings.fsync_interval_ms.max(1)))
                }
            },
            segment_bytes: settings.segment_mib.max(1) << 20,
            disk_free_low_watermark_bytes: settings.disk_free_low_watermark_mib << 20,
        }
    }

    pub fn queue_window(&self) -> Window {
        Window {
            messages: self.store.window_messages.max(2),
            bytes: self.store.window_mib.max(1) << 20,
        }
    }

    pub fn plugin_limits(&self) -> PluginLimits {
        PluginLimits {
            call_deadline: Duration::from_millis(self.plugins.call_deadline_ms),
            memory_bytes: self.plugins.memory_mib << 20,
            decision_cache_entries: self.plugins.decision_cache_entries,
            ..PluginLimits::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sets_what_it_names_and_refuses_unknown_keys() {
        let config: BrokerConfig =
            toml::from_str("listen = \"0.0.0.0:7000\"\n[plugins]\ncall_deadline_ms = 50\n")
                .unwrap();
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(
            config.plugin_limits().call_deadline,
            Duration::from_millis(50)
        );
        assert_eq!(
            config.max_frame_bytes,
            BrokerConfig::default().max_frame_bytes
        );
        assert!(toml::from_str::<BrokerConfig>("listne = \"x\"").is_err());
    }
}
