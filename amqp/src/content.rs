//! Assembling one channel's frames into commands: a method, or a content-carrying method
//! (`basic.publish`, and `basic.deliver`/`get-ok`/`return` for clients) with the content
//! header and body frames that follow it.
//!
//! One [`ContentAssembler`] per open channel; the frontend hands it that channel's frames
//! (heartbeats, which belong to the connection, are not its business and pass through as
//! nothing). After a content-carrying method it expects exactly one header frame of the basic
//! class, then body frames until `body_size` bytes have come: anything else on the channel in
//! between is a connection error, 505 unexpected-frame, as RabbitMQ's command assembler has it
//! — except a body frame longer than what is left of the announced size, which RabbitMQ's
//! assembler refuses as 501 frame-error ("content body frame exceeds remaining content
//! size"), and so do we.
//!
//! The body size is checked against `max_message_bytes` when the header arrives, before any
//! body byte is kept: that is a channel error, 406 precondition-failed, as RabbitMQ's
//! `max_message_size` is. The frontend closes the channel and drops the channel's frames until
//! `channel.close-ok`; the assembler is back to expecting a method after any error.
//!
//! A body that arrives in one frame is the frame's own zero-copy `Bytes`; one spread over
//! several frames is gathered into a buffer reserved once to `body_size`, which is at most
//! `max_message_bytes`.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use crate::ReplyCode;
use crate::frame::Frame;
use crate::method::Method;
use crate::properties::{BASIC_CLASS_ID, BasicProperties};

/// A method, with its content if it carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub channel: u16,
    pub method: Method,
    pub content: Option<Content>,
}

/// A message's properties and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub properties: BasicProperties,
    pub body: Bytes,
}

/// A frame out of order on a channel, or a message too large.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContentError {
    /// A frame for another channel was given to this channel's assembler.
    #[error("frame for channel {got} given to channel {expected}")]
    WrongChannel { expected: u16, got: u16 },
    /// A content header with no content-carrying method before it.
    #[error("unexpected content header on channel {channel}")]
    UnexpectedHeader { channel: u16 },
    /// A body frame with no content header before it.
    #[error("unexpected content body on channel {channel}")]
    UnexpectedBody { channel: u16 },
    /// Something other than the content header after a content-carrying method.
    #[error("expected content header for {method} on channel {channel}, got a {got} frame")]
    HeaderExpected {
        channel: u16,
        method: &'static str,
        got: &'static str,
    },
    /// A method (or a second header) while body frames were still due.
    #[error(
        "expected content body for {method} on channel {channel} ({missing} bytes due), got {got}"
    )]
    BodyExpected {
        channel: u16,
        method: &'static str,
        got: &'static str,
        missing: u64,
    },
    /// A content header for a class other than the method's (basic).
    #[error(
        "expected content header for class {BASIC_CLASS_ID} on channel {channel}, got one for class {class_id}"
    )]
    HeaderClass { channel: u16, class_id: u16 },
    /// A body frame longer than what is left of the announced body size.
    #[error(
        "body frame of {size} bytes on channel {channel} exceeds the {remaining} bytes left of the announced body"
    )]
    BodyTooLong {
        channel: u16,
        size: usize,
        remaining: u64,
    },
    /// A message over `max_message_bytes`.
    #[error("message size {body_size} is larger than the configured maximum {max_message_bytes}")]
    MessageTooLarge {
        channel: u16,
        body_size: u64,
        max_message_bytes: u64,
    },
}

impl ContentError {
    /// 406 (a channel error) for a message over the limit, 501 for a body longer than
    /// announced, 505 (a connection error) for a frame out of order; as RabbitMQ.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            ContentError::MessageTooLarge { .. } => ReplyCode::PreconditionFailed,
            ContentError::BodyTooLong { .. } => ReplyCode::FrameError,
            _ => ReplyCode::UnexpectedFrame,
        }
    }
}

/// Turns one channel's frames into [`Command`]s.
#[derive(Debug)]
pub struct ContentAssembler {
    channel: u16,
    max_message_bytes: u64,
    state: State,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    AwaitingHeader {
        method: Method,
    },
    /// Boxed: a message in flight is rare next to the commands without content.
    AwaitingBody(Box<PendingBody>),
}

#[derive(Debug)]
struct PendingBody {
    method: Method,
    properties: BasicProperties,
    body_size: u64,
    body: PartialBody,
}

/// The body received so far.
#[derive(Debug)]
enum PartialBody {
    Empty,
    /// One frame's payload, kept as it came in case it is the whole body.
    OneFrame(Bytes),
    /// Several frames, copied into a buffer reserved to the body size.
    Gathered(BytesMut),
}

impl PartialBody {
    fn len(&self) -> u64 {
        match self {
            PartialBody::Empty => 0,
            PartialBody::OneFrame(bytes) => bytes.len() as u64,
            PartialBody::Gathered(buf) => buf.len() as u64,
        }
    }

