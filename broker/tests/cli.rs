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
        amqp: switchyard::config::AmqpSettings::off(),
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

/// Typed values from the command line: `NAME=TEXT` is a string, `NAME:=JSON` any type, and
/// `consume --json` prints them back typed, with the new properties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_headers_go_in_from_the_command_line_and_come_out_as_json() {
    let (broker, _data_dir, _client) = start().await;
    switchyard(
        &broker,
        &["queue", "declare", "typed", "--arg", "x-max-length=10"],
    );
    switchyard(
        &broker,
        &[
            "publish",
            "",
            "--key",
            "typed",
            "--header",
            "tenant=acme",
            "--header",
            "attempt:=3",
            "--header",
            r#"tags:=["a", null, true]"#,
            "--header",
            r#"small:={"$u8": 7}"#,
            "--type",
            "order.created",
            "--app-id",
            "shop",
            "--body",
            "hello",
        ],
    );
    let out = switchyard(&broker, &["consume", "typed", "--count", "1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        json["headers"],
        serde_json::json!({
            "tenant": "acme",
            "attempt": 3,
            "tags": ["a", null, true],
            "small": {"$u8": 7},
        })
    );
    assert_eq!(json["properties"]["type"], "order.created");
    assert_eq!(json["properties"]["app_id"], "shop");
    assert_eq!(json["body"], "hello");
    let queues = switchyard(&broker, &["queue", "list", "--json"]);
    assert!(
        queues.contains(r#""x-max-length":10"#),
        "a number given as text is kept as a number: {queues}"
    );
}

/// The broker's log has no colour codes when it does not go to a terminal, so a log file
/// greps as text.
#[test]
fn the_log_has_no_colour_codes_when_written_to_a_file() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;

    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--amqp-listen",
            "off",
            "--amqps-listen",
            "off",
            "--data-dir",
        ])
        .arg(data_dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the switchyard binary runs");
    // Kept open to the end: serve prints more after the line awaited, and a closed pipe would
    // kill it before it logs its shutdown.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = stdout
        .by_ref()
        .any(|line| line.unwrap().contains("switchyard listening on"));
    assert!(listening, "serve did not start");
    // SIGTERM: it logs its shutdown and exits.
    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child.wait().unwrap();
    drop(stdout);
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in the log: {log:?}");
}
