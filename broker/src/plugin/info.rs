//! What the host knows about a loaded plugin: its self-description, where it came from, and
//! the status line the plugin list shows.

use std::path::PathBuf;
use std::time::SystemTime;

/// The longest plugin name accepted, in bytes.
pub const MAX_PLUGIN_NAME: usize = 64;
/// The longest version string a plugin may give itself.
pub const MAX_PLUGIN_VERSION: usize = 64;
/// The longest description a plugin may give itself.
pub const MAX_PLUGIN_DESCRIPTION: usize = 1024;

/// What a plugin reads besides the routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Reads {
    pub headers: bool,
    pub properties: bool,
    pub body: bool,
}

impl Reads {
    /// Only the routing key: decisions can be cached per key.
    pub fn key_only(self) -> bool {
        !(self.headers || self.properties || self.body)
    }
}

/// A plugin's description of itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub reads: Reads,
}

/// Whether a plugin routes (an exchange type) or filters (for consumers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Router,
    Filter,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Router => "router",
            PluginKind::Filter => "filter",
        })
    }
}

/// Where a plugin's code came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "path")]
pub enum PluginSource {
    /// Built into the broker binary.
    Embedded,
    /// A `.wasm` file in the plugin directory.
    File(PathBuf),
    /// Sent by a client and not (yet) in the plugin directory: a shadow version.
    Uploaded,
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Embedded => f.write_str("embedded"),
            PluginSource::File(path) => write!(f, "{}", path.display()),
            PluginSource::Uploaded => f.write_str("uploaded"),
        }
    }
}

/// Health of a loaded plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginHealth {
    Serving,
    Quarantined,
    /// Its file was removed while exchanges still use it; it keeps serving them.
    Orphaned,
    /// A file failed to load; nothing serves under its name from that file.
    Failed,
}

/// One row of the plugin list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginStatus {
    /// The plugin's name, or for a file that failed to load, the file's stem.
    pub name: String,
    pub kind: Option<PluginKind>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub source: PluginSource,
    pub health: PluginHealth,
    /// The last load failure or fault, if any.
    pub last_error: Option<String>,
    pub total_faults: u64,
    #[serde(skip)]
    pub loaded_at: Option<SystemTime>,
}

/// Checks what a plugin says about itself: its name, and a version and description short
/// enough to list (a plugin list must fit in a reply frame).
pub(crate) fn check_info(info: &PluginInfo) -> Result<(), String> {
    check_name(&info.name)?;
    if info.version.len() > MAX_PLUGIN_VERSION {
        return Err(format!(
            "plugin {:?} gives a version of {} bytes; the limit is {MAX_PLUGIN_VERSION}",
            info.name,
            info.version.len()
        ));
    }
    if info.description.len() > MAX_PLUGIN_DESCRIPTION {
        return Err(format!(
            "plugin {:?} gives a description of {} bytes; the limit is {MAX_PLUGIN_DESCRIPTION}",
            info.name,
            info.description.len()
        ));
    }
    Ok(())
}

/// Checks a plugin's self-chosen name.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_PLUGIN_NAME {
        return Err(format!(
            "plugin name {name:?} must be 1 to {MAX_PLUGIN_NAME} bytes long"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "plugin name {name:?} may hold only lowercase letters, digits, '-', '_' and '.', not {bad:?}"
        ));
    }
    Ok(())
}
