//! Splitting the byte stream into frames: the protocol header a client opens with, then
//! frames of a 7-byte header (type, channel, payload size), the payload and the end octet.
//!
//! [`FrameDecoder::decode`] is called with the connection's read buffer after every read; it
//! takes one whole frame off the front or, for an incomplete one, takes nothing and returns
//! `None`. The announced size is checked against `frame_max` as soon as the 7 header bytes are
//! there, before any byte of the payload is waited for or reserved, so a peer cannot make us
//! buffer more than one frame of the negotiated size. Bodies are zero-copy slices of the read
//! buffer.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::ReplyCode;
use crate::method::Method;
use crate::properties::{BASIC_CLASS_ID, BasicProperties, read_properties};
use crate::reader::{Reader, SyntaxError};

/// What an AMQP 0-9-1 client sends first, and what a server answers when it gets anything
/// else.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// Type, channel and payload size.
pub const FRAME_HEADER_SIZE: usize = 7;

/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;

/// The bytes of framing around each payload; `frame_max` counts them.
pub const FRAME_OVERHEAD: u32 = FRAME_HEADER_SIZE as u32 + 1;

/// The smallest `frame_max` a peer may negotiate (the spec's `frame-min-size`).
pub const FRAME_MIN_SIZE: u32 = 4096;

pub(crate) const FRAME_METHOD: u8 = 1;
pub(crate) const FRAME_HEADER: u8 = 2;
pub(crate) const FRAME_BODY: u8 = 3;
pub(crate) const FRAME_HEARTBEAT: u8 = 8;

/// A client opened with something other than [`PROTOCOL_HEADER`]: the server writes
/// [`PROTOCOL_HEADER`] and closes the socket, as the spec says.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not an AMQP 0-9-1 protocol header: {received:02x?}")]
pub struct ProtocolHeaderError {
    /// What the client sent, as far as it differs (at most 8 bytes).
    pub received: Bytes,
}

/// Takes the protocol header off the front of `buf`: `Ok(Some(()))` once all 8 bytes are
/// there and right, `Ok(None)` while they might still be, an error as soon as a byte differs
/// (so a client that sent `GET /` is answered without waiting for more).
pub fn decode_protocol_header(buf: &mut BytesMut) -> Result<Option<()>, ProtocolHeaderError> {
    let seen = buf.len().min(PROTOCOL_HEADER.len());
    if buf.get(..seen) != PROTOCOL_HEADER.get(..seen) {
        return Err(ProtocolHeaderError {
            received: Bytes::copy_from_slice(buf.get(..seen).unwrap_or_default()),
        });
    }
    if seen < PROTOCOL_HEADER.len() {
        return Ok(None);
    }
    buf.advance(PROTOCOL_HEADER.len());
    Ok(Some(()))
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Method {
        channel: u16,
        method: Method,
    },
    /// A content header: the properties and size of the message whose method came before.
    Header {
        channel: u16,
        class_id: u16,
        body_size: u64,
        properties: BasicProperties,
    },
    /// A piece of the message body.
    Body {
        channel: u16,
        payload: Bytes,
    },
    Heartbeat,
}

impl Frame {
    /// The channel the frame was sent on (0 for a heartbeat).
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. } => *channel,
            Frame::Heartbeat => 0,
        }
    }
}

/// A frame that breaks the framing rules; the connection closes with
/// [`reply_code`](FrameError::reply_code).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The header announces more payload than `frame_max` allows (noticed before any of it
    /// arrives).
    #[error("frame of type {frame_type} on channel {channel} announces {size} payload bytes, frame_max {frame_max} allows {}", frame_max.saturating_sub(FRAME_OVERHEAD))]
    TooLarge {
        frame_type: u8,
        channel: u16,
        size: u32,
        frame_max: u32,
    },
    /// The octet after the payload is not 0xCE.
    #[error("frame on channel {channel} ends with {found:#04x}, not 0xce")]
    BadFrameEnd { channel: u16, found: u8 },
    /// A frame type other than method (1), header (2), body (3) or heartbeat (8).
    #[error("unknown frame type {frame_type} on channel {channel}")]
    UnknownType { frame_type: u8, channel: u16 },
    /// A heartbeat on a channel other than 0.
    #[error("heartbeat on channel {channel}")]
    HeartbeatOnChannel { channel: u16 },
    /// A heartbeat with a payload.
    #[error("heartbeat with {size} payload bytes")]
    HeartbeatWithPayload { size: u32 },
    /// A content header for a class other than basic, the only one with content.
    #[error("content header on channel {channel} for class {class_id}, not basic (60)")]
    ContentClass { channel: u16, class_id: u16 },
    /// A method or content header payload that does not decode.
    #[error("cannot decode the {} frame on channel {channel}", if *frame_type == FRAME_METHOD { "method" } else { "content header" })]
    Malformed {
        frame_type: u8,
        channel: u16,
        #[source]
        cause: SyntaxError,
    },
}

