//! Segment files: naming, the header that opens each, and reading records from one in order.
//!
//! A queue's log is a directory of segments named by a 20-digit, zero-padded id
//! (`00000000000000000007.seg`); ids increase, so the names sort in log order. Each segment
//! starts with the 8-byte header [`SEGMENT_MAGIC`] (format name and version) followed by
//! records as `record.rs` frames them.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::{FRAME_HEADER_BYTES, RecordError, decode_frame_header};

/// Opens every segment: "SWYSEG", a zero byte, format version 1.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SWYSEG\x00\x01";

/// Bytes before the first record of a segment.
pub const SEGMENT_HEADER_BYTES: u64 = SEGMENT_MAGIC.len() as u64;

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The ids of the segments in `dir`, oldest first. Other files are ignored.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name
            .strip_suffix(".seg")
            .filter(|stem| stem.len() == 20)
            .and_then(|stem| stem.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Creates a new, empty segment (header written) opened for appending. If the header cannot
/// be written (a full disk), the file is removed again: a headerless segment would later be
/// taken for a damaged one and set aside whole, records appended to it included.
pub fn create_segment(dir: &Path, id: u64) -> io::Result<File> {
    let path = segment_path(dir, id);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .open(&path)?;
    if let Err(error) = file.write_all(&SEGMENT_MAGIC) {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(error);
    }
    Ok(file)
}

/// Opens an existing segment for appending after its last good record.
pub fn open_segment_for_append(dir: &Path, id: u64) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .read(true)
        .open(segment_path(dir, id))
}

/// Makes a directory's entries (new and removed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What reading the next record found.
#[derive(Debug)]
pub enum Next {
    /// A complete frame whose payload is in the caller's buffer; its checksum is not yet
    /// verified (the caller verifies while decoding).
    Record { offset: u64, crc: u32 },
    /// The end of the readable part, exactly on a record boundary.
    End,
    /// Bytes at `offset` are not a complete, plausible frame: a torn or corrupt tail.
    Damaged { offset: u64, reason: String },
}

/// Reads a segment's records in order, up to a byte limit (the part known to be written).
#[derive(Debug)]
pub struct SegmentReader {
    reader: BufReader<File>,
    position: u64,
    limit: u64,
}

impl SegmentReader {
    /// Opens segment `id` and positions it at `offset` (0 means the first record). The header is
    /// checked; a segment with a wrong header is an error.
    pub fn open(dir: &Path, id: u64, offset: u64, limit: Option<u64>) -> io::Result<Self> {
        let mut file = File::open(segment_path(dir, id))?;
        let limit = match limit {
            Some(limit) => limit,
            None => file.metadata()?.len(),
        };
        let mut magic = [0u8; SEGMENT_MAGIC.len()];
        file.read_exact(&mut magic).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                io::Error::new(ErrorKind::InvalidData, "segment shorter than its header")
            } else {
                e
            }
        })?;
        if magic != SEGMENT_MAGIC {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                "not a Switchyard segment (bad header)",
            ));
        }
        let position = offset.max(SEGMENT_HEADER_BYTES);
        file.seek(SeekFrom::Start(position))?;
        Ok(SegmentReader {
            reader: BufReader::with_capacity(256 << 10, file),
            position,
            limit,
        })
    }

    /// The offset of the next record.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Reads the next frame's payload into `payload`.
    pub fn next(&mut self, payload: &mut Vec<u8>) -> io::Result<Next> {
        let offset = self.position;
        let remaining = self.limit.saturating_sub(offset);
        if remaining == 0 {
            return Ok(Next::End);
        }
        if remaining < FRAME_HEADER_BYTES as u64 {
            return Ok(damaged(offset, "a partial record header"));
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        self.reader.read_exact(&mut header)?;
        let (len, crc) = match decode_frame_header(header) {
            Ok(frame) => frame,
            Err(RecordError::TooLong(len)) => {
                return Ok(damaged(offset, &format!("an implausible length {len}")));
            }
            Err(other) => return Ok(damaged(offset, &other.to_string())),
        };
        if u64::from(len) > remaining - FRAME_HEADER_BYTES as u64 {
            return Ok(damaged(offset, "a record cut short"));
        }
        payload.clear();
        payload.resize(len as usize, 0);
        self.reader.read_exact(payload)?;
        self.position = offset + FRAME_HEADER_BYTES as u64 + u64::from(len);
        Ok(Next::Record { offset, crc })
    }
}

fn damaged(offset: u64, reason: &str) -> Next {
    Next::Damaged {
        offset,
        reason: reason.to_owned(),
    }
}
