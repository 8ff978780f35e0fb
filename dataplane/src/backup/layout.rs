//! The archive layout: object keys, the per-segment sidecar, the base-backup manifest, and the pure
//! decisions over them (is a segment sound, which segments a restore needs and where it stops).
//!
//! Nothing here does I/O, so every rule is unit-tested by feeding it bytes and metadata.

use sha2::{Digest, Sha256};

use crate::wal::record;
use crate::wal::segment::{self, HEADER_LEN};

pub use koru_dataplane_api::backup::{ARCHIVE_FORMAT_VERSION, Manifest, SegmentMeta};

/// Key (under the store's prefix) of segment `seq`'s bytes: `wal/<20-digit seq>.wal`.
pub fn segment_key(seq: u64) -> String {
    format!("wal/{}", segment::file_name(seq))
}

/// Key of segment `seq`'s sidecar: `wal/<20-digit seq>.json`, written after the bytes.
pub fn sidecar_key(seq: u64) -> String {
    format!("wal/{seq:020}.json")
}

/// The sequence number in a sidecar key's file name, or None for other names.
pub fn parse_sidecar_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Key of base backup `id`'s manifest: `base/<id>/manifest.json`.
pub fn manifest_key(id: &str) -> String {
    format!("base/{id}/manifest.json")
}

/// Key of the last restore drill's outcome: `verify/last.json`, rewritten by every drill so the
/// outcome outlives the process that ran it.
pub const VERIFICATION_KEY: &str = "verify/last.json";

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Verifies a whole sealed segment (header, every record's CRC, contiguous LSNs, timestamps that
/// never go backwards) and describes it; `Err` says what is wrong and at which offset.
pub fn scan_segment(seq: u64, bytes: &[u8]) -> Result<SegmentMeta, String> {
    let header = segment::decode_header(bytes)?;
    if header.seq != seq {
        return Err(format!(
            "header names segment {} instead of {seq}",
            header.seq
        ));
    }
    let mut pos = HEADER_LEN;
    let mut next = header.first_lsn;
    let mut first_time = None;
    let mut last_time = i64::MIN;
    while pos < bytes.len() {
        let rec = record::decode_version(&bytes[pos..], header.version)
            .map_err(|e| format!("offset {pos}: {e}"))?;
        if rec.lsn != next {
            return Err(format!(
                "offset {pos}: record has LSN {} but {next} was expected",
                rec.lsn
            ));
        }
        if rec.timestamp_micros < last_time {
            return Err(format!("offset {pos}: record timestamp goes backwards"));
        }
        first_time.get_or_insert(rec.timestamp_micros);
        last_time = rec.timestamp_micros;
        next += 1;
        pos += rec.encoded_len;
    }
    let first_time = first_time.ok_or("sealed segment holds no record")?;
    Ok(SegmentMeta {
        format_version: ARCHIVE_FORMAT_VERSION,
        seq,
        first_lsn: header.first_lsn,
        last_lsn: next - 1,
        first_time_micros: first_time,
        last_time_micros: last_time,
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    })
}

/// Where a restore stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Keep records with LSN <= this.
    Lsn(u64),
    /// Keep records committed at or before this time (µs since the epoch).
    TimeMicros(i64),
    /// Keep everything available.
    End,
}

impl Target {
    /// Whether a record with this LSN and commit time belongs in the restore.
    pub fn includes(self, lsn: u64, time_micros: i64) -> bool {
        match self {
            Target::Lsn(l) => lsn <= l,
            Target::TimeMicros(t) => time_micros <= t,
            Target::End => true,
        }
    }
}

/// Why the archive cannot serve a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A segment the log needs is not in the archive: names its object key.
    Missing(String),
}

/// Picks the segments a restore to `target` needs from `available` (sidecars, any order): the
/// contiguous run from segment 1 whose first record is inside the target. The last one picked may
/// hold records past the target; the restore cuts it.
pub fn plan_restore(
    available: &[SegmentMeta],
    target: Target,
) -> Result<Vec<SegmentMeta>, PlanError> {
    let mut sorted: Vec<&SegmentMeta> = available.iter().collect();
    sorted.sort_by_key(|s| s.seq);
    let mut plan = Vec::new();
    let mut expect_lsn = 1;
    for (expect_seq, meta) in (1..).zip(sorted) {
        if meta.seq != expect_seq || meta.first_lsn != expect_lsn {
            return Err(PlanError::Missing(segment_key(expect_seq)));
        }
        if !target.includes(meta.first_lsn, meta.first_time_micros) {
            break;
        }
        expect_lsn = meta.last_lsn + 1;
        plan.push(meta.clone());
        if !target.includes(meta.last_lsn, meta.last_time_micros) {
            break;
        }
    }
    Ok(plan)
}

