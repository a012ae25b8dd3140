//! One AMQP connection after its handshake: the socket split into a reader task (bytes to
//! frames, bounded by the negotiated `frame_max` before anything is buffered) and a writer
//! task (frames to bytes, heartbeats when idle), and between them the connection task, which
//! owns the channels and is the only one to touch them. It waits on frames, on events from the
//! channels' helpers (deliveries, confirms, commits), on the memory alarm, on the heartbeat
//! deadline and on the broker's shutdown, and writes what each produced as one chunk.
//!
//! Errors follow the spec: a channel error closes that channel (`channel.close`, then frames
//! for it are dropped until `channel.close-ok`); a connection error sends `connection.close`
//! and ends the connection once the client answers or a short wait has passed. A peer silent
//! for two heartbeat intervals is dead. The memory alarm is told to clients that asked for it
//! (`connection.blocked`), and a publish that arrives while it lasts waits until it clears, as
//! RabbitMQ's connections stop reading.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use switchyard_amqp::method::{
    ChannelClose, ChannelCloseOk, ChannelOpenOk, ConnectionBlocked, ConnectionClose,
    ConnectionCloseOk, ConnectionUnblocked, ConnectionUpdateSecretOk,
};
use switchyard_amqp::{Frame, FrameDecoder, FrameError, Method, ReplyCode, encode_heartbeat};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::Shared;
use super::channel::{Channel, Context, Fault};
use super::handshake::{self, ClientCapabilities, Tuning};
use crate::session::{DeliveryEvent, Pressure, Session};

/// Frames read ahead of the connection task.
const INBOUND_FRAMES: usize = 64;

/// Chunks of frames waiting for the writer.
const OUTBOUND_CHUNKS: usize = 64;

/// Events from consumers and confirmers waiting for the connection task.
const EVENTS: usize = 256;

/// How much the reader asks the socket for at a time.
const READ_CHUNK: usize = 16 << 10;

/// Frames and events handled, when more are waiting, before the connection writes.
const BATCH: usize = 64;

/// How long the broker waits for `connection.close-ok` after sending `connection.close`.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// What a channel's helpers tell the connection task.
#[derive(Debug)]
pub(super) enum Event {
    Deliveries {
        channel: u16,
        consumer: u64,
        event: DeliveryEvent,
    },
    Confirmed {
        channel: u16,
        /// Sequence numbers in order, each acked (`true`) or nacked.
        answers: Vec<(u64, bool)>,
    },
    Committed {
        channel: u16,
    },
}

/// What the reader task hands over.
#[derive(Debug)]
// Frames are nearly all of the traffic, the other variants end the connection: boxing frames
// would cost an allocation each to save channel slots.
#[allow(clippy::large_enum_variant)]
enum Inbound {
    Frame(Frame),
    Malformed(FrameError),
    Closed,
    Lost(std::io::Error),
}

/// Serves one accepted socket from `peer`, from the protocol header to the end.
pub(super) async fn serve<S>(mut stream: S, peer: SocketAddr, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = shared.sessions.new_connection_id();
    let span = tracing::info_span!("amqp", id, %peer);
    async move {
        let _slot = match shared.sessions.admission().admit(peer.ip()) {
            Ok(slot) => slot,
            Err(error) => {
                tracing::warn!(%error, "AMQP connection refused");
                return;
            }
        };
        let deadline = Duration::from_millis(shared.settings.handshake_timeout_ms);
        let opening = handshake::open(&mut stream, peer.ip(), &shared.sessions, &shared.settings);
        let opened = match tokio::time::timeout(deadline, opening).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => {
                tracing::debug!(%error, "AMQP handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(?deadline, "no AMQP handshake within the deadline");
                return;
            }
        };
        tracing::debug!(client = opened.client.as_str(), ?opened.tuning, "AMQP connection open");
        let session = Arc::new(shared.sessions.open(opened.principal.clone(), id));
        let (read_half, write_half) = tokio::io::split(stream);
        let (to_writer, from_connection) = mpsc::channel(OUTBOUND_CHUNKS);
        let heartbeat = heartbeat_interval(&opened.tuning);
        let writer = tokio::spawn(write_frames(write_half, from_connection, heartbeat));
        let (to_connection, inbound) = mpsc::channel(INBOUND_FRAMES);
        let reader = tokio::spawn(read_frames(
            read_half,
            opened.leftover,
            FrameDecoder::new(opened.tuning.frame_max),
            to_connection,
        ));
        let (events, event_receiver) = mpsc::channel(EVENTS);
        let mut connection = Connection {
            id,
            session: Arc::clone(&session),
            shared: Arc::clone(&shared),
            tuning: opened.tuning,
            capabilities: opened.capabilities,
            channels: HashMap::new(),
            closing_channels: HashSet::new(),
            out: BytesMut::new(),
            to_writer,
            events,
            reply_queue: None,
        };
        connection.run(inbound, event_receiver).await;
        connection.end();
        reader.abort();
        drop(connection);
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        session.close();
        tracing::debug!("AMQP connection closed");
    }
    .instrument(span)
    .await
}

