//! One log record: its framing on disk (length, checksum, payload) and the payload's encoding.
//!
//! ```text
//! record   = len:u32le crc:u32le payload[len]        crc = CRC-32 (IEEE) of payload
//! payload  = kind:u8 body
//! kind 4   message:   seq:u64le enqueued_at_ms:u64le flags:u8 meta_len:u32le meta body-bytes
//!                     flags bit 0 = persistent; meta = bincode (standard config) of `StoredMeta`
//! kind 1   message, as written before typed headers: the same, but meta is format 1
//!                     (string headers, fewer properties; see `record_v1`); read, never written
//! kind 2   removed:   runs:u32le (first_seq:u64le count:u32le){runs}
//! kind 3   delivered: runs:u32le (first_seq:u64le count:u32le){runs}
//! ```
//!
//! A log may hold both message kinds: one written by an older broker and appended to by a
//! newer one. Each record says which it is, so an upgrade rewrites nothing.
//!
//! "removed" means the messages left the queue for good (acked, dropped, expired,
//! dead-lettered); "delivered" adds one to each message's delivery count. Runs make an ack of a
//! hundred consecutive tags one short record.

use bytes::{Buf, BufMut, Bytes};
use serde::{Deserialize, Serialize};

use super::record_v1;
use crate::message::{Headers, Message, Properties};

/// Framing bytes before a payload: its length and checksum.
pub const FRAME_HEADER_BYTES: usize = 8;

/// The largest payload a reader accepts; anything longer is corruption, never an allocation.
pub const MAX_PAYLOAD_BYTES: u32 = 256 << 20;

const KIND_MESSAGE: u8 = 4;
const KIND_MESSAGE_V1: u8 = 1;
const KIND_REMOVED: u8 = 2;
const KIND_DELIVERED: u8 = 3;
const FLAG_PERSISTENT: u8 = 1;

/// The parts of a stored message other than its body, as written (borrowed; encodes exactly
/// as [`StoredMeta`] decodes).
#[derive(Debug, Serialize)]
struct StoredMetaRef<'a> {
    exchange: &'a str,
    routing_key: &'a str,
    headers: &'a Headers,
    properties: &'a Properties,
}

/// The parts of a stored message other than its body, as read.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct StoredMeta {
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) headers: Headers,
    pub(super) properties: Properties,
}

/// A message as the log holds it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub seq: u64,
    pub enqueued_at_ms: u64,
    pub persistent: bool,
    pub exchange: String,
    pub message: Message,
}

/// `count` consecutive sequence numbers from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRun {
    pub first: u64,
    pub count: u32,
}

impl SeqRun {
    pub fn seqs(self) -> impl Iterator<Item = u64> {
        self.first..self.first + u64::from(self.count)
    }
}

/// Groups sequence numbers (in any order) into runs of consecutive ones.
pub fn runs_of(seqs: &[u64]) -> Vec<SeqRun> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<SeqRun> = Vec::new();
    for seq in sorted {
        match runs.last_mut() {
            Some(run) if run.first + u64::from(run.count) == seq && run.count < u32::MAX => {
                run.count += 1
            }
            _ => runs.push(SeqRun {
                first: seq,
                count: 1,
            }),
        }
    }
    runs
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record length {0} exceeds the limit of {MAX_PAYLOAD_BYTES} bytes")]
    TooLong(u32),
    #[error("checksum mismatch")]
    Checksum,
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Appends one framed message record to `out`.
pub fn encode_message(out: &mut Vec<u8>, stored: &StoredMessageRef<'_>) {
    let meta = StoredMetaRef {
        exchange: stored.exchange,
        routing_key: &stored.message.routing_key,
        headers: &stored.message.headers,
        properties: &stored.message.properties,
    };
    let start = begin_frame(out);
    out.put_u8(KIND_MESSAGE);
    out.put_u64_le(stored.seq);
    out.put_u64_le(stored.enqueued_at_ms);
    out.put_u8(if stored.persistent {
        FLAG_PERSISTENT
    } else {
        0
    });
    let meta_len_at = out.len();
    out.put_u32_le(0);
    let meta_start = out.len();
    bincode::serde::encode_into_std_write(&meta, out, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    let meta_len = (out.len() - meta_start) as u32;
    out[meta_len_at..meta_len_at + 4].copy_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(&stored.message.body);
    end_frame(out, start);
}

/// What [`encode_message`] needs, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct StoredMessageRef<'a> {
    pub seq: u64,
    pub enqueued_at_ms: u64,
    pub persistent: bool,
    pub exchange: &'a str,
    pub message: &'a Message,
}

