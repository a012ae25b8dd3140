//! Real AMQP 0-9-1 clients run as scripts against a broker in the test's process: a broker with
//! AMQP on a port the system picks, and runners for the Python and Node scripts in
//! `tests/clients/<client>/`, which install their pinned packages on first use when missing
//! (`.ci/run` installs them first, so CI fails early when a registry is unreachable).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchyard::BrokerConfig;
use switchyard::config::AmqpSettings;

use crate::TestBroker;

/// How long one script may run before the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A broker with AMQP (not AMQPS) on `127.0.0.1` and a port the system picks, after `adjust`.
pub async fn amqp_broker(adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
    TestBroker::start_with(|config| {
        config.amqp = AmqpSettings {
            listen_tls: None,
            ..AmqpSettings::on_any_port()
        };
        adjust(config);
    })
    .await
}

/// The Python distributions the scripts import, pinned (the AMQP codecs underneath too, as
/// they are what talks to the broker). Keep `.ci/run` in step.
pub const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("pika", "1.4.4"),
    ("celery", "5.7.0"),
    ("kombu", "5.7.0"),
    ("amqp", "5.4.2"),
    ("aio-pika", "10.2.1"),
    ("aiormq", "7.2.4"),
    ("pamqp", "4.0.1"),
];

/// Installs with pip whatever of [`PYTHON_PACKAGES`] is missing or at another version, once
/// per test process.
pub fn ensure_python_packages() {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        let pinned: Vec<String> = PYTHON_PACKAGES
            .iter()
            .map(|(name, version)| format!("{name}=={version}"))
            .collect();
        // Prints the requirements whose installed version differs (or that are missing).
        let probe = "import importlib.metadata as m, sys\n\
                     for r in sys.argv[1:]:\n\
                     \x20   name, version = r.split('==')\n\
                     \x20   try:\n\
                     \x20       ok = m.version(name) == version\n\
                     \x20   except m.PackageNotFoundError:\n\
                     \x20       ok = False\n\
                     \x20   if not ok:\n\
                     \x20       print(r)\n";
        let output = Command::new("python3")
            .args(["-c", probe])
            .args(&pinned)
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "checking the Python packages failed"
        );
        let missing: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if missing.is_empty() {
            return;
        }
        let installed = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&missing)
            .status()
            .expect("python3 runs");
        assert!(installed.success(), "pip could not install {missing:?}");
    });
}

/// The scripts of one client: `tests/clients/<dir>`.
pub fn scripts_dir(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(dir)
}

/// The amqplib version `tests/clients/amqplib/package.json` pins.
const AMQPLIB_VERSION: &str = "2.3.1";

/// Installs the Node packages of `tests/clients/amqplib` (`npm ci`, from its lock file) unless
/// the pinned amqplib is already there, once per test process.
pub fn ensure_node_packages() {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        let dir = scripts_dir("amqplib");
        let manifest = dir.join("node_modules/amqplib/package.json");
        let installed = std::fs::read_to_string(&manifest)
            .is_ok_and(|text| text.contains(&format!("\"version\": \"{AMQPLIB_VERSION}\"")));
        if installed {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    });
}

/// Runs `tests/clients/<dir>/<script>` with Python against `broker`'s AMQP port; returns its
/// output, failing the test (with the script's output) unless it exits 0 having printed OK.
pub fn python(broker: &TestBroker, dir: &str, script: &str) -> String {
    python_with(broker, dir, script, &[])
}

/// [`python`] with more environment variables.
pub fn python_with(broker: &TestBroker, dir: &str, script: &str, env: &[(&str, String)]) -> String {
    tokio::task::block_in_place(|| {
        ensure_python_packages();
        let mut command = Command::new("python3");
        command.arg(script).env("PYTHONDONTWRITEBYTECODE", "1");
        command.envs(env.iter().map(|(name, value)| (*name, value)));
        run_script(command, broker, dir, script)
    })
}

/// Runs `tests/clients/<dir>/<script>` with Node against `broker`'s AMQP port, like [`python`].
pub fn node(broker: &TestBroker, dir: &str, script: &str) -> String {
    tokio::task::block_in_place(|| {
        ensure_node_packages();
        let mut command = Command::new("node");
        command.arg(script);
        run_script(command, broker, dir, script)
    })
}

fn run_script(mut command: Command, broker: &TestBroker, dir: &str, script: &str) -> String {
    let port = broker.broker.amqp_addr().expect("AMQP is on").port();
    let mut child = command
        .current_dir(scripts_dir(dir))
        .env("AMQP_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the script's interpreter runs");
    // Read the pipes while waiting, so a talkative script cannot fill them and stall.
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(Box::new(stdout));
    let stderr = read(Box::new(stderr));
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the script") {
            break status;
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("waiting for the killed script");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    assert!(
        !timed_out && status.success() && stdout.contains("OK"),
        "{dir}/{script} failed ({status}{}):\n{stdout}\n{stderr}",
        if timed_out { ", timed out" } else { "" }
    );
    stdout
}
