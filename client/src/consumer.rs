//! Consuming on a consume stream: subscribe (a bad queue or filter expression fails here), then
//! a [`Consumer`] is a `Stream` of [`Delivery`]s, each acked, nacked or rejected through its own
//! methods. Acks travel on the same stream, coalesced with other frames.
//!
//! When the connection is lost the consumer subscribes again, with the same tag and options,
//! once the connection is back; deliveries from before the loss can no longer be acked (the
//! broker requeued them, marked redelivered).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use std::sync::Arc;
use switchyard_protocol::{
    CancelReason, ConsumeDown, ConsumeDownFrames, ConsumeDownView, ConsumeUp, FilterSpec,
    StreamKind, Subscribe, WireError,
};
use tokio::sync::{mpsc, oneshot};

use crate::connection::{Connection, Session};
use crate::delivery::{Delivery, DeliveryDecoder};
use crate::error::ClientError;
use crate::framed::{FramedRecv, FramedSend};

/// What a consumer asks for.
#[derive(Debug, Clone, Default)]
pub struct ConsumeOptions {
    pub queue: String,
    /// Empty: the broker picks one.
    pub consumer_tag: String,
    /// Unacknowledged deliveries at most (0 = no limit).
    pub prefetch: u32,
    /// Deliveries count as acknowledged when sent.
    pub no_ack: bool,
    pub exclusive: bool,
    /// A filter plugin and its expression, e.g. `("selector", "region = 'eu'")`.
    pub filter: Option<(String, String)>,
}

impl ConsumeOptions {
    pub fn new(queue: impl Into<String>) -> Self {
        ConsumeOptions {
            queue: queue.into(),
            prefetch: 100,
            ..ConsumeOptions::default()
        }
    }
}

/// A subscription: a stream of deliveries that ends when the consumer is cancelled.
#[derive(Debug)]
pub struct Consumer {
    tag: String,
    deliveries: mpsc::Receiver<Result<Vec<Delivery>, ClientError>>,
    /// The rest of the batch being handed out.
    ready: std::vec::IntoIter<Delivery>,
    requests: mpsc::UnboundedSender<Request>,
}

/// Deliveries the subscription task hands over at once at most: everything already received
/// goes in one channel message, so a busy consumer pays for the channel (and a wake-up) once
/// per batch instead of once per delivery.
const MAX_DELIVERIES_PER_BATCH: usize = 128;

/// Batches waiting for the user at most; with the batch size this bounds what the client
/// buffers (1,024 deliveries) before QUIC flow control holds the broker back.
const BATCHES_BUFFERED: usize = 8;

/// What a [`Consumer`] asks its subscription task.
#[derive(Debug)]
enum Request {
    Frame(ConsumeUp),
    Sync(oneshot::Sender<Result<(), ClientError>>),
}

