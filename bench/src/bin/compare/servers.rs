//! Starting and stopping the two servers, and reading their CPU time and memory from /proc.
//!
//! Every process started here is owned by a guard that stops it by PID (SIGTERM, then SIGKILL
//! after a grace period) when dropped — on success, on error, and when the run is interrupted
//! (dropping the run's future drops the guards). Servers run in their own process group so a
//! ctrl-c in the terminal reaches only the harness, which then stops them in order.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::amqp::AmqpConnector;
use crate::client::Connector;
use crate::sdk::SdkConnector;

/// How long a server may take to accept connections.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stopped server may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A child process stopped by PID when dropped.
#[derive(Debug)]
pub struct ProcessGuard {
    name: &'static str,
    child: Child,
}

impl ProcessGuard {
    fn spawn(name: &'static str, command: &mut Command) -> anyhow::Result<ProcessGuard> {
        let child = command
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(ProcessGuard { name, child })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while !self.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !self.exited() {
            eprintln!(
                "{} (pid {}) ignored SIGTERM; killing it",
                self.name,
                self.pid()
            );
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is a child we started.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// CPU seconds (user + system) and memory of a process, from /proc/<pid>/stat and status.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub hwm_bytes: u64,
}

pub fn sample(pid: i32) -> anyhow::Result<ProcessSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may contain spaces; fields after it are space-separated, utime and
    // stime being the 14th and 15th fields of the line (the 12th and 13th after the name).
    let after_name = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(ProcessSample {
        cpu_seconds: (utime + stime) as f64 / ticks,
        rss_bytes: kib("VmRSS:"),
        hwm_bytes: kib("VmHWM:"),
    })
}

/// A running server: the process to measure and a way to connect to it.
pub trait Server {
    /// The process whose CPU and memory are the server's.
    fn measured_pid(&self) -> i32;
    fn connector(&self) -> Box<dyn Connector>;
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_until<F, Fut>(what: &str, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        match ready().await {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() > deadline => {
                return Err(error.context(format!("{what} not ready after {BOOT_TIMEOUT:?}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// `switchyard serve` on 127.0.0.1 with its own temporary data directory.
#[derive(Debug)]
pub struct SwitchyardServer {
    process: ProcessGuard,
    connector: SwitchyardConnector,
    _dir: tempfile::TempDir,
}

/// How the workloads reach a Switchyard server.
#[derive(Debug, Clone)]
enum SwitchyardConnector {
    /// Its own protocol, QUIC, with the SDK.
    Sdk(SdkConnector),
    /// AMQP 0-9-1 with lapin, as RabbitMQ is driven.
    Amqp(AmqpConnector),
}

impl SwitchyardServer {
    /// Starts `binary` with `extra_args` after its own (`--busy-wait-us`, say); the workloads
    /// reach it over AMQP when `over_amqp`, else over QUIC.
    pub async fn start(
        binary: &Path,
        extra_args: &[String],
        over_amqp: bool,
    ) -> anyhow::Result<SwitchyardServer> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-bench-")
            .tempdir()?;
        let data = dir.path().join("data");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()?));
        let amqp_port = if over_amqp {
            Some(free_tcp_port()?)
        } else {
            None
        };
        let amqp_listen =
            amqp_port.map_or_else(|| "off".to_owned(), |port| format!("127.0.0.1:{port}"));
        let log = fs::File::create(dir.path().join("switchyard.log"))?;
        let process = ProcessGuard::spawn(
            "switchyard",
            Command::new(binary)
                .arg("serve")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(&data)
                .arg("--amqp-listen")
                .arg(amqp_listen)
                .args(["--amqps-listen", "off"])
                .args(extra_args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        let cert = data.join("tls").join("cert.pem");
        let mut fingerprint = String::new();
        wait_until("switchyard's certificate", || {
            let found = fs::read_to_string(&cert)
                .map_err(anyhow::Error::from)
                .and_then(|pem| {
                    switchyard::tls::fingerprint_of_pem(&pem).map_err(|e| anyhow::anyhow!(e))
                });
            if let Ok(found) = &found {
                fingerprint.clone_from(found);
            }
            std::future::ready(found.map(drop))
        })
        .await?;
        let connector = match amqp_port {
            None => SwitchyardConnector::Sdk(SdkConnector { addr, fingerprint }),
            Some(port) => SwitchyardConnector::Amqp(AmqpConnector {
                uri: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            }),
        };
        wait_until("switchyard", || async {
            connector.boxed().connect().await?.close().await
        })
        .await?;
        Ok(SwitchyardServer {
            process,
            connector,
            _dir: dir,
        })
    }
}

impl Server for SwitchyardServer {
    fn measured_pid(&self) -> i32 {
        self.process.pid()
    }
    fn connector(&self) -> Box<dyn Connector> {
        self.connector.boxed()
    }
}

impl SwitchyardConnector {
    fn boxed(&self) -> Box<dyn Connector> {
        match self {
            SwitchyardConnector::Sdk(sdk) => Box::new(sdk.clone()),
            SwitchyardConnector::Amqp(amqp) => Box::new(amqp.clone()),
        }
    }
}

/// RabbitMQ from Debian's package, started by hand on 127.0.0.1 with a private node name,
/// ports, database and logs under a temporary directory.
#[derive(Debug)]
pub struct RabbitServer {
    // Field order is drop order: the node before the epmd it registered with.
    _server: ProcessGuard,
    beam_pid: i32,
    _epmd: Option<ProcessGuard>,
    connector: AmqpConnector,
    _dir: tempfile::TempDir,
}

impl RabbitServer {
    /// Starts the node with `erlang_args` added to the VM's (`+sbwt none`, say).
    pub async fn start(script: &Path, erlang_args: &str) -> anyhow::Result<RabbitServer> {
        let dir = tempfile::Builder::new()
            .prefix("rabbitmq-bench-")
            .tempdir()?;
        // RabbitMQ's CLI and node find each other through epmd; reuse a running one.
        let epmd = if TcpStream::connect("127.0.0.1:4369").is_ok() {
            None
        } else {
            let guard = ProcessGuard::spawn(
                "epmd",
                Command::new("epmd")
                    .args(["-address", "127.0.0.1"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )?;
            wait_until("epmd", || {
                std::future::ready(
                    TcpStream::connect("127.0.0.1:4369")
                        .map(drop)
                        .map_err(anyhow::Error::from),
                )
            })
            .await?;
            Some(guard)
        };
        let port = free_tcp_port()?;
        let dist_port = free_tcp_port()?;
        let base = dir.path();
        fs::write(base.join("enabled_plugins"), "[].\n")?;
        let log = fs::File::create(base.join("rabbitmq-server.out"))?;
        let server = ProcessGuard::spawn(
            "rabbitmq-server",
            Command::new(script)
                .current_dir(base)
                .env("HOME", base)
                .env(
                    "RABBITMQ_NODENAME",
                    format!("bench{}@localhost", std::process::id()),
                )
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", port.to_string())
                .env("RABBITMQ_DIST_PORT", dist_port.to_string())
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .env(
                    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                    format!("-kernel inet_dist_use_interface {{127,0,0,1}} {erlang_args}"),
                )
                .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", base.join("log"))
                .env("RABBITMQ_PID_FILE", base.join("rabbitmq.pid"))
                .env(
                    "RABBITMQ_ENABLED_PLUGINS_FILE",
                    base.join("enabled_plugins"),
                )
                .env("RABBITMQ_CONFIG_FILE", base.join("rabbitmq"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        let connector = AmqpConnector {
            uri: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        };
        wait_until("rabbitmq", || async {
            connector.connect().await?.close().await
        })
        .await
        .with_context(|| format!("see {}", base.join("rabbitmq-server.out").display()))?;
        let beam_pid = find_descendant(server.pid(), "beam.smp")
            .context("RabbitMQ's beam.smp process not found")?;
        Ok(RabbitServer {
            _server: server,
            beam_pid,
            _epmd: epmd,
            connector,
            _dir: dir,
        })
    }

    pub fn stop_node(&mut self) {
        // The start script waits for the Erlang VM; stop the VM, the script then exits.
        signal(self.beam_pid, libc::SIGTERM);
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        self.stop_node();
        let deadline = Instant::now() + STOP_GRACE;
        while PathBuf::from(format!("/proc/{}", self.beam_pid)).exists()
            && !is_zombie(self.beam_pid)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        if PathBuf::from(format!("/proc/{}", self.beam_pid)).exists() && !is_zombie(self.beam_pid) {
            signal(self.beam_pid, libc::SIGKILL);
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rfind(')')
                .and_then(|i| stat.get(i + 2..i + 3).map(|s| s == "Z"))
        })
        .unwrap_or(false)
}

/// The first process below `pid` whose command name is `name`.
fn find_descendant(pid: i32, name: &str) -> Option<i32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        let comm = fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
        if comm.trim() == name {
            return Some(child);
        }
        if let Some(found) = find_descendant(child, name) {
            return Some(found);
        }
    }
    None
}

impl Server for RabbitServer {
    fn measured_pid(&self) -> i32 {
        self.beam_pid
    }
    fn connector(&self) -> Box<dyn Connector> {
        Box::new(self.connector.clone())
    }
}
