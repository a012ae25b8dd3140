//! `docs/plugins.md`, run: every command of the guide's `sh` blocks, in order, in one shell, in
//! a fresh directory where `switchyard serve` runs, as a new plugin author would type them. The
//! guide cannot rot without this test failing.
//!
//! It builds two plugin crates from scratch (`wit-bindgen` and all, in their own target
//! directories), so it takes a minute or two.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The commands of every ```` ```sh ```` block of `markdown`, in order.
fn guide_commands(markdown: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in markdown.lines() {
        let fence = line.trim_start();
        if let Some(info) = fence.strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
            continue;
        }
        if in_sh && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            commands.push(line.to_owned());
        }
    }
    commands
}

/// `switchyard serve` in `dir`, as the guide asks; killed when dropped.
struct Serve(Child);

impl Serve {
    fn start(dir: &Path, port: u16) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--amqp-listen",
                "127.0.0.1:0",
                "--amqps-listen",
                "127.0.0.1:0",
            ])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("switchyard serve runs");
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut said = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !said && line.contains("switchyard listening on") {
                    said = true;
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("serve listens within 120 s");
        Serve(child)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_guide_finds_every_sh_block() {
    let commands = guide_commands(
        "text\n```sh\nfirst\n# a comment\n\nsecond\n```\n```text\nnot this\n```\n```rust\nnor this\n```\n```sh\nthird\n```\n",
    );
    assert_eq!(commands, ["first", "second", "third"]);
}

#[test]
fn the_plugin_guide_runs_as_written() {
    let guide_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/plugins.md");
    let guide = std::fs::read_to_string(&guide_path).unwrap();
    let commands = guide_commands(&guide);
    let first_message = commands
        .iter()
        .position(|c| c.starts_with("switchyard publish"))
        .expect("the guide publishes");
    assert!(
        first_message < 5,
        "from `plugin new` to a routed message in at most five commands: {commands:#?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _serve = Serve::start(dir.path(), port);
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"));
    let path = std::env::join_paths(std::iter::once(binary.parent().unwrap().to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let script = format!("set -euo pipefail\nset -x\n{}\n", commands.join("\n"));
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("SWITCHYARD_SERVER", format!("127.0.0.1:{port}"))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the guide failed ({}):\n--- stdout\n{stdout}\n--- stderr (last 6000 bytes)\n{}",
        output.status,
        &stderr[stderr.len().saturating_sub(6000)..]
    );
    for expected in [
        "created ./priority-router",
        "deployed priority-router 0.1.0: serving from ./switchyard-data/plugins/priority-router.wasm",
        "imported 1 exchanges, 2 queues, 2 bindings",
        "3 passed, 0 failed",
        "built priority-router 0.2.0",
        "routed 2, sampled 2: 1 agreed, 1 diverged, 0 failed in the shadow",
        "promoted priority-router 0.2.0",
        "deployed eu-only 0.1.0",
        "an order from Lyon",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("an order from Ohio"),
        "the filter let Ohio through:\n{stdout}"
    );
    let divergence = stdout
        .lines()
        .find(|l| l.contains("order-4"))
        .unwrap_or_else(|| panic!("no divergence for order-4:\n{stdout}"));
    assert!(
        divergence.contains("other-orders") && divergence.contains("urgent-orders"),
        "{divergence}"
    );
    assert!(
        !stdout.contains("order-8"),
        "order-8 did not diverge:\n{stdout}"
    );

    // Where the messages are, as the guide's last queue listing says.
    let queues = Command::new(&binary)
        .args(["queue", "list", "--json"])
        .current_dir(dir.path())
        .env("SWITCHYARD_SERVER", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let queues = String::from_utf8_lossy(&queues.stdout);
    let ready = |name: &str| {
        queues
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|q| q["name"] == name)
            .and_then(|q| q["ready"].as_u64())
            .unwrap_or_else(|| panic!("no queue {name} in {queues}"))
    };
    assert_eq!(ready("urgent-orders"), 3, "{queues}");
    assert_eq!(ready("other-orders"), 1, "{queues}");
    assert_eq!(
        ready("all-orders"),
        1,
        "Ohio's order waits for others: {queues}"
    );
}
