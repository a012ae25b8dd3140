//! How message bodies cross the wire: one length-prefixed byte string (not a sequence of
//! numbers), decoded without copying when that is worth it.
//!
//! While [`FrameDecoder`](crate::FrameDecoder) decodes a frame it lends the frame's buffer to
//! this module (a thread-local set for the duration of one decode, restored afterwards even on
//! panic). A body of at least [`SHARE_BODIES_FROM`] bytes then becomes a slice of that buffer,
//! so a large message is never copied between the socket buffer and the queues. A smaller body
//! is copied: a shared slice keeps the whole receive buffer it came from alive for as long as
//! the message lives, which for a tiny message in a long queue costs far more than the copy.
//! Decoded any other way (another serde format, a direct `bincode` call) a body is copied.

use std::cell::RefCell;
use std::fmt;

use bytes::Bytes;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;

/// Bodies this long or longer are shared with the frame buffer instead of copied.
pub const SHARE_BODIES_FROM: usize = 1024;

thread_local! {
    static FRAME_BEING_DECODED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `decode` with `frame` lent to body deserialization on this thread.
pub(crate) fn sharing_frame<R>(frame: &Bytes, decode: impl FnOnce() -> R) -> R {
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FRAME_BEING_DECODED.set(self.0.take());
        }
    }
    let _restore = Restore(FRAME_BEING_DECODED.replace(Some(frame.clone())));
    decode()
}

/// `body` as a slice of the frame being decoded, if it lies inside it.
fn share_from_frame(body: &[u8]) -> Option<Bytes> {
    FRAME_BEING_DECODED.with_borrow(|frame| {
        let frame = frame.as_ref()?;
        let frame_start = frame.as_ptr() as usize;
        let body_start = body.as_ptr() as usize;
        let inside =
            body_start >= frame_start && body_start + body.len() <= frame_start + frame.len();
        inside.then(|| frame.slice_ref(body))
    })
}

pub(crate) fn serialize<S: Serializer>(body: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(body)
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
    deserializer.deserialize_bytes(BodyVisitor)
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message body (byte string)")
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(self, body: &'de [u8]) -> Result<Bytes, E> {
        if body.len() >= SHARE_BODIES_FROM
            && let Some(shared) = share_from_frame(body)
        {
            return Ok(shared);
        }
        Ok(Bytes::copy_from_slice(body))
    }

    fn visit_bytes<E: serde::de::Error>(self, body: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes::copy_from_slice(body))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, body: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes::from(body))
    }

    // Self-describing formats without a byte-string type (JSON) write bytes as numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut body = Vec::with_capacity(crate::bounded::initial_capacity::<u8>(seq.size_hint()));
        while let Some(byte) = seq.next_element::<u8>()? {
            body.push(byte);
        }
        Ok(Bytes::from(body))
    }
}
