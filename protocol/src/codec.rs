//! Framing: how one frame value becomes bytes on a stream and back.
//!
//! A frame is a `u32` big-endian payload length followed by that many bytes of payload: the
//! frame value encoded with bincode 2 through serde (`bincode::config::standard()`: little-endian
//! varints). Every stream carries one frame type per direction (`ControlUp`, `PublishDown`, …);
//! nothing on the wire says which, the stream's kind does.
//!
//! Bounds, all checked before anything is allocated for them:
//! - the announced payload length against the decoder's `max_frame`, at most
//!   [`DEFAULT_MAX_FRAME`]; a larger announcement is refused from the 4-byte prefix alone;
//! - inside a payload, a string's length against bincode's decode limit, before its buffer is
//!   allocated. The limit is the frame ceiling plus [`CLAIM_HEADROOM`]: bincode counts
//!   integers at their in-memory width (a `u64` as 8 bytes even when its varint takes 1), so a
//!   full-size frame claims a little more than its length, and the headroom keeps every frame
//!   this module encodes decodable. A lying string length in a small frame can therefore cost
//!   one allocation of up to that limit (~17 MiB, zero pages the OS maps lazily) before the
//!   frame is refused, never more. A body's length is checked against the frame's actual
//!   bytes: bodies are borrowed from the frame, not allocated;
//! - inside a payload, sequence lengths: whatever a sequence announces, at most 4 KiB is
//!   reserved before its elements decode, and headers or arguments beyond
//!   [`MAX_HEADERS`](crate::MAX_HEADERS) are refused.
//!
//! A [`DecodeError`] means the peer broke the protocol; the stream cannot be resynchronised
//! and should be closed with [`DecodeError::error_code`]. A frame that decoded consumed its
//! bytes from the buffer; after an error the buffer's contents are unspecified.
//!
//! A decoded message body of at least [`SHARE_BODIES_FROM`](crate::SHARE_BODIES_FROM) bytes
//! is a slice of the buffer the frame was read into, not a copy.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error_code::ErrorCode;

/// The largest frame payload, in bytes, and the default `max_frame`: 16 MiB. A broker may be
/// configured with a smaller one (announced in `Welcome`), never a larger one.
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Bytes of length prefix before each payload.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// How far bincode's claimed bytes may exceed the frame ceiling; see the module docs.
pub const CLAIM_HEADROOM: usize = 1024 * 1024;

const CLAIM_LIMIT: usize = DEFAULT_MAX_FRAME as usize + CLAIM_HEADROOM;

type WireConfig = Configuration<LittleEndian, Varint, Limit<CLAIM_LIMIT>>;

fn wire_config() -> WireConfig {
    bincode::config::standard().with_limit::<CLAIM_LIMIT>()
}

/// Encoding a frame failed; nothing was appended to the output.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded payload is larger than the peer accepts.
    #[error("frame payload of {size} bytes exceeds the maximum of {max}")]
    FrameTooLarge { size: usize, max: u32 },

    /// The value cannot be encoded (more than `MAX_HEADERS` headers, say).
    #[error("frame cannot be encoded")]
    Unencodable(#[source] bincode::error::EncodeError),
}

/// Decoding a frame failed: the peer broke the protocol.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix announces a payload larger than the maximum. Refused from the prefix
    /// alone: nothing was read or allocated for the payload.
    #[error("peer announced a frame payload of {announced} bytes, the maximum is {max}")]
    FrameTooLarge { announced: u32, max: u32 },

    /// The payload is not an encoding of the stream's frame type (truncated, garbage, an
    /// unknown variant, invalid UTF-8, a length beyond the limits …).
    #[error("malformed frame payload of {frame_len} bytes")]
    Malformed {
        frame_len: usize,
        #[source]
        source: bincode::error::DecodeError,
    },

    /// The frame value ended before its payload did.
    #[error("frame value ends after {used} of its {frame_len} payload bytes")]
    TrailingBytes { frame_len: usize, used: usize },

    /// A stream opened with a byte that names no [`StreamKind`](crate::StreamKind).
    #[error("stream opened with unknown kind byte {byte:#04x}")]
    UnknownStreamKind { byte: u8 },
}

impl DecodeError {
    /// The code to close the stream or connection with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::Malformed { .. }
            | DecodeError::TrailingBytes { .. }
            | DecodeError::UnknownStreamKind { .. } => ErrorCode::ProtocolViolation,
        }
    }
}

/// Appends `frame` to `out` as one frame of at most [`DEFAULT_MAX_FRAME`] payload bytes. Use
/// [`FrameEncoder`] for a peer that announced a smaller maximum.
pub fn encode<F: Serialize>(frame: &F, out: &mut BytesMut) -> Result<(), EncodeError> {
    FrameEncoder::default().encode(frame, out)
}

