//! The byte layout of one log record: a checksummed group of operations under one LSN.
//!
//! A record is the unit of atomicity: a single put is a record of one operation, an atomic batch is a
//! record of many. Replaying a record twice is harmless because the index ignores LSNs it has already
//! applied, which is what lets the log become a replicated (Raft) log later. The layout is described
//! in `dataplane/FORMAT.md`; change it only together with that file and the format version.

use thiserror::Error;

pub use koru_dataplane_api::data::{Cause, MAX_AUTHOR_LEN};

/// Bytes before the record body: body length (u32) and CRC32C of the body (u32).
pub const FRAME_HEADER_LEN: usize = 8;
/// Fixed part of the body: LSN (u64), timestamp in microseconds (i64), operation count (u32).
pub const BODY_HEADER_LEN: usize = 20;
/// Bytes format version 2 adds after the fixed body header when the record names no author:
/// cause (u8) and author length (u8).
pub const META_MIN_LEN: usize = 2;
/// Fixed part of each operation: kind (u8), namespace length (u16), key length (u16), value length (u32).
pub const OP_HEADER_LEN: usize = 9;
/// Largest body a decoder accepts; anything larger is treated as corruption, not allocated.
pub const MAX_BODY_LEN: usize = 256 * 1024 * 1024;

/// What an operation does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Writes a new version holding the value.
    Put = 1,
    /// Writes a tombstone version: the key reads as absent from then on.
    Delete = 2,
}

/// One operation as it is written: borrowed so callers can encode without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpRef<'a> {
    /// Put or delete.
    pub kind: OpKind,
    /// Namespace name (validated before it gets here).
    pub namespace: &'a str,
    /// Key name (validated before it gets here).
    pub key: &'a str,
    /// The value's JSON text; empty for deletes.
    pub value: &'a [u8],
}

/// Who wrote a record and why (format version 2; a version 1 record reads as a client's write
/// by an unknown author).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaRef<'a> {
    /// Why it was written.
    pub cause: Cause,
    /// Its author (at most [`MAX_AUTHOR_LEN`] bytes); None when unknown.
    pub author: Option<&'a str>,
}

impl MetaRef<'_> {
    /// Bytes the meta takes in a version 2 record.
    pub fn encoded_len(&self) -> usize {
        META_MIN_LEN + self.author.map_or(0, str::len)
    }
}

/// The byte a cause is stored as.
pub fn cause_byte(cause: Cause) -> u8 {
    match cause {
        Cause::Write => 0,
        Cause::Rewind => 1,
        Cause::Merge => 2,
    }
}

/// The cause a stored byte names.
pub fn cause_from_byte(byte: u8) -> Option<Cause> {
    match byte {
        0 => Some(Cause::Write),
        1 => Some(Cause::Rewind),
        2 => Some(Cause::Merge),
        _ => None,
    }
}

/// Why bytes could not be decoded as a record.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the record claims: a torn write at the end of the log.
    #[error("record truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The body does not match its checksum.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The checksum in the frame.
        stored: u32,
        /// The checksum of the body as read.
        computed: u32,
    },
    /// The checksum matched but the body is not a well-formed record.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// A decoded record whose operations still point into the source buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Log sequence number, strictly increasing along the log.
    pub lsn: u64,
    /// Commit time in microseconds since the Unix epoch, strictly increasing along the log.
    pub timestamp_micros: i64,
    /// The operations, in the order they were submitted.
    pub ops: Vec<DecodedOp<'a>>,
    /// Who wrote it and why.
    pub meta: MetaRef<'a>,
    /// Bytes the whole record occupies, frame header included.
    pub encoded_len: usize,
}

/// One decoded operation, with the offset of its value inside the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedOp<'a> {
    /// The operation itself.
    pub op: OpRef<'a>,
    /// Offset of the value's first byte from the start of the record.
    pub value_offset: usize,
}

/// Bytes one operation adds to a record.
pub fn op_encoded_len(op: &OpRef<'_>) -> usize {
    OP_HEADER_LEN + op.namespace.len() + op.key.len() + op.value.len()
}

