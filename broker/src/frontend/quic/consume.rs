//! A consume stream: one consumer, a session [`Subscription`]. Subscribes it (the session
//! compiles its filter, if any), then writes its deliveries in coalesced batches and applies its
//! acks, nacks and credit changes. A
//! Cancel stops deliveries and is answered with Cancelled; the client may go on settling what
//! it holds until it finishes its side. When the stream or the connection ends, the unacked
//! messages left return to the queue.

use std::sync::Arc;

use switchyard_client::framed::{FramedRecv, FramedSend};
use switchyard_protocol::{
    CancelReason, ConsumeDown, ConsumeUp, DeliverRef, ErrorCode, NameKind, Subscribe, WireError,
    validate_name,
};

use super::Shared;
use super::wire_error::wire_error;
use crate::session::{
    Cancellation, DeliveryEvent, DeliveryReceiver, DeliverySender, Session, Settlement,
    SubscribeOptions, Subscription, delivery_channel,
};

/// Deliveries gathered for one flush before it is written (a batch is never split).
const MAX_DELIVERIES_PER_WRITE: usize = 256;

/// Acks, nacks and credit changes applied under one queue lock at most.
const MAX_SETTLEMENTS_AT_ONCE: usize = 1024;

pub(crate) async fn serve(
    mut send: FramedSend,
    mut recv: FramedRecv,
    quic: quinn::Connection,
    session: &Arc<Session>,
    shared: &Arc<Shared>,
) {
    let subscribe = match recv.next::<ConsumeUp>().await {
        Ok(Some(ConsumeUp::Subscribe(subscribe))) => subscribe,
        Ok(Some(_)) => {
            let _ = send
                .send(&ConsumeDown::Error(WireError::new(
                    ErrorCode::ProtocolViolation,
                    "a consume stream must begin with Subscribe",
                )))
                .await;
            return;
        }
        Ok(None) => return,
        Err(error) => {
            quic.close(
                error.error_code().as_u16().into(),
                error.to_string().as_bytes(),
            );
            return;
        }
    };
    let prefetch = subscribe.prefetch;
    let (events_tx, mut events) = delivery_channel(buffered_deliveries(prefetch));
    let subscribed = tokio::task::block_in_place(|| subscribe_to(subscribe, events_tx, session));
    let subscription = match subscribed {
        Ok(subscribed) => subscribed,
        Err(error) => {
            let _ = send.send(&ConsumeDown::Error(error)).await;
            send.finish();
            return;
        }
    };
    if send
        .send(&ConsumeDown::Subscribed {
            consumer_tag: subscription.tag().to_owned(),
        })
        .await
        .is_err()
    {
        tokio::task::block_in_place(|| subscription.close());
        return;
    }
    let span = tracing::debug_span!(
        "consumer",
        tag = subscription.tag(),
        queue = subscription.queue().name()
    );
    let _enter = span.enter();
    let mut shutdown = shared.shutdown.clone();
    // A Cancel or Sync read while gathering settlements, handled on the next round.
    let mut carried: Option<ConsumeUp> = None;
    // After the client's Cancel: no more deliveries, but the client may still settle the ones
    // it has (and sync) until it finishes its side of the stream.
    let mut cancelled = false;
    // The log position of the last sync: settlements after it are what the next one covers.
    let mut synced_lsn = subscription.sync_point();
    loop {
        tokio::select! {
            event = events.recv(), if !cancelled => {
                let Some(event) = event else { break };
                let mut unsendable = Vec::new();
                let written = write_deliveries(&mut send, event, &mut events, &mut unsendable).await;
                if !unsendable.is_empty() {
                    tokio::task::block_in_place(|| subscription.refuse_unsendable(&unsendable));
                }
                match written {
                    Ok(true) => subscription.dispatch(),
                    Ok(false) => {
                        let _ = send.send(&ConsumeDown::Cancelled { reason: CancelReason::QueueDeleted }).await;
                        send.finish();
                        break;
                    }
                    Err(_) => break,
                }
            }
            frame = async {
                match carried.take() {
                    Some(frame) => Ok(Some(frame)),
                    None => recv.next::<ConsumeUp>().await,
                }
            } => match frame {
                Ok(Some(ConsumeUp::Cancel)) if cancelled => {}
                Ok(Some(ConsumeUp::Cancel)) => {
                    cancelled = true;
                    tokio::task::block_in_place(|| subscription.cancel());
                    // What the queue handed over before the cancel is the client's: it goes
                    // out ahead of `Cancelled`, to be settled like any other delivery.
                    let mut written = Ok(true);
                    let mut unsendable = Vec::new();
                    while let (Ok(true), Some(event)) = (&written, events.try_recv()) {
                        written = write_deliveries(&mut send, event, &mut events, &mut unsendable).await;
                    }
                    if !unsendable.is_empty() {
                        tokio::task::block_in_place(|| subscription.refuse_unsendable(&unsendable));
                    }
                    // An auto-delete queue goes with its last consumer, as the client hears
                    // `Cancelled`.
                    tokio::task::block_in_place(|| subscription.after_cancel());
                    if written.is_err()
                        || send.send(&ConsumeDown::Cancelled { reason: CancelReason::ClientRequest }).await.is_err()
                    {
                        break;
                    }
                }
                Ok(Some(ConsumeUp::Sync { id })) => {
                    match subscription.synced(synced_lsn).await {
                        Ok(lsn) => synced_lsn = lsn,
                        Err(error) => {
                            let _ = send.send(&ConsumeDown::Error(wire_error(&error))).await;
                            send.finish();
                            break;
                        }
                    }
                    if send.send(&ConsumeDown::Synced { id }).await.is_err() {
                        break;
                    }
                }
                Ok(Some(frame)) => {
                    // Settle this frame and every one already buffered behind it in one go,
                    // up to a Cancel or Sync (which must wait for them), handled next round.
                    let mut frames = vec![frame];
                    // A malformed frame fails the connection once the settlements before it
                    // are applied (its bytes are gone from the buffer: it cannot be re-read).
                    let mut malformed = None;
                    while frames.len() < MAX_SETTLEMENTS_AT_ONCE {
                        match recv.next_buffered::<ConsumeUp>() {
                            Ok(Some(frame @ (ConsumeUp::Cancel | ConsumeUp::Sync { .. }))) => {
                                carried = Some(frame);
                                break;
                            }
                            Ok(Some(frame)) => frames.push(frame),
                            Ok(None) => break,
                            Err(error) => {
                                malformed = Some(error);
                                break;
                            }
                        }
                    }
                    let settled = apply(&subscription, frames);
                    if let Err(error) = settled {
                        let _ = send.send(&ConsumeDown::Error(error)).await;
                        send.finish();
                        break;
                    }
                    if let Some(error) = malformed {
                        quic.close(error.error_code().as_u16().into(), error.to_string().as_bytes());
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    quic.close(error.error_code().as_u16().into(), error.to_string().as_bytes());
                    break;
                }
            },
            _ = shutdown.changed() => {
                let _ = send.send(&ConsumeDown::Cancelled { reason: CancelReason::ServerShutdown }).await;
                break;
            }
        }
    }
    tokio::task::block_in_place(|| subscription.close());
}

/// Deliveries that may wait for the stream's task: the prefetch window, bounded.
fn buffered_deliveries(prefetch: u32) -> usize {
    match prefetch {
        0 => 1024,
        n => (n as usize).min(4096),
    }
}

/// Checks what this protocol limits (queue name, consumer tag), then subscribes through the
/// session.
fn subscribe_to(
    subscribe: Subscribe,
    events: DeliverySender,
    session: &Session,
) -> Result<Subscription, WireError> {
    validate_name(NameKind::Queue, &subscribe.queue)?;
    if !subscribe.consumer_tag.is_empty() {
        validate_name(NameKind::ConsumerTag, &subscribe.consumer_tag)?;
    }
    session
        .subscribe(SubscribeOptions {
            queue: subscribe.queue,
            consumer_tag: subscribe.consumer_tag,
            prefetch: subscribe.prefetch,
            no_ack: subscribe.no_ack,
            exclusive: subscribe.exclusive,
            filter: subscribe.filter.map(|spec| (spec.plugin, spec.expression)),
            deliveries: events,
        })
        .map_err(|e| wire_error(&e))
}

/// Applies acks, nacks, rejects and credit changes, in order, under one queue lock; an unknown
/// tag fails the stream (the settlements before it stand).
fn apply(subscription: &Subscription, frames: Vec<ConsumeUp>) -> Result<(), WireError> {
    // AMQP: tag 0 with `multiple` means every outstanding delivery.
    let whole = |tag: u64, multiple: bool| {
        if tag == 0 && multiple {
            u64::MAX - 1
        } else {
            tag
        }
    };
    let mut settlements = Vec::with_capacity(frames.len());
    // The tag to name in the error when a single settlement finds nothing.
    let mut named = Vec::with_capacity(frames.len());
    for frame in frames {
        let (settlement, single) = match frame {
            ConsumeUp::Ack {
                delivery_tag,
                multiple,
            } => (
                Settlement::Ack {
                    tag: whole(delivery_tag, multiple),
                    multiple,
                },
                (!multiple).then_some(delivery_tag),
            ),
            ConsumeUp::Nack {
                delivery_tag,
                multiple,
                requeue,
            } => (
                Settlement::Nack {
                    tag: whole(delivery_tag, multiple),
                    multiple,
                    requeue,
                },
                (!multiple).then_some(delivery_tag),
            ),
            ConsumeUp::Reject {
                delivery_tag,
                requeue,
            } => (
                Settlement::Nack {
                    tag: delivery_tag,
                    multiple: false,
                    requeue,
                },
                Some(delivery_tag),
            ),
            ConsumeUp::Credit { prefetch } => (Settlement::Prefetch(prefetch), None),
            ConsumeUp::Subscribe(_) => {
                subscription.settle(&settlements);
                return Err(WireError::new(
                    ErrorCode::ProtocolViolation,
                    "this stream already has a subscription",
                ));
            }
            ConsumeUp::Cancel | ConsumeUp::Sync { .. } => continue,
        };
        settlements.push(settlement);
        named.push(single);
    }
    let known = subscription.settle(&settlements);
    match known
        .iter()
        .zip(&named)
        .find(|(known, single)| **known == 0 && single.is_some())
    {
        Some((_, Some(tag))) => Err(WireError::new(
            ErrorCode::PreconditionFailed,
            format!("unknown delivery tag {tag}"),
        )),
        _ => Ok(()),
    }
}

/// Writes `first` and whatever else is already waiting, in one flush. Returns false if the
/// queue cancelled the consumer. A delivery that cannot be encoded is left out and its tag
/// added to `unsendable`.
async fn write_deliveries(
    send: &mut FramedSend,
    first: DeliveryEvent,
    events: &mut DeliveryReceiver,
    unsendable: &mut Vec<u64>,
) -> Result<bool, switchyard_client::FrameError> {
    let mut event = Some(first);
    let mut written = 0;
    while let Some(current) = event.take() {
        match current {
            DeliveryEvent::Deliver(deliveries) => {
                for delivery in &deliveries {
                    let queued = &delivery.queued;
                    let message = &queued.message;
                    let pushed = send.push(&DeliverRef {
                        delivery_tag: delivery.tag,
                        exchange: &queued.exchange,
                        routing_key: &message.routing_key,
                        redelivered: queued.redelivered,
                        delivery_count: queued.delivery_count,
                        headers: &message.headers,
                        properties: &message.properties,
                        body: &message.body,
                    });
                    // Encoding checks the size before it writes anything to the buffer.
                    if pushed.is_err() {
                        unsendable.push(delivery.tag);
                    }
                }
                written += deliveries.len();
            }
            DeliveryEvent::Cancelled(Cancellation::QueueDeleted) => {
                send.flush().await?;
                return Ok(false);
            }
        }
        if written < MAX_DELIVERIES_PER_WRITE {
            event = events.try_recv();
        }
    }
    send.flush().await?;
    Ok(true)
}