fn heartbeat_interval(tuning: &Tuning) -> Option<Duration> {
    (tuning.heartbeat > 0).then(|| Duration::from_secs(u64::from(tuning.heartbeat)))
}

/// Whether the connection goes on after a frame.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The connection is closing: `connection.close` was sent, or answered.
    Closing,
    Stop,
}

struct Connection {
    id: u64,
    session: Arc<Session>,
    shared: Arc<Shared>,
    tuning: Tuning,
    capabilities: ClientCapabilities,
    channels: HashMap<u16, Channel>,
    /// Channels the broker closed, whose `close-ok` has not come yet.
    closing_channels: HashSet<u16>,
    /// Frames produced since the last write.
    out: BytesMut,
    to_writer: mpsc::Sender<Bytes>,
    events: mpsc::Sender<Event>,
    /// The queue behind the connection's direct reply-to.
    reply_queue: Option<String>,
}

impl Connection {
    async fn run(
        &mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut events: mpsc::Receiver<Event>,
    ) {
        let mut backpressure = self.session.backpressure();
        let mut shutdown = self.shared.shutdown.clone();
        let silence = heartbeat_interval(&self.tuning).map(|h| h * 2);
        let mut heard = Instant::now();
        let mut closing_since: Option<Instant> = None;
        loop {
            let dead_at = match (closing_since, silence) {
                (Some(since), _) => since + CLOSE_WAIT,
                (None, Some(silence)) => heard + silence,
                (None, None) => Instant::now() + Duration::from_secs(3600),
            };
            let mut flow = tokio::select! {
                received = inbound.recv() => {
                    self.on_inbound(received, closing_since.is_some(), &mut heard, &mut backpressure).await
                }
                Some(event) = events.recv(), if closing_since.is_none() => {
                    self.on_event(event);
                    Flow::Continue
                }
                pressure = backpressure.changed(), if self.capabilities.connection_blocked && closing_since.is_none() => {
                    match pressure {
                        Pressure::Blocked { reason } => self.send(0, ConnectionBlocked { reason: reason.chars().take(200).collect() }),
                        Pressure::Clear => self.send(0, ConnectionUnblocked::default()),
                    }
                    Flow::Continue
                }
                _ = tokio::time::sleep_until(dead_at) => {
                    if closing_since.is_none() {
                        tracing::info!(heartbeat = self.tuning.heartbeat, "AMQP peer silent for two heartbeat intervals; closing");
                    }
                    Flow::Stop
                }
                _ = shutdown.changed() => {
                    self.close_connection(Fault::new(ReplyCode::ConnectionForced, "broker shutting down"));
                    Flow::Closing
                }
            };
            // Whatever else is waiting is handled before writing, so one write (and one publish
            // batch per channel) covers many frames and events under load.
            let mut budget = BATCH;
            while flow == Flow::Continue && closing_since.is_none() && budget > 0 {
                budget -= 1;
                if let Ok(received) = inbound.try_recv() {
                    flow = self
                        .on_inbound(Some(received), false, &mut heard, &mut backpressure)
                        .await;
                } else if let Ok(event) = events.try_recv() {
                    self.on_event(event);
                } else {
                    break;
                }
            }
            if flow == Flow::Continue {
                flow = self.publish_pending();
            }
            let flushed = self.flush().await;
            match flow {
                Flow::Stop => return,
                Flow::Closing if closing_since.is_none() => closing_since = Some(Instant::now()),
                _ => {}
            }
            if !flushed {
                return;
            }
        }
    }

