//! A broker in its own process (the `test-broker` binary), for tests that kill it (`SIGKILL`),
//! stop it (`SIGTERM`) or limit it (`prlimit --fsize`), and the configuration files it reads.
//!
//! The binary's path is only known to test targets (`env!("CARGO_BIN_EXE_test-broker")`), so
//! callers pass it in.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use switchyard_client::{ConnectOptions, Connection, Trust};

/// A running `test-broker` process; killed when dropped.
#[derive(Debug)]
pub struct BrokerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub fingerprint: String,
    /// From spawning the process to its `READY` line.
    pub started_in: Duration,
}

impl BrokerProcess {
    /// Starts the broker `exe` with `config`, under `prlimit --fsize=<bytes>` when a limit is
    /// given, and waits (up to 120 s) until it serves.
    pub fn spawn(exe: &str, config: &Path, file_size_limit: Option<u64>) -> BrokerProcess {
        Self::spawn_with_stderr(exe, config, file_size_limit, Stdio::inherit())
    }

    /// [`spawn`](Self::spawn), with the broker's log (its stderr) going to `stderr`.
    pub fn spawn_with_stderr(
        exe: &str,
        config: &Path,
        file_size_limit: Option<u64>,
        stderr: Stdio,
    ) -> BrokerProcess {
        let mut command = match file_size_limit {
            Some(bytes) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--fsize={bytes}")).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        command
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let started = Instant::now();
        let mut child = command.spawn().expect("test-broker starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = ready_tx.send(line);
            }
            // Keep reading so the broker never blocks on a full pipe.
            for _ in lines {}
        });
        let line = ready_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the broker says READY within 120 s");
        let started_in = started.elapsed();
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("READY"), "{line}");
        let addr = words.next().unwrap().parse().unwrap();
        let fingerprint = words.next().unwrap().to_owned();
        BrokerProcess {
            child,
            addr,
            fingerprint,
            started_in,
        }
    }

    /// A new client connection, pinning the broker's certificate.
    pub async fn connect(&self) -> Connection {
        self.try_connect().await.expect("client connects")
    }

    pub async fn try_connect(&self) -> Result<Connection, switchyard_client::ClientError> {
        Connection::connect(ConnectOptions::new(
            self.addr,
            Trust::Pinned(self.fingerprint.clone()),
        ))
        .await
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait up to `within` for the process to exit. On time: its exit status
    /// and how long it took. Late: the process is killed and `Err` says how long it was given.
    pub fn terminate(mut self, within: Duration) -> Result<(ExitStatus, Duration), Duration> {
        let started = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        Err(within)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free UDP port on 127.0.0.1, so a restarted broker keeps its address.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `<data_dir>/broker.toml`: listen on `port`, keep data in `data_dir`, and `store` as
/// the body of the `[store]` table.
pub fn write_config(data_dir: &Path, port: u16, store: &str) -> PathBuf {
    let path = data_dir.join("broker.toml");
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[amqp]\nlisten = \"off\"\nlisten_tls = \"off\"\n[store]\n{store}\n",
        data_dir.display()
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// Points `<data_dir>/plugin-cache` at the tests' shared artifact cache, so a broker process
/// does not compile the standard plugins again.
pub fn share_plugin_cache(data_dir: &Path) {
    std::fs::create_dir_all(crate::artifact_cache()).expect("artifact cache");
    let _ = std::os::unix::fs::symlink(crate::artifact_cache(), data_dir.join("plugin-cache"));
}
