//! A publish stream: reads publishes in batches, routes and enqueues each batch in one
//! `block_in_place` section, and answers with coalesced confirm ranges, rejects and returns.
//!
//! A publisher's confirm is sent only after every queue the message was routed to holds it.
//! A negative confirm (`Reject`) says why: unknown exchange, a routing plugin's fault, an
//! oversized message, a malformed delay, a full queue with `x-overflow` `reject-publish`, …
//! A message routed to several queues stays in those that accepted it even when one refused
//! it; the publisher still gets the negative confirm (RabbitMQ's rule). A duplicate
//! (deduplication window) is confirmed. Above the memory watermark the stream stops being read (QUIC flow
//! control then holds the publisher back) until queued bytes fall below it again.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use switchyard_client::framed::{FramedRecv, FramedSend};
use switchyard_protocol::{
    ErrorCode, NameKind, Publish, PublishDown, PublishUp, WireError, validate_headers,
    validate_name,
};

use super::Shared;
use super::wire_error::wire_error;
use crate::error::BrokerError;
use crate::message::Message;
use crate::queue::{self, QueuedMessage};

/// Publishes handled per batch at most.
const MAX_BATCH: usize = 1024;

/// How a single publish ended.
enum Outcome {
    Routed,
    Returned,
    Rejected(WireError),
}

pub(crate) async fn serve(
    mut send: FramedSend,
    mut recv: FramedRecv,
    quic: quinn::Connection,
    shared: &Arc<Shared>,
) {
    loop {
        wait_below_watermark(&mut send, shared).await;
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
        let outcomes: Vec<(u64, Outcome)> = tokio::task::block_in_place(|| {
            batch
                .into_iter()
                .map(|PublishUp::Publish(publish)| (publish.seq, handle(publish, shared)))
                .collect()
        });
        if write_outcomes(&mut send, &outcomes).await.is_err() {
            return;
        }
    }
}

fn handle(publish: Publish, shared: &Shared) -> Outcome {
    let limit = shared.config.max_message_bytes as usize;
    if publish.body.len() > limit {
        return Outcome::Rejected(wire_error(&BrokerError::MessageTooLarge {
            size: publish.body.len(),
            limit,
        }));
    }
    if let Err(error) = validate_name(NameKind::Exchange, &publish.exchange)
        .and_then(|()| validate_name(NameKind::RoutingKey, &publish.routing_key))
        .and_then(|()| validate_headers(&publish.headers))
    {
        return Outcome::Rejected(error);
    }
    let message = Message {
        routing_key: publish.routing_key,
        headers: publish.headers,
        properties: publish.properties,
        body: publish.body,
    };
    let now = Instant::now();
    let visible_at = match queue::visible_at(&message, now, SystemTime::now()) {
        Ok(at) => at,
        Err(error) => return Outcome::Rejected(wire_error(&error)),
    };
    let routed = match shared.topology.route(&publish.exchange, &message) {
        Ok(routed) => routed,
        Err(error) => return Outcome::Rejected(wire_error(&error)),
    };
    if routed.queues.is_empty() {
        return if publish.mandatory {
            Outcome::Returned
        } else {
            Outcome::Routed
        };
    }
    let (exchange, message, visible_at) = match routed.dead_lettered {
        // A routing fault dead-lettered it: it is no longer the publisher's delayed message.
        Some((target, letter)) => (Arc::<str>::from(target), Arc::new(letter), None),
        None => (
            Arc::<str>::from(publish.exchange),
            Arc::new(message),
            visible_at,
        ),
    };
    // Queues that accept keep the message even when another refuses (as RabbitMQ does); the
    // publisher hears of any refusal.
    let mut full = Vec::new();
    for queue in &routed.queues {
        let enqueued =
            queue.enqueue([
                QueuedMessage::new(Arc::clone(&exchange), Arc::clone(&message))
                    .visible_at(visible_at),
            ]);
        if enqueued.refused > 0 {
            full.push(queue.name().to_owned());
        }
    }
    if !full.is_empty() {
        return Outcome::Rejected(wire_error(&BrokerError::QueueFull { queues: full }));
    }
    Outcome::Routed
}

/// Confirms runs of accepted publishes as ranges; a return precedes its confirm.
async fn write_outcomes(
    send: &mut FramedSend,
    outcomes: &[(u64, Outcome)],
) -> Result<(), switchyard_client::FrameError> {
    let mut run: Option<(u64, u64)> = None;
    for (seq, outcome) in outcomes {
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
                    Some((first, last)) if last + 1 == seq => Some((first, seq)),
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
async fn wait_below_watermark(send: &mut FramedSend, shared: &Shared) {
    let watermark = shared.config.memory_high_watermark_bytes;
    if shared.topology.memory().bytes() <= watermark {
        return;
    }
    let _ = send
        .send(&PublishDown::Blocked {
            reason: WireError::new(
                ErrorCode::Overloaded,
                format!("queued messages exceed the memory watermark of {watermark} bytes"),
            ),
        })
        .await;
    while shared.topology.memory().bytes() > watermark {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = send.send(&PublishDown::Unblocked).await;
}
