//! A scenario: everything about a run that one seed decides — the queues with their policies
//! and dead-letter chains, the store settings, and for each broker life how long it runs, what
//! ends it and which faults happen in it. Timing (when exactly a kill lands) is not replayable;
//! everything here is, with `FAULT_SEED=<n>`.
//!
//! Policies are kept simple enough that the checker can explain every fate: a queue is either
//! *strict* (it cannot drop a confirmed persistent message: every one must be acked by a
//! consumer, in it or in the plain durable queue its dead-letter chain ends in) or *lossy* (a
//! policy may drop without a trace, so only what was delivered is checked).

use std::fmt;
use std::time::Duration;

use fastrand::Rng;
use switchyard_client::{Table, Value};

/// What a queue's arguments make of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Durable, no arguments.
    Plain,
    /// Durable with `x-max-priority`.
    Priority { max: u8 },
    /// Durable with `x-deduplication-window`; every message carries a message id and a publish
    /// whose outcome was lost is published again in the next life.
    Deduplicated,
    /// Durable with `x-max-length` and `x-overflow=reject-publish`; never sent delayed
    /// messages (a delayed one falling due in a full queue would be dropped).
    MaxLengthReject { max: u32 },
    /// Durable, `x-message-ttl`, dead-letters to its target.
    TtlDeadLetter { ttl_ms: u64 },
    /// Durable, `x-max-length` with `drop-head` or `reject-publish-dlx`, dead-letters.
    MaxLengthDeadLetter { max: u32, reject: bool },
    /// Durable, `x-delivery-limit`, dead-letters.
    DeliveryLimitDeadLetter { limit: u32 },
    /// A middle link of a dead-letter chain: durable, `x-message-ttl`, dead-letters onward.
    ChainHop { ttl_ms: u64 },
    /// Where dead-letter chains end: durable, no arguments.
    DeadLetterSink,
    /// Durable, `x-message-ttl`, no dead-letter exchange: expired messages are dropped.
    TtlDrop { ttl_ms: u64 },
    /// Durable, `x-max-length` with `drop-head` and no dead-letter exchange.
    MaxLengthDrop { max: u32 },
    /// Durable, `x-delivery-limit` without a dead-letter exchange: poison messages are dropped.
    DeliveryLimitDrop { limit: u32 },
    /// Not durable: nothing in it survives a restart.
    Transient,
}

impl Policy {
    /// Whether every confirmed persistent message published to the queue must be accounted for.
    pub fn is_strict(self) -> bool {
        matches!(
            self,
            Policy::Plain
                | Policy::Priority { .. }
                | Policy::Deduplicated
                | Policy::MaxLengthReject { .. }
                | Policy::TtlDeadLetter { .. }
                | Policy::MaxLengthDeadLetter { .. }
                | Policy::DeliveryLimitDeadLetter { .. }
                | Policy::ChainHop { .. }
                | Policy::DeadLetterSink
        )
    }

    fn prefix(self) -> &'static str {
        match self {
            Policy::Plain => "plain",
            Policy::Priority { .. } => "priority",
            Policy::Deduplicated => "dedup",
            Policy::MaxLengthReject { .. } => "maxlen-reject",
            Policy::TtlDeadLetter { .. } => "ttl-dlx",
            Policy::MaxLengthDeadLetter { .. } => "maxlen-dlx",
            Policy::DeliveryLimitDeadLetter { .. } => "limit-dlx",
            Policy::ChainHop { .. } => "hop",
            Policy::DeadLetterSink => "sink",
            Policy::TtlDrop { .. } => "ttl-drop",
            Policy::MaxLengthDrop { .. } => "maxlen-drop",
            Policy::DeliveryLimitDrop { .. } => "limit-drop",
            Policy::Transient => "transient",
        }
    }
}

/// One queue of the scenario.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: String,
    pub policy: Policy,
    /// The queue its dead letters go to (through the fanout exchange [`dead_letter_exchange`]).
    pub dead_letter_to: Option<usize>,
    /// Publishers send to it (dead-letter hops and sinks get only dead letters).
    pub published: bool,
    /// Publishers may send it delayed messages (`x-delay`).
    pub delays: bool,
    /// Its consumers' prefetch is drawn from here.
    pub prefetch: (u32, u32),
    /// Per mille of deliveries nacked or rejected with requeue.
    pub requeue_per_mille: u32,
    /// Per mille of deliveries rejected without requeue.
    pub discard_per_mille: u32,
}

