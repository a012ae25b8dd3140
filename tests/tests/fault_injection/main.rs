//! The fault-injection suite: a seeded, randomised scenario runner against a real broker
//! process (`test-broker`), and a checker that accounts for every confirmed message.
//!
//! A scenario ([`scenario`]) draws from one seed a set of durable and transient queues with
//! policies (length limits with every overflow mode, dead-letter chains, TTLs, delivery
//! limits, priorities, deduplication), a store that pages to disk and rolls 1 MiB segments,
//! and a series of broker lives. In each life pipelined publishers and consumers with random
//! prefetch ([`workload`]) run until the life ends by `kill -9`, `SIGTERM`, or a full drain
//! followed by either; some lives run under `prlimit --fsize` (a full disk) and some get
//! malformed and oversized frames on a second connection ([`faults`]). A last life drains
//! every queue, and the checker ([`checker`]) gives its verdict.
//!
//! Run:
//!
//! ```sh
//! # The short run (CI): one scenario, about a minute.
//! cargo test -p switchyard-tests --test fault_injection
//! # The long run: FAULT_CYCLES broker lives over scenarios of 10 lives each.
//! FAULT_CYCLES=200 cargo test -p switchyard-tests --test fault_injection -- --ignored --nocapture
//! # Replay a failing scenario (the seed is printed; timing is not replayed, the rest is).
//! FAULT_SEED=<n> cargo test -p switchyard-tests --test fault_injection -- --nocapture
//! ```
//!
//! `FAULT_HEAVY=1` publishes about ten times faster. A failing scenario prints its seed and
//! keeps the broker's data directory and log (`broker.log`). Bugs the runner found are
//! described in [`known_bugs`] (with small tests, ignored until fixed, where one could be
//! written). `FAULT_KNOWN_BUGS=1` makes the one tolerated symptom (a duplicate without
//! `redelivered` after a full-disk life) fail the run.

mod checker;
mod faults;
mod known_bugs;
mod scenario;
mod workload;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switchyard_client::{Connection, ExchangeOptions, QueueOptions, Table};
use switchyard_tests::broker_process::{
    BrokerProcess, free_port, share_plugin_cache, write_config,
};

use checker::{Ledger, SharedLedger, Verdict, lock};
use scenario::{Ending, Pace, Scenario};
use workload::{Habits, Workload};

pub(crate) const TEST_BROKER: &str = env!("CARGO_BIN_EXE_test-broker");

/// A broker must be serving again within this long of being started.
const RESTART_LIMIT: Duration = Duration::from_secs(10);

/// A live broker answers a request within this long.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// Lives per scenario in the long run.
const LIVES_PER_SCENARIO: usize = 10;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|value| {
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}"))
    })
}

/// Every policy and fault is in scenarios: dead-lettering by TTL and length limit and
/// dead-lettering on a full disk were left out while they hit known bugs, and came back after
/// a clean long run with them (`FAULT_KNOWN_BUGS=1 FAULT_CYCLES=60`, 2026-12-02: 114,747
/// published, 0 lost, 0 hangs). `FAULT_KNOWN_BUGS` now only makes unmarked duplicates after a
/// full disk fail the run (see [`known_bugs`]).
fn pace(life_ms: (u64, u64)) -> Pace {
    Pace {
        life_ms,
        ttl_and_length_dead_letters: true,
        full_disk_dead_letters: true,
    }
}

/// A seed from the clock, unless `FAULT_SEED` gives one.
fn first_seed() -> u64 {
    env_u64("FAULT_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970");
        now.as_nanos() as u64 % 1_000_000_000
    })
}

/// The short run: one scenario of a few short lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_scenario_of_crashes_and_faults_loses_no_confirmed_message() {
    let seed = first_seed();
    let lives = env_u64("FAULT_CYCLES").unwrap_or(7) as usize;
    let scenario = Scenario::generate(seed, lives, pace((1500, 3500)));
    let report = run_scenario(scenario, "a_seeded -- --nocapture").await;
    assert!(
        report.verdict.is_clean(),
        "FAULT_SEED={seed} FAULT_CYCLES={lives}: {}",
        report.verdict
    );
}