impl FrameError {
    /// What the connection closes with: the spec's frame error (501) for broken framing and
    /// heartbeats, unexpected frame (505) for a content header of the wrong class (as RabbitMQ
    /// says), and the decoding error's own code for a payload that does not decode.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            FrameError::TooLarge { .. }
            | FrameError::BadFrameEnd { .. }
            | FrameError::UnknownType { .. }
            | FrameError::HeartbeatOnChannel { .. }
            | FrameError::HeartbeatWithPayload { .. } => ReplyCode::FrameError,
            FrameError::ContentClass { .. } => ReplyCode::UnexpectedFrame,
            FrameError::Malformed { cause, .. } => cause.reply_code(),
        }
    }
}

/// Splits frames off a read buffer under one `frame_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// The largest frame, framing included, as negotiated by `connection.tune-ok` (use
    /// [`FRAME_MIN_SIZE`] until then). The spec's 0, "no limit", is not one: the frontend
    /// resolves it to its own limit before building a decoder.
    pub frame_max: u32,
}

impl FrameDecoder {
    pub fn new(frame_max: u32) -> FrameDecoder {
        FrameDecoder { frame_max }
    }

    /// The most payload one frame may carry.
    pub fn max_payload(&self) -> u32 {
        self.frame_max.saturating_sub(FRAME_OVERHEAD)
    }

    /// Takes one whole frame off the front of `buf`, or returns `None` (taking nothing, and
    /// reserving room for the rest of the frame) until one is there.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = buf.first_chunk::<FRAME_HEADER_SIZE>() else {
            return Ok(None);
        };
        let frame_type = header[0];
        let channel = u16::from_be_bytes([header[1], header[2]]);
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
        self.check_header(frame_type, channel, size)?;

        // `size` is bounded by frame_max now, so the whole frame is too.
        let total = FRAME_HEADER_SIZE + size as usize + 1;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let found = buf.get(total - 1).copied().unwrap_or_default();
        if found != FRAME_END {
            return Err(FrameError::BadFrameEnd { channel, found });
        }
        buf.advance(FRAME_HEADER_SIZE);
        let payload = buf.split_to(size as usize).freeze();
        buf.advance(1);
        parse_payload(frame_type, channel, payload).map(Some)
    }

    /// Everything that can be refused from the 7 header bytes alone.
    fn check_header(&self, frame_type: u8, channel: u16, size: u32) -> Result<(), FrameError> {
        match frame_type {
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY => {}
            FRAME_HEARTBEAT if channel != 0 => {
                return Err(FrameError::HeartbeatOnChannel { channel });
            }
            FRAME_HEARTBEAT if size != 0 => {
                return Err(FrameError::HeartbeatWithPayload { size });
            }
            FRAME_HEARTBEAT => {}
            _ => {
                return Err(FrameError::UnknownType {
                    frame_type,
                    channel,
                });
            }
        }
        if size > self.max_payload() {
            return Err(FrameError::TooLarge {
                frame_type,
                channel,
                size,
                frame_max: self.frame_max,
            });
        }
        Ok(())
    }
}

fn parse_payload(frame_type: u8, channel: u16, payload: Bytes) -> Result<Frame, FrameError> {
    let malformed = |cause| FrameError::Malformed {
        frame_type,
        channel,
        cause,
    };
    match frame_type {
        FRAME_METHOD => {
            let method = Method::decode(payload).map_err(malformed)?;
            Ok(Frame::Method { channel, method })
        }
        FRAME_HEADER => parse_content_header(channel, payload),
        FRAME_BODY => Ok(Frame::Body { channel, payload }),
        _ => Ok(Frame::Heartbeat),
    }
}

/// Class id, weight, body size, then the class's properties. The weight is unused in 0-9-1
/// and always 0; one that is not is ignored rather than refused.
fn parse_content_header(channel: u16, payload: Bytes) -> Result<Frame, FrameError> {
    let malformed = |cause| FrameError::Malformed {
        frame_type: FRAME_HEADER,
        channel,
        cause,
    };
    let mut reader = Reader::new(payload);
    let class_id = reader.short().map_err(malformed)?;
    if class_id != BASIC_CLASS_ID {
        return Err(FrameError::ContentClass { channel, class_id });
    }
    let _weight = reader.short().map_err(malformed)?;
    let body_size = reader.longlong().map_err(malformed)?;
    let properties = read_properties(&mut reader).map_err(malformed)?;
    reader.finish("a content header").map_err(malformed)?;
    Ok(Frame::Header {
        channel,
        class_id,
        body_size,
        properties,
    })
}
