//! A publish stream: reads publishes in batches, routes and enqueues each batch in one go
//! (plugin calls leave the async worker while they run, see `plugin::sandbox_call`), and
//! answers with coalesced confirm ranges, rejects and returns.
//!
//! A publisher's confirm is sent only after every queue the message was routed to holds it,
//! and, for a persistent message routed to durable queues, after their logs made it durable
//! (the store's fsync policy says when that is). The stream's reader goes on reading and
//! routing while earlier batches wait for their fsync: a writer task sends outcomes in order as
//! they become final, so one fsync covers many batches.
//!
//! A negative confirm (`Reject`) says why: unknown exchange, a routing plugin's fault, an
//! oversized message, a malformed delay, a full queue with `x-overflow` `reject-publish`, the
//! disk below its watermark or a failed write, … A message routed to several queues stays in
//! those that accepted it even when one refused it; the publisher still gets the negative
//! confirm (RabbitMQ's rule). A duplicate (deduplication window) is confirmed. Above the memory
//! watermark the stream stops being read (QUIC flow
//! control then holds the publisher back) until queued bytes fall below it again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use switchyard_client::framed::{FramedRecv, FramedSend};
use switchyard_protocol::{
    ErrorCode, NameKind, Publish, PublishDown, PublishUp, UNCONFIRMED, WireError, validate_headers,
    validate_name,
};

use super::Shared;
use super::wire_error::wire_error;
use crate::error::BrokerError;
use crate::message::Message;
use crate::queue::{self, QueuedMessage};
use crate::store::{LsnStatus, QueueLog, wait_durable};

/// Publishes handled per batch at most.
const MAX_BATCH: usize = 1024;

/// Batches routed but not yet answered (waiting for their fsync) per stream at most. Batches
/// are as small as one message when the publisher is quick, so this must cover a publisher's
/// whole confirm window; each entry is a few words per message (the messages themselves are in
/// their queues, under the memory watermark).
const MAX_BATCHES_IN_FLIGHT: usize = 1024;

/// How a single publish ended.
enum Outcome {
    Routed,
    Returned,
    Rejected(WireError),
}

/// A publish after validation and routing.
enum Prepared {
    /// Nothing to enqueue: refused, or routed to no queue.
    Done(Outcome),
    /// To be enqueued into every one of `queues`.
    Enqueue {
        queues: Vec<Arc<queue::Queue>>,
        message: QueuedMessage,
    },
}

/// A publish's outcome and the log positions that must be durable before it is final.
struct Pending {
    seq: u64,
    outcome: Outcome,
    durable: Vec<(Arc<QueueLog>, u64)>,
}

/// What the reader hands the writer task. A batch holds its permits of the connection's
/// unread-answer budget until its answers are written.
enum ToWriter {
    Batch(Vec<Pending>, OwnedSemaphorePermit),
    Frame(PublishDown),
}

/// Serves a publish stream. `unread_answers` is the connection's budget of answers owed to
/// the client: a client that does not read them stops being read from (review finding 20).
pub(crate) async fn serve(
    send: FramedSend,
    recv: FramedRecv,
    quic: quinn::Connection,
    shared: &Arc<Shared>,
    unread_answers: Arc<Semaphore>,
) {
    let (to_writer, from_reader) = mpsc::channel(MAX_BATCHES_IN_FLIGHT);
    let writer = tokio::spawn(write_answers(send, from_reader, Arc::clone(shared)));
    read_publishes(recv, quic, shared, to_writer, unread_answers).await;
    let _ = writer.await;
}

