//! Bugs the runner found, fixed or not: as a small deterministic test where one could be
//! written (an unfixed one `#[ignore]`d, run with `cargo test -p switchyard-tests --test
//! fault_injection -- --ignored known_bug`), otherwise described here with the seed that shows
//! them. What still triggers an unconfirmed fix is kept out of scenarios unless
//! `FAULT_KNOWN_BUGS` is set, and the report says so.
//!
//! Broker freeze, fixed since: a publish that made a length-limited durable queue dead-letter
//! waited for the dead letters' fsync with `futures::executor::block_on` on a Tokio worker
//! (`Topology::wait_durable`). Inside a task whose cooperative budget was spent, Tokio's
//! `watch::changed` answers `Pending` and wakes at once, for ever: both workers spun there and
//! the broker stopped reading its socket. `FAULT_KNOWN_BUGS=1 FAULT_HEAVY=1 FAULT_SEED=729501507
//! FAULT_CYCLES=7` (long run) froze in every run before (4 of 4; the last: 4 hangs, 25,791
//! publishes); after (the wait runs unconstrained, in `block_in_place`) it ran clean: 141,360 publishes,
//! 0 hangs, 0 lost.
//!
//! Confirmed persistent messages in a dead-letter chain of `x-message-ttl=0` → TTL 164 → a plain
//! durable queue were lost around restarts in 3 of 4 runs of `FAULT_SEED=28752879
//! FAULT_KNOWN_BUGS=1 FAULT_CYCLES=7`; after the fixes above (and the queue timer held while
//! definitions are restored) 3 runs of that seed lost nothing. The cause was not pinned down, so
//! TTL dead-lettering stays out of default scenarios until longer runs have shown it clean.
//!
//! Fixed since (the runner found them; the fixes have tests of their own): a dead letter whose
//! write failed on a full disk was lost with its source message (`FAULT_SEED=238645140
//! FAULT_CYCLES=10 FAULT_KNOWN_BUGS=full-disk`, long run: 14 lost; now the source keeps it and
//! tries again, `policies::a_dead_letter_the_exchange_fails_to_route_is_kept_and_routed_later`);
//! and `Consumer::sync` deadlocked behind a full delivery buffer (the test below, no longer
//! ignored).
//!
//! Suspected broker bug, seen once in 150 lives and not reproduced by one replay: a message of a
//! queue with `x-delivery-limit=4` and a dead-letter exchange, published in a full-disk life that
//! ended with `kill -9`, was delivered again in the next life without `redelivered`
//! (`FAULT_SEED=238645146 FAULT_CYCLES=10 FAULT_KNOWN_BUGS=full-disk`, long run). A "delivered"
//! record that could not be written on the full disk would explain it. Such duplicates (of messages
//! published or delivered in a full-disk life) are reported as *tolerated* and fail the run only
//! when `FAULT_KNOWN_BUGS` is set.
//!
//! Queues that dead-letter by length limit or TTL, and dead-lettering during a full-disk life,
//! were left out of scenarios unless `FAULT_KNOWN_BUGS` was set. A long run with them
//! (`FAULT_KNOWN_BUGS=1 FAULT_CYCLES=60`, 2026-12-02: 60 lives, 114,747 published, 113,786
//! confirmed, 115,282 delivered; 41 kill -9, 19 SIGTERM, 10 full disks, 46 hostile frames)
//! lost nothing, hung never and had no unmarked duplicate, so they are in every scenario now.

use std::time::Duration;

use switchyard_client::{ConsumeOptions, OutgoingMessage, QueueOptions};
use switchyard_tests::{TestBroker, next_delivery};

/// `Consumer::sync` did not return when the client's delivery buffer (8 batches) was full: the
/// subscription task was parked handing over a batch and did not send the sync, and the
/// caller, waiting on the sync, did not read. Any consumer whose prefetch lets more than 8
/// batches arrive while it syncs can hang this way: here 20 deliveries arriving one at a time
/// (the fault runner saw it with prefetch 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_returns_while_deliveries_wait_unread() {
    let t = TestBroker::start().await;
    let c = &t.client;
    c.declare_queue("backlog", QueueOptions::default())
        .await
        .unwrap();
    let mut options = ConsumeOptions::new("backlog");
    options.prefetch = 50;
    let mut consumer = c.consume(options).await.unwrap();
    // Messages arriving one at a time reach the client one batch each.
    let mut publisher = c.publisher().await.unwrap();
    for n in 0..20u32 {
        publisher
            .publish_confirmed(OutgoingMessage::new("", "backlog", n.to_string()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    next_delivery(&mut consumer).await.ack().unwrap();
    let synced = tokio::time::timeout(Duration::from_secs(5), consumer.sync()).await;
    assert!(
        matches!(synced, Ok(Ok(()))),
        "the sync did not return: {synced:?}"
    );
    t.broker.shutdown().await;
}