impl Consumer {
    pub(crate) async fn subscribe(
        connection: &Connection,
        mut options: ConsumeOptions,
    ) -> Result<Consumer, ClientError> {
        let session = connection.session().await?;
        let (send, recv, tag) = open_subscription(&session, &options).await?;
        options.consumer_tag.clone_from(&tag);
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (deliveries_tx, deliveries) = mpsc::channel(BATCHES_BUFFERED);
        let subscription = Subscription {
            connection: connection.clone(),
            options,
            deliveries: deliveries_tx,
            requests: requests_rx,
        };
        tokio::spawn(subscription.run(session, send, recv));
        Ok(Consumer {
            tag,
            deliveries,
            ready: Vec::new().into_iter(),
            requests,
        })
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The next delivery; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Delivery, ClientError>> {
        std::future::poll_fn(|cx| self.poll_delivery(cx)).await
    }

    fn poll_delivery(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Delivery, ClientError>>> {
        loop {
            if let Some(delivery) = self.ready.next() {
                return Poll::Ready(Some(Ok(delivery)));
            }
            match std::task::ready!(self.deliveries.poll_recv(cx)) {
                Some(Ok(batch)) => self.ready = batch.into_iter(),
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }

    /// Changes the prefetch.
    pub fn set_prefetch(&self, prefetch: u32) -> Result<(), ClientError> {
        self.requests
            .send(Request::Frame(ConsumeUp::Credit { prefetch }))
            .map_err(|_| ClientError::closed("the subscription has ended"))
    }

    /// Waits until every ack, nack and reject made before this call is applied by the broker
    /// and, for a durable queue, recorded on disk: after it returns, an acked message does not
    /// come back even if the broker crashes. Fails if the connection is lost first (then the
    /// unacked deliveries come back, and some acks may not have been applied).
    pub async fn sync(&self) -> Result<(), ClientError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send(Request::Sync(done))
            .map_err(|_| ClientError::closed("the subscription has ended"))?;
        answer
            .await
            .map_err(|_| ClientError::closed("the consume stream ended before the sync"))?
    }

    /// Asks the broker to end the subscription. Deliveries already on their way still arrive,
    /// then `next` returns `None`. Deliveries held may still be acked, nacked or rejected (and
    /// [`sync`](Self::sync) still works); once all of them and the consumer are dropped, the
    /// broker returns the unsettled ones to the queue.
    pub fn cancel(&self) {
        let _ = self.requests.send(Request::Frame(ConsumeUp::Cancel));
    }

    /// Cancels and waits until the broker confirms, so every ack sent before has been applied.
    /// Deliveries that arrive meanwhile are not acked and go back to the queue (those the user
    /// still holds, once they are settled or dropped).
    pub async fn close(mut self) {
        self.cancel();
        let drain = async { while self.deliveries.recv().await.is_some() {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
    }
}

impl futures::Stream for Consumer {
    type Item = Result<Delivery, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_delivery(cx)
    }
}

/// Opens a consume stream on `session` and subscribes; returns the consumer tag.
async fn open_subscription(
    session: &Session,
    options: &ConsumeOptions,
) -> Result<(FramedSend, FramedRecv, String), ClientError> {
    let (mut send, mut recv) = session.open_stream(StreamKind::Consume).await?;
    send.send(&ConsumeUp::Subscribe(Subscribe {
        queue: options.queue.clone(),
        consumer_tag: options.consumer_tag.clone(),
        prefetch: options.prefetch,
        no_ack: options.no_ack,
        exclusive: options.exclusive,
        filter: options
            .filter
            .clone()
            .map(|(plugin, expression)| FilterSpec { plugin, expression }),
    }))
    .await?;
    match recv.next::<ConsumeDown>().await? {
        Some(ConsumeDown::Subscribed { consumer_tag }) => Ok((send, recv, consumer_tag)),
        Some(ConsumeDown::Error(error)) => Err(ClientError::Refused(error)),
        Some(other) => Err(ClientError::Protocol(format!(
            "expected Subscribed, got {other:?}"
        ))),
        None => Err(ClientError::closed("the broker ended the consume stream")),
    }
}

/// How one session's stream ended.
enum StreamEnd {
    /// The user cancelled (or dropped the consumer): the subscription is over.
    Finished,
    /// The subscription failed for good; the user is told why.
    Failed(ClientError),
    /// The session went away: subscribe again on the next one.
    SessionLost,
}

/// The task behind a [`Consumer`]: moves deliveries to the user and the user's acks and
/// requests to the broker, across reconnects.
struct Subscription {
    connection: Connection,
    options: ConsumeOptions,
    deliveries: mpsc::Sender<Result<Vec<Delivery>, ClientError>>,
    requests: mpsc::UnboundedReceiver<Request>,
}

impl Subscription {
    async fn run(mut self, mut session: Arc<Session>, send: FramedSend, recv: FramedRecv) {
        let mut stream = (send, recv);
        loop {
            let end = self.serve(stream.0, stream.1, &session).await;
            let error = match end {
                StreamEnd::Finished => return,
                StreamEnd::Failed(error) => error,
                StreamEnd::SessionLost => {
                    let resumed = async {
                        let next = self.connection.next_session(&session).await?;
                        let (send, recv, _) = open_subscription(&next, &self.options).await?;
                        Ok::<_, ClientError>((next, send, recv))
                    };
                    match resumed.await {
                        Ok((next, send, recv)) => {
                            tracing::info!(
                                queue = self.options.queue.as_str(),
                                "consumer resubscribed"
                            );
                            session = next;
                            stream = (send, recv);
                            continue;
                        }
                        Err(error) => error,
                    }
                }
            };
            let _ = self.deliveries.send(Err(error)).await;
            return;
        }
    }

    /// Runs one consume stream until it ends.
    async fn serve(
        &mut self,
        mut send: FramedSend,
        mut recv: FramedRecv,
        session: &Session,
    ) -> StreamEnd {
        // Deliveries carry this stream's ack channel: their tags mean nothing on another.
        let (acks, mut acks_rx) = mpsc::unbounded_channel();
        let mut decoder = DeliveryDecoder::new(acks);
        let mut requests_open = true;
        // Syncs sent on this stream, answered in order; dropped (an error for the caller) when
        // the stream ends.
        let mut syncs = PendingSyncs::new();
        let mut next_sync = 1u64;
        // A frame read while gathering a batch of deliveries, handled on the next round.
        let mut carried: Option<Down> = None;
        // Batches the user has no room for yet (each with whether a malformed frame followed
        // it). Frames are still read meanwhile, so that a user who syncs before reading further
        // gets the answer that follows the deliveries; the broker sends no more than the
        // prefetch window, which bounds this buffer (and `MAX_WAITING_BATCHES` does without a
        // prefetch).
        let mut waiting: std::collections::VecDeque<(Vec<Delivery>, bool)> =
            std::collections::VecDeque::new();
        loop {
            tokio::select! {
                room = self.deliveries.clone().reserve_owned(), if !waiting.is_empty() => {
                    let (batch, malformed) = waiting.pop_front().expect("guarded");
                    let Ok(room) = room else {
                        // The consumer was dropped: end the subscription.
                        let _ = send.send(&ConsumeUp::Cancel).await;
                        send.finish();
                        return StreamEnd::Finished;
                    };
                    room.send(Ok(batch));
                    if malformed {
                        return StreamEnd::Failed(ClientError::Protocol("the broker sent a malformed frame".into()));
                    }
                }
                frame = async {
                    match carried.take() {
                        Some(frame) => Ok(Some(frame)),
                        None => recv.next_view::<ConsumeDownFrames, _>(|view, payload| Down::from_view(view, payload, &mut decoder)).await,
                    }
                }, if waiting.len() < MAX_WAITING_BATCHES => {
                    let first = match frame {
                        Ok(Some(Down::Deliver(d))) => d,
                        Ok(Some(Down::Cancelled(CancelReason::ClientRequest))) => {
                            drop(decoder);
                            let settling = Settling { send, recv, acks: acks_rx, syncs, next_sync, requests_open };
                            return self.settle_after_cancel(settling).await;
                        }
                        Ok(Some(Down::Cancelled(reason))) => return match reason {
                            CancelReason::ClientRequest => StreamEnd::Finished,
                            CancelReason::ServerShutdown => StreamEnd::SessionLost,
                            CancelReason::Error(error) => StreamEnd::Failed(ClientError::Refused(error)),
                            other => StreamEnd::Failed(ClientError::closed(format!("subscription cancelled: {other:?}"))),
                        },
                        Ok(Some(Down::Error(error))) => return StreamEnd::Failed(ClientError::Refused(error)),
                        Ok(Some(Down::Synced(id))) => {
                            answer_syncs(&mut syncs, id);
                            continue;
                        }
                        Ok(Some(Down::Subscribed)) => {
                            return StreamEnd::Failed(ClientError::Protocol("a second Subscribed".into()));
                        }
                        // A stream that ends while its connection lives was ended by the
                        // broker on purpose: waiting for a new session would wait for ever.
                        Ok(None) | Err(_) if session.is_open() => {
                            return StreamEnd::Failed(ClientError::closed("the broker ended the subscription without saying why"));
                        }
                        Ok(None) | Err(_) => return StreamEnd::SessionLost,
                    };
                    let mut batch = Vec::with_capacity(MAX_DELIVERIES_PER_BATCH);
                    batch.push(first);
                    // A malformed frame ends the stream once the deliveries before it are out.
                    let mut malformed = false;
                    while batch.len() < MAX_DELIVERIES_PER_BATCH {
                        match recv.next_buffered_view::<ConsumeDownFrames, _>(|view, payload| Down::from_view(view, payload, &mut decoder)) {
                            Ok(Some(Down::Deliver(d))) => batch.push(d),
                            Ok(Some(other)) => {
                                carried = Some(other);
                                break;
                            }
                            Ok(None) => break,
                            Err(_) => {
                                malformed = true;
                                break;
                            }
                        }
                    }
                    if !waiting.is_empty() {
                        // Behind batches that wait: keep the order.
                        waiting.push_back((batch, malformed));
                        continue;
                    }
                    match self.deliveries.try_send(Ok(batch)) {
                        Ok(()) if malformed => {
                            return StreamEnd::Failed(ClientError::Protocol("the broker sent a malformed frame".into()));
                        }
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(Ok(batch))) => waiting.push_back((batch, malformed)),
                        Err(_) => {
                            // The consumer was dropped: end the subscription.
                            let _ = send.send(&ConsumeUp::Cancel).await;
                            send.finish();
                            return StreamEnd::Finished;
                        }
                    }
                }
                ack = acks_rx.recv() => {
                    let Some(ack) = ack else { continue };
                    if push_all(&mut send, ack, &mut acks_rx).await.is_err() {
                        return StreamEnd::SessionLost;
                    }
                }
                request = self.requests.recv(), if requests_open => {
                    let request = match request {
                        Some(Request::Frame(frame)) => frame,
                        Some(Request::Sync(done)) => {
                            match sync_after_acks(&mut send, &mut acks_rx, &mut syncs, &mut next_sync, done) {
                                Ok(sync) => sync,
                                Err(_) => return StreamEnd::SessionLost,
                            }
                        }
                        None => {
                            // The consumer was dropped: cancel once, then wait for the broker.
                            requests_open = false;
                            ConsumeUp::Cancel
                        }
                    };
                    if let ConsumeUp::Credit { prefetch } = request {
                        self.options.prefetch = prefetch;
                    }
                    if send.send(&request).await.is_err() {
                        return StreamEnd::SessionLost;
                    }
                }
            }
        }
    }
}

/// Batches of deliveries a subscription holds for a user who is not taking them, at most (see
/// `Subscription::serve`); past it, reading stops until the user catches up.
const MAX_WAITING_BATCHES: usize = 1024;

/// Syncs sent on a stream, answered in order; dropped (an error for the caller) when the
/// stream ends.
type PendingSyncs = std::collections::VecDeque<(u64, oneshot::Sender<Result<(), ClientError>>)>;

fn answer_syncs(syncs: &mut PendingSyncs, id: u64) {
    while let Some((waiting, _)) = syncs.front() {
        if *waiting > id {
            break;
        }
        let (_, done) = syncs.pop_front().expect("front exists");
        let _ = done.send(Ok(()));
    }
}

/// The Sync frame for `done`, after pushing the acks made before it (they must reach the
/// broker first); the caller sends it.
fn sync_after_acks(
    send: &mut FramedSend,
    acks: &mut mpsc::UnboundedReceiver<ConsumeUp>,
    syncs: &mut PendingSyncs,
    next_sync: &mut u64,
    done: oneshot::Sender<Result<(), ClientError>>,
) -> Result<ConsumeUp, crate::error::FrameError> {
    while let Ok(ack) = acks.try_recv() {
        send.push(&ack)?;
    }
    let id = *next_sync;
    *next_sync += 1;
    syncs.push_back((id, done));
    Ok(ConsumeUp::Sync { id })
}

/// A consume stream after the broker confirmed the user's cancel.
struct Settling {
    send: FramedSend,
    recv: FramedRecv,
    /// Every delivery the user still holds has a sender of this channel.
    acks: mpsc::UnboundedReceiver<ConsumeUp>,
    syncs: PendingSyncs,
    next_sync: u64,
    requests_open: bool,
}

impl Subscription {
    /// After a cancel the user may still settle the deliveries it holds (and sync), as AMQP's
    /// `basic.cancel` allows: the stream stays open until every one of them has been settled
    /// or dropped and the consumer is dropped (or closed), then finishes, and the broker
    /// returns whatever was left unsettled.
    async fn settle_after_cancel(&mut self, settling: Settling) -> StreamEnd {
        // `next` returns `None` once the deliveries already handed over are taken.
        self.deliveries = mpsc::channel(1).0;
        let Settling {
            mut send,
            mut recv,
            mut acks,
            mut syncs,
            mut next_sync,
            mut requests_open,
        } = settling;
        let (send, recv, acks, syncs) = (&mut send, &mut recv, &mut acks, &mut syncs);
        let mut acks_open = true;
        // Until every delivery is gone and the consumer too (it may still sync), and every
        // sync is answered.
        while acks_open || requests_open || !syncs.is_empty() {
            tokio::select! {
                ack = acks.recv(), if acks_open => {
                    let Some(ack) = ack else {
                        acks_open = false;
                        continue;
                    };
                    if push_all(send, ack, acks).await.is_err() {
                        return StreamEnd::Finished;
                    }
                }
                request = self.requests.recv(), if requests_open => match request {
                    Some(Request::Sync(done)) => {
                        let sync = sync_after_acks(send, acks, syncs, &mut next_sync, done);
                        let sent = match sync {
                            Ok(sync) => send.send(&sync).await,
                            Err(error) => Err(error),
                        };
                        if sent.is_err() {
                            return StreamEnd::Finished;
                        }
                    }
                    // Credit and a second cancel mean nothing any more.
                    Some(Request::Frame(_)) => {}
                    None => requests_open = false,
                },
                frame = recv.next::<ConsumeDown>() => match frame {
                    Ok(Some(ConsumeDown::Synced { id })) => answer_syncs(syncs, id),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return StreamEnd::Finished,
                },
            }
        }
        send.finish();
        StreamEnd::Finished
    }
}

/// A frame of the consume stream, with a delivery already made the user's.
enum Down {
    Deliver(Delivery),
    Subscribed,
    Cancelled(CancelReason),
    Error(WireError),
    Synced(u64),
}

impl Down {
    fn from_view(
        view: ConsumeDownView<'_>,
        payload: &Bytes,
        decoder: &mut DeliveryDecoder,
    ) -> Down {
        match view {
            ConsumeDownView::Deliver(d) => Down::Deliver(decoder.delivery(d, payload)),
            ConsumeDownView::Subscribed { .. } => Down::Subscribed,
            ConsumeDownView::Cancelled { reason } => Down::Cancelled(reason),
            ConsumeDownView::Error(error) => Down::Error(error),
            ConsumeDownView::Synced { id } => Down::Synced(id),
        }
    }
}

/// Sends `first` and every frame already waiting, in one write.
async fn push_all(
    send: &mut FramedSend,
    first: ConsumeUp,
    more: &mut mpsc::UnboundedReceiver<ConsumeUp>,
) -> Result<(), crate::error::FrameError> {
    send.push(&first)?;
    while let Ok(next) = more.try_recv() {
        send.push(&next)?;
    }
    send.flush().await
}