/// The long run: `FAULT_CYCLES` lives (default 100) over scenarios of ten, seeds counting up
/// from `FAULT_SEED` (or the clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: FAULT_CYCLES broker lives, about 12 s each"]
async fn long_run_of_seeded_scenarios() {
    let cycles = env_u64("FAULT_CYCLES").unwrap_or(100) as usize;
    let mut seed = first_seed();
    let mut totals = Totals::default();
    let started = Instant::now();
    while totals.cycles < cycles {
        let lives = LIVES_PER_SCENARIO.min(cycles - totals.cycles);
        let scenario = Scenario::generate(seed, lives, pace((2000, 8000)));
        let report = run_scenario(scenario, "-- --ignored --nocapture long_run").await;
        totals.add(seed, lives, &report);
        eprintln!(
            "after {:?}: {}",
            started.elapsed(),
            totals.summary(started.elapsed())
        );
        seed += 1;
    }
    eprintln!("LONG RUN: {}", totals.summary(started.elapsed()));
    assert!(
        totals.failing.is_empty(),
        "failing scenarios: {:?}",
        totals.failing
    );
}

/// What one scenario ended with.
struct ScenarioReport {
    verdict: Verdict,
    ledger: Ledger,
}

#[derive(Default)]
struct Totals {
    cycles: usize,
    published: usize,
    confirmed: usize,
    deliveries: usize,
    faults: BTreeMap<&'static str, u64>,
    lost: usize,
    unexplained: usize,
    unmarked_duplicates: usize,
    resurrected: usize,
    hangs: usize,
    sync_stalls: usize,
    tolerated: usize,
    /// (seed, lives, verdict).
    failing: Vec<(u64, usize, String)>,
}

impl Totals {
    fn add(&mut self, seed: u64, lives: usize, report: &ScenarioReport) {
        let (ledger, verdict) = (&report.ledger, &report.verdict);
        self.cycles += lives;
        self.published += ledger.published.len();
        self.confirmed += ledger.confirmed();
        self.deliveries += ledger.deliveries.len();
        for (kind, count) in &ledger.faults {
            *self.faults.entry(kind).or_default() += count;
        }
        self.lost += verdict.lost.len();
        self.unexplained += verdict.unexplained.len();
        self.unmarked_duplicates += verdict.unmarked_duplicates.len();
        self.resurrected += verdict.resurrected.len();
        self.hangs += verdict.hangs.len();
        self.sync_stalls += ledger.sync_stalls.len();
        self.tolerated += verdict.tolerated.len();
        if !verdict.is_clean() {
            self.failing.push((seed, lives, verdict.to_string()));
        }
    }

    fn summary(&self, elapsed: Duration) -> String {
        let failing: Vec<String> = self
            .failing
            .iter()
            .map(|(seed, lives, _)| format!("FAULT_SEED={seed} FAULT_CYCLES={lives}"))
            .collect();
        format!(
            "{elapsed:.0?}: cycles {}, messages published {}, confirmed {}, delivered {}, faults {:?}, lost {}, unexplained {}, unmarked duplicates {}, resurrected acks {}, hangs {}, sync stalls (known client bug) {}, unmarked duplicates after a full disk (tolerated) {}, failing {failing:?}",
            self.cycles,
            self.published,
            self.confirmed,
            self.deliveries,
            self.faults,
            self.lost,
            self.unexplained,
            self.unmarked_duplicates,
            self.resurrected,
            self.hangs,
            self.sync_stalls,
            self.tolerated,
        )
    }
}