async fn read_publishes(
    mut recv: FramedRecv,
    quic: quinn::Connection,
    shared: &Arc<Shared>,
    to_writer: mpsc::Sender<ToWriter>,
    unread_answers: Arc<Semaphore>,
) {
    let budget = shared
        .config
        .limits
        .max_unread_answers_per_connection
        .max(1);
    let mut last_exchange = LastExchange::default();
    loop {
        if !wait_below_watermark(&to_writer, shared).await {
            return;
        }
        let first = match recv.next::<PublishUp>().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                // A malformed or oversized frame ends the connection, not just the stream: the
                // client is broken or hostile. Other connections are unaffected.
                tracing::debug!(%error, "publish stream broken");
                quic.close(
                    error.error_code().as_u16().into(),
                    error.to_string().as_bytes(),
                );
                return;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match recv.next_buffered::<PublishUp>() {
                Ok(Some(frame)) => batch.push(frame),
                Ok(None) => break,
                Err(error) => {
                    quic.close(
                        error.error_code().as_u16().into(),
                        error.to_string().as_bytes(),
                    );
                    return;
                }
            }
        }
        let pending = route_and_enqueue(batch, shared, &mut last_exchange);
        if pending.is_empty() {
            continue;
        }
        let owed = u32::try_from(pending.len()).unwrap_or(u32::MAX).min(budget);
        let Ok(permit) = Arc::clone(&unread_answers).acquire_many_owned(owed).await else {
            return;
        };
        if to_writer
            .send(ToWriter::Batch(pending, permit))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Sends each batch's answers once its messages are durable, in the order they were read.
/// Everything waiting when the writer looks is settled together: one wait for the newest log
/// positions covers them all, then their answers go out in one write.
async fn write_answers(
    mut send: FramedSend,
    mut from_reader: mpsc::Receiver<ToWriter>,
    shared: Arc<Shared>,
) {
    let mut items = Vec::new();
    while from_reader
        .recv_many(&mut items, MAX_BATCHES_IN_FLIGHT)
        .await
        > 0
    {
        let mut pending: Vec<Pending> = Vec::new();
        // Given back once the answers are written.
        let mut permits = Vec::new();
        for item in items.drain(..) {
            match item {
                ToWriter::Batch(batch, permit) => {
                    pending.extend(batch);
                    permits.push(permit);
                }
                ToWriter::Frame(frame) => {
                    // Blocked/Unblocked keep their place among the answers.
                    settle_durability(&mut pending, &shared).await;
                    if write_outcomes(&mut send, &pending).await.is_err()
                        || send.send(&frame).await.is_err()
                    {
                        return;
                    }
                    pending.clear();
                }
            }
        }
        settle_durability(&mut pending, &shared).await;
        if write_outcomes(&mut send, &pending).await.is_err() {
            return;
        }
    }
}

/// Waits until the batch's log positions are durable or lost; a publish whose record was
/// lost becomes a reject. Each publish carries its own record's LSN: the wait asks only for
/// the newest per log (the log becomes durable in order), but a write can fail for one chunk
/// and succeed for the next, so where a log lost anything within the batch's range each
/// publish is checked on its own.
async fn settle_durability(batch: &mut [Pending], shared: &Shared) {
    // Per log: the oldest and the newest LSN in the batch.
    let mut ranges: Vec<(Arc<QueueLog>, u64, u64)> = Vec::new();
    for (log, lsn) in batch.iter().flat_map(|p| p.durable.iter()) {
        match ranges.iter_mut().find(|(l, ..)| Arc::ptr_eq(l, log)) {
            Some((_, oldest, newest)) => {
                *oldest = (*oldest).min(*lsn);
                *newest = (*newest).max(*lsn);
            }
            None => ranges.push((Arc::clone(log), *lsn, *lsn)),
        }
    }
    let Some(store) = shared.topology.store() else {
        return;
    };
    if ranges.is_empty() {
        return;
    }
    let newest: Vec<(Arc<QueueLog>, u64)> = ranges
        .iter()
        .map(|(log, _, newest)| (Arc::clone(log), *newest))
        .collect();
    wait_durable(store.progress(), &newest).await;
    let damaged: Vec<&Arc<QueueLog>> = ranges
        .iter()
        .filter(|(log, oldest, newest)| log.lost_between(*oldest, *newest))
        .map(|(log, ..)| log)
        .collect();
    if damaged.is_empty() {
        return;
    }
    for pending in batch.iter_mut() {
        let lost = pending.durable.iter().any(|(log, lsn)| {
            damaged.iter().any(|d| Arc::ptr_eq(d, log)) && log.status(*lsn) == LsnStatus::Lost
        });
        if lost {
            pending.outcome = Outcome::Rejected(wire_error(&BrokerError::storage(
                "writing the message to disk failed; it may or may not be delivered",
            )));
        }
    }
}

/// Validates and routes a batch of publishes, then enqueues them queue by queue: each queue
/// takes its share of the batch, in publish order, under one lock and with one dispatch (a
/// fanout message would otherwise lock and dispatch every queue once per message). Queues that
/// accept keep a message even when another refuses it (as RabbitMQ does); the publisher hears
/// of any refusal. Unconfirmed publishes get no `Pending`.
fn route_and_enqueue(
    batch: Vec<PublishUp>,
    shared: &Shared,
    last_exchange: &mut LastExchange,
) -> Vec<Pending> {
    let publishes = batch.len();
    let mut pending = Vec::with_capacity(publishes);
    // Per queue: the queue, and its messages with the index of their publish in `pending`.
    let mut shares: Vec<(Arc<queue::Queue>, Vec<usize>, Vec<QueuedMessage>)> = Vec::new();
    let mut share_of: HashMap<*const queue::Queue, usize> = HashMap::new();
    for PublishUp::Publish(publish) in batch {
        let seq = publish.seq;
        let at = pending.len();
        let outcome = match prepare(publish, shared, last_exchange) {
            Prepared::Done(outcome) => outcome,
            Prepared::Enqueue { queues, message } => {
                for queue in queues {
                    let share = *share_of.entry(Arc::as_ptr(&queue)).or_insert_with(|| {
                        // Room for every publish left in the batch (a fanout queue takes them
                        // all): a share then never grows.
                        let room = publishes - at;
                        shares.push((
                            Arc::clone(&queue),
                            Vec::with_capacity(room),
                            Vec::with_capacity(room),
                        ));
                        shares.len() - 1
                    });
                    shares[share].1.push(at);
                    shares[share].2.push(message.clone());
                }
                Outcome::Routed
            }
        };
        pending.push(Pending {
            seq,
            outcome,
            durable: Vec::new(),
        });
    }
    let mut full: HashMap<usize, Vec<String>> = HashMap::new();
    for (queue, publishes, messages) in shares {
        let enqueued = queue.enqueue(messages);
        for position in enqueued.refused {
            full.entry(publishes[position])
                .or_default()
                .push(queue.name().to_owned());
        }
        if !enqueued.durable_lsns.is_empty()
            && let Some(log) = queue.log()
        {
            for (position, lsn) in enqueued.durable_lsns {
                pending[publishes[position]]
                    .durable
                    .push((Arc::clone(&log), lsn));
            }
        }
    }
    for (at, queues) in full {
        pending[at].outcome = Outcome::Rejected(wire_error(&BrokerError::QueueFull { queues }));
    }
    pending.retain(|p| {
        if p.seq != UNCONFIRMED {
            return true;
        }
        if let Outcome::Rejected(error) = &p.outcome {
            tracing::debug!(%error, "unconfirmed publish refused");
        }
        false
    });
    pending
}

fn prepare(publish: Publish, shared: &Shared, last_exchange: &mut LastExchange) -> Prepared {
    let limit = shared.config.max_message_bytes as usize;
    if publish.body.len() > limit {
        return Prepared::Done(Outcome::Rejected(wire_error(
            &BrokerError::MessageTooLarge {
                size: publish.body.len(),
                limit,
            },
        )));
    }
    if let Err(error) = validate_name(NameKind::Exchange, &publish.exchange)
        .and_then(|()| validate_name(NameKind::RoutingKey, &publish.routing_key))
        .and_then(|()| validate_headers(&publish.headers))
    {
        return Prepared::Done(Outcome::Rejected(error));
    }
    let mut headers = publish.headers;
    queue::without_publisher_trail(&mut headers);
    if headers.len() > queue::MAX_PUBLISHED_HEADERS {
        return Prepared::Done(Outcome::Rejected(wire_error(&BrokerError::invalid(
            format!(
                "{} headers; a published message may have at most {} (the rest are kept for the dead-letter trail)",
                headers.len(),
                queue::MAX_PUBLISHED_HEADERS
            ),
        ))));
    }
    let message = Message {
        routing_key: publish.routing_key,
        headers,
        properties: publish.properties.into(),
        body: publish.body,
    };
    // Everything the message carries counts, not only its body (review finding 7); and so a
    // delivery of it always fits a frame (see `BrokerConfig::validate`).
    let size = message.size_bytes();
    if size > limit {
        return Prepared::Done(Outcome::Rejected(wire_error(
            &BrokerError::MessageTooLarge { size, limit },
        )));
    }
    let now = Instant::now();
    let visible_at = match queue::visible_at(&message, now, SystemTime::now()) {
        Ok(at) => at,
        Err(error) => return Prepared::Done(Outcome::Rejected(wire_error(&error))),
    };
    let routed = match shared.topology.route(&publish.exchange, &message) {
        Ok(routed) => routed,
        Err(error) => return Prepared::Done(Outcome::Rejected(wire_error(&error))),
    };
    if routed.queues.is_empty() {
        return Prepared::Done(if publish.mandatory {
            Outcome::Returned
        } else {
            Outcome::Routed
        });
    }
    if message.properties.persistent
        && let Some(store) = shared.topology.store()
        && routed.queues.iter().any(|q| q.properties().durable)
        && let Err(refusal) = store.check_disk()
    {
        return Prepared::Done(Outcome::Rejected(wire_error(&BrokerError::storage(
            refusal.to_string(),
        ))));
    }
    let (exchange, message, visible_at) = match routed.dead_lettered {
        // A routing fault dead-lettered it: it is no longer the publisher's delayed message.
        Some((target, letter)) => (Arc::<str>::from(target), Arc::new(letter), None),
        None => (
            last_exchange.name(publish.exchange),
            Arc::new(message),
            visible_at,
        ),
    };
    Prepared::Enqueue {
        queues: routed.queues,
        message: QueuedMessage::new(exchange, message).visible_at(visible_at),
    }
}

/// The name of the exchange a stream last published to. Every queued copy of a message holds
/// its exchange's name; a publisher usually sticks to one exchange, so its messages share one
/// allocation instead of one each.
#[derive(Debug, Default)]
struct LastExchange(Option<Arc<str>>);

impl LastExchange {
    fn name(&mut self, exchange: String) -> Arc<str> {
        match &self.0 {
            Some(last) if **last == *exchange => Arc::clone(last),
            _ => {
                let name = Arc::<str>::from(exchange);
                self.0 = Some(Arc::clone(&name));
                name
            }
        }
    }
}

/// Confirms runs of accepted publishes as ranges; a return precedes its confirm.
async fn write_outcomes(
    send: &mut FramedSend,
    outcomes: &[Pending],
) -> Result<(), switchyard_client::FrameError> {
    let mut run: Option<(u64, u64)> = None;
    for Pending { seq, outcome, .. } in outcomes {
        let seq = *seq;
        match outcome {
            Outcome::Routed | Outcome::Returned => {
                if matches!(outcome, Outcome::Returned) {
                    flush_run(send, &mut run)?;
                    send.push(&PublishDown::Returned {
                        seq,
                        reason: WireError::new(ErrorCode::NoRoute, "no queue is bound to take it"),
                    })?;
                }
                run = match run {
                    Some((first, last)) if last.checked_add(1) == Some(seq) => Some((first, seq)),
                    Some(_) => {
                        flush_run(send, &mut run)?;
                        Some((seq, seq))
                    }
                    None => Some((seq, seq)),
                };
            }
            Outcome::Rejected(error) => {
                flush_run(send, &mut run)?;
                send.push(&PublishDown::Reject {
                    seq,
                    error: error.clone(),
                })?;
            }
        }
    }
    flush_run(send, &mut run)?;
    send.flush().await
}

fn flush_run(
    send: &mut FramedSend,
    run: &mut Option<(u64, u64)>,
) -> Result<(), switchyard_client::FrameError> {
    if let Some((first, last)) = run.take() {
        send.push(&PublishDown::Confirm { first, last })?;
    }
    Ok(())
}

/// Holds the stream while queued bytes are above the watermark, telling the publisher.
/// Returns false when the writer is gone.
async fn wait_below_watermark(to_writer: &mpsc::Sender<ToWriter>, shared: &Shared) -> bool {
    let watermark = shared.config.memory_high_watermark_bytes;
    if shared.topology.memory().bytes() <= watermark {
        return true;
    }
    let blocked = PublishDown::Blocked {
        reason: WireError::new(
            ErrorCode::Overloaded,
            format!("queued messages exceed the memory watermark of {watermark} bytes"),
        ),
    };
    if to_writer.send(ToWriter::Frame(blocked)).await.is_err() {
        return false;
    }
    while shared.topology.memory().bytes() > watermark {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    to_writer
        .send(ToWriter::Frame(PublishDown::Unblocked))
        .await
        .is_ok()
}
