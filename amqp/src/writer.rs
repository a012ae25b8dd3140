//! Writing AMQP's primitive types into an output buffer, and the error encoding returns.
//!
//! Encoding fails only where AMQP cannot express a value (a name over 255 bytes, a string
//! over 4 GiB) or a frame would break the negotiated `frame_max`; the public encoders leave
//! the buffer as they found it when they fail.

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_value::Table;
use thiserror::Error;

use crate::values;

/// A method, header or value AMQP cannot carry as given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A short string (a name, a short property, a table's field name) over 255 bytes.
    #[error("a short string of {len} bytes is longer than 255")]
    ShortStringTooLong { len: usize },
    /// A long string, byte array, table or array over `u32::MAX` bytes.
    #[error("{what} of {len} bytes is longer than a 32-bit length allows")]
    TooLong { what: &'static str, len: usize },
    /// The content header alone does not fit one frame of the negotiated size.
    #[error("a content header of {size} bytes does not fit frame_max {frame_max}")]
    ContentHeaderTooLarge { size: usize, frame_max: u32 },
    /// A `frame_max` too small to carry any body byte (it counts the 8 bytes of framing).
    #[error("frame_max {frame_max} leaves no room for a body")]
    FrameMaxTooSmall { frame_max: u32 },
}

/// A cursor appending to a buffer, packing consecutive `bit` fields into shared octets.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut BytesMut,
    /// Where the octet of the current run of `bit` fields is, and the next bit's index in it.
    bits: Option<(usize, u8)>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut BytesMut) -> Writer<'a> {
        Writer { buf, bits: None }
    }

    pub(crate) fn octet(&mut self, value: &u8) -> Result<(), EncodeError> {
        self.bits = None;
        self.buf.put_u8(*value);
        Ok(())
    }

    pub(crate) fn short(&mut self, value: &u16) -> Result<(), EncodeError> {
        self.bits = None;
        self.buf.put_u16(*value);
        Ok(())
    }

    pub(crate) fn long(&mut self, value: &u32) -> Result<(), EncodeError> {
        self.bits = None;
        self.buf.put_u32(*value);
        Ok(())
    }

    pub(crate) fn longlong(&mut self, value: &u64) -> Result<(), EncodeError> {
        self.bits = None;
        self.buf.put_u64(*value);
        Ok(())
    }

    pub(crate) fn timestamp(&mut self, value: &u64) -> Result<(), EncodeError> {
        self.longlong(value)
    }

    pub(crate) fn bit(&mut self, value: &bool) -> Result<(), EncodeError> {
        let (at, index) = match self.bits {
            Some((at, index)) if index < 8 => (at, index),
            _ => {
                self.buf.put_u8(0);
                (self.buf.len() - 1, 0)
            }
        };
        if *value && let Some(octet) = self.buf.get_mut(at) {
            *octet |= 1 << index;
        }
        self.bits = Some((at, index + 1));
        Ok(())
    }

    pub(crate) fn shortstr(&mut self, value: &str) -> Result<(), EncodeError> {
        self.bits = None;
        put_shortstr(self.buf, value)
    }

    pub(crate) fn longstr(&mut self, value: &Bytes) -> Result<(), EncodeError> {
        self.bits = None;
        put_long_prefixed(self.buf, "a long string", value)
    }

    pub(crate) fn table(&mut self, value: &Table) -> Result<(), EncodeError> {
        self.bits = None;
        values::encode_field_table(value, self.buf)
    }
}

pub(crate) fn put_shortstr(buf: &mut BytesMut, value: &str) -> Result<(), EncodeError> {
    let len = u8::try_from(value.len())
        .map_err(|_| EncodeError::ShortStringTooLong { len: value.len() })?;
    buf.put_u8(len);
    buf.put_slice(value.as_bytes());
    Ok(())
}

pub(crate) fn put_long_prefixed(
    buf: &mut BytesMut,
    what: &'static str,
    value: &[u8],
) -> Result<(), EncodeError> {
    let len = long_len(what, value.len())?;
    buf.put_u32(len);
    buf.put_slice(value);
    Ok(())
}

pub(crate) fn long_len(what: &'static str, len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLong { what, len })
}

/// Writes a `u32` length placeholder, runs `body`, then fills in how many bytes it wrote.
pub(crate) fn with_long_length(
    buf: &mut BytesMut,
    what: &'static str,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let at = buf.len();
    buf.put_u32(0);
    body(buf)?;
    let len = long_len(what, buf.len() - at - 4)?;
    if let Some(slot) = buf.get_mut(at..at + 4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}
