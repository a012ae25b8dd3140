//! What a plugin's store holds, and the capabilities it is (not) given.
//!
//! A plugin gets an empty WASI context: no preopened directories, no environment, no
//! arguments, no sockets, closed stdin, and clocks frozen at zero, so its answers cannot depend
//! on where or when it runs. Randomness is the one thing left real: Rust's standard library
//! seeds its hash maps from it, and a predictable seed would let publishers craft colliding
//! keys. Its stdout, stderr and `host.log` lines go to `tracing` under the plugin's name,
//! clipped to [`MAX_LOG_LINE`] bytes and within the plugin's rate (`log_budget.rs`).
//!
//! WASI's blocking stream calls run on Wasmtime's ambient Tokio runtime, so plugin code must
//! run on a thread that is not driving a Tokio runtime; `sandbox_call::off_runtime` sees to
//! that for every call.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::host;
use super::limits::{MemoryLimiter, PluginLimits};
use super::log_budget::LogBudget;

/// The longest log line kept from a plugin; the rest is cut so a plugin cannot flood the log.
const MAX_LOG_LINE: usize = 4096;

/// The data of one plugin store.
pub(crate) struct SandboxState {
    plugin: String,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    log_budget: Arc<LogBudget>,
    /// What the plugin reported of its panic in the current call (message, location).
    pub(crate) panic: Option<(String, String)>,
}

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxState")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl SandboxState {
    pub(crate) fn new(plugin: &str, limits: &PluginLimits, log_budget: Arc<LogBudget>) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(PluginOutput {
            plugin: plugin.to_owned(),
            stream: "stdout",
            log_budget: Arc::clone(&log_budget),
        })
        .stderr(PluginOutput {
            plugin: plugin.to_owned(),
            stream: "stderr",
            log_budget: Arc::clone(&log_budget),
        })
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
        SandboxState {
            plugin: plugin.to_owned(),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits),
            log_budget,
            panic: None,
        }
    }
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl host::Host for SandboxState {
    fn log(&mut self, level: host::Level, message: String) {
        let plugin = self.plugin.as_str();
        if !self.log_budget.admit(plugin) {
            return;
        }
        let message = clip(&message);
        match level {
            host::Level::Trace => tracing::trace!(plugin, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn panicked(&mut self, message: String, location: String) {
        self.panic = Some((clip(&message).to_owned(), clip(&location).to_owned()));
    }
}

fn clip(message: &str) -> &str {
    if message.len() <= MAX_LOG_LINE {
        return message;
    }
    let mut end = MAX_LOG_LINE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A clock that always reads zero.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A plugin's stdout or stderr: complete lines become `tracing` events.
#[derive(Clone)]
struct PluginOutput {
    plugin: String,
    stream: &'static str,
    log_budget: Arc<LogBudget>,
}

impl wasmtime_wasi::cli::IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            output: self.clone(),
            pending: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this; the broker runs WASIp2 components.
        Box::new(tokio::io::sink())
    }
}

struct LineWriter {
    output: PluginOutput,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit_complete_lines(&mut self) {
        while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=newline).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if self.pending.len() >= MAX_LOG_LINE {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        if !self.output.log_budget.admit(&self.output.plugin) {
            return;
        }
        let text = String::from_utf8_lossy(line);
        tracing::info!(
            plugin = self.output.plugin.as_str(),
            stream = self.output.stream,
            "{}",
            clip(&text)
        );
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        if bytes.len() > MAX_LOG_LINE {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "write of {} bytes exceeds the permitted {MAX_LOG_LINE}",
                bytes.len()
            )));
        }
        self.pending.extend_from_slice(&bytes);
        self.emit_complete_lines();
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LOG_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}
