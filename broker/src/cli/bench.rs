//! `switchyard bench`: a load generator against any Switchyard broker, in the manner of
//! `nats bench` and RabbitMQ's PerfTest. It declares its own exchange and queues (removed at
//! the end), runs producers and consumers on separate connections, prints progress every second
//! and a summary: publish and delivery rates, and latency percentiles measured from a timestamp
//! each message carries in its first eight bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use parking_lot::Mutex;
use switchyard_client::{
    Connection, ConsumeOptions, ExchangeOptions, OutgoingMessage, Properties, QueueOptions, Table,
};

use super::args::ClientArgs;
use super::client_commands::connect;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumers, spread over the queues (each on its own connection).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (at least 8: the send timestamp).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Messages per second per producer; 0 publishes as fast as confirms allow (open loop).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// The exchange type: direct, topic, fanout, headers or any loaded router plugin.
    #[arg(long = "exchange-type", default_value = "topic")]
    pub exchange_type: String,
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Extra bindings per queue that match nothing, to make routing work harder.
    #[arg(long, default_value_t = 0)]
    pub extra_bindings: usize,
    /// Publish persistent messages.
    #[arg(long)]
    pub persistent: bool,
    /// Declare the queues durable (with --persistent, every message is fsynced before its
    /// confirm, as the broker's fsync policy says).
    #[arg(long)]
    pub durable: bool,
    /// Publishes awaiting confirmation per producer.
    #[arg(long, default_value_t = 1000)]
    pub max_in_flight: usize,
    /// Acknowledge every N deliveries with `multiple` (1 acks each message).
    #[arg(long, default_value_t = 100)]
    pub ack_every: u64,
    /// Consume without acknowledgements.
    #[arg(long)]
    pub no_ack: bool,
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u32,
    /// Stop publishing after this many seconds…
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// …or after this many messages per producer.
    #[arg(long)]
    pub count: Option<u64>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn routing_key(queue: usize) -> String {
    format!("bench.{queue}.load")
}