/// The span a restore from the archive alone can reach: the contiguous run of archived segments
/// from segment 1 (a gap ends it). `None` when that run holds no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recoverable {
    /// LSN of the first record.
    pub first_lsn: u64,
    /// LSN of the last record reachable.
    pub last_lsn: u64,
    /// Commit time (µs) of the first record.
    pub first_time_micros: i64,
    /// Commit time (µs) of the last record reachable.
    pub last_time_micros: i64,
    /// Segments in the run.
    pub segments: usize,
}

/// What the archive's segments (sidecars, any order) make recoverable; see [`Recoverable`].
pub fn recoverable(available: &[SegmentMeta]) -> Option<Recoverable> {
    let mut sorted: Vec<&SegmentMeta> = available.iter().collect();
    sorted.sort_by_key(|s| s.seq);
    let mut run: Option<Recoverable> = None;
    let mut expect_lsn = 1;
    for (expect_seq, meta) in (1..).zip(sorted) {
        if meta.seq != expect_seq || meta.first_lsn != expect_lsn || meta.last_lsn < meta.first_lsn
        {
            break;
        }
        expect_lsn = meta.last_lsn + 1;
        let r = run.get_or_insert(Recoverable {
            first_lsn: meta.first_lsn,
            last_lsn: meta.last_lsn,
            first_time_micros: meta.first_time_micros,
            last_time_micros: meta.last_time_micros,
            segments: 0,
        });
        r.last_lsn = meta.last_lsn;
        r.last_time_micros = meta.last_time_micros;
        r.segments += 1;
    }
    run
}

/// What a retention pass deletes: the decision of [`plan_retention`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Ids of the base backups whose manifests go.
    pub backups: Vec<String>,
    /// Sequence numbers of the archived segments (bytes and sidecar) that go.
    pub segments: Vec<u64>,
}

