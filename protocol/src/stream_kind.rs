//! The byte that opens every stream and says which kind it is.
//!
//! QUIC streams carry no label of their own, and the first frames of a publish stream and a
//! consume stream cannot be told apart reliably, so the client writes one [`StreamKind`] byte
//! before the first frame of each stream it opens. The control stream must be the connection's
//! first stream and carry [`StreamKind::Control`]; any other byte, or a second control stream,
//! is a protocol violation.

use bytes::{Buf, BytesMut};

use crate::codec::DecodeError;

/// Which frames a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamKind {
    /// `ControlUp` / `ControlDown`.
    Control = 1,
    /// `PublishUp` / `PublishDown`.
    Publish = 2,
    /// `ConsumeUp` / `ConsumeDown`.
    Consume = 3,
}

impl StreamKind {
    /// The byte that announces this kind.
    pub const fn as_byte(self) -> u8 {
        self as u8
    }

    /// The kind a byte announces.
    pub const fn from_byte(byte: u8) -> Option<StreamKind> {
        match byte {
            1 => Some(StreamKind::Control),
            2 => Some(StreamKind::Publish),
            3 => Some(StreamKind::Consume),
            _ => None,
        }
    }

    /// Takes the kind byte off the front of a stream's receive buffer; `Ok(None)` if `buf` is
    /// still empty.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<StreamKind>, DecodeError> {
        let Some(&byte) = buf.first() else {
            return Ok(None);
        };
        let kind = StreamKind::from_byte(byte).ok_or(DecodeError::UnknownStreamKind { byte })?;
        buf.advance(1);
        Ok(Some(kind))
    }

    /// Appends the kind byte to a stream's send buffer.
    pub fn encode(self, out: &mut BytesMut) {
        out.extend_from_slice(&[self.as_byte()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_bytes_are_stable() {
        assert_eq!(StreamKind::Control.as_byte(), 1);
        assert_eq!(StreamKind::Publish.as_byte(), 2);
        assert_eq!(StreamKind::Consume.as_byte(), 3);
        for byte in 0..=u8::MAX {
            if let Some(kind) = StreamKind::from_byte(byte) {
                assert_eq!(kind.as_byte(), byte);
            }
        }
    }

    #[test]
    fn the_kind_byte_is_taken_off_the_buffer() {
        let mut buf = BytesMut::new();
        assert_eq!(StreamKind::decode(&mut buf).unwrap(), None);
        StreamKind::Consume.encode(&mut buf);
        buf.extend_from_slice(b"rest");
        assert_eq!(
            StreamKind::decode(&mut buf).unwrap(),
            Some(StreamKind::Consume)
        );
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn an_unknown_kind_byte_is_a_protocol_violation() {
        let mut buf = BytesMut::from(&[0u8][..]);
        let error = StreamKind::decode(&mut buf).unwrap_err();
        assert!(matches!(error, DecodeError::UnknownStreamKind { byte: 0 }));
        assert_eq!(error.error_code(), crate::ErrorCode::ProtocolViolation);
    }
}