pub async fn run(client: &ClientArgs, mut args: BenchArgs) -> anyhow::Result<()> {
    if args.consumers < args.queues {
        eprintln!(
            "every queue needs a consumer: using {} consumers instead of {}",
            args.queues, args.consumers
        );
        args.consumers = args.queues;
    }
    anyhow::ensure!(args.size >= 8, "--size must be at least 8 (the timestamp)");
    anyhow::ensure!(
        args.queues >= 1 && args.producers >= 1,
        "need a queue and a producer"
    );
    let admin = connect(client).await?;
    let run_id = now_micros() % 1_000_000;
    let exchange = format!("bench.{run_id}");
    admin
        .declare_exchange(&exchange, &args.exchange_type, ExchangeOptions::default())
        .await?;
    let queues: Vec<String> = (0..args.queues)
        .map(|q| format!("bench.{run_id}.q{q}"))
        .collect();
    for (q, queue) in queues.iter().enumerate() {
        let options = QueueOptions {
            durable: args.durable,
            ..QueueOptions::default()
        };
        admin.declare_queue(queue, options).await?;
        let (key, arguments) = binding_for(&args.exchange_type, q);
        admin.bind_queue(&exchange, queue, &key, arguments).await?;
        for extra in 0..args.extra_bindings {
            let (key, arguments) = binding_for(&args.exchange_type, 1_000_000 + q * 1000 + extra);
            admin.bind_queue(&exchange, queue, &key, arguments).await?;
        }
    }

    let counters = Arc::new(Counters::default());
    let stop_consumers = Arc::new(tokio::sync::Notify::new());
    let mut consumer_tasks = Vec::new();
    for c in 0..args.consumers {
        let connection = connect(client).await?;
        let options = ConsumeOptions {
            prefetch: args.prefetch,
            no_ack: args.no_ack,
            ..ConsumeOptions::new(&queues[c % queues.len()])
        };
        let consumer = connection.consume(options).await?;
        consumer_tasks.push(tokio::spawn(consume(
            connection,
            consumer,
            Arc::clone(&counters),
            Arc::clone(&stop_consumers),
            args.ack_every.max(1),
            args.no_ack,
        )));
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.duration);
    let mut producer_tasks = Vec::new();
    for p in 0..args.producers {
        let connection = connect(client).await?;
        producer_tasks.push(tokio::spawn(produce(
            connection,
            ProducerPlan {
                exchange: exchange.clone(),
                exchange_type: args.exchange_type.clone(),
                queues: args.queues,
                first_key: p,
                size: args.size,
                rate: args.rate,
                persistent: args.persistent,
                max_in_flight: args.max_in_flight,
                count: args.count,
                deadline,
            },
            Arc::clone(&counters),
        )));
    }
    let progress = tokio::spawn(report_progress(Arc::clone(&counters), start));
    let mut publish_error = None;
    for task in producer_tasks {
        if let Err(error) = task.await? {
            publish_error.get_or_insert(error);
        }
    }
    let published_in = start.elapsed();
    let published = counters.published.load(Ordering::Relaxed);
    let fanout = if args.exchange_type == "fanout" {
        args.queues as u64
    } else {
        1
    };
    let expected = published * fanout;
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    while counters.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    progress.abort();
    stop_consumers.notify_waiters();
    for task in consumer_tasks {
        let _ = task.await;
    }
    for queue in &queues {
        let _ = admin.delete_queue(queue, false, false).await;
    }
    let _ = admin.delete_exchange(&exchange, false).await;
    admin.close().await;
    print_summary(&args, &counters, published_in, elapsed, expected);
    match publish_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// A binding that matches the routing key (and headers) used for queue `q`.
fn binding_for(exchange_type: &str, q: usize) -> (String, Table) {
    match exchange_type {
        "headers" => (
            String::new(),
            Table::new().with("bench-queue", q.to_string()),
        ),
        "topic" => (format!("bench.{q}.*"), Table::new()),
        _ => (routing_key(q), Table::new()),
    }
}

struct ProducerPlan {
    exchange: String,
    exchange_type: String,
    queues: usize,
    first_key: usize,
    size: usize,
    rate: u64,
    persistent: bool,
    max_in_flight: usize,
    count: Option<u64>,
    deadline: Instant,
}

async fn produce(
    connection: Connection,
    plan: ProducerPlan,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let mut publisher = connection.publisher_with(plan.max_in_flight).await?;
    let mut confirmations = std::collections::VecDeque::new();
    let interval = (plan.rate > 0).then(|| Duration::from_secs_f64(1.0 / plan.rate as f64));
    let started = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < plan.deadline && plan.count.is_none_or(|c| sent < c) {
        if let Some(interval) = interval {
            let due = started + interval * sent as u32;
            tokio::time::sleep_until(due.into()).await;
        }
        let q = (plan.first_key + sent as usize) % plan.queues;
        let mut body = vec![0u8; plan.size];
        body[..8].copy_from_slice(&now_micros().to_be_bytes());
        let mut message = OutgoingMessage {
            exchange: plan.exchange.clone(),
            routing_key: routing_key(q),
            properties: Properties {
                persistent: plan.persistent,
                ..Properties::default()
            },
            body: body.into(),
            ..OutgoingMessage::default()
        };
        if plan.exchange_type == "headers" {
            message.headers.push("bench-queue", q.to_string());
        }
        confirmations.push_back(publisher.publish(message).await?);
        sent += 1;
        while confirmations.len() >= plan.max_in_flight {
            confirmations.pop_front().expect("non-empty").wait().await?;
            counters.published.fetch_add(1, Ordering::Relaxed);
        }
    }
    for confirmation in confirmations {
        confirmation.wait().await?;
        counters.published.fetch_add(1, Ordering::Relaxed);
    }
    connection.close().await;
    Ok(())
}

async fn consume(
    connection: Connection,
    mut consumer: switchyard_client::Consumer,
    counters: Arc<Counters>,
    stop: Arc<tokio::sync::Notify>,
    ack_every: u64,
    no_ack: bool,
) {
    let mut mine = 0u64;
    let mut latencies = Vec::with_capacity(4096);
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let delivery = tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => delivery,
                _ => break,
            },
            () = &mut stopped => break,
        };
        mine += 1;
        if let Some(stamp) = delivery.body.get(..8) {
            let sent = u64::from_be_bytes(stamp.try_into().expect("8 bytes"));
            latencies.push(now_micros().saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
        }
        if !no_ack && mine.is_multiple_of(ack_every) {
            let _ = delivery.ack_multiple();
        }
        counters.delivered.fetch_add(1, Ordering::Relaxed);
        if latencies.len() >= 4096 {
            counters.latencies_us.lock().append(&mut latencies);
        }
    }
    counters.latencies_us.lock().append(&mut latencies);
    consumer.close().await;
    connection.close().await;
}

async fn report_progress(counters: Arc<Counters>, start: Instant) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let (mut last_published, mut last_delivered) = (0, 0);
    loop {
        ticker.tick().await;
        let published = counters.published.load(Ordering::Relaxed);
        let delivered = counters.delivered.load(Ordering::Relaxed);
        eprintln!(
            "[{:>5.1}s] published {:>9}/s  delivered {:>9}/s",
            start.elapsed().as_secs_f64(),
            published - last_published,
            delivered - last_delivered
        );
        (last_published, last_delivered) = (published, delivered);
    }
}

fn print_summary(
    args: &BenchArgs,
    counters: &Counters,
    published_in: Duration,
    elapsed: Duration,
    expected: u64,
) {
    let published = counters.published.load(Ordering::Relaxed);
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *counters.latencies_us.lock());
    latencies.sort_unstable();
    let percentile = |p: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() - 1) as f64 * p).round() as usize]
    };
    let publish_rate = published as f64 / published_in.as_secs_f64();
    let delivery_rate = delivered as f64 / elapsed.as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "producers": args.producers, "consumers": args.consumers, "size": args.size,
                "exchange_type": args.exchange_type, "queues": args.queues,
                "persistent": args.persistent,
                "published": published, "delivered": delivered, "expected": expected,
                "publish_rate": publish_rate, "delivery_rate": delivery_rate,
                "latency_us": { "p50": percentile(0.5), "p90": percentile(0.9),
                                "p99": percentile(0.99), "max": latencies.last().copied().unwrap_or(0) },
            })
        );
    } else {
        println!(
            "published {published} in {:.2}s: {publish_rate:.0} msg/s; delivered {delivered} of {expected}: {delivery_rate:.0} msg/s",
            published_in.as_secs_f64()
        );
        println!(
            "latency: p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
            percentile(0.5),
            percentile(0.9),
            percentile(0.99),
            latencies.last().copied().unwrap_or(0)
        );
    }
}
