//! Writing whole frames: a method, a message's content (header frame and body frames cut to
//! `frame_max`), a heartbeat. Each function appends to the connection's write buffer and, if it
//! fails, leaves the buffer as it found it.

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{
    FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEADER_SIZE, FRAME_HEARTBEAT, FRAME_METHOD,
    FRAME_OVERHEAD,
};
use crate::method::Method;
use crate::properties::BasicProperties;
use crate::writer::{EncodeError, long_len};

/// Appends one method frame. The caller keeps its tables within the negotiated `frame_max`
/// (every other argument is bounded well below the spec's minimum of 4096).
pub fn encode_method(channel: u16, method: &Method, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let start = buf.len();
    let result = write_frame(FRAME_METHOD, channel, buf, |buf| method.encode(buf));
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// Appends a content header frame and the body frames, each body frame carrying at most
/// `frame_max - 8` bytes; an empty body sends no body frame. Fails, writing nothing, if the
/// header alone does not fit `frame_max`, or a non-empty body cannot fit any frame.
pub fn encode_content(
    channel: u16,
    class_id: u16,
    properties: &BasicProperties,
    body: &Bytes,
    frame_max: u32,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = buf.len();
    let result = write_content(channel, class_id, properties, body, frame_max, buf);
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// Appends a heartbeat frame.
pub fn encode_heartbeat(buf: &mut BytesMut) {
    buf.put_u8(FRAME_HEARTBEAT);
    buf.put_u16(0);
    buf.put_u32(0);
    buf.put_u8(FRAME_END);
}

fn write_content(
    channel: u16,
    class_id: u16,
    properties: &BasicProperties,
    body: &Bytes,
    frame_max: u32,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let max_payload = frame_max.saturating_sub(FRAME_OVERHEAD) as usize;
    if !body.is_empty() && max_payload == 0 {
        return Err(EncodeError::FrameMaxTooSmall { frame_max });
    }
    let header_start = buf.len();
    write_frame(FRAME_HEADER, channel, buf, |buf| {
        buf.put_u16(class_id);
        buf.put_u16(0); // weight: unused, always 0
        buf.put_u64(body.len() as u64);
        properties.encode(buf)
    })?;
    let header_size = buf.len() - header_start;
    if header_size > frame_max as usize {
        return Err(EncodeError::ContentHeaderTooLarge {
            size: header_size,
            frame_max,
        });
    }
    buf.reserve(body.len() + body.len().div_ceil(max_payload.max(1)) * FRAME_OVERHEAD as usize);
    for chunk in body.chunks(max_payload.max(1)) {
        write_frame(FRAME_BODY, channel, buf, |buf| {
            buf.put_slice(chunk);
            Ok(())
        })?;
    }
    Ok(())
}

/// Writes the frame header with a size placeholder, the payload `body` writes, the real
/// size, and the end octet.
fn write_frame(
    frame_type: u8,
    channel: u16,
    buf: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_u8(frame_type);
    buf.put_u16(channel);
    buf.put_u32(0);
    body(buf)?;
    let size = long_len("a frame payload", buf.len() - start - FRAME_HEADER_SIZE)?;
    if let Some(slot) = buf.get_mut(start + 3..start + FRAME_HEADER_SIZE) {
        slot.copy_from_slice(&size.to_be_bytes());
    }
    buf.put_u8(FRAME_END);
    Ok(())
}
