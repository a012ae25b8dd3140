//! The four workloads, written once against [`crate::client`] and run unchanged against
//! either broker.
//!
//! Throughput workloads (W1–W3) share one shape, a [`Flow`]: declare the topology on an admin
//! connection, subscribe the consumers, sample the server's CPU time, publish every message
//! from one producer connection, and stop the clock when the consumers have received every
//! expected delivery. Each body starts with its send time, so consumers also measure
//! end-to-end latency. W4 is a closed loop: one message at a time bounces through two queues.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::client::{Confirms, Connector, ExchangeKind, Outgoing, Receiver};
use crate::fsyncs::FsyncCounter;
use crate::servers::sample;

/// The workloads of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    W1,
    W2,
    W3,
    W4,
}

impl Workload {
    pub fn parse(text: &str) -> anyhow::Result<Workload> {
        match text.trim().to_ascii_uppercase().as_str() {
            "W1" => Ok(Workload::W1),
            "W2" => Ok(Workload::W2),
            "W3" => Ok(Workload::W3),
            "W4" => Ok(Workload::W4),
            other => anyhow::bail!("unknown workload {other:?} (W1, W2, W3 or W4)"),
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Workload::W1 => "topic",
            Workload::W2 => "durable",
            Workload::W3 => "fanout",
            Workload::W4 => "round trip",
        }
    }

    /// What the workload's rate counts.
    pub fn rate_unit(self) -> &'static str {
        match self {
            Workload::W1 | Workload::W2 => "msgs/s end to end",
            Workload::W3 => "deliveries/s",
            Workload::W4 => "round trips/s",
        }
    }
}

/// The outcome of one run of one workload against one broker.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The rate the workload reports (see [`Workload::rate_unit`]).
    pub rate: f64,
    /// Messages the broker handled, the denominator of CPU per million: published for W1/W2,
    /// delivered for W3, both legs for W4.
    pub messages: u64,
    pub elapsed: Duration,
    /// End-to-end latency (W1–W3) or round-trip time (W4), in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    /// The server process's user + system CPU time during the measured interval.
    pub server_cpu_s: f64,
    /// This harness's own CPU time (every client connection) during the same interval.
    pub client_cpu_s: f64,
    /// Whether every expected delivery arrived before the timeout.
    pub complete: bool,
    /// fsync + fdatasync calls of the server in the interval (W2 only; needs perf).
    pub fsyncs: Option<u64>,
}

impl Outcome {
    pub fn cpu_s_per_million(&self) -> f64 {
        self.server_cpu_s / self.messages.max(1) as f64 * 1e6
    }

    /// fsync + fdatasync calls per second of the measured interval (NaN when not counted).
    pub fn fsyncs_per_s(&self) -> f64 {
        self.fsyncs
            .map_or(f64::NAN, |n| n as f64 / self.elapsed.as_secs_f64())
    }

    /// Messages published per fsync (NaN when not counted).
    pub fn msgs_per_fsync(&self) -> f64 {
        self.fsyncs
            .map_or(f64::NAN, |n| self.messages as f64 / n.max(1) as f64)
    }
}

/// Run-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Fraction of the message counts to run.
    pub scale: f64,
    /// Bound on a workload's measured part.
    pub timeout: Duration,
}

impl Settings {
    fn count(&self, full: u64) -> u64 {
        ((full as f64 * self.scale).round() as u64).max(1)
    }
}

pub async fn run(
    workload: Workload,
    connector: &dyn Connector,
    server_pid: i32,
    settings: Settings,
    tag: &str,
) -> anyhow::Result<Outcome> {
    match workload {
        Workload::W1 => topic(settings, tag).run(connector, server_pid).await,
        Workload::W2 => durable(settings, tag).run(connector, server_pid).await,
        Workload::W3 => fanout(settings, tag).run(connector, server_pid).await,
        Workload::W4 => round_trip(connector, server_pid, settings, tag).await,
    }
}

/// W1: a topic exchange with 100 bindings on 10 queues; each routing key matches exactly one
/// binding. One producer connection, one consumer connection with a consumer per queue.
fn topic(settings: Settings, tag: &str) -> Flow {
    let queues: Vec<String> = (0..10).map(|q| format!("w1.{tag}.q{q}")).collect();
    let mut bindings = Vec::new();
    let mut keys = Vec::new();
    for n in 0..100usize {
        let (pattern, key) = match n % 3 {
            0 => (format!("stock.{n}.*"), format!("stock.{n}.nyse")),
            1 => (format!("#.{n}.trade"), format!("desk.eu.{n}.trade")),
            _ => (format!("fx.{n}.quote"), format!("fx.{n}.quote")),
        };
        bindings.push((n / 10, pattern));
        keys.push(key);
    }
    let messages = settings.count(200_000);
    Flow {
        exchange: Some((format!("w1.{tag}"), ExchangeKind::Topic)),
        queues,
        bindings,
        keys,
        durable: false,
        messages,
        body_size: 256,
        confirms: Confirms::None,
        ack_every: 100,
        prefetch: 1000,
        connection_per_consumer: false,
        expected_deliveries: messages,
        timeout: settings.timeout,
    }
}

