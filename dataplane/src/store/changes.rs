//! The change feed: committed records after a given LSN, read back from the log files.

use std::os::unix::fs::FileExt;

use serde::Serialize;

use crate::error::StoreError;
use crate::wal::record::{self, OpKind};
use crate::wal::segment::HEADER_LEN;
use crate::wal::{SegmentFile, WalError, io_err};

/// One committed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Its LSN.
    pub lsn: u64,
    /// Commit time, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
    /// Its operations, in order.
    pub ops: Vec<ChangeOp>,
}

/// One operation of a committed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Reads records with `since < lsn <= upto`, at most `limit`, from `segments` (in log order).
pub(crate) fn read(
    segments: &[SegmentFile],
    since: u64,
    upto: u64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let mut out = Vec::new();
    if since >= upto {
        return Ok(out);
    }
    // The last segment whose first LSN is at or before the first wanted one holds it.
    let start = segments
        .partition_point(|s| s.first_lsn <= since + 1)
        .saturating_sub(1);
    let mut buf = Vec::new();
    for seg in &segments[start..] {
        let mut offset = HEADER_LEN as u64;
        loop {
            if out.len() >= limit {
                return Ok(out);
            }
            let mut frame = [0u8; record::FRAME_HEADER_LEN];
            if seg.file.read_exact_at(&mut frame, offset).is_err() {
                break; // end of this segment
            }
            let body_len = record::read_u32(&frame, 0) as usize;
            buf.resize(
                record::FRAME_HEADER_LEN + body_len.min(record::MAX_BODY_LEN),
                0,
            );
            seg.file
                .read_exact_at(&mut buf, offset)
                .map_err(io_err(format!(
                    "reading {} at offset {offset}",
                    seg.path.display()
                )))?;
            let rec = record::decode(&buf).map_err(|e| WalError::Corrupt {
                segment: seg.path.clone(),
                offset,
                reason: e.to_string(),
            })?;
            if rec.lsn > upto {
                return Ok(out);
            }
            if rec.lsn > since {
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
                });
            }
            // Records after `upto` may still be half-written by the commit thread.
            if rec.lsn >= upto {
                return Ok(out);
            }
            offset += rec.encoded_len as u64;
        }
    }
    Ok(out)
}