/// Decides what retention deletes when everything taken before `horizon_micros` (µs since the
/// epoch: now minus the retention window) has expired.
///
/// Every moment inside the window must stay restorable, and a restore to a moment T starts from
/// the newest base backup at or before T; so the newest backup taken before the horizon is kept
/// along with every backup inside the window, and only older ones go. A backup whose `created`
/// cannot be read is kept (nothing is deleted that cannot be dated). Segments go only when they
/// end before the first LSN of the oldest kept backup; since every manifest lists segments from
/// segment 1 (the store keeps every version, so a restore replays the log from its start), no
/// segment is deleted while any backup is kept, and none at all when there is no backup.
pub fn plan_retention(
    backups: &[Manifest],
    segments: &[SegmentMeta],
    horizon_micros: i64,
) -> RetentionPlan {
    let created = |m: &Manifest| crate::clock::parse_micros(&m.created).ok();
    let mut expired: Vec<(i64, &Manifest)> = backups
        .iter()
        .filter_map(|m| created(m).filter(|&t| t < horizon_micros).map(|t| (t, m)))
        .collect();
    expired.sort_by(|a, b| (a.0, a.1.last_lsn, &a.1.id).cmp(&(b.0, b.1.last_lsn, &b.1.id)));
    // The newest expired backup still serves restores to moments between it and the horizon.
    expired.pop();
    let mut plan = RetentionPlan {
        backups: expired.iter().map(|(_, m)| m.id.clone()).collect(),
        segments: Vec::new(),
    };
    let kept_first_lsn = backups
        .iter()
        .filter(|m| !plan.backups.contains(&m.id))
        .map(|m| m.first_lsn)
        .min();
    // An empty-log backup (first LSN 0) protects everything after it, like one from LSN 1.
    if let Some(first) = kept_first_lsn.filter(|&l| l > 0) {
        let mut gone: Vec<u64> = segments
            .iter()
            .filter(|s| s.last_lsn < first)
            .map(|s| s.seq)
            .collect();
        gone.sort_unstable();
        plan.segments = gone;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::{OpKind, OpRef};
    use crate::wal::segment::{SegmentHeader, encode_header};

    fn meta(seq: u64, first: u64, last: u64) -> SegmentMeta {
        SegmentMeta {
            format_version: 1,
            seq,
            first_lsn: first,
            last_lsn: last,
            first_time_micros: first as i64 * 10,
            last_time_micros: last as i64 * 10,
            size: 0,
            sha256: String::new(),
        }
    }

    /// A segment `seq` starting at LSN `first` holding `count` records.
    fn segment_bytes(seq: u64, first: u64, count: u64) -> Vec<u8> {
        let mut buf = encode_header(SegmentHeader::new(seq, first)).to_vec();
        let lsns = first..first + count;
        for lsn in lsns {
            let op = OpRef {
                kind: OpKind::Put,
                namespace: "n",
                key: "k",
                value: b"1",
            };
            record::encode(&mut buf, lsn, lsn as i64 * 10, &[op], &mut Vec::new());
        }
        buf
    }

    #[test]
    fn the_recoverable_span_is_the_contiguous_run_from_segment_one() {
        assert_eq!(recoverable(&[]), None);
        let r = recoverable(&[meta(2, 4, 9), meta(1, 1, 3), meta(4, 20, 30)]).unwrap();
        assert_eq!((r.first_lsn, r.last_lsn, r.segments), (1, 9, 2));
        assert_eq!((r.first_time_micros, r.last_time_micros), (10, 90));
        // Without segment 1 nothing can be restored from the archive alone.
        assert_eq!(recoverable(&[meta(2, 4, 9)]), None);
    }

    #[test]
    fn keys_sort_in_log_order_and_parse_back() {
        assert_eq!(segment_key(3), "wal/00000000000000000003.wal");
        assert_eq!(parse_sidecar_name("00000000000000000003.json"), Some(3));
        assert_eq!(parse_sidecar_name("00000000000000000003.wal"), None);
        assert_eq!(manifest_key("b1"), "base/b1/manifest.json");
    }

    #[test]
    fn scan_describes_a_sound_segment_and_names_damage() {
        let bytes = segment_bytes(2, 5, 5);
        let m = scan_segment(2, &bytes).unwrap();
        assert_eq!((m.first_lsn, m.last_lsn), (5, 9));
        assert_eq!((m.first_time_micros, m.last_time_micros), (50, 90));
        assert_eq!(m.sha256, sha256_hex(&bytes));
        assert!(
            scan_segment(3, &bytes)
                .unwrap_err()
                .contains("header names")
        );
        let mut bad = bytes.clone();
        let at = bad.len() - 1;
        bad[at] ^= 1;
        assert!(scan_segment(2, &bad).unwrap_err().contains("checksum"));
        assert!(
            scan_segment(2, &segment_bytes(2, 5, 0))
                .unwrap_err()
                .contains("no record")
        );
    }

    #[test]
    fn plan_stops_at_the_segment_holding_the_target() {
        let all = [meta(3, 21, 30), meta(1, 1, 10), meta(2, 11, 20)];
        let seqs = |t| {
            plan_restore(&all, t)
                .unwrap()
                .iter()
                .map(|m| m.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(Target::End), [1, 2, 3]);
        assert_eq!(seqs(Target::Lsn(10)), [1]);
        assert_eq!(seqs(Target::Lsn(11)), [1, 2]);
        assert_eq!(seqs(Target::TimeMicros(205)), [1, 2]);
        assert_eq!(seqs(Target::TimeMicros(215)), [1, 2, 3]);
        assert_eq!(seqs(Target::TimeMicros(5)), Vec::<u64>::new());
    }

    #[test]
    fn plan_names_the_first_missing_segment() {
        let gap = [meta(1, 1, 10), meta(3, 21, 30)];
        assert_eq!(
            plan_restore(&gap, Target::End),
            Err(PlanError::Missing(segment_key(2)))
        );
        // A gap past the target does not matter.
        assert_eq!(plan_restore(&gap, Target::Lsn(5)).unwrap().len(), 1);
        let no_first = [meta(2, 11, 20)];
        assert_eq!(
            plan_restore(&no_first, Target::End),
            Err(PlanError::Missing(segment_key(1)))
        );
    }

    /// A manifest taken at `created_secs` (seconds since the epoch) covering `segs`.
    fn backup(id: &str, created_secs: i64, segs: &[SegmentMeta]) -> Manifest {
        let created = chrono::DateTime::from_timestamp(created_secs, 0)
            .unwrap()
            .to_rfc3339();
        Manifest::new(id.into(), created, segs.to_vec())
    }

    /// A manifest starting at LSN `first` (as a snapshot-style backup would), for the segment rule.
    fn backup_from(id: &str, created_secs: i64, first: u64, last: u64) -> Manifest {
        let mut m = backup(id, created_secs, &[]);
        (m.first_lsn, m.last_lsn) = (first, last);
        m
    }

    const SEC: i64 = 1_000_000;

    #[test]
    fn retention_without_backups_deletes_nothing() {
        let segs = [meta(1, 1, 10), meta(2, 11, 20)];
        assert_eq!(
            plan_retention(&[], &segs, 100 * SEC),
            RetentionPlan::default()
        );
    }

    #[test]
    fn retention_keeps_everything_inside_the_window() {
        let segs = [meta(1, 1, 10), meta(2, 11, 20)];
        let all = [backup("a", 50, &segs[..1]), backup("b", 60, &segs)];
        assert_eq!(
            plan_retention(&all, &segs, 40 * SEC),
            RetentionPlan::default()
        );
    }

    #[test]
    fn retention_keeps_the_newest_backup_before_the_horizon() {
        let segs = [meta(1, 1, 10), meta(2, 11, 20), meta(3, 21, 30)];
        let all = [
            backup("c", 70, &segs),
            backup("a", 10, &segs[..1]),
            backup("b", 20, &segs[..2]),
        ];
        // Only "c" is inside the window; "b" is the one just outside and stays.
        let plan = plan_retention(&all, &segs, 30 * SEC);
        assert_eq!(plan.backups, ["a"]);
        // Every manifest lists segments from segment 1, so none of them can go.
        assert!(plan.segments.is_empty());
        // One just outside the window alone is kept.
        let one = [backup("a", 10, &segs[..1])];
        assert_eq!(
            plan_retention(&one, &segs, 30 * SEC),
            RetentionPlan::default()
        );
        // All expired: the newest of them stays.
        let plan = plan_retention(&all, &segs, 100 * SEC);
        assert_eq!(plan.backups, ["a", "b"]);
        // A backup taken exactly at the horizon is inside the window.
        assert_eq!(
            plan_retention(&all, &segs, 20 * SEC).backups,
            Vec::<String>::new()
        );
    }

    #[test]
    fn retention_deletes_only_segments_ending_before_the_oldest_kept_backup() {
        let segs = [meta(1, 1, 10), meta(2, 11, 20), meta(3, 21, 30)];
        // Backups starting mid-log: the kept one ("b", first LSN 15) starts inside segment 2,
        // which spans the boundary and stays; segment 1 ends before it and goes.
        let all = [
            backup_from("a", 10, 5, 12),
            backup_from("b", 20, 15, 25),
            backup_from("c", 70, 21, 30),
        ];
        let plan = plan_retention(&all, &segs, 30 * SEC);
        assert_eq!(plan.backups, ["a"]);
        assert_eq!(plan.segments, [1]);
        // A backup starting exactly at a segment's first LSN keeps that segment.
        let at_edge = [backup_from("a", 10, 1, 5), backup_from("b", 20, 21, 25)];
        assert_eq!(plan_retention(&at_edge, &segs, 30 * SEC).segments, [1, 2]);
        // An undatable backup is kept, and so are the segments it needs.
        let mut odd = backup_from("x", 0, 1, 5);
        odd.created = "yesterday".into();
        let plan = plan_retention(&[odd, backup_from("b", 20, 21, 25)], &segs, 30 * SEC);
        assert!(plan.backups.is_empty() && plan.segments.is_empty());
        // An empty-log backup protects every segment.
        let empty = [backup("e", 20, &[])];
        assert!(plan_retention(&empty, &segs, 30 * SEC).segments.is_empty());
    }
}