/// Appends one record in the current format (version 2) with no author and cause `write`; see
/// [`encode_with`].
pub fn encode(
    out: &mut Vec<u8>,
    lsn: u64,
    timestamp_micros: i64,
    ops: &[OpRef<'_>],
    value_offsets: &mut Vec<u32>,
) {
    encode_with(
        out,
        lsn,
        timestamp_micros,
        MetaRef::default(),
        ops,
        value_offsets,
    );
}

/// Appends one record in the current format (version 2) to `out`; pushes, per operation, the
/// offset of its value from the record start onto `value_offsets`.
///
/// Callers guarantee name lengths fit in u16, values in u32 (the name and size limits do) and the
/// author in [`MAX_AUTHOR_LEN`] bytes (checked where it enters: longer ones are cut here at a
/// character boundary rather than written with a wrong length).
pub fn encode_with(
    out: &mut Vec<u8>,
    lsn: u64,
    timestamp_micros: i64,
    meta: MetaRef<'_>,
    ops: &[OpRef<'_>],
    value_offsets: &mut Vec<u32>,
) {
    let author = meta.author.map_or("", |a| truncate(a, MAX_AUTHOR_LEN));
    let start = out.len();
    let body_len = BODY_HEADER_LEN
        + META_MIN_LEN
        + author.len()
        + ops.iter().map(op_encoded_len).sum::<usize>();
    out.reserve(FRAME_HEADER_LEN + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&timestamp_micros.to_le_bytes());
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    out.push(cause_byte(meta.cause));
    out.push(author.len() as u8);
    out.extend_from_slice(author.as_bytes());
    for op in ops {
        out.push(op.kind as u8);
        out.extend_from_slice(&(op.namespace.len() as u16).to_le_bytes());
        out.extend_from_slice(&(op.key.len() as u16).to_le_bytes());
        out.extend_from_slice(&(op.value.len() as u32).to_le_bytes());
        out.extend_from_slice(op.namespace.as_bytes());
        out.extend_from_slice(op.key.as_bytes());
        value_offsets.push((out.len() - start) as u32);
        out.extend_from_slice(op.value);
    }
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Decodes the record at the start of `buf` in the current format (version 2).
pub fn decode(buf: &[u8]) -> Result<Record<'_>, DecodeError> {
    decode_version(buf, super::segment::FORMAT_VERSION)
}

/// Decodes the record at the start of `buf`, written in format `version` (its segment header's),
/// verifying its checksum and structure.
pub fn decode_version(buf: &[u8], version: u32) -> Result<Record<'_>, DecodeError> {
    let body = frame_body(buf)?;
    let lsn = read_u64(body, 0);
    let timestamp_micros = read_u64(body, 8) as i64;
    let count = read_u32(body, 16) as usize;
    let mut pos = BODY_HEADER_LEN;
    let mut meta = MetaRef::default();
    if version >= 2 {
        if body.len() - pos < META_MIN_LEN {
            return Err(DecodeError::Malformed("record meta past end of body"));
        }
        meta.cause =
            cause_from_byte(body[pos]).ok_or(DecodeError::Malformed("unknown record cause"))?;
        let author_len = body[pos + 1] as usize;
        pos += META_MIN_LEN;
        if author_len > MAX_AUTHOR_LEN || body.len() - pos < author_len {
            return Err(DecodeError::Malformed("author past end of body"));
        }
        if author_len > 0 {
            meta.author = Some(
                std::str::from_utf8(&body[pos..pos + author_len])
                    .map_err(|_| DecodeError::Malformed("author is not UTF-8"))?,
            );
        }
        pos += author_len;
    }
    // Every operation needs at least its header, so a larger count cannot be honest.
    if count > (body.len() - pos) / OP_HEADER_LEN {
        return Err(DecodeError::Malformed("operation count exceeds body"));
    }
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        if body.len() - pos < OP_HEADER_LEN {
            return Err(DecodeError::Malformed("operation header past end of body"));
        }
        let kind = match body[pos] {
            1 => OpKind::Put,
            2 => OpKind::Delete,
            _ => return Err(DecodeError::Malformed("unknown operation kind")),
        };
        let ns_len = read_u16(body, pos + 1) as usize;
        let key_len = read_u16(body, pos + 3) as usize;
        let value_len = read_u32(body, pos + 5) as usize;
        pos += OP_HEADER_LEN;
        if body.len() - pos < ns_len + key_len + value_len {
            return Err(DecodeError::Malformed("operation payload past end of body"));
        }
        let namespace = std::str::from_utf8(&body[pos..pos + ns_len])
            .map_err(|_| DecodeError::Malformed("namespace is not UTF-8"))?;
        pos += ns_len;
        let key = std::str::from_utf8(&body[pos..pos + key_len])
            .map_err(|_| DecodeError::Malformed("key is not UTF-8"))?;
        pos += key_len;
        let value = &body[pos..pos + value_len];
        ops.push(DecodedOp {
            op: OpRef {
                kind,
                namespace,
                key,
                value,
            },
            value_offset: FRAME_HEADER_LEN + pos,
        });
        pos += value_len;
    }
    if pos != body.len() {
        return Err(DecodeError::Malformed(
            "trailing bytes after last operation",
        ));
    }
    Ok(Record {
        lsn,
        timestamp_micros,
        ops,
        meta,
        encoded_len: FRAME_HEADER_LEN + body.len(),
    })
}