impl QueueSpec {
    pub fn durable(&self) -> bool {
        self.policy != Policy::Transient
    }

    /// The declare arguments: numbers as integers of the width an AMQP client would pick, or
    /// as strings typed on a command line, at random per queue (both must work).
    pub fn arguments(&self, queues: &[QueueSpec]) -> Table {
        let mut args = Table::new();
        let as_text = self.name.len().is_multiple_of(2);
        let number = |value: u64| -> Value {
            if as_text {
                value.to_string().into()
            } else if let Ok(narrow) = i32::try_from(value) {
                narrow.into()
            } else {
                value.into()
            }
        };
        match self.policy {
            Policy::Plain | Policy::DeadLetterSink | Policy::Transient => {}
            Policy::Priority { max } => args.push("x-max-priority", number(u64::from(max))),
            Policy::Deduplicated => args.push("x-deduplication-window", number(3_600_000)),
            Policy::MaxLengthReject { max } => {
                args.push("x-max-length", number(u64::from(max)));
                args.push("x-overflow", "reject-publish");
            }
            Policy::TtlDeadLetter { ttl_ms }
            | Policy::ChainHop { ttl_ms }
            | Policy::TtlDrop { ttl_ms } => args.push("x-message-ttl", number(ttl_ms)),
            Policy::MaxLengthDeadLetter { max, reject } => {
                args.push("x-max-length", number(u64::from(max)));
                let overflow = if reject {
                    "reject-publish-dlx"
                } else {
                    "drop-head"
                };
                args.push("x-overflow", overflow);
            }
            Policy::MaxLengthDrop { max } => {
                args.push("x-max-length", number(u64::from(max)));
                args.push("x-overflow", "drop-head");
            }
            Policy::DeliveryLimitDeadLetter { limit } | Policy::DeliveryLimitDrop { limit } => {
                args.push("x-delivery-limit", number(u64::from(limit)));
            }
        }
        if let Some(target) = self.dead_letter_to {
            args.push(
                "x-dead-letter-exchange",
                dead_letter_exchange(&queues[target].name),
            );
        }
        args
    }
}

/// Adds a queue with `policy` and random consumer habits; returns its index.
fn add(queues: &mut Vec<QueueSpec>, rng: &mut Rng, policy: Policy, published: bool) -> usize {
    let name = format!("{}-{}", policy.prefix(), queues.len());
    let delays = published && !matches!(policy, Policy::MaxLengthReject { .. });
    let prefetch = match rng.u32(0..3) {
        0 => (1, 5),
        1 => (10, 100),
        _ => (100, 500),
    };
    let requeue_per_mille = match policy {
        Policy::DeliveryLimitDeadLetter { .. } | Policy::DeliveryLimitDrop { .. } => {
            rng.u32(100..400)
        }
        _ => rng.u32(0..30),
    };
    queues.push(QueueSpec {
        name,
        policy,
        dead_letter_to: None,
        published,
        delays,
        prefetch,
        requeue_per_mille,
        discard_per_mille: rng.u32(0..20),
    });
    queues.len() - 1
}

/// The fanout exchange that carries dead letters to `target`.
pub fn dead_letter_exchange(target: &str) -> String {
    format!("dlx.{target}")
}

/// How a broker life ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `kill -9` at a random moment.
    Kill,
    /// `SIGTERM` at a random moment: a graceful shutdown.
    Terminate,
    /// Publishers stop, consumers drain every queue and sync, then `kill -9`.
    DrainThenKill,
    /// Publishers stop, consumers drain every queue and sync, then `SIGTERM`.
    DrainThenTerminate,
}

impl Ending {
    pub fn drains(self) -> bool {
        matches!(self, Ending::DrainThenKill | Ending::DrainThenTerminate)
    }
}