    async fn on_inbound(
        &mut self,
        received: Option<Inbound>,
        closing: bool,
        heard: &mut Instant,
        backpressure: &mut crate::session::Backpressure,
    ) -> Flow {
        match received {
            Some(Inbound::Frame(frame)) => {
                *heard = Instant::now();
                if closing {
                    self.while_closing(frame)
                } else {
                    self.on_frame(frame, backpressure).await
                }
            }
            Some(Inbound::Malformed(error)) => {
                tracing::debug!(%error, "malformed AMQP frame");
                self.close_connection(Fault::new(error.reply_code(), error.to_string()));
                Flow::Stop
            }
            Some(Inbound::Lost(error)) => {
                tracing::debug!(%error, "AMQP connection lost");
                Flow::Stop
            }
            Some(Inbound::Closed) | None => Flow::Stop,
        }
    }

    /// Publishes what the channels have gathered since the last write.
    fn publish_pending(&mut self) -> Flow {
        let waiting: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, channel)| channel.has_pending_publishes())
            .map(|(id, _)| *id)
            .collect();
        let mut flow = Flow::Continue;
        for id in waiting {
            let result = self.with_channel(id, |channel, ctx| channel.publish_pending(ctx));
            if let Some(Err(fault)) = result {
                flow = self.fault(id, fault);
                if flow != Flow::Continue {
                    break;
                }
            }
        }
        flow
    }

    /// Runs `work` on channel `id` with its context; `None` if the channel is not open.
    fn with_channel<T>(
        &mut self,
        id: u16,
        work: impl FnOnce(&mut Channel, &mut Context<'_>) -> T,
    ) -> Option<T> {
        let Connection {
            channels,
            session,
            out,
            events,
            reply_queue,
            capabilities,
            tuning,
            id: connection,
            ..
        } = self;
        let channel = channels.get_mut(&id)?;
        let mut ctx = Context {
            session,
            out,
            frame_max: tuning.frame_max,
            events,
            connection: *connection,
            cancel_notify: capabilities.consumer_cancel_notify,
            reply_queue,
        };
        Some(work(channel, &mut ctx))
    }

    /// Ends every channel (their unacked deliveries go back to their queues), publishing what
    /// they read before the end.
    fn end(&mut self) {
        let _ = self.publish_pending();
        for (_, channel) in self.channels.drain() {
            channel.close();
        }
    }

    fn send(&mut self, channel: u16, method: impl Into<Method>) {
        let method = method.into();
        if let Err(error) = switchyard_amqp::encode_method(channel, &method, &mut self.out) {
            tracing::error!(method = method.name(), %error, "could not encode a method");
        }
    }

    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let chunk = self.out.split().freeze();
        self.to_writer.send(chunk).await.is_ok()
    }

    /// After `connection.close` was sent: only its answer (or a crossing close) matters.
    fn while_closing(&mut self, frame: Frame) -> Flow {
        match frame {
            Frame::Method {
                channel: 0,
                method: Method::ConnectionCloseOk(_),
            } => Flow::Stop,
            Frame::Method {
                channel: 0,
                method: Method::ConnectionClose(_),
            } => {
                self.send(0, ConnectionCloseOk::default());
                Flow::Stop
            }
            _ => Flow::Closing,
        }
    }

    fn close_connection(&mut self, fault: Fault) {
        tracing::debug!(
            code = fault.code.code(),
            text = fault.text.as_str(),
            "closing the AMQP connection"
        );
        self.send(
            0,
            ConnectionClose {
                reply_code: fault.code.code(),
                reply_text: fault.text,
                class_id: fault.class_id,
                method_id: fault.method_id,
            },
        );
    }

    fn close_channel(&mut self, id: u16, fault: Fault) {
        tracing::debug!(
            channel = id,
            code = fault.code.code(),
            text = fault.text.as_str(),
            "closing an AMQP channel"
        );
        if let Some(channel) = self.channels.remove(&id) {
            channel.close();
        }
        self.closing_channels.insert(id);
        self.send(
            id,
            ChannelClose {
                reply_code: fault.code.code(),
                reply_text: fault.text,
                class_id: fault.class_id,
                method_id: fault.method_id,
            },
        );
    }

    /// A fault closes its channel, or the connection for the codes the spec makes hard.
    fn fault(&mut self, channel: u16, fault: Fault) -> Flow {
        if fault.code.closes_connection() || channel == 0 {
            self.close_connection(fault);
            Flow::Closing
        } else {
            self.close_channel(channel, fault);
            Flow::Continue
        }
    }

    async fn on_frame(
        &mut self,
        frame: Frame,
        backpressure: &mut crate::session::Backpressure,
    ) -> Flow {
        let channel_id = frame.channel();
        match frame {
            Frame::Heartbeat => return Flow::Continue,
            Frame::Method { channel: 0, method } => return self.on_connection_method(method),
            _ if channel_id == 0 => {
                return self.fault(
                    0,
                    Fault::new(ReplyCode::CommandInvalid, "content frames on channel 0"),
                );
            }
            _ => {}
        }
        if self.closing_channels.contains(&channel_id) {
            match frame {
                Frame::Method {
                    method: Method::ChannelCloseOk(_),
                    ..
                } => {
                    self.closing_channels.remove(&channel_id);
                }
                Frame::Method {
                    method: Method::ChannelClose(_),
                    ..
                } => {
                    self.closing_channels.remove(&channel_id);
                    self.send(channel_id, ChannelCloseOk::default());
                }
                _ => {}
            }
            return Flow::Continue;
        }
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            return match frame {
                Frame::Method {
                    method: Method::ChannelOpen(_),
                    ..
                } => self.open_channel(channel_id),
                _ => self.fault(
                    0,
                    Fault::new(
                        ReplyCode::ChannelError,
                        format!("expected 'channel.open' for channel {channel_id}"),
                    ),
                ),
            };
        };
        let command = match channel.assembler().push(frame) {
            Ok(Some(command)) => command,
            Ok(None) => return Flow::Continue,
            Err(error) => {
                let fault = Fault::new(error.reply_code(), error.to_string());
                return self.fault(channel_id, fault);
            }
        };
        match &command.method {
            Method::ChannelOpen(_) => {
                return self.fault(
                    0,
                    Fault::new(
                        ReplyCode::ChannelError,
                        format!("channel {channel_id} is already open"),
                    ),
                );
            }
            Method::ChannelClose(_) => {
                // What it published before closing is published, as the client expects.
                let _ = self.with_channel(channel_id, |channel, ctx| channel.publish_pending(ctx));
                if let Some(channel) = self.channels.remove(&channel_id) {
                    channel.close();
                }
                self.send(channel_id, ChannelCloseOk::default());
                return Flow::Continue;
            }
            Method::ChannelCloseOk(_) => return Flow::Continue,
            Method::BasicPublish(_) if matches!(backpressure.now(), Pressure::Blocked { .. }) => {
                // Held until memory is back under the watermark; the reader stops when its
                // few frames of read-ahead are full, and TCP pushes back on the publisher.
                let _ = self.flush().await;
                backpressure.cleared().await;
            }
            // Publishing is asynchronous, but a client that publishes on one channel and then
            // asks on another (a get, a declare-ok's count) expects to see its message, as it
            // does with RabbitMQ: what any channel gathered is published first.
            Method::BasicPublish(_)
            | Method::BasicAck(_)
            | Method::BasicNack(_)
            | Method::BasicReject(_) => {}
            _ => {
                let flow = self.publish_pending();
                if flow != Flow::Continue {
                    return flow;
                }
            }
        }
        match self.with_channel(channel_id, |channel, ctx| channel.handle(command, ctx)) {
            Some(Err(fault)) => self.fault(channel_id, fault),
            _ => Flow::Continue,
        }
    }

    fn open_channel(&mut self, id: u16) -> Flow {
        if id > self.tuning.channel_max {
            return self.fault(
                0,
                Fault::new(
                    ReplyCode::NotAllowed,
                    format!(
                        "channel {id} is above the negotiated channel_max of {}",
                        self.tuning.channel_max
                    ),
                ),
            );
        }
        let max_message_bytes = self.shared.max_message_bytes;
        self.channels
            .insert(id, Channel::open(id, &self.session, max_message_bytes));
        self.send(id, ChannelOpenOk::default());
        Flow::Continue
    }

    fn on_connection_method(&mut self, method: Method) -> Flow {
        match method {
            Method::ConnectionClose(close) => {
                tracing::debug!(
                    code = close.reply_code,
                    text = close.reply_text.as_str(),
                    "client closed the AMQP connection"
                );
                self.send(0, ConnectionCloseOk::default());
                Flow::Stop
            }
            Method::ConnectionCloseOk(_) => Flow::Stop,
            // No token authentication yet: the new secret is accepted and has no effect.
            Method::ConnectionUpdateSecret(_) => {
                self.send(0, ConnectionUpdateSecretOk::default());
                Flow::Continue
            }
            other => self.fault(
                0,
                Fault::new(
                    ReplyCode::CommandInvalid,
                    format!("{} is not expected on channel 0 now", other.name()),
                )
                .during(&other),
            ),
        }
    }

    fn on_event(&mut self, event: Event) {
        let channel_id = match &event {
            Event::Deliveries { channel, .. }
            | Event::Confirmed { channel, .. }
            | Event::Committed { channel } => *channel,
        };
        let outcome = self.with_channel(channel_id, |channel, ctx| match event {
            Event::Deliveries {
                consumer, event, ..
            } => {
                channel.deliver(consumer, event, ctx);
                Ok(())
            }
            Event::Confirmed { answers, .. } => {
                channel.confirmed(answers, ctx);
                Ok(())
            }
            Event::Committed { .. } => channel.committed(ctx),
        });
        if let Some(Err(fault)) = outcome {
            let _ = self.fault(channel_id, fault);
        }
    }
}

