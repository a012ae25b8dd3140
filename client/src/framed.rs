//! Frames over one QUIC stream: a reader that buffers and decodes, a writer that coalesces
//! encoded frames into one write. The broker uses these too, so both ends agree on framing.

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_protocol::{FrameDecoder, FrameEncoder, FrameView, StreamKind};

use crate::error::FrameError;

/// How much a single read asks of the stream.
const READ_CHUNK: usize = 64 * 1024;

/// Decodes frames from a receive stream.
#[derive(Debug)]
pub struct FramedRecv {
    stream: quinn::RecvStream,
    buffer: BytesMut,
    decoder: FrameDecoder,
}

impl FramedRecv {
    pub fn new(stream: quinn::RecvStream, max_frame: u32) -> Self {
        FramedRecv {
            stream,
            buffer: BytesMut::with_capacity(READ_CHUNK),
            decoder: FrameDecoder::new(max_frame),
        }
    }

    /// Changes the largest frame accepted from now on (a broker reads a Hello under a small
    /// limit, then the negotiated one).
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.decoder = FrameDecoder::new(max_frame);
    }

    /// The next frame, reading as needed; `None` at a clean end of stream.
    pub async fn next<F: DeserializeOwned>(&mut self) -> Result<Option<F>, FrameError> {
        self.next_decoded(|decoder, buffer| decoder.decode(buffer))
            .await
    }

    /// A frame already received, without waiting for more.
    pub fn next_buffered<F: DeserializeOwned>(&mut self) -> Result<Option<F>, FrameError> {
        Ok(self.decoder.decode(&mut self.buffer)?)
    }

    /// Like [`next`](Self::next) for a frame decoded in place (see
    /// [`FrameDecoder::decode_view`]): `finish` turns the borrowed frame into what is kept.
    pub async fn next_view<V: FrameView, R>(
        &mut self,
        mut finish: impl for<'p> FnMut(V::Frame<'p>, &'p bytes::Bytes) -> R,
    ) -> Result<Option<R>, FrameError> {
        self.next_decoded(|decoder, buffer| decoder.decode_view::<V, R>(buffer, &mut finish))
            .await
    }

    /// Runs `decode` on the buffer, reading more until it yields a frame or the stream ends.
    async fn next_decoded<R>(
        &mut self,
        mut decode: impl FnMut(
            &FrameDecoder,
            &mut BytesMut,
        ) -> Result<Option<R>, switchyard_protocol::DecodeError>,
    ) -> Result<Option<R>, FrameError> {
        loop {
            if let Some(frame) = decode(&self.decoder, &mut self.buffer)? {
                return Ok(Some(frame));
            }
            if !self.fill().await? {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }

    /// Like [`next_buffered`](Self::next_buffered) for a frame decoded in place.
    pub fn next_buffered_view<V: FrameView, R>(
        &mut self,
        finish: impl for<'p> FnOnce(V::Frame<'p>, &'p bytes::Bytes) -> R,
    ) -> Result<Option<R>, FrameError> {
        Ok(self.decoder.decode_view::<V, R>(&mut self.buffer, finish)?)
    }

    /// The stream-kind byte that opens every stream (see `switchyard_protocol::StreamKind`).
    pub async fn stream_kind(&mut self) -> Result<Option<StreamKind>, FrameError> {
        loop {
            if let Some(kind) = StreamKind::decode(&mut self.buffer)? {
                return Ok(Some(kind));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Reads one chunk; false at end of stream.
    async fn fill(&mut self) -> Result<bool, FrameError> {
        match self.stream.read_chunk(READ_CHUNK, true).await? {
            Some(chunk) => {
                self.buffer.extend_from_slice(&chunk.bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Encodes frames for a send stream; `push` buffers, `flush` writes everything in one go.
#[derive(Debug)]
pub struct FramedSend {
    stream: quinn::SendStream,
    buffer: BytesMut,
    /// Flushed from `buffer` but not yet taken by the stream (a flush waiting on flow control
    /// was dropped): written first by the next flush.
    unwritten: Bytes,
    encoder: FrameEncoder,
}

impl FramedSend {
    pub fn new(stream: quinn::SendStream, max_frame: u32) -> Self {
        FramedSend {
            stream,
            buffer: BytesMut::with_capacity(READ_CHUNK),
            unwritten: Bytes::new(),
            encoder: FrameEncoder::new(max_frame),
        }
    }

    /// Writes the stream-kind byte that must open a client stream.
    pub fn push_stream_kind(&mut self, kind: StreamKind) {
        kind.encode(&mut self.buffer);
    }

    pub fn push<F: Serialize>(&mut self, frame: &F) -> Result<(), FrameError> {
        self.encoder.encode(frame, &mut self.buffer)?;
        Ok(())
    }

    /// Bytes waiting to be flushed.
    pub fn pending(&self) -> usize {
        self.unwritten.len() + self.buffer.len()
    }

    /// Writes everything pushed so far. Cancel-safe: if the future is dropped while the stream
    /// waits for flow control, nothing is lost or torn; the rest goes out with the next flush.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        loop {
            if self.unwritten.is_empty() {
                if self.buffer.is_empty() {
                    return Ok(());
                }
                self.unwritten = self.buffer.split().freeze();
            }
            // `write_chunks` writes nothing unless it resolves, and leaves the unwritten
            // suffix in place.
            self.stream
                .write_chunks(std::slice::from_mut(&mut self.unwritten))
                .await?;
        }
    }

    pub async fn send<F: Serialize>(&mut self, frame: &F) -> Result<(), FrameError> {
        self.push(frame)?;
        self.flush().await
    }

    /// Ends the stream after what was written.
    pub fn finish(&mut self) {
        let _ = self.stream.finish();
    }
}