/// Runs every life of `scenario`, then a last life that drains, and judges. `test_args`
/// completes the replay command printed for a failure.
async fn run_scenario(scenario: Scenario, test_args: &str) -> ScenarioReport {
    let scenario = Arc::new(scenario);
    eprintln!("{scenario}");
    let data_dir = tempfile::tempdir().expect("data directory");
    share_plugin_cache(data_dir.path());
    let config = write_config(data_dir.path(), free_port(), &scenario.store.toml());
    let ledger = SharedLedger::default();
    {
        let mut ledger = lock(&ledger);
        ledger.full_disk_lives = (scenario.lives.iter().enumerate())
            .filter(|(_, plan)| plan.file_size_limit.is_some())
            .map(|(n, _)| n)
            .collect();
        ledger.strict_full_disk_duplicates = std::env::var_os("FAULT_KNOWN_BUGS").is_some();
    }
    for (n, plan) in scenario.lives.iter().enumerate() {
        lock(&ledger).life = n;
        run_life(&scenario, &ledger, &config, n).await;
        let ledger = lock(&ledger);
        eprintln!(
            "life {n} ({:?}{}): {} published, {} confirmed, {} deliveries so far",
            plan.ending,
            if plan.file_size_limit.is_some() {
                ", full disk"
            } else {
                ""
            },
            ledger.published.len(),
            ledger.confirmed(),
            ledger.deliveries.len()
        );
    }
    lock(&ledger).life = scenario.lives.len();
    final_drain(&scenario, &ledger, &config).await;
    let ledger = std::mem::take(&mut *lock(&ledger));
    let verdict = ledger.verdict(&scenario);
    eprintln!(
        "scenario {}: {}\n  verdict: {verdict}",
        scenario.seed,
        ledger.totals()
    );
    if !verdict.is_clean() {
        eprintln!(
            "REPLAY: FAULT_SEED={} FAULT_CYCLES={}{}{} cargo test -p switchyard-tests --test fault_injection {test_args}\n  the broker's data and log (broker.log) are kept in {}",
            scenario.seed,
            scenario.lives.len(),
            std::env::var("FAULT_KNOWN_BUGS")
                .map(|known| format!(" FAULT_KNOWN_BUGS={known}"))
                .unwrap_or_default(),
            if std::env::var_os("FAULT_HEAVY").is_some_and(|v| v == "1") {
                " FAULT_HEAVY=1"
            } else {
                ""
            },
            data_dir.keep().display()
        );
    }
    if !ledger.sync_stalls.is_empty() {
        eprintln!(
            "KNOWN CLIENT BUG: {} syncs stalled (Consumer::sync waits behind a full delivery buffer), first: {:?}",
            ledger.sync_stalls.len(),
            ledger.sync_stalls.first()
        );
    }
    ScenarioReport { verdict, ledger }
}

/// Starts the broker, failing the life (as a hang) if it does not serve within 10 s.
async fn start_broker(
    ledger: &SharedLedger,
    config: &Path,
    file_size_limit: Option<u64>,
    life: usize,
) -> Option<(BrokerProcess, Connection)> {
    let started = Instant::now();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("broker.log"))
        .expect("broker log");
    let process = tokio::task::block_in_place(|| {
        BrokerProcess::spawn_with_stderr(TEST_BROKER, config, file_size_limit, log.into())
    });
    let setup = tokio::time::timeout(RESTART_LIMIT, process.try_connect()).await;
    let elapsed = started.elapsed();
    match setup {
        Ok(Ok(setup)) if elapsed < RESTART_LIMIT || life == 0 => Some((process, setup)),
        Ok(Ok(setup)) => {
            lock(ledger).hang(format!(
                "life {life}: the broker took {elapsed:?} to start and answer (READY after {:?})",
                process.started_in
            ));
            Some((process, setup))
        }
        other => {
            lock(ledger).hang(format!(
                "life {life}: no connection to the broker within 10 s: {:?}",
                other.map(|r| r.err())
            ));
            None
        }
    }
}

/// Declares the scenario's exchanges, queues and bindings (again: a restarted broker keeps
/// the durable ones, and declaring them again must succeed).
async fn declare(scenario: &Scenario, setup: &Connection) -> Result<(), String> {
    for (n, queue) in scenario.queues.iter().enumerate() {
        // Dead-letter exchanges first, bound to their target.
        let is_target = scenario.queues.iter().any(|q| q.dead_letter_to == Some(n));
        if is_target {
            let exchange = scenario::dead_letter_exchange(&queue.name);
            let options = ExchangeOptions {
                durable: true,
                ..ExchangeOptions::default()
            };
            setup
                .declare_exchange(&exchange, "fanout", options)
                .await
                .map_err(|e| format!("declaring {exchange}: {e}"))?;
        }
    }
    for queue in &scenario.queues {
        let options = QueueOptions {
            durable: queue.durable(),
            arguments: queue.arguments(&scenario.queues),
            ..QueueOptions::default()
        };
        setup
            .declare_queue(&queue.name, options)
            .await
            .map_err(|e| format!("declaring {}: {e}", queue.name))?;
    }
    for queue in &scenario.queues {
        if let Some(target) = queue.dead_letter_to {
            let target = &scenario.queues[target].name;
            let exchange = scenario::dead_letter_exchange(target);
            setup
                .bind_queue(&exchange, target, "", Table::new())
                .await
                .map_err(|e| format!("binding {target}: {e}"))?;
        }
    }
    Ok(())
}