/// W2: one durable queue, persistent 1 KiB messages through the default exchange, publisher
/// confirms with up to 1,000 in flight, every delivery acked on its own.
fn durable(settings: Settings, tag: &str) -> Flow {
    let queue = format!("w2.{tag}.durable");
    let messages = settings.count(100_000);
    Flow {
        exchange: None,
        keys: vec![queue.clone()],
        queues: vec![queue],
        bindings: Vec::new(),
        durable: true,
        messages,
        body_size: 1024,
        confirms: Confirms::Window(1000),
        ack_every: 1,
        prefetch: 1000,
        connection_per_consumer: false,
        expected_deliveries: messages,
        timeout: settings.timeout,
    }
}

/// W3: a fanout exchange to 10 queues, each consumed on its own connection.
fn fanout(settings: Settings, tag: &str) -> Flow {
    let queues: Vec<String> = (0..10).map(|q| format!("w3.{tag}.q{q}")).collect();
    let bindings = (0..queues.len()).map(|q| (q, String::new())).collect();
    let messages = settings.count(100_000);
    Flow {
        exchange: Some((format!("w3.{tag}"), ExchangeKind::Fanout)),
        expected_deliveries: messages * queues.len() as u64,
        queues,
        bindings,
        keys: vec!["fanout".into()],
        durable: false,
        messages,
        body_size: 256,
        confirms: Confirms::None,
        ack_every: 100,
        prefetch: 1000,
        connection_per_consumer: true,
        timeout: settings.timeout,
    }
}

/// A one-producer publish→consume workload.
struct Flow {
    /// The exchange and its type; `None` publishes through the default exchange.
    exchange: Option<(String, ExchangeKind)>,
    queues: Vec<String>,
    /// (queue index, binding key).
    bindings: Vec<(usize, String)>,
    /// Routing keys, used in turn.
    keys: Vec<String>,
    durable: bool,
    messages: u64,
    body_size: usize,
    confirms: Confirms,
    /// Ack every Nth delivery, with `multiple` when N > 1.
    ack_every: u64,
    prefetch: u32,
    /// One consumer connection per queue rather than one for all.
    connection_per_consumer: bool,
    expected_deliveries: u64,
    timeout: Duration,
}

/// Nanoseconds since the harness's first call, stamped into bodies.
fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn stamped_body(size: usize) -> Bytes {
    let mut body = vec![0x5a_u8; size.max(8)];
    body[..8].copy_from_slice(&now_ns().to_be_bytes());
    body.into()
}

fn latency_ns(body: &[u8]) -> Option<u64> {
    let stamp = u64::from_be_bytes(body.get(..8)?.try_into().ok()?);
    Some(now_ns().saturating_sub(stamp))
}

/// What every consumer task shares.
struct Progress {
    delivered: AtomicU64,
    expected: u64,
    all_delivered: mpsc::UnboundedSender<Instant>,
}

