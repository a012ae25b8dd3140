//! The `switchyard` command line against a broker running in this process on 127.0.0.1: the
//! commands a user types, run as the built binary.

use std::process::Command;

use switchyard::{Broker, BrokerConfig};
use switchyard_client::{ConnectOptions, Connection, ConsumeOptions, OutgoingMessage, Trust};

/// Runs the CLI against `broker` (off the async workers, which the broker needs); returns its
/// standard output, failing the test on an error.
fn switchyard(broker: &Broker, args: &[&str]) -> String {
    let output = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("--server")
            .arg(broker.local_addr().to_string())
            .arg("--pin")
            .arg(broker.fingerprint())
            .args(args)
            .output()
            .expect("the switchyard binary runs")
    });
    assert!(
        output.status.success(),
        "switchyard {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

async fn start() -> (Broker, tempfile::TempDir, Connection) {
    let data_dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.path().to_owned(),
        ..BrokerConfig::default()
    };
    let broker = Broker::start(config).await.unwrap();
    let options = ConnectOptions::new(
        broker.local_addr(),
        Trust::Pinned(broker.fingerprint().to_owned()),
    );
    let client = Connection::connect(options).await.unwrap();
    (broker, data_dir, client)
}

/// Review finding 21: `consume --count N` subscribed with prefetch 100 and exited before its
/// acks reached the broker, so messages it never printed came back marked redelivered (and
/// spent an `x-delivery-limit` attempt), and some it printed came back too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_count_takes_exactly_that_many_and_leaves_the_rest_untouched() {
    let (broker, _data_dir, client) = start().await;
    switchyard(&broker, &["queue", "declare", "jobs"]);
    let mut publisher = client.publisher().await.unwrap();
    for n in 0..50 {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "jobs", format!("job {n}")))
            .await
            .unwrap();
    }
    for taken in [3, 1] {
        let printed = switchyard(&broker, &["consume", "jobs", "--count", &taken.to_string()]);
        assert_eq!(printed.lines().count(), taken, "{printed}");
    }
    let info = client.queue_info("jobs").await.unwrap();
    assert_eq!((info.ready, info.unacked), (46, 0));
    let mut consumer = client.consume(ConsumeOptions::new("jobs")).await.unwrap();
    for n in 4..50 {
        let delivery = consumer.next().await.unwrap().unwrap();
        assert_eq!(&delivery.body[..], format!("job {n}").as_bytes());
        assert!(!delivery.redelivered, "job {n} was delivered before");
        delivery.ack().unwrap();
    }
    consumer.sync().await.unwrap();
    broker.shutdown().await;
}
