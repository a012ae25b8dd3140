//! The clients of one broker life: pipelined publishers with confirms and consumers with a
//! random prefetch that ack, nack, reject, cancel and sync, all recording into the ledger.
//!
//! Invariants the checker relies on: a message is recorded as published before it is sent, a
//! delivery before it is settled, and an ack as synced only after `sync` returned `Ok`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fastrand::Rng;
use switchyard_client::{ClientError, Connection, ConsumeOptions, Delivery, OutgoingMessage};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::checker::{CopyKey, DeliveryRecord, Outcome, SharedLedger, lock};
use crate::scenario::{Policy, Scenario};

/// Switches shared by a life's tasks.
#[derive(Debug, Default)]
pub struct Switches {
    /// Publishers stop and wait for their outstanding confirmations.
    pub stop_publishing: AtomicBool,
    /// Consumers ack everything, without pauses, and sync when idle.
    pub draining: AtomicBool,
    /// Consumers stop.
    pub stop_consuming: AtomicBool,
    /// The broker is being killed or stopped: failures from now on are expected.
    pub ending: AtomicBool,
    /// Acks sent and not yet covered by a successful sync, over all consumers.
    pub unsynced: AtomicU64,
    /// Deliveries received, over all consumers.
    pub received: AtomicU64,
}

/// How a life's clients behave.
#[derive(Debug, Clone, Copy)]
pub struct Habits {
    /// How many publishers; the first also republishes the deduplicated messages whose
    /// outcome an earlier life lost.
    pub publishers: usize,
    /// Publish more large messages (for a full disk).
    pub large_messages: bool,
    /// Consumers may make queues dead-letter (nack, reject, cancel, close).
    pub dead_letters: bool,
    pub seed: u64,
}

/// The tasks of one life.
pub struct Workload {
    pub switches: Arc<Switches>,
    publishers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
}

/// Message size: mostly small, sometimes large enough that a few cross a 1 MiB segment.
fn body_len(rng: &mut Rng, large: bool) -> usize {
    match rng.u32(0..100) {
        0..=4 => rng.usize(16 << 10..128 << 10),
        5..=19 if large => rng.usize(32 << 10..200 << 10),
        _ => rng.usize(8..600),
    }
}

impl Workload {
    /// Starts the publishers on `publishing` and one consumer per queue on `consuming`.
    pub fn start(
        scenario: &Arc<Scenario>,
        ledger: &SharedLedger,
        publishing: &Connection,
        consuming: &Connection,
        habits: Habits,
    ) -> Workload {
        let Habits {
            publishers,
            large_messages,
            dead_letters,
            seed,
        } = habits;
        let switches = Arc::new(Switches::default());
        let mut rng = Rng::with_seed(seed);
        let publishers = (0..publishers)
            .map(|n| {
                tokio::spawn(publish(
                    Arc::clone(scenario),
                    Arc::clone(ledger),
                    publishing.clone(),
                    Arc::clone(&switches),
                    n == 0,
                    large_messages,
                    rng.u64(..),
                ))
            })
            .collect();
        let consumers = (0..scenario.queues.len())
            .map(|queue| {
                tokio::spawn(consume(
                    Arc::clone(scenario),
                    Arc::clone(ledger),
                    consuming.clone(),
                    Arc::clone(&switches),
                    queue,
                    dead_letters,
                    rng.u64(..),
                ))
            })
            .collect();
        Workload {
            switches,
            publishers,
            consumers,
        }
    }

    /// Stops publishing and waits until every publish has settled; false if that took longer
    /// than `within`.
    pub async fn stop_publishing(&mut self, within: Duration) -> bool {
        self.switches.stop_publishing.store(true, Ordering::Relaxed);
        let all = futures::future::join_all(self.publishers.drain(..));
        tokio::time::timeout(within, all).await.is_ok()
    }

    /// Stops the consumers (after the connections are closed: they may be waiting on them).
    pub async fn stop_consuming(&mut self, within: Duration) -> bool {
        self.switches.stop_consuming.store(true, Ordering::Relaxed);
        let all = futures::future::join_all(self.consumers.drain(..));
        tokio::time::timeout(within, all).await.is_ok()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        for task in self.publishers.iter().chain(&self.consumers) {
            task.abort();
        }
    }
}