/// One broker life: start, declare, run the workload with this life's faults, end it.
async fn run_life(scenario: &Arc<Scenario>, ledger: &SharedLedger, config: &Path, n: usize) {
    let plan = &scenario.lives[n];
    if plan.file_size_limit.is_some() {
        lock(ledger).fault("full disk (prlimit --fsize)");
    }
    let Some((process, setup)) = start_broker(ledger, config, plan.file_size_limit, n).await else {
        return;
    };
    match tokio::time::timeout(RESTART_LIMIT, declare(scenario, &setup)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => lock(ledger).hang(format!("life {n}: {error}")),
        Err(_) => lock(ledger).hang(format!("life {n}: declaring took over 10 s")),
    }
    let publishing = process.connect().await;
    let consuming = process.connect().await;
    let habits = Habits {
        publishers: plan.publishers,
        large_messages: plan.file_size_limit.is_some(),
        dead_letters: plan.dead_letters,
        seed: plan.seed,
    };
    let mut workload = Workload::start(scenario, ledger, &publishing, &consuming, habits);
    let hostile = plan.hostile_after.map(|after| {
        let (addr, fingerprint) = (process.addr, process.fingerprint.clone());
        let ledger = Arc::clone(ledger);
        let setup = setup.clone();
        let probe = scenario.queues[0].name.clone();
        let seed = plan.seed ^ 0x5eed;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let report = faults::send_hostile_frames(addr, fingerprint, 3, seed).await;
            {
                let mut ledger = lock(&ledger);
                for _ in 0..report.sent {
                    ledger.fault("hostile frame");
                }
            }
            // The broker must still answer the other clients.
            let answer = tokio::time::timeout(Duration::from_secs(10), setup.queue_info(&probe));
            if answer.await.is_err() {
                lock(&ledger).hang(format!(
                    "life {n}: no answer within 10 s after hostile frames ({report:?})"
                ));
            }
        })
    });
    let probe = tokio::spawn(probe_liveness(
        setup.clone(),
        scenario.queues[0].name.clone(),
        Arc::clone(&workload.switches),
        Arc::clone(ledger),
        n,
    ));
    tokio::time::sleep(plan.length).await;
    if plan.ending.drains() {
        lock(ledger).fault("restart after a full drain");
        if !workload.stop_publishing(Duration::from_secs(30)).await {
            lock(ledger).hang(format!("life {n}: publishes unsettled 30 s after the stop"));
        }
        if let Err(state) =
            drain(scenario, ledger, &setup, &workload, Duration::from_secs(30)).await
        {
            lock(ledger).hang(format!("life {n}: no full drain within 30 s: {state}"));
        }
    }
    if let Some(hostile) = &hostile
        && plan.ending.drains()
    {
        // Let the probe finish rather than cut it off.
        while !hostile.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    workload.switches.ending.store(true, Ordering::Relaxed);
    probe.abort();
    match plan.ending {
        Ending::Kill | Ending::DrainThenKill => {
            lock(ledger).fault("kill -9");
            tokio::task::block_in_place(|| process.kill());
        }
        Ending::Terminate | Ending::DrainThenTerminate => {
            lock(ledger).fault("SIGTERM");
            let stopped = tokio::task::block_in_place(|| process.terminate(RESTART_LIMIT));
            match stopped {
                Ok((status, _)) if status.success() => {}
                Ok((status, took)) => lock(ledger).hang(format!(
                    "life {n}: after SIGTERM the broker exited with {status} after {took:?}"
                )),
                Err(limit) => lock(ledger).hang(format!(
                    "life {n}: the broker had not exited {limit:?} after SIGTERM"
                )),
            }
        }
    }
    // A killed broker says nothing: without a close the clients notice only at their idle
    // timeout. Everything that arrived before the kill is in the ledger already.
    futures::future::join3(setup.close(), publishing.close(), consuming.close()).await;
    if let Some(hostile) = hostile {
        hostile.abort();
        let _ = hostile.await;
    }
    if !workload.stop_publishing(Duration::from_secs(30)).await {
        lock(ledger).hang(format!(
            "life {n}: publishers did not notice the broker was gone within 30 s"
        ));
    }
    if !workload.stop_consuming(Duration::from_secs(30)).await {
        lock(ledger).hang(format!(
            "life {n}: consumers did not notice the broker was gone within 30 s"
        ));
    }
    lock(ledger).cycles += 1;
}