/// One broker life.
#[derive(Debug, Clone)]
pub struct LifePlan {
    /// How long publishers and consumers run before the ending.
    pub length: Duration,
    pub ending: Ending,
    /// Run the broker under `prlimit --fsize=<bytes>`.
    pub file_size_limit: Option<u64>,
    /// Send hostile frames this long into the life.
    pub hostile_after: Option<Duration>,
    /// Consumers may make queues dead-letter (nack, reject, cancel, close).
    pub dead_letters: bool,
    pub publishers: usize,
    /// Seeds for this life's tasks.
    pub seed: u64,
}

/// Store settings of a scenario.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    pub fsync_interval: bool,
    pub window_messages: usize,
}

impl StoreSpec {
    /// The body of the `[store]` table.
    pub fn toml(&self) -> String {
        let fsync = if self.fsync_interval {
            "fsync = \"interval\"\nfsync_interval_ms = 50\n"
        } else {
            "fsync = \"always\"\n"
        };
        format!(
            "{fsync}segment_mib = 1\nwindow_messages = {}\nwindow_mib = 1\ndisk_free_low_watermark_mib = 0",
            self.window_messages
        )
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub queues: Vec<QueueSpec>,
    pub store: StoreSpec,
    pub lives: Vec<LifePlan>,
}

/// Scale of a run's lives, and what it may include.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Range of a life's length, in ms.
    pub life_ms: (u64, u64),
    /// Include dead-lettering by a length limit (`drop-head`, `reject-publish-dlx`) and by a
    /// TTL (`x-message-ttl` with a dead-letter exchange, and chain hops). Once gated as known
    /// bugs (see `known_bugs`); on by default since a clean 60-life run.
    pub ttl_and_length_dead_letters: bool,
    /// Let consumers make queues dead-letter while the disk is full.
    pub full_disk_dead_letters: bool,
}

