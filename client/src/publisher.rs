//! Publishing with confirms on a publish stream. `publish` queues a message and returns at
//! once with a [`Confirmation`] that resolves when the broker confirms, rejects or returns it;
//! many publishes are in flight at a time. Each publish is written onto the stream by the
//! caller's task; the connection packs what is waiting into full packets when it sends.
//!
//! [`Publisher::publish_unconfirmed`] is fire-and-forget (AMQP without confirm mode, NATS'
//! core publish): the broker sends no outcome for it, so nothing is tracked; a message refused
//! by the broker (unknown exchange, full queue, …) is lost without a word. It is for traffic
//! where losing a message now and then is fine and throughput matters most.
//!
//! Backpressure: at most `max_in_flight` messages await confirmation; `publish` waits for room.
//! When the broker is above its memory watermark it stops reading the stream, QUIC flow control
//! stops the write, and `publish` waits — nothing is dropped. A `publish` cancelled while it
//! waits there has its frame written by the next publish on the stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use switchyard_protocol::{
    Headers, Identifier, Properties, Publish, PublishDown, PublishUp, StreamKind, UNCONFIRMED,
    Value,
};
use tokio::sync::{Semaphore, oneshot};

use crate::connection::Connection;
use crate::error::ClientError;
use crate::framed::FramedRecv;
use crate::publish_streams::SharedSend;

/// How a publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// At least one queue has it.
    Routed,
    /// It was `mandatory` and no queue took it; the broker returned it.
    Returned,
}

/// A message to publish.
#[derive(Debug, Clone, Default)]
pub struct OutgoingMessage {
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
    pub headers: Headers,
    pub properties: Properties,
    pub body: Bytes,
}

impl OutgoingMessage {
    pub fn new(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Self {
        OutgoingMessage {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            body: body.into(),
            ..OutgoingMessage::default()
        }
    }

    /// The wire frame for this message, numbered `seq`.
    fn into_frame(self, seq: u64) -> Publish {
        Publish {
            seq,
            exchange: self.exchange,
            routing_key: self.routing_key,
            mandatory: self.mandatory,
            headers: self.headers,
            properties: self.properties,
            body: self.body,
        }
    }

    /// Adds a header of any [`Value`] type: `.header("attempt", 3_i32)`,
    /// `.header("tenant", "acme")`, `.header("tags", Value::Array(…))`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets the message id (text, or [`Identifier::Binary`]).
    pub fn message_id(mut self, id: impl Into<Identifier>) -> Self {
        self.properties.message_id = Some(id.into());
        self
    }

    /// Sets the correlation id (text, or [`Identifier::Binary`]).
    pub fn correlation_id(mut self, id: impl Into<Identifier>) -> Self {
        self.properties.correlation_id = Some(id.into());
        self
    }

    /// Sets the MIME content type, such as `application/json`.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.properties.content_type = Some(content_type.into());
        self
    }

    /// Sets the content encoding, such as `gzip`.
    pub fn content_encoding(mut self, encoding: impl Into<String>) -> Self {
        self.properties.content_encoding = Some(encoding.into());
        self
    }

    /// Sets the application's message type (AMQP's `type`).
    pub fn message_type(mut self, message_type: impl Into<String>) -> Self {
        self.properties.message_type = Some(message_type.into());
        self
    }

    /// Sets the publishing user; the broker refuses the publish unless it is the user the
    /// connection authenticated as.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.properties.user_id = Some(user.into());
        self
    }

    /// Sets the publishing application's name.
    pub fn app_id(mut self, app: impl Into<String>) -> Self {
        self.properties.app_id = Some(app.into());
        self
    }

    /// Sets the publish timestamp, in milliseconds since the Unix epoch.
    pub fn timestamp_ms(mut self, millis: u64) -> Self {
        self.properties.timestamp = Some(millis);
        self
    }

    /// Sets the time to live, in milliseconds.
    pub fn expiration_ms(mut self, millis: u64) -> Self {
        self.properties.expiration = Some(millis);
        self
    }

    /// Sets the priority (honoured up to the queue's `x-max-priority`).
    pub fn priority(mut self, priority: u8) -> Self {
        self.properties.priority = priority;
        self
    }

    /// Holds the message in its queues for this many milliseconds before delivery.
    pub fn delay_ms(mut self, millis: u64) -> Self {
        self.properties.delay_ms = Some(millis);
        self
    }

    pub fn mandatory(mut self) -> Self {
        self.mandatory = true;
        self
    }

    /// Marks the message persistent: a durable queue keeps it on disk, and its confirm comes
    /// only once it is durable there.
    pub fn persistent(mut self) -> Self {
        self.properties.persistent = true;
        self
    }
}