/// Asks the broker something every 500 ms until the life ends; a broker that does not answer
/// within [`ANSWER_LIMIT`] is a hang (it stopped serving its clients).
async fn probe_liveness(
    setup: Connection,
    queue: String,
    switches: Arc<workload::Switches>,
    ledger: SharedLedger,
    life: usize,
) {
    while !switches.ending.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = tokio::time::timeout(ANSWER_LIMIT, setup.queue_info(&queue)).await;
        if answer.is_err() && !switches.ending.load(Ordering::Relaxed) {
            lock(&ledger).hang(format!(
                "life {life}: the broker did not answer a request within {ANSWER_LIMIT:?}"
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(500).saturating_sub(started.elapsed())).await;
    }
}

/// Waits until every queue is empty, nothing is unacked or waiting for a sync, and the last
/// delayed message is due; consumers ack everything meanwhile.
async fn drain(
    scenario: &Scenario,
    ledger: &SharedLedger,
    setup: &Connection,
    workload: &Workload,
    within: Duration,
) -> Result<(), String> {
    let switches = &workload.switches;
    switches.draining.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + within;
    let mut quiet = 0;
    let mut received = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut state = Vec::new();
        let mut busy = false;
        for queue in &scenario.queues {
            let info = tokio::time::timeout(ANSWER_LIMIT, setup.queue_info(&queue.name)).await;
            let Ok(info) = info else {
                return Err(format!(
                    "the broker did not answer within {ANSWER_LIMIT:?} (queue_info {})",
                    queue.name
                ));
            };
            match info {
                Ok(info) => {
                    if info.ready + info.unacked > 0 {
                        busy = true;
                        state.push(format!(
                            "{}: {} ready, {} unacked, {} consumers",
                            queue.name, info.ready, info.unacked, info.consumers
                        ));
                    }
                }
                Err(error) => {
                    busy = true;
                    state.push(format!("{}: {error}", queue.name));
                }
            }
        }
        let due = lock(ledger)
            .last_due
            .is_some_and(|due| Instant::now() < due);
        let unsynced = switches.unsynced.load(Ordering::Relaxed);
        let now_received = switches.received.load(Ordering::Relaxed);
        if busy || due || unsynced > 0 || now_received != received {
            quiet = 0;
        } else {
            quiet += 1;
            if quiet >= 3 {
                return Ok(());
            }
        }
        received = now_received;
        if Instant::now() > deadline {
            return Err(format!(
                "{state:?}, {unsynced} acks unsynced, delayed messages pending: {due}"
            ));
        }
    }
}

/// A last life without faults: republish what deduplication should absorb, drain every
/// queue, and stop gracefully.
async fn final_drain(scenario: &Arc<Scenario>, ledger: &SharedLedger, config: &Path) {
    let life = scenario.lives.len();
    let Some((process, setup)) = start_broker(ledger, config, None, life).await else {
        return;
    };
    if let Err(error) = declare(scenario, &setup).await {
        lock(ledger).hang(format!("final life: {error}"));
    }
    let publishing = process.connect().await;
    let consuming = process.connect().await;
    let habits = Habits {
        publishers: 1,
        large_messages: false,
        dead_letters: true,
        seed: 0,
    };
    let mut workload = Workload::start(scenario, ledger, &publishing, &consuming, habits);
    workload.switches.draining.store(true, Ordering::Relaxed);
    if !workload.stop_publishing(Duration::from_secs(30)).await {
        lock(ledger).hang("final life: republished messages unsettled after 30 s".into());
    }
    if let Err(state) = drain(scenario, ledger, &setup, &workload, Duration::from_secs(60)).await {
        lock(ledger).hang(format!("final life: no full drain within 60 s: {state}"));
    }
    futures::future::join3(setup.close(), publishing.close(), consuming.close()).await;
    workload.stop_consuming(Duration::from_secs(30)).await;
    workload.switches.ending.store(true, Ordering::Relaxed);
    let stopped = tokio::task::block_in_place(|| process.terminate(RESTART_LIMIT));
    if stopped.is_err() {
        lock(ledger).hang("final life: the broker had not exited 10 s after SIGTERM".into());
    }
}
