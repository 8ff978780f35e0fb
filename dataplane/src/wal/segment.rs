//! Segment files: their names, their 32-byte header, and how a new one is created atomically.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{read_u32, read_u64};
use super::storage::{OpenMode, Storage, StorageFile};

/// Bytes at the start of every segment file before its first record.
pub const HEADER_LEN: usize = 32;
/// Identifies a KoruDelta segment file.
pub const MAGIC: [u8; 8] = *b"KORUWAL\0";
/// Version of the on-disk format this build writes (see FORMAT.md): 2 adds each record's
/// cause and author.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this build still reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// File name suffix of segment files.
const SUFFIX: &str = ".wal";

/// What a segment header records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Position of the segment in the log, from 1, without gaps.
    pub seq: u64,
    /// LSN of the first record the segment holds (or will hold, while it is empty).
    pub first_lsn: u64,
    /// The format its records are written in; new segments take [`FORMAT_VERSION`].
    pub version: u32,
}

impl SegmentHeader {
    /// The header of a new segment, in the current format.
    pub fn new(seq: u64, first_lsn: u64) -> SegmentHeader {
        SegmentHeader {
            seq,
            first_lsn,
            version: FORMAT_VERSION,
        }
    }
}

/// The file name of segment `seq`: zero-padded so names sort in log order.
pub fn file_name(seq: u64) -> String {
    format!("{seq:020}{SUFFIX}")
}

/// The sequence number in a segment file name, or None for any other file.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes a header: magic, format version, seq, first LSN, CRC32C of the preceding 28 bytes.
pub fn encode_header(header: SegmentHeader) -> [u8; HEADER_LEN] {
    let mut buf = [0u8; HEADER_LEN];
    buf[..8].copy_from_slice(&MAGIC);
    buf[8..12].copy_from_slice(&header.version.to_le_bytes());
    buf[12..20].copy_from_slice(&header.seq.to_le_bytes());
    buf[20..28].copy_from_slice(&header.first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&buf[..28]);
    buf[28..32].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Decodes and verifies a header, saying what is wrong with it otherwise.
pub fn decode_header(buf: &[u8]) -> Result<SegmentHeader, String> {
    if buf.len() < HEADER_LEN {
        return Err(format!(
            "header truncated ({} of {HEADER_LEN} bytes)",
            buf.len()
        ));
    }
    if buf[..8] != MAGIC {
        return Err("not a KoruDelta segment (bad magic)".into());
    }
    let stored = read_u32(buf, 28);
    let computed = crc32c::crc32c(&buf[..28]);
    if stored != computed {
        return Err(format!(
            "header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let version = read_u32(buf, 8);
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "format version {version} is not supported (this build reads \
             {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})"
        ));
    }
    Ok(SegmentHeader {
        seq: read_u64(buf, 12),
        first_lsn: read_u64(buf, 20),
        version,
    })
}

/// Creates segment `header.seq` in `dir` with its header durable, and opens it for appending.
///
/// The header is written to a temporary name, fsynced and renamed, and the directory is fsynced,
/// so a crash never leaves a segment file with a partial header under its real name.
pub fn create(
    storage: &dyn Storage,
    dir: &Path,
    header: SegmentHeader,
) -> io::Result<(Arc<dyn StorageFile>, PathBuf)> {
    let path = dir.join(file_name(header.seq));
    let tmp = dir.join(format!("{}.tmp", file_name(header.seq)));
    {
        let file = storage.open(&tmp, OpenMode::CreateTruncate)?;
        file.append(&encode_header(header))?;
        file.sync_all()?;
    }
    storage.rename(&tmp, &path)?;
    storage.sync_dir(dir)?;
    let file = storage.open(&path, OpenMode::Append)?;
    Ok((file, path))
}

/// Fsyncs a directory so that file creations, renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let header = SegmentHeader::new(3, 1001);
        let buf = encode_header(header);
        assert_eq!(decode_header(&buf), Ok(header));
        let mut bad = buf;
        bad[21] ^= 0x40;
        assert!(decode_header(&bad).unwrap_err().contains("checksum"));
        assert!(decode_header(&buf[..10]).unwrap_err().contains("truncated"));
    }

    #[test]
    fn names_sort_in_log_order_and_parse_back() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert!(file_name(9) < file_name(10));
        assert_eq!(parse_file_name("00000000000000000001.wal.tmp"), None);
        assert_eq!(parse_file_name("LOCK"), None);
    }
}