impl Flow {
    async fn run(self, connector: &dyn Connector, server_pid: i32) -> anyhow::Result<Outcome> {
        let admin = connector.connect().await.context("admin connection")?;
        let exchange_name = self.exchange.as_ref().map_or("", |(name, _)| name.as_str());
        if let Some((name, kind)) = &self.exchange {
            admin.declare_exchange(name, *kind).await?;
        }
        for queue in &self.queues {
            admin.declare_queue(queue, self.durable).await?;
        }
        for (queue, key) in &self.bindings {
            admin.bind(exchange_name, &self.queues[*queue], key).await?;
        }

        let mut consumer_sessions = Vec::new();
        let mut receivers = Vec::new();
        for queue in &self.queues {
            if consumer_sessions.is_empty() || self.connection_per_consumer {
                consumer_sessions.push(connector.connect().await.context("consumer connection")?);
            }
            let session = consumer_sessions.last().expect("connected above");
            receivers.push(session.subscribe(queue, self.prefetch).await?);
        }
        let (all_delivered, mut all_delivered_rx) = mpsc::unbounded_channel();
        let progress = Arc::new(Progress {
            delivered: AtomicU64::new(0),
            expected: self.expected_deliveries,
            all_delivered,
        });
        let (stop, stopped) = watch::channel(false);
        let consumers: Vec<_> = receivers
            .into_iter()
            .map(|receiver| {
                tokio::spawn(consume(
                    receiver,
                    Arc::clone(&progress),
                    stopped.clone(),
                    self.ack_every,
                ))
            })
            .collect();

        let producer = connector.connect().await.context("producer connection")?;
        let mut sender = producer.publisher(self.confirms).await?;
        let fsync_counter = if self.durable {
            tokio::task::block_in_place(|| FsyncCounter::start(server_pid))
        } else {
            None
        };
        let before = sample(server_pid)?;
        let client_before = sample(std::process::id() as i32)?;
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + self.timeout);
        let publishing = async {
            for i in 0..self.messages {
                let key = &self.keys[(i % self.keys.len() as u64) as usize];
                sender
                    .publish(Outgoing {
                        exchange: exchange_name.to_owned(),
                        routing_key: key.clone(),
                        body: stamped_body(self.body_size),
                        persistent: self.durable,
                    })
                    .await?;
            }
            sender.finish().await
        };
        let published = tokio::time::timeout_at(deadline, publishing).await;
        let finished = match published {
            Ok(result) => {
                result?;
                tokio::time::timeout_at(deadline, all_delivered_rx.recv())
                    .await
                    .ok()
                    .flatten()
            }
            Err(_) => None,
        };
        let end = finished.unwrap_or_else(Instant::now);
        let after = sample(server_pid)?;
        let client_after = sample(std::process::id() as i32)?;
        let delivered = progress.delivered.load(Ordering::Relaxed);
        let fsyncs =
            fsync_counter.and_then(|counter| tokio::task::block_in_place(|| counter.stop()));

        let _ = stop.send(true);
        let mut latencies = Vec::new();
        for consumer in consumers {
            match consumer.await? {
                Ok(mut mine) => latencies.append(&mut mine),
                Err(error) => eprintln!("  consumer failed: {error:#}"),
            }
        }
        let _ = producer.close().await;
        for session in &consumer_sessions {
            let _ = session.close().await;
        }
        for queue in &self.queues {
            let _ = admin.delete_queue(queue).await;
        }
        if let Some((name, _)) = &self.exchange {
            let _ = admin.delete_exchange(name).await;
        }
        let _ = admin.close().await;

        let elapsed = end - start;
        let (p50_us, p99_us) = percentiles_us(&mut latencies);
        let messages = if self.expected_deliveries > self.messages {
            delivered
        } else {
            self.messages
        };
        Ok(Outcome {
            rate: delivered as f64 / elapsed.as_secs_f64(),
            messages,
            elapsed,
            p50_us,
            p99_us,
            server_cpu_s: after.cpu_seconds - before.cpu_seconds,
            client_cpu_s: client_after.cpu_seconds - client_before.cpu_seconds,
            complete: finished.is_some() && delivered >= self.expected_deliveries,
            fsyncs,
        })
    }
}

/// Deliveries a consumer counts locally before adding them to the shared count: ten
/// consumers adding one each to the same counter would bounce its cache line between the cores
/// a million times a second.
const COUNT_BATCH: u64 = 64;

/// One consumer: counts deliveries, records their latency, acks every `ack_every`; returns
/// the latencies in nanoseconds. Its count reaches the shared one in batches, and whenever it
/// has received everything there is so far, so the last delivery is always counted at once.
async fn consume(
    mut receiver: Box<dyn Receiver>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    ack_every: u64,
) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut mine = 0u64;
    let mut uncounted = 0u64;
    let count = |uncounted: &mut u64| {
        if *uncounted > 0
            && progress.delivered.fetch_add(*uncounted, Ordering::Relaxed) + *uncounted
                == progress.expected
        {
            let _ = progress.all_delivered.send(Instant::now());
        }
        *uncounted = 0;
    };
    loop {
        let body = {
            let mut next = receiver.next();
            match futures::poll!(&mut next) {
                std::task::Poll::Ready(body) => body?,
                std::task::Poll::Pending => {
                    count(&mut uncounted);
                    tokio::select! {
                        body = next => body?,
                        _ = stop.changed() => break,
                    }
                }
            }
        };
        let Some(body) = body else { break };
        if let Some(latency) = latency_ns(&body) {
            latencies.push(latency);
        }
        mine += 1;
        if mine.is_multiple_of(ack_every) {
            receiver.ack_latest(ack_every > 1).await?;
        }
        uncounted += 1;
        if uncounted == COUNT_BATCH {
            count(&mut uncounted);
        }
    }
    count(&mut uncounted);
    if !mine.is_multiple_of(ack_every) {
        receiver.ack_latest(true).await?;
    }
    Ok(latencies)
}