    fn push(self, payload: Bytes, body_size: u64) -> PartialBody {
        match self {
            PartialBody::Empty => PartialBody::OneFrame(payload),
            PartialBody::OneFrame(first) => {
                // body_size is bounded by max_message_bytes before any body frame is taken.
                let mut buf = BytesMut::with_capacity(usize::try_from(body_size).unwrap_or(0));
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&payload);
                PartialBody::Gathered(buf)
            }
            PartialBody::Gathered(mut buf) => {
                buf.extend_from_slice(&payload);
                PartialBody::Gathered(buf)
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            PartialBody::Empty => Bytes::new(),
            PartialBody::OneFrame(bytes) => bytes,
            PartialBody::Gathered(buf) => buf.freeze(),
        }
    }
}

impl ContentAssembler {
    /// An assembler for `channel` that refuses messages whose body is over
    /// `max_message_bytes` (RabbitMQ's default `max_message_size` is 16 MiB).
    pub fn new(channel: u16, max_message_bytes: u64) -> ContentAssembler {
        ContentAssembler {
            channel,
            max_message_bytes,
            state: State::Idle,
        }
    }

    pub fn channel(&self) -> u16 {
        self.channel
    }

    /// Whether a content-carrying method is waiting for its header or body.
    pub fn is_mid_content(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Takes the channel's next frame: a whole command once one is complete, `None` while
    /// content is still due. After an error the assembler expects a method again.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Command>, ContentError> {
        if let Frame::Heartbeat = frame {
            return Ok(None);
        }
        let got = frame.channel();
        if got != self.channel {
            return Err(ContentError::WrongChannel {
                expected: self.channel,
                got,
            });
        }
        let state = std::mem::take(&mut self.state);
        let (next, command) = self.step(state, frame)?;
        self.state = next;
        Ok(command)
    }

    fn step(&self, state: State, frame: Frame) -> Result<(State, Option<Command>), ContentError> {
        let channel = self.channel;
        match (state, frame) {
            (State::Idle, Frame::Method { method, .. }) => {
                if method.carries_content() {
                    Ok((State::AwaitingHeader { method }, None))
                } else {
                    Ok((State::Idle, Some(self.command(method, None))))
                }
            }
            (State::Idle, Frame::Header { .. }) => Err(ContentError::UnexpectedHeader { channel }),
            (State::Idle, Frame::Body { .. }) => Err(ContentError::UnexpectedBody { channel }),
            (
                State::AwaitingHeader { method },
                Frame::Header {
                    class_id,
                    body_size,
                    properties,
                    ..
                },
            ) => {
                if class_id != method.class_id() {
                    return Err(ContentError::HeaderClass { channel, class_id });
                }
                if body_size > self.max_message_bytes {
                    return Err(ContentError::MessageTooLarge {
                        channel,
                        body_size,
                        max_message_bytes: self.max_message_bytes,
                    });
                }
                self.body_progress(method, properties, body_size, PartialBody::Empty)
            }
            (State::AwaitingHeader { method }, other) => Err(ContentError::HeaderExpected {
                channel,
                method: method.name(),
                got: frame_kind(&other),
            }),
            (State::AwaitingBody(pending), Frame::Body { payload, .. }) => {
                let PendingBody {
                    method,
                    properties,
                    body_size,
                    body,
                } = *pending;
                let remaining = body_size.saturating_sub(body.len());
                if payload.len() as u64 > remaining {
                    return Err(ContentError::BodyTooLong {
                        channel,
                        size: payload.len(),
                        remaining,
                    });
                }
                let body = body.push(payload, body_size);
                self.body_progress(method, properties, body_size, body)
            }
            (State::AwaitingBody(pending), other) => Err(ContentError::BodyExpected {
                channel,
                method: pending.method.name(),
                got: match &other {
                    Frame::Method { method, .. } => method.name(),
                    other => frame_kind(other),
                },
                missing: pending.body_size.saturating_sub(pending.body.len()),
            }),
            // Heartbeats were filtered out in push.
            (state, Frame::Heartbeat) => Ok((state, None)),
        }
    }

    /// The command if the body is complete, else the state that waits for more.
    fn body_progress(
        &self,
        method: Method,
        properties: BasicProperties,
        body_size: u64,
        body: PartialBody,
    ) -> Result<(State, Option<Command>), ContentError> {
        if body.len() == body_size {
            let content = Content {
                properties,
                body: body.into_bytes(),
            };
            return Ok((State::Idle, Some(self.command(method, Some(content)))));
        }
        Ok((
            State::AwaitingBody(Box::new(PendingBody {
                method,
                properties,
                body_size,
                body,
            })),
            None,
        ))
    }

    fn command(&self, method: Method, content: Option<Content>) -> Command {
        Command {
            channel: self.channel,
            method,
            content,
        }
    }
}

fn frame_kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Method { .. } => "method",
        Frame::Header { .. } => "content header",
        Frame::Body { .. } => "content body",
        Frame::Heartbeat => "heartbeat",
    }
}