/// Encodes frames for a peer that accepts payloads of at most `max_frame` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameEncoder {
    /// Clamped to [`DEFAULT_MAX_FRAME`] when used.
    pub max_frame: u32,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        FrameEncoder {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl FrameEncoder {
    pub fn new(max_frame: u32) -> Self {
        FrameEncoder { max_frame }
    }

    /// Appends `frame` to `out` (length prefix, then payload). On error `out` is as it was.
    /// An oversized frame is detected while encoding, so at most `max_frame` bytes are written
    /// before it is refused.
    pub fn encode<F: Serialize>(&self, frame: &F, out: &mut BytesMut) -> Result<(), EncodeError> {
        let max = self.max_frame.min(DEFAULT_MAX_FRAME);
        let start = out.len();
        out.put_u32(0);
        let mut writer = CappedWriter {
            out,
            room: max as usize,
        };
        let result = bincode::serde::encode_into_writer(frame, &mut writer, wire_config());
        let room_left = writer.room;
        if let Err(error) = result {
            out.truncate(start);
            return Err(match error {
                bincode::error::EncodeError::UnexpectedEnd => EncodeError::FrameTooLarge {
                    size: encoded_size(frame),
                    max,
                },
                other => EncodeError::Unencodable(other),
            });
        }
        let payload_len = max as usize - room_left;
        let prefix = u32::try_from(payload_len).expect("payload is at most max_frame");
        out[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&prefix.to_be_bytes());
        Ok(())
    }
}

/// Appends to the output until `room` bytes are used, then refuses.
struct CappedWriter<'a> {
    out: &'a mut BytesMut,
    room: usize,
}

impl bincode::enc::write::Writer for CappedWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        if bytes.len() > self.room {
            return Err(bincode::error::EncodeError::UnexpectedEnd);
        }
        self.room -= bytes.len();
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

/// The payload size of an oversized frame, for its error (off the hot path).
fn encoded_size<F: Serialize>(frame: &F) -> usize {
    let mut counter = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(frame, &mut counter, wire_config()) {
        Ok(()) => counter.bytes_written,
        Err(_) => usize::MAX,
    }
}

/// A frame type that borrows from the payload it was decoded from, for
/// [`FrameDecoder::decode_view`]: `Frame<'p>` is the type decoded from a payload that lives
/// for `'p`.
pub trait FrameView {
    type Frame<'p>: serde::Deserialize<'p>;
}

/// Decodes frames of one stream from a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// The largest payload accepted, in bytes; clamped to [`DEFAULT_MAX_FRAME`] when used.
    pub max_frame: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl FrameDecoder {
    pub fn new(max_frame: u32) -> Self {
        FrameDecoder { max_frame }
    }

    /// Takes the next frame off the front of `buf`. `Ok(None)` means `buf` holds no complete
    /// frame yet (it is left untouched): read more onto its end and call again. Call until
    /// `Ok(None)` after each read: one read may bring many frames.
    ///
    /// Does not reserve room for an announced frame; the caller's reads grow `buf`, so a peer
    /// that announces a large frame and stalls costs only what it actually sent.
    pub fn decode<F: DeserializeOwned>(
        &self,
        buf: &mut BytesMut,
    ) -> Result<Option<F>, DecodeError> {
        let Some(payload) = self.take_payload(buf)? else {
            return Ok(None);
        };
        let decoded = crate::body::sharing_frame(&payload, || {
            bincode::serde::decode_from_slice::<F, _>(&payload, wire_config())
        });
        check_used(decoded, payload.len()).map(Some)
    }

    /// Like [`decode`](Self::decode), for a frame type whose values borrow from the payload
    /// (strings as `&str`, bodies as `&[u8]`): `finish` gets the decoded value and the payload
    /// it borrows from (to slice a body out of it, say) and makes what the caller keeps. The
    /// same bounds apply; nothing is allocated for a borrowed string or body.
    pub fn decode_view<V: FrameView, R>(
        &self,
        buf: &mut BytesMut,
        finish: impl for<'p> FnOnce(V::Frame<'p>, &'p Bytes) -> R,
    ) -> Result<Option<R>, DecodeError> {
        let Some(payload) = self.take_payload(buf)? else {
            return Ok(None);
        };
        let decoded =
            bincode::serde::borrow_decode_from_slice::<V::Frame<'_>, _>(&payload, wire_config());
        let frame = check_used(decoded, payload.len())?;
        Ok(Some(finish(frame, &payload)))
    }

    /// Takes one whole frame's payload off the front of `buf`, if it holds one.
    fn take_payload(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let announced = u32::from_be_bytes(*prefix);
        let max = self.max_frame.min(DEFAULT_MAX_FRAME);
        if announced > max {
            return Err(DecodeError::FrameTooLarge { announced, max });
        }
        let frame_len = announced as usize;
        if buf.len() < LENGTH_PREFIX_BYTES + frame_len {
            return Ok(None);
        }
        buf.advance(LENGTH_PREFIX_BYTES);
        Ok(Some(buf.split_to(frame_len).freeze()))
    }
}

/// A decoded frame must use its whole payload.
fn check_used<F>(
    decoded: Result<(F, usize), bincode::error::DecodeError>,
    frame_len: usize,
) -> Result<F, DecodeError> {
    match decoded {
        Ok((frame, used)) if used == frame_len => Ok(frame),
        Ok((_, used)) => Err(DecodeError::TrailingBytes { frame_len, used }),
        Err(source) => Err(DecodeError::Malformed { frame_len, source }),
    }
}
