//! Bounded reading of AMQP's primitive types from one frame's payload, and the error every
//! payload parser returns.
//!
//! A [`Reader`] owns the payload as `Bytes`, so long strings come out as zero-copy slices.
//! Every length is checked against the bytes left before anything is allocated or sliced, so
//! no input can make it panic or allocate more than the payload holds. Consecutive `bit`
//! fields share octets (least significant bit first), as the spec packs them; any other field
//! ends the run.

use bytes::{Buf, Bytes};
use switchyard_value::{MAX_TABLE_ITEMS, MAX_VALUE_DEPTH, Table};
use thiserror::Error;

use crate::ReplyCode;
use crate::values;

/// A method, content header or field table that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SyntaxError {
    /// A field announced or needs more bytes than the payload has left.
    #[error("{what} at offset {offset} needs {need} bytes, {have} are left")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// A short string (a name, or a table's field name) that is not UTF-8.
    #[error("{what} at offset {offset} is not UTF-8")]
    InvalidUtf8 { what: &'static str, offset: usize },
    /// A field value's type letter that RabbitMQ's table does not define.
    #[error("unknown field value type {letter:#04x} at offset {offset}")]
    UnknownFieldType { letter: u8, offset: usize },
    /// Tables and arrays nest deeper than [`MAX_VALUE_DEPTH`].
    #[error("a field table nests deeper than {MAX_VALUE_DEPTH} levels")]
    TooDeep,
    /// One table holds more than [`MAX_TABLE_ITEMS`] values, counting nested ones.
    #[error("a field table holds more than {MAX_TABLE_ITEMS} values")]
    TooManyItems,
    /// Bytes left over after the last field: the peer and we disagree on the layout.
    #[error("{count} bytes left over after the last field of {what}")]
    TrailingBytes { what: &'static str, count: usize },
    /// A class and method id pair that AMQP 0-9-1 does not define.
    #[error("unknown method {class_id}.{method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    /// A content header announces a property the basic class does not have.
    #[error("content header sets unknown property flags {flags:#06x}")]
    UnknownProperty { flags: u16 },
}

impl SyntaxError {
    /// What the connection closes with. RabbitMQ answers any payload it cannot decode with
    /// `FRAME_ERROR - cannot decode`; for an unknown method the spec names no code, and we
    /// answer 540 not-implemented: it is functionality we do not have.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            SyntaxError::UnknownMethod { .. } => ReplyCode::NotImplemented,
            _ => ReplyCode::FrameError,
        }
    }
}

/// A cursor over one payload.
#[derive(Debug)]
pub(crate) struct Reader {
    input: Bytes,
    /// Bytes consumed so far, for error offsets.
    offset: usize,
    /// The octet the current run of `bit` fields is read from, and the next bit's index in
    /// it; `None` when the next `bit` starts a new octet.
    bits: Option<(u8, u8)>,
}

impl Reader {
    pub(crate) fn new(input: Bytes) -> Reader {
        Reader {
            input,
            offset: 0,
            bits: None,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.input.len()
    }

    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// Fails unless everything was read.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), SyntaxError> {
        match self.input.len() {
            0 => Ok(()),
            count => Err(SyntaxError::TrailingBytes { what, count }),
        }
    }

    fn need(&self, what: &'static str, need: usize) -> Result<(), SyntaxError> {
        if self.input.len() < need {
            return Err(SyntaxError::Truncated {
                what,
                offset: self.offset,
                need,
                have: self.input.len(),
            });
        }
        Ok(())
    }

    /// The next `len` bytes, zero-copy.
    pub(crate) fn take(&mut self, what: &'static str, len: usize) -> Result<Bytes, SyntaxError> {
        self.need(what, len)?;
        self.bits = None;
        self.offset += len;
        Ok(self.input.split_to(len))
    }

    /// A `u32` length, then that many bytes.
    pub(crate) fn take_long_prefixed(&mut self, what: &'static str) -> Result<Bytes, SyntaxError> {
        let len = self.long()?;
        self.take(what, len as usize)
    }

    pub(crate) fn octet(&mut self) -> Result<u8, SyntaxError> {
        self.need("an octet", 1)?;
        self.bits = None;
        self.offset += 1;
        Ok(self.input.get_u8())
    }

    pub(crate) fn short(&mut self) -> Result<u16, SyntaxError> {
        self.need("a short", 2)?;
        self.bits = None;
        self.offset += 2;
        Ok(self.input.get_u16())
    }

    pub(crate) fn long(&mut self) -> Result<u32, SyntaxError> {
        self.need("a long", 4)?;
        self.bits = None;
        self.offset += 4;
        Ok(self.input.get_u32())
    }

    pub(crate) fn longlong(&mut self) -> Result<u64, SyntaxError> {
        self.need("a long long", 8)?;
        self.bits = None;
        self.offset += 8;
        Ok(self.input.get_u64())
    }

    pub(crate) fn bit(&mut self) -> Result<bool, SyntaxError> {
        let (octet, index) = match self.bits {
            Some((octet, index)) if index < 8 => (octet, index),
            _ => (self.octet()?, 0),
        };
        self.bits = Some((octet, index + 1));
        Ok(octet & (1 << index) != 0)
    }

    pub(crate) fn shortstr(&mut self) -> Result<String, SyntaxError> {
        let offset = self.offset;
        let len = self.octet()?;
        let bytes = self.take("a short string", len.into())?;
        String::from_utf8(bytes.to_vec()).map_err(|_| SyntaxError::InvalidUtf8 {
            what: "a short string",
            offset,
        })
    }

    pub(crate) fn longstr(&mut self) -> Result<Bytes, SyntaxError> {
        self.take_long_prefixed("a long string")
    }

    pub(crate) fn table(&mut self) -> Result<Table, SyntaxError> {
        values::read_table(self)
    }

    pub(crate) fn timestamp(&mut self) -> Result<u64, SyntaxError> {
        self.longlong()
    }

    /// The payload left, consumed, as a reader of its own whose offsets continue from here.
    pub(crate) fn sub_reader(
        &mut self,
        what: &'static str,
        len: usize,
    ) -> Result<Reader, SyntaxError> {
        let offset = self.offset;
        let input = self.take(what, len)?;
        Ok(Reader {
            input,
            offset,
            bits: None,
        })
    }
}
