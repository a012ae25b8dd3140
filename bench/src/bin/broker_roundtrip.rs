//! Publish→consume throughput through a `topic` exchange with confirms and acks, and the
//! round-trip latency of one message, against an in-process broker over QUIC on loopback.
//! (The side-by-side comparison with RabbitMQ is the `bench/` harness's job; this measures
//! Switchyard alone.)
//!
//! Run: `cargo run --release -p switchyard-bench --bin broker-roundtrip [messages]`.

use std::time::{Duration, Instant};

use switchyard::{Broker, BrokerConfig};
use switchyard_client::{
    ConnectOptions, Connection, ConsumeOptions, ExchangeOptions, OutgoingMessage, QueueOptions,
    Table, Trust,
};

const BODY: usize = 256;

async fn connect(broker: &Broker) -> anyhow::Result<Connection> {
    let options = ConnectOptions::new(
        broker.local_addr(),
        Trust::Pinned(broker.fingerprint().into()),
    );
    Ok(Connection::connect(options).await?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let messages: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200_000);
    let data_dir = tempfile::tempdir()?;
    let broker = Broker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir: data_dir.path().to_owned(),
        amqp: switchyard::config::AmqpSettings::off(),
        ..BrokerConfig::default()
    })
    .await?;

    // Throughput: one publisher connection, one consumer connection, acks every 100.
    let producer = connect(&broker).await?;
    let consumer_connection = connect(&broker).await?;
    producer
        .declare_exchange("market", "topic", ExchangeOptions::default())
        .await?;
    for q in 0..10 {
        let queue = format!("q{q}");
        producer
            .declare_queue(&queue, QueueOptions::default())
            .await?;
        for b in 0..10 {
            let n = q * 10 + b;
            let pattern = match n % 3 {
                0 => format!("stock.{n}.*"),
                1 => format!("#.trade.{n}"),
                _ => format!("fx.{n}.quote"),
            };
            producer
                .bind_queue("market", &queue, &pattern, Table::new())
                .await?;
        }
    }
    let mut consumers = Vec::new();
    for q in 0..10 {
        consumers.push(
            consumer_connection
                .consume(ConsumeOptions {
                    prefetch: 1000,
                    ..ConsumeOptions::new(format!("q{q}"))
                })
                .await?,
        );
    }
    let start = Instant::now();
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (done_tx, mut done) = tokio::sync::mpsc::channel::<()>(1);
    for mut consumer in consumers {
        let received = std::sync::Arc::clone(&received);
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let mut mine = 0u64;
            while let Some(Ok(delivery)) = consumer.next().await {
                mine += 1;
                if mine.is_multiple_of(100) {
                    let _ = delivery.ack_multiple();
                }
                let total = received.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if total == messages {
                    let _ = done_tx.send(()).await;
                }
            }
        });
    }
    let mut publisher = producer.publisher_with(10_000).await?;
    let body = vec![b'x'; BODY];
    let mut pending = std::collections::VecDeque::new();
    for i in 0..messages {
        // Every key matches exactly one binding, so each message reaches one queue.
        let n = i % 100;
        let key = match n % 3 {
            0 => format!("stock.{n}.nyse"),
            1 => format!("eu.desk.trade.{n}"),
            _ => format!("fx.{n}.quote"),
        };
        pending.push_back(
            publisher
                .publish(OutgoingMessage::new("market", key, body.clone()))
                .await?,
        );
        if pending.len() >= 5000 {
            pending.pop_front().expect("non-empty").wait().await?;
        }
    }
    for confirmation in pending {
        confirmation.wait().await?;
    }
    let published_in = start.elapsed();
    done.recv().await;
    let elapsed = start.elapsed();
    let received = received.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "throughput: {messages} x {BODY} B through topic (100 bindings, 10 queues): published {:.0} msg/s, end to end {:.0} msg/s ({received} received)",
        messages as f64 / published_in.as_secs_f64(),
        received as f64 / elapsed.as_secs_f64()
    );

    // Latency: ping-pong through the default exchange.
    producer
        .declare_queue("ping", QueueOptions::default())
        .await?;
    let mut ping = consumer_connection
        .consume(ConsumeOptions::new("ping"))
        .await?;
    let mut samples = Vec::new();
    for i in 0..2200 {
        let sent = Instant::now();
        publisher
            .publish(OutgoingMessage::new("", "ping", body.clone()))
            .await?;
        let delivery = ping
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("ping ended"))??;
        delivery.ack()?;
        if i >= 200 {
            samples.push(sent.elapsed());
        }
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    println!(
        "round trip (publish → deliver, 256 B, 2000 samples): p50 {:?} p99 {:?} max {:?}",
        at(0.5),
        at(0.99),
        samples.last().copied().unwrap_or(Duration::ZERO)
    );
    broker.shutdown().await;
    Ok(())
}