/// Appends one framed removed or delivered record to `out`.
pub fn encode_runs(out: &mut Vec<u8>, removed: bool, runs: &[SeqRun]) {
    let start = begin_frame(out);
    out.put_u8(if removed {
        KIND_REMOVED
    } else {
        KIND_DELIVERED
    });
    out.put_u32_le(runs.len() as u32);
    for run in runs {
        out.put_u64_le(run.first);
        out.put_u32_le(run.count);
    }
    end_frame(out, start);
}

pub(super) fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    start
}

pub(super) fn end_frame(out: &mut [u8], start: usize) {
    let payload = &out[start + FRAME_HEADER_BYTES..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads a frame header: the payload length (checked against the limit) and checksum.
pub fn decode_frame_header(header: [u8; FRAME_HEADER_BYTES]) -> Result<(u32, u32), RecordError> {
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD_BYTES || len == 0 {
        return Err(RecordError::TooLong(len));
    }
    Ok((len, crc))
}

/// The kind and sequence number of a message record, or the runs of another record, without
/// decoding a message's metadata or copying its body (recovery's first pass).
#[derive(Debug, Clone)]
pub enum RecordSummary {
    Message {
        seq: u64,
        enqueued_at_ms: u64,
        persistent: bool,
    },
    Removed(Vec<SeqRun>),
    Delivered(Vec<SeqRun>),
}

/// Checks a payload against its checksum and summarizes it.
pub fn summarize(payload: &[u8], crc: u32) -> Result<RecordSummary, RecordError> {
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::Checksum);
    }
    let mut buf = payload;
    match take_u8(&mut buf)? {
        KIND_MESSAGE | KIND_MESSAGE_V1 => {
            let seq = take_u64(&mut buf)?;
            let enqueued_at_ms = take_u64(&mut buf)?;
            let flags = take_u8(&mut buf)?;
            Ok(RecordSummary::Message {
                seq,
                enqueued_at_ms,
                persistent: flags & FLAG_PERSISTENT != 0,
            })
        }
        KIND_REMOVED => Ok(RecordSummary::Removed(decode_runs(buf)?)),
        KIND_DELIVERED => Ok(RecordSummary::Delivered(decode_runs(buf)?)),
        other => Err(RecordError::Malformed(format!(
            "unknown record kind {other}"
        ))),
    }
}

/// Decodes a checked message payload fully (its body shares `payload`'s buffer); other kinds
/// of record are `None` (their runs are read by [`summarize`]).
pub fn decode_message(payload: Bytes) -> Result<Option<StoredMessage>, RecordError> {
    let mut buf = payload.clone();
    if buf.remaining() < 1 {
        return Err(RecordError::Malformed("empty payload".into()));
    }
    match buf.get_u8() {
        kind @ (KIND_MESSAGE | KIND_MESSAGE_V1) => {
            if buf.remaining() < 8 + 8 + 1 + 4 {
                return Err(RecordError::Malformed("short message header".into()));
            }
            let seq = buf.get_u64_le();
            let enqueued_at_ms = buf.get_u64_le();
            let flags = buf.get_u8();
            let meta_len = buf.get_u32_le() as usize;
            if buf.remaining() < meta_len {
                return Err(RecordError::Malformed(
                    "metadata longer than the record".into(),
                ));
            }
            let meta_bytes = buf.split_to(meta_len);
            let meta = if kind == KIND_MESSAGE {
                decode_meta::<StoredMeta>(&meta_bytes)?
            } else {
                decode_meta::<record_v1::StoredMeta>(&meta_bytes)?.into()
            };
            Ok(Some(StoredMessage {
                seq,
                enqueued_at_ms,
                persistent: flags & FLAG_PERSISTENT != 0,
                exchange: meta.exchange,
                message: Message {
                    routing_key: meta.routing_key,
                    headers: meta.headers,
                    properties: meta.properties.into(),
                    body: buf,
                },
            }))
        }
        KIND_REMOVED | KIND_DELIVERED => Ok(None),
        other => Err(RecordError::Malformed(format!(
            "unknown record kind {other}"
        ))),
    }
}

