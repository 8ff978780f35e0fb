//! The change feed: committed records after a given LSN, read back from the log files.

use std::io::{BufReader, ErrorKind, Read};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::wal::record::{self, OpKind};
use crate::wal::segment::HEADER_LEN;
use crate::wal::storage::FileCursor;
use crate::wal::{SegmentFile, WalError, io_err};

impl Change {
    /// The record as the change feed answers it, over HTTP and embedded alike: each value
    /// through `value` (rendered as reads answer it, or raw), version ids `<lsn>.<op>`, and the
    /// author and cause only with `meta`.
    pub fn into_answer<E>(
        self,
        meta: bool,
        mut value: impl FnMut(String) -> Result<Box<serde_json::value::RawValue>, E>,
    ) -> Result<koru_dataplane_api::data::Change, E> {
        use koru_dataplane_api::data::{ChangeKind, ChangeOp};
        let lsn = self.lsn;
        let ops = self
            .ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                Ok(ChangeOp {
                    op: if op.delete {
                        ChangeKind::Delete
                    } else {
                        ChangeKind::Put
                    },
                    namespace: op.namespace,
                    key: op.key,
                    version_id: format!("{lsn}.{i}"),
                    value: op.value.map(&mut value).transpose()?,
                })
            })
            .collect::<Result<_, E>>()?;
        Ok(koru_dataplane_api::data::Change {
            lsn,
            timestamp: crate::clock::rfc3339(self.timestamp_micros),
            ops,
            author: self.meta.author.filter(|_| meta).map(|a| a.to_string()),
            cause: meta.then_some(self.meta.cause),
        })
    }
}

/// Read size of the change feed's buffered reader.
const READ_BUFFER: usize = 256 * 1024;

/// One committed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Its LSN.
    pub lsn: u64,
    /// Commit time, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
    /// Its operations, in order.
    pub ops: Vec<ChangeOp>,
    /// Who wrote it and why (left out when unknown and `write`, so members that copy records
    /// from an older member still read them).
    #[serde(flatten)]
    pub meta: super::WriteMeta,
}

/// One operation of a committed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeOp {
    /// True for a delete.
    pub delete: bool,
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// JSON text of the value; None for deletes.
    pub value: Option<String>,
}

/// How much one read of the feed may return.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    /// Most records.
    pub limit: usize,
    /// Most bytes of records (as encoded in the log, plus a little per operation).
    pub max_bytes: usize,
}

/// Reads records with `since < lsn <= upto` that fit in `page`, from `segments` (in log order),
/// starting at `start` (segment, offset): a record at or before `since + 1`.
pub(crate) fn read(
    segments: &[SegmentFile],
    start: Option<(u64, u64)>,
    since: u64,
    upto: u64,
    page: Page,
) -> Result<Vec<Change>, StoreError> {
    let mut out = Vec::new();
    let mut used = 0usize;
    if since >= upto {
        return Ok(out);
    }
    walk(segments, start, upto, |rec| {
        if out.len() >= page.limit {
            return false;
        }
        if rec.lsn > since {
            let cost = rec.encoded_len.saturating_add(
                rec.ops
                    .len()
                    .saturating_mul(super::pages::CHANGE_OP_OVERHEAD),
            );
            if !super::pages::change_fits(out.len(), used, cost, page.max_bytes) {
                return false;
            }
            used = used.saturating_add(cost);
            out.push(Change {
                lsn: rec.lsn,
                timestamp_micros: rec.timestamp_micros,
                ops: rec
                    .ops
                    .iter()
                    .map(|o| ChangeOp {
                        delete: o.op.kind == OpKind::Delete,
                        namespace: o.op.namespace.to_string(),
                        key: o.op.key.to_string(),
                        value: (o.op.kind == OpKind::Put)
                            .then(|| String::from_utf8_lossy(o.op.value).into_owned()),
                    })
                    .collect(),
                meta: super::WriteMeta::from_ref(rec.meta),
            });
        }
        true
    })?;
    Ok(out)
}

/// The LSN of the first record with `lsn <= upto` committed at or after `micros`, reading from
/// `start` (a record committed before `micros`); None when every record up to `upto` is older.
pub(crate) fn first_at_or_after(
    segments: &[SegmentFile],
    start: Option<(u64, u64)>,
    upto: u64,
    micros: i64,
) -> Result<Option<u64>, StoreError> {
    let mut found = None;
    if upto == 0 {
        return Ok(None);
    }
    walk(segments, start, upto, |rec| {
        if rec.timestamp_micros >= micros {
            found = Some(rec.lsn);
            return false;
        }
        true
    })?;
    Ok(found)
}

/// Decodes records from `start` (segment, offset; the log's start when None) in log order and
/// hands each to `visit` until it returns false or the record at `upto` was visited.
fn walk(
    segments: &[SegmentFile],
    start: Option<(u64, u64)>,
    upto: u64,
    mut visit: impl FnMut(&record::Record<'_>) -> bool,
) -> Result<(), StoreError> {
    let (start_seq, start_offset) = start.unwrap_or((0, HEADER_LEN as u64));
    let mut body = Vec::new();
    for seg in segments.iter().filter(|s| s.seq >= start_seq) {
        let mut offset = if seg.seq == start_seq {
            start_offset
        } else {
            HEADER_LEN as u64
        };
        let at = |offset: u64| format!("{} at offset {offset}", seg.path.display());
        // A cursor of our own over positional reads: no position shared with any other reader.
        let file = FileCursor::new(Arc::clone(&seg.file), offset);
        let mut reader = BufReader::with_capacity(READ_BUFFER, file);
        loop {
            let mut frame = [0u8; record::FRAME_HEADER_LEN];
            match reader.read_exact(&mut frame) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => break, // end of this segment
                Err(e) => return Err(io_err(at(offset))(e).into()),
            }
            let body_len = (record::read_u32(&frame, 0) as usize).min(record::MAX_BODY_LEN);
            body.clear();
            body.extend_from_slice(&frame);
            body.resize(record::FRAME_HEADER_LEN + body_len, 0);
            reader
                .read_exact(&mut body[record::FRAME_HEADER_LEN..])
                .map_err(io_err(at(offset)))?;
            let rec =
                record::decode_version(&body, seg.version).map_err(|e| WalError::Corrupt {
                    segment: seg.path.clone(),
                    offset,
                    reason: e.to_string(),
                })?;
            if !visit(&rec) {
                return Ok(());
            }
            // Records after `upto` may still be half-written by the commit thread.
            if rec.lsn >= upto {
                return Ok(());
            }
            offset += rec.encoded_len as u64;
        }
    }
    Ok(())
}
