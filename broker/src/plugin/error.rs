//! The one error type of the plugin host. Guest-side failures (a trap, an overrun deadline,
//! the memory cap) are distinguished so the broker can tell a publisher precisely why routing
//! failed; errors a plugin returns on purpose (`create`, `validate-binding`, `compile`) are
//! [`PluginError::Refused`] and carry the plugin's own words.

use std::path::PathBuf;
use std::time::Duration;

/// Which guest function a failed call was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginCall {
    Info,
    Create,
    Destroy,
    ValidateBinding,
    Bind,
    Unbind,
    Route,
    Compile,
    Matches,
    Release,
}

impl std::fmt::Display for PluginCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginCall::Info => "info",
            PluginCall::Create => "create",
            PluginCall::Destroy => "destroy",
            PluginCall::ValidateBinding => "validate-binding",
            PluginCall::Bind => "bind",
            PluginCall::Unbind => "unbind",
            PluginCall::Route => "route",
            PluginCall::Compile => "compile",
            PluginCall::Matches => "matches",
            PluginCall::Release => "release",
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// No plugin of that kind is loaded under this name.
    #[error("no {kind} plugin named {name:?} is loaded")]
    NotFound { kind: &'static str, name: String },

    /// The bytes are not a WebAssembly component Wasmtime can compile.
    #[error("{origin}: not a valid WebAssembly component: {reason}")]
    Invalid { origin: String, reason: String },

    /// A component, but not of either Switchyard world (or of an incompatible version).
    #[error(
        "{origin}: not a Switchyard plugin: it must target the switchyard:plugin@0.2.0 `router` \
         or `filter` world ({reason})"
    )]
    WrongWorld { origin: String, reason: String },

    /// A Switchyard plugin built against another version of the plugin contract.
    #[error(
        "{origin}: built against switchyard:plugin@{found}, but this broker loads plugins built \
         against switchyard:plugin@{expected}: rebuild it with the current Switchyard plugin SDK \
         (the `switchyard-plugin` crate; `cargo update -p switchyard-plugin`, then build it again)"
    )]
    ContractVersion {
        origin: String,
        found: String,
        expected: &'static str,
    },

    /// The plugin describes itself unacceptably (bad name, say).
    #[error("{origin}: {reason}")]
    BadInfo { origin: String, reason: String },

    /// Creating a fresh instance failed (a trap in its start code, say).
    #[error("plugin {plugin:?}: could not instantiate: {reason}")]
    Instantiate { plugin: String, reason: String },

    /// A call ran past its wall-clock deadline and was interrupted.
    #[error(
        "plugin {plugin:?}{}: {call} ran past its deadline of {deadline:?} and was stopped",
        at(version)
    )]
    Deadline {
        plugin: String,
        version: String,
        call: PluginCall,
        deadline: Duration,
    },

    /// A call tried to grow the plugin's memory past its cap.
    #[error(
        "plugin {plugin:?}{}: {call} asked for {asked_bytes} bytes of memory in all; the limit is {limit_bytes} bytes",
        at(version)
    )]
    MemoryLimit {
        plugin: String,
        version: String,
        call: PluginCall,
        limit_bytes: usize,
        /// The instance's total memory the refused growth would have made.
        asked_bytes: usize,
    },

    /// Every instance slot of the engine's pool is taken (by all plugins together): the call
    /// was not made. Not the plugin's fault, so it does not count towards quarantine.
    #[error("plugin {plugin:?}: no free instance slot, the call was not made: {reason}")]
    NoInstanceSlot { plugin: String, reason: String },

    /// A call tried to grow the plugin's tables past their cap.
    #[error(
        "plugin {plugin:?}{}: {call} asked for {asked_elements} table elements in all; the limit is {limit_elements}",
        at(version)
    )]
    TableLimit {
        plugin: String,
        version: String,
        call: PluginCall,
        limit_elements: usize,
        asked_elements: usize,
    },

    /// A call trapped (a panic, an `unreachable`, an out-of-bounds access, …). `reason` is one
    /// line: the panic's message and `file:line:column` when the SDK's panic hook reported them,
    /// else the trap itself.
    #[error("plugin {plugin:?}{}: {call} trapped: {reason}", at(version))]
    Trap {
        plugin: String,
        version: String,
        call: PluginCall,
        reason: String,
        /// The wasm backtrace, on one line, for the log (not shown to clients).
        backtrace: String,
    },

    /// The plugin refused a request on purpose; `reason` is its own message.
    #[error("{reason}")]
    Refused {
        plugin: String,
        call: PluginCall,
        reason: String,
    },

    /// `route` answered with a handle that is not bound to the exchange. The whole answer is
    /// discarded: a plugin that is wrong about one destination is not trusted with the others.
    #[error(
        "plugin {plugin:?}: route answered destination {handle}, which is not bound to exchange {exchange}"
    )]
    InvalidDestination {
        plugin: String,
        exchange: u32,
        handle: u32,
    },

    /// The plugin faulted too often and is refused calls until its quarantine ends or a new
    /// version is loaded.
    #[error(
        "plugin {plugin:?} is quarantined{scope} for {remaining:?} after {faults} faults: {last_fault}"
    )]
    Quarantined {
        plugin: String,
        /// Empty for the whole plugin, else which part (" on this exchange").
        scope: &'static str,
        faults: usize,
        remaining: Duration,
        last_fault: String,
    },

    /// Another file already provides a plugin of this name.
    #[error("{origin}: plugin {name:?} is already provided by {existing}")]
    Conflict {
        origin: String,
        name: String,
        existing: String,
    },

    /// The exchange or filter handle is not known to this plugin.
    #[error("plugin {plugin:?} has no {what} {handle}")]
    UnknownHandle {
        plugin: String,
        what: &'static str,
        handle: u32,
    },

    /// Reading a plugin file or the artifact cache failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },

    /// The engine could not be set up (bad configuration).
    #[error("plugin engine: {reason}")]
    Engine { reason: String },

    /// Promote or discard without a shadow running.
    #[error("plugin {plugin:?} has no shadow running; start one with `switchyard plugin shadow`")]
    NoShadow { plugin: String },
}

/// ` 1.2.0`, or nothing for a plugin whose version is not known yet (a file being probed).
fn at(version: &str) -> String {
    if version.is_empty() {
        String::new()
    } else {
        format!(" {version}")
    }
}

impl PluginError {
    /// Whether this error is the plugin misbehaving (and counts towards quarantine), as opposed
    /// to a refusal it meant or a problem outside the plugin.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            PluginError::Deadline { .. }
                | PluginError::MemoryLimit { .. }
                | PluginError::TableLimit { .. }
                | PluginError::Trap { .. }
                | PluginError::InvalidDestination { .. }
                | PluginError::Instantiate { .. }
        )
    }

    /// Whether this is a fault of a per-message call (`route`, `matches`): their callers log
    /// those on one line with the exchange and routing key (or the consumer), so the host does
    /// not log them again.
    pub(crate) fn is_logged_by_caller(&self) -> bool {
        match self {
            PluginError::Deadline { call, .. }
            | PluginError::MemoryLimit { call, .. }
            | PluginError::TableLimit { call, .. }
            | PluginError::Trap { call, .. } => {
                matches!(call, PluginCall::Route | PluginCall::Matches)
            }
            PluginError::InvalidDestination { .. } => true,
            _ => false,
        }
    }

    /// The wasm backtrace of a trap, on one line; empty for other errors.
    pub fn backtrace(&self) -> &str {
        match self {
            PluginError::Trap { backtrace, .. } => backtrace,
            _ => "",
        }
    }
}
