//! A broker in its own process, for tests that kill it (`SIGKILL`) or limit it (`prlimit`).
//!
//! Usage: `test-broker CONFIG.toml`. Prints `READY <address> <certificate fingerprint>` on
//! stdout once serving, then runs until killed; when stdin closes or on `SIGTERM` it shuts down
//! gracefully (`Broker::shutdown`) and exits.

use std::io::BufRead as _;

use switchyard::{Broker, BrokerConfig};

fn main() {
    let path = std::env::args_os()
        .nth(1)
        .expect("usage: test-broker CONFIG.toml");
    let config = BrokerConfig::from_file(path.as_ref()).expect("configuration");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let broker = Broker::start(config).await.expect("broker starts");
        println!("READY {} {}", broker.local_addr(), broker.fingerprint());
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        // Until stdin closes (the test dropped its handle), SIGTERM, or the process is killed.
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                if line.is_err() {
                    break;
                }
            }
        });
        tokio::select! {
            _ = stdin_closed => {}
            _ = terminate.recv() => {}
        }
        broker.shutdown().await;
    });
    // The stdin reader may still be blocked in `read`: do not wait for it.
    runtime.shutdown_background();
}