/// Resolves when the broker has settled one publish.
#[derive(Debug)]
pub struct Confirmation {
    seq: u64,
    answer: oneshot::Receiver<Result<Confirmed, ClientError>>,
}

impl Confirmation {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub async fn wait(self) -> Result<Confirmed, ClientError> {
        self.answer
            .await
            .unwrap_or_else(|_| Err(ClientError::closed("the publish stream is gone")))
    }
}

impl std::future::IntoFuture for Confirmation {
    type Output = Result<Confirmed, ClientError>;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

type Waiters = Arc<parking_lot::Mutex<Waiting>>;

#[derive(Debug, Default)]
struct Waiting {
    /// Unanswered publishes in seq order (seqs only grow): answers, which come in seq order,
    /// are taken off the front.
    by_seq: VecDeque<Awaiting>,
    closed: Option<ClientError>,
}

#[derive(Debug)]
struct Awaiting {
    seq: u64,
    answer: oneshot::Sender<Result<Confirmed, ClientError>>,
    returned: bool,
}

impl Waiting {
    fn position(&self, seq: u64) -> Option<usize> {
        self.by_seq.binary_search_by_key(&seq, |a| a.seq).ok()
    }
}

/// Publishes on a publish stream of the connection's live session; after a reconnect the next
/// publish opens a new stream.
#[derive(Debug)]
pub struct Publisher {
    connection: Connection,
    max_in_flight: usize,
    stream: Option<PublishStream>,
}

/// One publish stream and the confirmations awaited on it. Publishes are written by the
/// caller's own task, straight onto the stream: no writer task sits between a publish and the
/// connection, so a lone publish costs no task hand-off. A burst still leaves in few packets:
/// the stream's bytes wait in the connection's send buffer until its driver task runs.
#[derive(Debug)]
struct PublishStream {
    next_seq: u64,
    /// Shared with the session, which finishes it when the connection is closed.
    send: SharedSend,
    /// A write failed: the stream is unusable and the next publish opens another.
    broken: bool,
    waiters: Waiters,
    room: Arc<Semaphore>,
    blocked: Arc<AtomicBool>,
}

impl PublishStream {
    async fn open(connection: &Connection, max_in_flight: usize) -> Result<Self, ClientError> {
        let session = connection.session().await?;
        let (send, recv) = session.open_stream(StreamKind::Publish).await?;
        let send: SharedSend = Arc::new(tokio::sync::Mutex::new(Some(send)));
        let waiters: Waiters = Arc::default();
        let room = Arc::new(Semaphore::new(max_in_flight.max(1)));
        let blocked = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_outcomes(
            recv,
            Arc::clone(&waiters),
            Arc::clone(&room),
            Arc::clone(&blocked),
        ));
        session.publish_streams().register(&send, reader);
        Ok(PublishStream {
            next_seq: 1,
            send,
            broken: false,
            waiters,
            room,
            blocked,
        })
    }

    /// Encodes `frame` onto the stream and writes it, after running `encoded` (which must not
    /// fail: the frame is on its way). An unencodable frame (larger than the broker accepts)
    /// is refused before `encoded` and leaves the stream as it was. Cancel-safe: a write
    /// interrupted while the broker holds the stream back goes out with the next one.
    async fn write(
        &mut self,
        frame: Publish,
        encoded: impl FnOnce(&mut Self) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let shared = Arc::clone(&self.send);
        let mut guard = shared.lock().await;
        let Some(send) = guard.as_mut() else {
            self.broken = true;
            return Err(ClientError::closed("the connection was closed"));
        };
        send.push(&PublishUp::Publish(frame))?;
        encoded(self)?;
        send.flush().await.map_err(|error| {
            self.broken = true;
            ClientError::from(error)
        })
    }

    fn is_closed(&self) -> bool {
        self.broken || self.waiters.lock().closed.is_some()
    }
}

impl Publisher {
    pub(crate) async fn open(
        connection: &Connection,
        max_in_flight: usize,
    ) -> Result<Self, ClientError> {
        let stream = PublishStream::open(connection, max_in_flight).await?;
        Ok(Publisher {
            connection: connection.clone(),
            max_in_flight,
            stream: Some(stream),
        })
    }