/// W4: a requester publishes to a ping queue and waits for the answer on a pong queue; a
/// responder on its own connection moves each message from ping to pong. Every delivery is
/// acked; prefetch 1. The first `warm-up` round trips are not measured.
async fn round_trip(
    connector: &dyn Connector,
    server_pid: i32,
    settings: Settings,
    tag: &str,
) -> anyhow::Result<Outcome> {
    let round_trips = settings.count(10_000);
    let warm_up = settings.count(1_000);
    let ping = format!("w4.{tag}.ping");
    let pong = format!("w4.{tag}.pong");
    let admin = connector.connect().await?;
    admin.declare_queue(&ping, false).await?;
    admin.declare_queue(&pong, false).await?;

    let responder = connector.connect().await?;
    let mut requests = responder.subscribe(&ping, 1).await?;
    let mut replies = responder.publisher(Confirms::None).await?;
    let (stop, mut stopped) = watch::channel(false);
    let pong_key = pong.clone();
    let echo = tokio::spawn(async move {
        loop {
            let body = tokio::select! {
                body = requests.next() => body?,
                _ = stopped.changed() => break,
            };
            let Some(body) = body else { break };
            replies
                .publish(Outgoing {
                    exchange: String::new(),
                    routing_key: pong_key.clone(),
                    body,
                    persistent: false,
                })
                .await?;
            requests.ack_latest(false).await?;
        }
        anyhow::Ok(())
    });

    let requester = connector.connect().await?;
    let mut answers = requester.subscribe(&pong, 1).await?;
    let mut sender = requester.publisher(Confirms::None).await?;
    // The requester runs as a task on a worker thread, as an application's would, rather than
    // on the thread that drives the harness: its wake-ups then come from the connection tasks
    // on the same runtime instead of crossing to another thread.
    let ping_key = ping.clone();
    let requesting = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(round_trips as usize);
        let mut before = sample(server_pid)?;
        let mut client_before = sample(std::process::id() as i32)?;
        let mut start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + settings.timeout);
        let looping = async {
            for i in 0..warm_up + round_trips {
                if i == warm_up {
                    before = sample(server_pid)?;
                    client_before = sample(std::process::id() as i32)?;
                    start = Instant::now();
                }
                let sent = Instant::now();
                sender
                    .publish(Outgoing {
                        exchange: String::new(),
                        routing_key: ping_key.clone(),
                        body: stamped_body(256),
                        persistent: false,
                    })
                    .await?;
                answers
                    .next()
                    .await?
                    .context("the pong subscription ended")?;
                if i >= warm_up {
                    samples.push(sent.elapsed().as_nanos() as u64);
                }
                answers.ack_latest(false).await?;
            }
            anyhow::Ok(())
        };
        let complete = match tokio::time::timeout_at(deadline, looping).await {
            Ok(result) => {
                result?;
                true
            }
            Err(_) => false,
        };
        anyhow::Ok((samples, before, client_before, start, complete))
    });
    let (mut samples, before, client_before, start, complete) = requesting.await??;
    let elapsed = start.elapsed();
    let after = sample(server_pid)?;
    let client_after = sample(std::process::id() as i32)?;
    let _ = stop.send(true);
    if let Err(error) = echo.await? {
        eprintln!("  responder failed: {error:#}");
    }
    let _ = requester.close().await;
    let _ = responder.close().await;
    let _ = admin.delete_queue(&ping).await;
    let _ = admin.delete_queue(&pong).await;
    let _ = admin.close().await;

    let measured = samples.len() as u64;
    let (p50_us, p99_us) = percentiles_us(&mut samples);
    Ok(Outcome {
        rate: measured as f64 / elapsed.as_secs_f64(),
        messages: 2 * measured,
        elapsed,
        p50_us,
        p99_us,
        server_cpu_s: after.cpu_seconds - before.cpu_seconds,
        client_cpu_s: client_after.cpu_seconds - client_before.cpu_seconds,
        complete: complete && measured == round_trips,
        fsyncs: None,
    })
}

/// The 50th and 99th percentiles (nearest rank) of nanosecond samples, in microseconds.
fn percentiles_us(samples: &mut [u64]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_unstable();
    let at = |p: f64| {
        let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1] as f64 / 1000.0
    };
    (at(0.50), at(0.99))
}