/// Turns the socket's bytes into frames for the connection task.
async fn read_frames<R: AsyncRead + Unpin>(
    mut source: R,
    mut buf: BytesMut,
    decoder: FrameDecoder,
    frames: mpsc::Sender<Inbound>,
) {
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if frames.send(Inbound::Frame(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = frames.send(Inbound::Malformed(error)).await;
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK {
            buf.reserve(READ_CHUNK);
        }
        match source.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = frames.send(Inbound::Closed).await;
                return;
            }
            Ok(_) => {}
            Err(error) => {
                let _ = frames.send(Inbound::Lost(error)).await;
                return;
            }
        }
    }
}

/// Writes the connection task's chunks, and a heartbeat whenever nothing was written for half
/// the heartbeat interval. A peer that stops reading for two intervals is given up on.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut sink: W,
    mut chunks: mpsc::Receiver<Bytes>,
    heartbeat: Option<Duration>,
) {
    let idle = heartbeat.map(|h| h / 2);
    let stuck = heartbeat
        .map(|h| h * 2)
        .unwrap_or(Duration::from_secs(3600));
    let mut batch = Vec::new();
    loop {
        let received = match idle {
            Some(idle) => {
                match tokio::time::timeout(idle, chunks.recv_many(&mut batch, 64)).await {
                    Ok(received) => received,
                    Err(_) => {
                        let mut frame = BytesMut::new();
                        encode_heartbeat(&mut frame);
                        batch.push(frame.freeze());
                        1
                    }
                }
            }
            None => chunks.recv_many(&mut batch, 64).await,
        };
        if received == 0 {
            let _ = sink.shutdown().await;
            return;
        }
        // One write for everything waiting: small chunks are copied together first.
        let chunk = match batch.len() {
            1 => batch.pop().expect("one chunk"),
            _ => {
                let mut joined = BytesMut::with_capacity(batch.iter().map(Bytes::len).sum());
                for chunk in batch.drain(..) {
                    joined.extend_from_slice(&chunk);
                }
                joined.freeze()
            }
        };
        let written = async {
            sink.write_all(&chunk).await?;
            sink.flush().await
        };
        match tokio::time::timeout(stuck, written).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "AMQP write failed");
                return;
            }
            Err(_) => {
                tracing::info!("AMQP peer has not read for two heartbeat intervals; closing");
                return;
            }
        }
    }
}