    /// Whether the broker has said it is holding this publisher back (it is above a resource
    /// watermark and has stopped reading the stream); publishes wait until it lets go.
    pub fn is_blocked(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|s| s.blocked.load(Ordering::Relaxed))
    }

    /// Queues `message`; waits only while `max_in_flight` messages are unconfirmed (or while
    /// the connection is being re-established).
    pub async fn publish(&mut self, message: OutgoingMessage) -> Result<Confirmation, ClientError> {
        let stream = self.live_stream().await?;
        let permit = Arc::clone(&stream.room)
            .acquire_owned()
            .await
            .map_err(|_| ClientError::closed("the publish stream is gone"))?;
        let seq = stream.next_seq;
        let (answer_tx, answer) = oneshot::channel();
        stream
            .write(message.into_frame(seq), move |stream| {
                // Encoded: the seq is used and its permit comes back with its answer.
                stream.next_seq += 1;
                permit.forget();
                // Checked under the lock that the reader closes it with, so a waiter is never
                // added after the reader has failed the rest.
                let mut waiting = stream.waiters.lock();
                if let Some(error) = &waiting.closed {
                    return Err(error.clone());
                }
                waiting.by_seq.push_back(Awaiting {
                    seq,
                    answer: answer_tx,
                    returned: false,
                });
                Ok(())
            })
            .await?;
        Ok(Confirmation { seq, answer })
    }

    /// Queues `message` without asking for a confirm; waits only while the broker holds the
    /// stream back (flow control) or the connection is being re-established. The broker
    /// handles it as any other publish but never answers it: a refused message is lost
    /// silently, and one queued when the connection drops may or may not have arrived.
    pub async fn publish_unconfirmed(
        &mut self,
        message: OutgoingMessage,
    ) -> Result<(), ClientError> {
        let stream = self.live_stream().await?;
        stream
            .write(message.into_frame(UNCONFIRMED), |_| Ok(()))
            .await
    }

    /// The current publish stream, opening a new one if there is none or it broke.
    async fn live_stream(&mut self) -> Result<&mut PublishStream, ClientError> {
        if self.stream.as_ref().is_none_or(PublishStream::is_closed) {
            self.stream = None;
            self.stream = Some(PublishStream::open(&self.connection, self.max_in_flight).await?);
        }
        Ok(self.stream.as_mut().expect("opened above"))
    }

    /// Publishes and waits for the broker's answer.
    pub async fn publish_confirmed(
        &mut self,
        message: OutgoingMessage,
    ) -> Result<Confirmed, ClientError> {
        self.publish(message).await?.wait().await
    }
}

/// Resolves confirmations as the broker's answers arrive.
async fn read_outcomes(
    mut recv: FramedRecv,
    waiters: Waiters,
    room: Arc<Semaphore>,
    blocked: Arc<AtomicBool>,
) {
    let failure = loop {
        match recv.next::<PublishDown>().await {
            Ok(Some(PublishDown::Confirm { first, last })) => {
                let mut waiting = waiters.lock();
                // Answers come in seq order, so everything up to `last` is at the front; a seq
                // before `first` still there was never answered, which the protocol rules out.
                let end = waiting.by_seq.partition_point(|a| a.seq <= last);
                let start = waiting.by_seq.partition_point(|a| a.seq < first);
                for awaiting in waiting.by_seq.drain(start..end) {
                    let outcome = if awaiting.returned {
                        Confirmed::Returned
                    } else {
                        Confirmed::Routed
                    };
                    let _ = awaiting.answer.send(Ok(outcome));
                }
                room.add_permits(end - start);
            }
            Ok(Some(PublishDown::Reject { seq, error })) => {
                let mut waiting = waiters.lock();
                if let Some(at) = waiting.position(seq) {
                    let awaiting = waiting.by_seq.remove(at).expect("found above");
                    let _ = awaiting
                        .answer
                        .send(Err(ClientError::Rejected { seq, error }));
                    room.add_permits(1);
                }
            }
            Ok(Some(PublishDown::Returned { seq, .. })) => {
                let mut waiting = waiters.lock();
                if let Some(at) = waiting.position(seq) {
                    waiting.by_seq[at].returned = true;
                }
            }
            Ok(Some(PublishDown::Blocked { reason })) => {
                tracing::warn!(reason = %reason, "broker blocked publishing");
                blocked.store(true, Ordering::Relaxed);
            }
            Ok(Some(PublishDown::Unblocked)) => {
                tracing::info!("broker unblocked publishing");
                blocked.store(false, Ordering::Relaxed);
            }
            Ok(None) => break ClientError::closed("the broker ended the publish stream"),
            Err(e) => break ClientError::from(e),
        }
    };
    let mut waiting = waiters.lock();
    for awaiting in std::mem::take(&mut waiting.by_seq) {
        let _ = awaiting.answer.send(Err(failure.clone()));
    }
    waiting.closed = Some(failure);
    room.close();
}