impl Scenario {
    pub fn generate(seed: u64, lives: usize, pace: Pace) -> Scenario {
        let mut rng = Rng::with_seed(seed);
        let mut queues: Vec<QueueSpec> = Vec::new();
        // Always a plain durable queue and a dead-letter chain ending in a sink.
        add(&mut queues, &mut rng, Policy::Plain, true);
        let sink = add(&mut queues, &mut rng, Policy::DeadLetterSink, false);
        let hop = (pace.ttl_and_length_dead_letters && rng.bool()).then(|| {
            let ttl_ms = rng.u64(1..200);
            add(&mut queues, &mut rng, Policy::ChainHop { ttl_ms }, false)
        });
        if let Some(hop) = hop {
            queues[hop].dead_letter_to = Some(sink);
        }
        let mut dead_letter_sources = Vec::new();
        for _ in 0..rng.usize(4..8) {
            let policy = match rng.u32(0..11) {
                0 => Policy::Priority {
                    max: rng.u8(1..=10),
                },
                1 => Policy::Deduplicated,
                2 => Policy::MaxLengthReject {
                    max: rng.u32(5..300),
                },
                3 if pace.ttl_and_length_dead_letters => Policy::TtlDeadLetter {
                    ttl_ms: *rng.choice(&[0, 5, 50, 300, 2000]).unwrap(),
                },
                3 => Policy::DeliveryLimitDeadLetter {
                    limit: rng.u32(1..5),
                },
                4 if pace.ttl_and_length_dead_letters => Policy::MaxLengthDeadLetter {
                    max: rng.u32(5..300),
                    reject: rng.bool(),
                },
                4 => Policy::MaxLengthDrop {
                    max: rng.u32(5..300),
                },
                5 => Policy::DeliveryLimitDeadLetter {
                    limit: rng.u32(1..5),
                },
                6 => Policy::TtlDrop {
                    ttl_ms: *rng.choice(&[0, 5, 50, 300]).unwrap(),
                },
                7 => Policy::MaxLengthDrop {
                    max: rng.u32(5..300),
                },
                8 => Policy::DeliveryLimitDrop {
                    limit: rng.u32(1..5),
                },
                9 => Policy::Transient,
                _ => Policy::Plain,
            };
            let queue = add(&mut queues, &mut rng, policy, true);
            if matches!(
                policy,
                Policy::TtlDeadLetter { .. }
                    | Policy::MaxLengthDeadLetter { .. }
                    | Policy::DeliveryLimitDeadLetter { .. }
            ) {
                dead_letter_sources.push(queue);
            }
        }
        // A dead-letter source that is always there, so the sink has traffic.
        if dead_letter_sources.is_empty() {
            let policy = if pace.ttl_and_length_dead_letters {
                Policy::TtlDeadLetter {
                    ttl_ms: rng.u64(0..100),
                }
            } else {
                Policy::DeliveryLimitDeadLetter {
                    limit: rng.u32(1..5),
                }
            };
            dead_letter_sources.push(add(&mut queues, &mut rng, policy, true));
        }
        for source in dead_letter_sources {
            let target = match hop {
                Some(hop) if rng.bool() => hop,
                _ => sink,
            };
            queues[source].dead_letter_to = Some(target);
        }
        let store = StoreSpec {
            fsync_interval: rng.u32(0..4) == 0,
            window_messages: *rng.choice(&[20, 100, 1000]).unwrap(),
        };
        let lives = (0..lives)
            .map(|_| {
                let ending = match rng.u32(0..10) {
                    0..=4 => Ending::Kill,
                    5 | 6 => Ending::Terminate,
                    7 | 8 => Ending::DrainThenKill,
                    _ => Ending::DrainThenTerminate,
                };
                let length = Duration::from_millis(rng.u64(pace.life_ms.0..=pace.life_ms.1));
                // A full disk only where nothing waits for a drain that failed writes stall.
                let file_size_limit = (!ending.drains() && rng.u32(0..5) == 0).then(|| {
                    *rng.choice(&[
                        256 << 10,
                        700 << 10,
                        (1 << 20) - (4 << 10),
                        (1 << 20) + (16 << 10),
                    ])
                    .unwrap()
                });
                let hostile_after = (rng.u32(0..3) == 0).then(|| length.mul_f64(rng.f64()));
                // Known bug: a dead letter whose write fails on a full disk is dropped by its
                // source. Unless asked for, nothing dead-letters while the disk is full: no
                // consumer nacks, rejects or cancels on a dead-lettering queue, and the life
                // ends with `kill -9` (a graceful stop returns deliveries, which may then
                // reach a delivery limit).
                let dead_letters = pace.full_disk_dead_letters || file_size_limit.is_none();
                let ending = if dead_letters { ending } else { Ending::Kill };
                LifePlan {
                    length,
                    ending,
                    file_size_limit,
                    dead_letters,
                    hostile_after,
                    publishers: rng.usize(1..=3),
                    seed: rng.u64(..),
                }
            })
            .collect();
        Scenario {
            seed,
            queues,
            store,
            lives,
        }
    }

    /// The queues whose messages may be published directly.
    pub fn publish_targets(&self) -> Vec<usize> {
        (0..self.queues.len())
            .filter(|&q| self.queues[q].published)
            .collect()
    }

    /// Whether a message published to `from` may be delivered from `to` (itself, or downstream
    /// along its dead-letter chain).
    pub fn reaches(&self, from: usize, to: usize) -> bool {
        let mut at = Some(from);
        let mut hops = 0;
        while let Some(queue) = at {
            if queue == to {
                return true;
            }
            at = self.queues[queue].dead_letter_to;
            hops += 1;
            if hops > self.queues.len() {
                return false;
            }
        }
        false
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario seed {}: store {:?}", self.seed, self.store)?;
        for queue in &self.queues {
            let target = queue
                .dead_letter_to
                .map(|t| format!(" -> {}", self.queues[t].name))
                .unwrap_or_default();
            writeln!(
                f,
                "  queue {} {:?}{target} prefetch {:?} requeue {}‰ discard {}‰",
                queue.name,
                queue.policy,
                queue.prefetch,
                queue.requeue_per_mille,
                queue.discard_per_mille
            )?;
        }
        for (n, life) in self.lives.iter().enumerate() {
            writeln!(
                f,
                "  life {n}: {:?} after {:?}, file size limit {:?}, hostile frames {:?}, {} publishers",
                life.ending, life.length, life.file_size_limit, life.hostile_after, life.publishers
            )?;
        }
        Ok(())
    }
}