/// One publisher: bursts of pipelined publishes to random queues, confirmations settled by a
/// task of their own. The first publisher of a life first republishes the deduplicated
/// messages whose outcome the previous life lost.
#[allow(clippy::too_many_arguments)]
async fn publish(
    scenario: Arc<Scenario>,
    ledger: SharedLedger,
    connection: Connection,
    switches: Arc<Switches>,
    retries: bool,
    large_messages: bool,
    seed: u64,
) {
    let mut rng = Rng::with_seed(seed);
    let Ok(mut publisher) = connection.publisher_with(rng.usize(1..=1000)).await else {
        return;
    };
    let (settling, mut settled) =
        mpsc::unbounded_channel::<(u64, switchyard_client::Confirmation)>();
    let settler = {
        let ledger = Arc::clone(&ledger);
        let scenario = Arc::clone(&scenario);
        tokio::spawn(async move {
            while let Some((id, confirmation)) = settled.recv().await {
                let outcome = confirmation.wait().await;
                record_outcome(&scenario, &ledger, id, outcome);
            }
        })
    };
    let targets = scenario.publish_targets();
    let composer = Composer {
        scenario: &scenario,
        large_messages,
    };
    let mut retry_ids = if retries {
        std::mem::take(&mut lock(&ledger).retry)
    } else {
        Vec::new()
    };
    let mut next_message = |rng: &mut Rng| {
        if let Some(id) = retry_ids.pop() {
            let mut ledger = lock(&ledger);
            ledger.retried += 1;
            let published = ledger.published[&id].clone();
            drop(ledger);
            Some((
                id,
                composer.compose(rng, id, published.queue, published.persistent),
            ))
        } else if switches.stop_publishing.load(Ordering::Relaxed) {
            None
        } else {
            let queue = *rng.choice(&targets).expect("a publish target");
            let persistent = rng.u32(0..10) != 0;
            let id = lock(&ledger).new_message(queue, persistent);
            Some((id, composer.compose(rng, id, queue, persistent)))
        }
    };
    // `FAULT_HEAVY=1`: bursts about ten times the default rate.
    let heavy = std::env::var_os("FAULT_HEAVY").is_some_and(|v| v == "1");
    let (burst, pause) = if heavy {
        (100, (0, 20))
    } else {
        (30, (10, 150))
    };
    // Retries first, then bursts until told to stop.
    'publishing: loop {
        for _ in 0..rng.usize(1..=burst) {
            let Some((id, (message, due))) = next_message(&mut rng) else {
                break 'publishing;
            };
            if let Some((due, delay)) = due {
                let mut ledger = lock(&ledger);
                ledger.last_due = ledger.last_due.max(Some(due));
                if let Some(published) = ledger.published.get_mut(&id) {
                    published.delay_ms = Some(delay);
                }
            }
            match publisher.publish(message).await {
                Ok(confirmation) => {
                    let _ = settling.send((id, confirmation));
                }
                Err(error) => {
                    record_outcome(&scenario, &ledger, id, Err(error));
                    break 'publishing;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(pause.0..pause.1))).await;
    }
    // What was not retried goes again next life.
    lock(&ledger).retry.extend(retry_ids);
    drop(settling);
    let _ = settler.await;
}

/// Builds the messages of one publisher.
struct Composer<'a> {
    scenario: &'a Scenario,
    large_messages: bool,
}

impl Composer<'_> {
    /// A message with `id` in its first 8 body bytes, for `queue`, and when it falls due if
    /// it is delayed.
    fn compose(
        &self,
        rng: &mut Rng,
        id: u64,
        queue: usize,
        persistent: bool,
    ) -> (OutgoingMessage, Option<(Instant, u64)>) {
        let spec = &self.scenario.queues[queue];
        let mut body = id.to_le_bytes().to_vec();
        body.resize(8 + body_len(rng, self.large_messages), (id % 251) as u8);
        let mut message = OutgoingMessage::new("", spec.name.clone(), body);
        message.properties.persistent = persistent;
        if let Policy::Priority { max } = spec.policy {
            message.properties.priority = rng.u8(0..=max.saturating_add(1));
        }
        if spec.policy == Policy::Deduplicated {
            message.properties.message_id = Some(format!("m{id}").into());
        }
        let mut due = None;
        if spec.delays && rng.u32(0..10) == 0 {
            let delay = rng.u64(1..1500);
            due = Some((Instant::now() + Duration::from_millis(delay), delay));
            message = message.header("x-delay", delay.to_string());
        }
        (message, due)
    }
}