fn decode_meta<M: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<M, RecordError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(meta, _)| meta)
        .map_err(|e| RecordError::Malformed(format!("metadata: {e}")))
}

fn decode_runs(mut buf: &[u8]) -> Result<Vec<SeqRun>, RecordError> {
    let count = take_u32(&mut buf)? as usize;
    if buf.len() != count * 12 {
        return Err(RecordError::Malformed(format!(
            "{count} runs do not fit {} bytes",
            buf.len()
        )));
    }
    let mut runs = Vec::with_capacity(count);
    for _ in 0..count {
        let first = take_u64(&mut buf)?;
        let count = take_u32(&mut buf)?;
        runs.push(SeqRun { first, count });
    }
    Ok(runs)
}

fn take_u8(buf: &mut &[u8]) -> Result<u8, RecordError> {
    if buf.is_empty() {
        return Err(RecordError::Malformed("truncated".into()));
    }
    Ok(buf.get_u8())
}

fn take_u32(buf: &mut &[u8]) -> Result<u32, RecordError> {
    if buf.len() < 4 {
        return Err(RecordError::Malformed("truncated".into()));
    }
    Ok(buf.get_u32_le())
}

fn take_u64(buf: &mut &[u8]) -> Result<u64, RecordError> {
    if buf.len() < 8 {
        return Err(RecordError::Malformed("truncated".into()));
    }
    Ok(buf.get_u64_le())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(framed: &[u8]) -> (Bytes, u32) {
        let (len, crc) = decode_frame_header(framed[..8].try_into().unwrap()).unwrap();
        assert_eq!(len as usize, framed.len() - 8);
        (Bytes::copy_from_slice(&framed[8..]), crc)
    }

    #[test]
    fn a_message_round_trips_with_its_properties_and_body() {
        let mut message = Message::new("stock.1.trade", "payload").with_header("a", "b");
        message.properties.persistent = true;
        message.properties.message_id = Some("id-1".into());
        let mut out = Vec::new();
        encode_message(
            &mut out,
            &StoredMessageRef {
                seq: 42,
                enqueued_at_ms: 7,
                persistent: true,
                exchange: "prices",
                message: &message,
            },
        );
        let (payload, crc) = split(&out);
        assert!(matches!(
            summarize(&payload, crc).unwrap(),
            RecordSummary::Message {
                seq: 42,
                enqueued_at_ms: 7,
                persistent: true
            }
        ));
        let stored = decode_message(payload).unwrap().expect("a message");
        assert_eq!(stored.seq, 42);
        assert_eq!(stored.enqueued_at_ms, 7);
        assert_eq!(stored.exchange, "prices");
        assert_eq!(stored.message, message);
    }

    #[test]
    fn runs_group_consecutive_seqs_and_round_trip() {
        let runs = runs_of(&[5, 1, 2, 3, 9, 10, 3]);
        assert_eq!(
            runs,
            vec![
                SeqRun { first: 1, count: 3 },
                SeqRun { first: 5, count: 1 },
                SeqRun { first: 9, count: 2 }
            ]
        );
        let mut out = Vec::new();
        encode_runs(&mut out, true, &runs);
        let (payload, crc) = split(&out);
        let RecordSummary::Removed(decoded) = summarize(&payload, crc).unwrap() else {
            panic!("not removed")
        };
        assert_eq!(decoded, runs);
        assert!(decode_message(payload).unwrap().is_none());
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut out = Vec::new();
        encode_runs(&mut out, false, &[SeqRun { first: 1, count: 1 }]);
        out[12] ^= 1;
        let (payload, crc) = split(&out);
        assert_eq!(summarize(&payload, crc).unwrap_err(), RecordError::Checksum);
    }

    #[test]
    fn an_absurd_length_is_refused_before_allocating() {
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_frame_header(header),
            Err(RecordError::TooLong(_))
        ));
    }
}
