//! A publish stream: reads publishes in batches, checks what the QUIC protocol limits (names,
//! header names), hands each batch to the session's [`Publisher`] to route and enqueue in one
//! go (plugin calls leave the async worker while they run, see `plugin::sandbox_call`), and
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
//! disk below its watermark or a failed write, … (the session decides; see `session::publish`).
//! Above the memory watermark the stream stops being read (QUIC flow control then holds the
//! publisher back) until queued bytes fall below it again: the session's backpressure, told the
//! QUIC way (`Blocked`, `Unblocked`).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use switchyard_client::framed::{FramedRecv, FramedSend};
use switchyard_protocol::{
    ErrorCode, NameKind, Publish, PublishDown, PublishUp, UNCONFIRMED, WireError, validate_headers,
    validate_name,
};

use super::Shared;
use super::wire_error::wire_error;
use crate::session::{
    BrokerError, DurabilityWait, Message, Outcome, PendingPublish, Pressure, PublishRequest,
    Publisher, Session,
};

/// Publishes handled per batch at most.
const MAX_BATCH: usize = 1024;

/// Batches routed but not yet answered (waiting for their fsync) per stream at most. Batches
/// are as small as one message when the publisher is quick, so this must cover a publisher's
/// whole confirm window; each entry is a few words per message (the messages themselves are in
/// their queues, under the memory watermark).
const MAX_BATCHES_IN_FLIGHT: usize = 1024;

/// A confirmed publish waiting for its answer.
struct Pending {
    seq: u64,
    publish: PendingPublish,
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
    session: &Arc<Session>,
    shared: &Arc<Shared>,
    unread_answers: Arc<Semaphore>,
) {
    let publisher = session.publisher();
    let (to_writer, from_reader) = mpsc::channel(MAX_BATCHES_IN_FLIGHT);
    let writer = tokio::spawn(write_answers(send, from_reader, publisher.durability()));
    read_publishes(
        recv,
        quic,
        session,
        publisher,
        shared,
        to_writer,
        unread_answers,
    )
    .await;
    let _ = writer.await;
}

async fn read_publishes(
    mut recv: FramedRecv,
    quic: quinn::Connection,
    session: &Session,
    mut publisher: Publisher,
    shared: &Shared,
    to_writer: mpsc::Sender<ToWriter>,
    unread_answers: Arc<Semaphore>,
) {
    let budget = shared
        .config
        .limits
        .max_unread_answers_per_connection
        .max(1);
    loop {
        if !wait_below_watermark(&to_writer, session).await {
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
        let pending = publish_batch(&mut publisher, batch);
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

/// Checks what this protocol limits, then publishes the rest through the session. Unconfirmed
/// publishes get no `Pending` (a refusal of one is only logged).
fn publish_batch(publisher: &mut Publisher, batch: Vec<PublishUp>) -> Vec<Pending> {
    let mut seqs = Vec::with_capacity(batch.len());
    let mut requests = Vec::with_capacity(batch.len());
    let mut refused = Vec::new();
    for PublishUp::Publish(publish) in batch {
        match to_request(publish) {
            Ok((seq, request)) => {
                seqs.push(seq);
                requests.push(request);
            }
            Err((seq, error)) => refused.push((seqs.len() + refused.len(), seq, error)),
        }
    }
    let published = publisher.publish_batch(requests);
    let mut pending: Vec<Pending> = seqs
        .into_iter()
        .zip(published)
        .map(|(seq, publish)| Pending { seq, publish })
        .collect();
    // Refusals go back to their places among the answers, so confirms stay in order.
    for (at, seq, error) in refused {
        pending.insert(
            at,
            Pending {
                seq,
                // This protocol's limits answer InvalidArgument, as the session's would.
                publish: PendingPublish::refused(BrokerError::invalid(error.message)),
            },
        );
    }
    pending.retain(|p| {
        if p.seq != UNCONFIRMED {
            return true;
        }
        if let Outcome::Refused(error) = &p.publish.outcome {
            tracing::debug!(%error, "unconfirmed publish refused");
        }
        false
    });
    pending
}

/// A frame's publish as a session request, once the QUIC protocol's own limits are met.
fn to_request(publish: Publish) -> Result<(u64, PublishRequest), (u64, WireError)> {
    let seq = publish.seq;
    validate_name(NameKind::Exchange, &publish.exchange)
        .and_then(|()| validate_name(NameKind::RoutingKey, &publish.routing_key))
        .and_then(|()| validate_headers(&publish.headers))
        .map_err(|error| (seq, error))?;
    Ok((
        seq,
        PublishRequest {
            exchange: publish.exchange,
            message: Message {
                routing_key: publish.routing_key,
                headers: publish.headers,
                properties: publish.properties.into(),
                body: publish.body,
            },
            mandatory: publish.mandatory,
        },
    ))
}

/// Sends each batch's answers once its messages are durable, in the order they were read.
/// Everything waiting when the writer looks is settled together: one wait for the newest log
/// positions covers them all, then their answers go out in one write.
async fn write_answers(
    mut send: FramedSend,
    mut from_reader: mpsc::Receiver<ToWriter>,
    durability: DurabilityWait,
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
                    durability
                        .settle(pending.iter_mut().map(|p| &mut p.publish))
                        .await;
                    if write_outcomes(&mut send, &pending).await.is_err()
                        || send.send(&frame).await.is_err()
                    {
                        return;
                    }
                    pending.clear();
                }
            }
        }
        durability
            .settle(pending.iter_mut().map(|p| &mut p.publish))
            .await;
        if write_outcomes(&mut send, &pending).await.is_err() {
            return;
        }
    }
}

/// Confirms runs of accepted publishes as ranges; a return precedes its confirm.
async fn write_outcomes(
    send: &mut FramedSend,
    outcomes: &[Pending],
) -> Result<(), switchyard_client::FrameError> {
    let mut run: Option<(u64, u64)> = None;
    for Pending { seq, publish } in outcomes {
        let seq = *seq;
        match &publish.outcome {
            outcome @ (Outcome::Accepted | Outcome::Returned) => {
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
            Outcome::Refused(error) => {
                flush_run(send, &mut run)?;
                send.push(&PublishDown::Reject {
                    seq,
                    error: wire_error(error),
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

/// Holds the stream while the session's publishers are held back, telling the publisher.
/// Returns false when the writer is gone.
async fn wait_below_watermark(to_writer: &mpsc::Sender<ToWriter>, session: &Session) -> bool {
    let mut backpressure = session.backpressure();
    let Pressure::Blocked { reason } = backpressure.now() else {
        return true;
    };
    let blocked = PublishDown::Blocked {
        reason: WireError::new(ErrorCode::Overloaded, reason),
    };
    if to_writer.send(ToWriter::Frame(blocked)).await.is_err() {
        return false;
    }
    backpressure.cleared().await;
    to_writer
        .send(ToWriter::Frame(PublishDown::Unblocked))
        .await
        .is_ok()
}