fn record_outcome(
    scenario: &Scenario,
    ledger: &SharedLedger,
    id: u64,
    outcome: Result<switchyard_client::Confirmed, ClientError>,
) {
    let mut ledger = lock(ledger);
    match outcome {
        Ok(_) => ledger.settle(id, Outcome::Confirmed),
        Err(ClientError::Rejected { error, .. }) => {
            *ledger
                .rejections
                .entry(format!("{:?}", error.code))
                .or_default() += 1;
            ledger.settle(id, Outcome::Rejected);
        }
        Err(_) => {
            ledger.settle(id, Outcome::Unknown);
            let queue = ledger.published[&id].queue;
            if scenario.queues[queue].policy == Policy::Deduplicated
                && ledger.outcomes.get(&id) != Some(&Outcome::Confirmed)
            {
                ledger.retry.push(id);
            }
        }
    }
}

/// What a consumer does with a delivery.
enum Settle {
    Ack,
    Requeue,
    Discard,
}

/// One consumer of `queue`, subscribing again (with a new prefetch) after each cancel, until
/// the life ends.
async fn consume(
    scenario: Arc<Scenario>,
    ledger: SharedLedger,
    connection: Connection,
    switches: Arc<Switches>,
    queue: usize,
    dead_letters: bool,
    seed: u64,
) {
    let mut rng = Rng::with_seed(seed);
    let spec = &scenario.queues[queue];
    // Only acks, no cancels, where settling otherwise could dead-letter and must not.
    let ack_only = !dead_letters && spec.dead_letter_to.is_some();
    // Rejected without requeue here, a message is gone by the consumer's choice.
    let discard_is_final = spec.dead_letter_to.is_none();
    let life = lock(&ledger).life;
    while !switches.stop_consuming.load(Ordering::Relaxed) {
        let mut options = ConsumeOptions::new(spec.name.clone());
        options.prefetch = rng.u32(spec.prefetch.0..=spec.prefetch.1);
        let options_prefetch = options.prefetch;
        let mut consumer = match connection.consume(options).await {
            Ok(consumer) => consumer,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut unsynced: Vec<CopyKey> = Vec::new();
        // A sync while deliveries wait unread can stall (see `sync`): with a prefetch above
        // what the client buffers per batch, sync only when idle.
        let sync_every = if options_prefetch <= SYNC_SAFE_PREFETCH {
            rng.usize(1..200)
        } else {
            usize::MAX
        };
        let mut cancelled = false;
        let mut close = false;
        loop {
            let draining = switches.draining.load(Ordering::Relaxed);
            let next = tokio::time::timeout(Duration::from_millis(50), consumer.next()).await;
            let delivery = match next {
                Ok(Some(Ok(delivery))) => delivery,
                Ok(Some(Err(_)) | None) => break,
                Err(_idle) => {
                    if switches.stop_consuming.load(Ordering::Relaxed) {
                        break;
                    }
                    if !unsynced.is_empty() {
                        sync(
                            &consumer,
                            &ledger,
                            &switches,
                            &mut unsynced,
                            queue,
                            &scenario,
                        )
                        .await;
                    }
                    continue;
                }
            };
            switches.received.fetch_add(1, Ordering::Relaxed);
            let copy = copy_of(queue, &delivery);
            lock(&ledger).delivered(DeliveryRecord {
                copy: copy.clone(),
                redelivered: delivery.redelivered,
                first_death_queue: header(&delivery, "x-first-death-queue"),
                life,
            });
            let roll = rng.u32(0..1000);
            let choice = if draining
                || ack_only
                || roll >= spec.requeue_per_mille + spec.discard_per_mille
            {
                Settle::Ack
            } else if roll < spec.requeue_per_mille {
                Settle::Requeue
            } else {
                Settle::Discard
            };
            let sent = match choice {
                Settle::Ack => delivery.ack().map(|()| {
                    lock(&ledger).acked.insert(copy.1);
                    switches.unsynced.fetch_add(1, Ordering::Relaxed);
                    unsynced.push(copy);
                }),
                Settle::Requeue if rng.bool() => delivery.nack(false, true),
                Settle::Requeue => delivery.reject(true),
                Settle::Discard => {
                    let sent = if rng.bool() {
                        delivery.reject(false)
                    } else {
                        delivery.nack(false, false)
                    };
                    if sent.is_ok() && discard_is_final {
                        lock(&ledger).discarded.insert(copy.1);
                    }
                    sent
                }
            };
            if sent.is_err() {
                break;
            }
            if unsynced.len() >= sync_every {
                sync(
                    &consumer,
                    &ledger,
                    &switches,
                    &mut unsynced,
                    queue,
                    &scenario,
                )
                .await;
            }
            if !draining && !cancelled {
                match rng.u32(0..2000) {
                    0 | 1 if ack_only => {}
                    // Cancel and keep settling what is still on its way.
                    0 => {
                        consumer.cancel();
                        cancelled = true;
                    }
                    // Close: deliveries arriving meanwhile go back to the queue.
                    1 => {
                        close = true;
                        break;
                    }
                    2..=4 => tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await,
                    _ => {}
                }
            }
        }
        // Subscription over (cancelled, closed, or the connection is gone). The sync fails
        // if the connection is gone, and then nothing is recorded as synced.
        if !unsynced.is_empty() {
            sync(
                &consumer,
                &ledger,
                &switches,
                &mut unsynced,
                queue,
                &scenario,
            )
            .await;
            switches
                .unsynced
                .fetch_sub(unsynced.len() as u64, Ordering::Relaxed);
            unsynced.clear();
        }
        if close {
            consumer.close().await;
            lock(&ledger).fault("consumer closes");
        }
        if cancelled {
            lock(&ledger).fault("consumer cancels");
        }
        if !cancelled && connection.quic().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The largest prefetch with which a consumer may sync while deliveries are still coming:
/// the client buffers 8 batches of deliveries, and a sync waits behind them.
const SYNC_SAFE_PREFETCH: u32 = 8;

/// Syncs the acks in `unsynced`; on success they are recorded as synced.
///
/// Known client bug: `Consumer::sync` never returns while the client's delivery buffer (8
/// batches) is full, because the subscription task waits to hand over a batch and handles no
/// sync meanwhile; the caller, waiting on the sync, reads no delivery. So the wait is bounded
/// here, and a stall is recorded (`sync stalls` in the report) instead of hanging the run.
async fn sync(
    consumer: &switchyard_client::Consumer,
    ledger: &SharedLedger,
    switches: &Switches,
    unsynced: &mut Vec<CopyKey>,
    queue: usize,
    scenario: &Scenario,
) {
    let count = unsynced.len() as u64;
    match tokio::time::timeout(SYNC_LIMIT, consumer.sync()).await {
        Ok(Ok(())) => {
            lock(ledger).synced(unsynced.drain(..));
            switches.unsynced.fetch_sub(count, Ordering::Relaxed);
        }
        Ok(Err(_)) => {}
        Err(_) => {
            if !switches.ending.load(Ordering::Relaxed) {
                let mut ledger = lock(ledger);
                let life = ledger.life;
                ledger.sync_stalls.push(format!(
                    "life {life}: {}: a sync did not return within {SYNC_LIMIT:?}",
                    scenario.queues[queue].name
                ));
            }
        }
    }
}

/// How long a consumer waits for a sync.
const SYNC_LIMIT: Duration = Duration::from_secs(5);

/// A header as text (an array or table in `Value`'s display form).
fn header(delivery: &Delivery, name: &str) -> Option<String> {
    delivery.headers.get(name).map(ToString::to_string)
}

/// Which copy of which message `delivery` is.
fn copy_of(queue: usize, delivery: &Delivery) -> CopyKey {
    let id = delivery.body.get(..8).map_or(u64::MAX, |bytes| {
        u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
    });
    (queue, id, header(delivery, "x-death"))
}