/// Checks the frame at the start of `buf` and returns its verified body.
fn frame_body(buf: &[u8]) -> Result<&[u8], DecodeError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Err(DecodeError::Truncated {
            needed: FRAME_HEADER_LEN,
            available: buf.len(),
        });
    }
    let body_len = read_u32(buf, 0) as usize;
    if !(BODY_HEADER_LEN..=MAX_BODY_LEN).contains(&body_len) {
        return Err(DecodeError::Malformed("body length out of range"));
    }
    let needed = FRAME_HEADER_LEN + body_len;
    if buf.len() < needed {
        return Err(DecodeError::Truncated {
            needed,
            available: buf.len(),
        });
    }
    let body = &buf[FRAME_HEADER_LEN..needed];
    let stored = read_u32(buf, 4);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(body)
}

/// Reads a little-endian u16 at `at`; callers have checked the bounds.
fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

/// Reads a little-endian u32 at `at`; callers have checked the bounds.
pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Reads a little-endian u64 at `at`; callers have checked the bounds.
pub(crate) fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn put<'a>(ns: &'a str, key: &'a str, value: &'a [u8]) -> OpRef<'a> {
        OpRef {
            kind: OpKind::Put,
            namespace: ns,
            key,
            value,
        }
    }

    #[test]
    fn round_trips_a_batch() {
        let ops = [
            put("users", "alice", b"{\"age\":30}"),
            OpRef {
                kind: OpKind::Delete,
                namespace: "users",
                key: "bob",
                value: b"",
            },
        ];
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        encode(&mut buf, 7, 1_700_000_000_000_000, &ops, &mut offsets);
        let rec = decode(&buf).unwrap();
        assert_eq!(rec.lsn, 7);
        assert_eq!(rec.timestamp_micros, 1_700_000_000_000_000);
        assert_eq!(rec.encoded_len, buf.len());
        assert_eq!(rec.ops.iter().map(|o| o.op).collect::<Vec<_>>(), ops);
        assert_eq!(
            offsets,
            rec.ops
                .iter()
                .map(|o| o.value_offset as u32)
                .collect::<Vec<_>>()
        );
        assert_eq!(&buf[offsets[0] as usize..][..10], b"{\"age\":30}");
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, 2, &[put("n", "k", b"\"v\"")], &mut Vec::new());
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode(&bad).is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let mut buf = Vec::new();
        encode(
            &mut buf,
            1,
            2,
            &[put("n", "key", b"[1,2,3]")],
            &mut Vec::new(),
        );
        for len in 0..buf.len() {
            assert!(matches!(
                decode(&buf[..len]),
                Err(DecodeError::Truncated { .. } | DecodeError::Malformed(_))
            ));
        }
    }

    #[test]
    fn version_2_records_carry_their_cause_and_author() {
        let ops = [put("n", "k", b"1")];
        let meta = MetaRef {
            cause: Cause::Rewind,
            author: Some("ada@example.com"),
        };
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        encode_with(&mut buf, 3, 4, meta, &ops, &mut offsets);
        let rec = decode(&buf).unwrap();
        assert_eq!(rec.meta, meta);
        assert_eq!(&buf[offsets[0] as usize..][..1], b"1");
        assert_eq!(rec.ops[0].value_offset, offsets[0] as usize);
        // A plain write by nobody known costs two bytes.
        let mut plain = Vec::new();
        encode(&mut plain, 3, 4, &ops, &mut Vec::new());
        assert_eq!(buf.len() - plain.len(), "ada@example.com".len());
        assert_eq!(decode(&plain).unwrap().meta, MetaRef::default());
    }

    /// `encode`'s record rewritten in format 1: without the two meta bytes.
    fn as_version_1(v2: &[u8]) -> Vec<u8> {
        let mut v1 = v2[..FRAME_HEADER_LEN + BODY_HEADER_LEN].to_vec();
        v1.extend_from_slice(&v2[FRAME_HEADER_LEN + BODY_HEADER_LEN + META_MIN_LEN..]);
        let body_len = (v1.len() - FRAME_HEADER_LEN) as u32;
        v1[..4].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32c::crc32c(&v1[FRAME_HEADER_LEN..]);
        v1[4..8].copy_from_slice(&crc.to_le_bytes());
        v1
    }

    #[test]
    fn version_1_records_decode_by_their_segments_version() {
        let mut v2 = Vec::new();
        encode(&mut v2, 9, 10, &[put("users", "k", b"{}")], &mut Vec::new());
        let v1 = as_version_1(&v2);
        let rec = decode_version(&v1, 1).unwrap();
        assert_eq!((rec.lsn, rec.ops[0].op.value), (9, &b"{}"[..]));
        assert_eq!(rec.meta, MetaRef::default());
        assert_eq!(rec.encoded_len, v1.len());
        // Read in the wrong format, the same bytes are malformed, never silently misread.
        assert!(decode_version(&v1, 2).is_err());
    }

    #[test]
    fn bad_meta_is_malformed() {
        let mut buf = Vec::new();
        encode_with(
            &mut buf,
            1,
            2,
            MetaRef {
                cause: Cause::Merge,
                author: Some("a"),
            },
            &[put("n", "k", b"1")],
            &mut Vec::new(),
        );
        let at = FRAME_HEADER_LEN + BODY_HEADER_LEN;
        for (offset, byte) in [(at, 7u8), (at + 1, 200), (at + 2, 0xff)] {
            let mut bad = buf.clone();
            bad[offset] = byte;
            let crc = crc32c::crc32c(&bad[FRAME_HEADER_LEN..]);
            bad[4..8].copy_from_slice(&crc.to_le_bytes());
            assert!(
                matches!(decode(&bad), Err(DecodeError::Malformed(_))),
                "{offset}"
            );
        }
    }

    #[test]
    fn long_authors_are_cut_at_a_character_boundary() {
        let long = "é".repeat(100);
        assert_eq!(truncate(&long, MAX_AUTHOR_LEN).len(), 128);
        assert_eq!(truncate("aé", 2), "a");
        let mut buf = Vec::new();
        let meta = MetaRef {
            cause: Cause::Write,
            author: Some(&long),
        };
        encode_with(
            &mut buf,
            1,
            2,
            meta,
            &[put("n", "k", b"1")],
            &mut Vec::new(),
        );
        assert_eq!(decode(&buf).unwrap().meta.author.map(str::len), Some(128));
    }

    proptest! {
        #[test]
        fn round_trips_arbitrary_records(
            lsn in any::<u64>(),
            ts in any::<i64>(),
            ops in proptest::collection::vec(("[a-z]{1,8}", "[a-z0-9]{1,16}", proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()), 1..8)
        ) {
            let refs: Vec<OpRef<'_>> = ops.iter().map(|(ns, key, value, del)| OpRef {
                kind: if *del { OpKind::Delete } else { OpKind::Put },
                namespace: ns, key, value: if *del { &[] } else { value },
            }).collect();
            let mut buf = Vec::new();
            encode(&mut buf, lsn, ts, &refs, &mut Vec::new());
            let rec = decode(&buf).unwrap();
            prop_assert_eq!(rec.lsn, lsn);
            prop_assert_eq!(rec.timestamp_micros, ts);
            prop_assert_eq!(rec.ops.into_iter().map(|o| o.op).collect::<Vec<_>>(), refs);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
