//! The backup answers against the exact JSON the data plane sends (see `dataplane/API.md`).

use super::*;

/// A `GET /admin/backups` answer byte for byte as the data plane wrote it with `json!`.
const LISTING: &str = concat!(
    r#"{"archive":{"first_lsn":1,"first_time":"2026-11-26T01:00:00.000000Z","last_lsn":9,"#,
    r#""last_time":"2026-11-26T04:00:00.000000Z","segments":2},"#,
    r#""backups":[{"created":"2026-11-26T00:00:00Z","first_lsn":0,"first_time":null,"id":"b0","#,
    r#""last_lsn":0,"last_time":null,"segments":0},"#,
    r#"{"created":"2026-11-26T02:00:00Z","first_lsn":1,"first_time":"1970-01-01T00:00:01.000001Z","#,
    r#""id":"b1","last_lsn":3,"last_time":"2025-11-26T05:00:00.000000Z","segments":1}],"#,
    r#""verification":{"at":"2026-11-26T05:00:00.000001Z","backup_id":"b1","last_lsn":9,"#,
    r#""message":"base backup b1 restored, opened and checked","ok":true,"seconds":0.25,"#,
    r#""versions":7}}"#
);

fn segment(first_lsn: u64, last_lsn: u64, first: i64, last: i64) -> SegmentMeta {
    SegmentMeta {
        format_version: ARCHIVE_FORMAT_VERSION,
        seq: 1,
        first_lsn,
        last_lsn,
        first_time_micros: first,
        last_time_micros: last,
        size: 10,
        sha256: "00".into(),
    }
}

#[test]
fn the_listing_is_written_byte_for_byte_as_before_and_read_back() {
    let empty = Manifest::new("b0".into(), "2026-11-26T00:00:00Z".into(), Vec::new());
    let one = Manifest::new(
        "b1".into(),
        "2026-11-26T02:00:00Z".into(),
        vec![segment(1, 3, 1_000_001, 1_764_133_200_000_000)],
    );
    let list = BackupList {
        backups: vec![empty.listed(), one.listed()],
        archive: Some(ArchivedSpan {
            first_lsn: 1,
            last_lsn: 9,
            first_time: "2026-11-26T01:00:00.000000Z".into(),
            last_time: "2026-11-26T04:00:00.000000Z".into(),
            segments: 2,
        }),
        verification: Some(Verification {
            at: "2026-11-26T05:00:00.000001Z".into(),
            backup_id: Some("b1".into()),
            ok: true,
            message: "base backup b1 restored, opened and checked".into(),
            last_lsn: 9,
            versions: 7,
            seconds: 0.25,
        }),
    };
    assert_eq!(list.to_json().unwrap().to_string(), LISTING);
    assert_eq!(serde_json::from_str::<BackupList>(LISTING).unwrap(), list);
}

#[test]
fn older_listings_without_archive_or_drill_still_read() {
    let old: BackupList = serde_json::from_str(r#"{"backups":[]}"#).unwrap();
    assert_eq!(old, BackupList::default());
    let drill: Verification = serde_json::from_str(r#"{"at":"t","ok":false}"#).unwrap();
    assert_eq!((drill.backup_id, drill.message.as_str()), (None, ""));
}

#[test]
fn a_manifest_round_trips_and_its_summary_needs_only_the_points() {
    let m = Manifest::new(
        "b1".into(),
        "2026-11-26T00:00:00Z".into(),
        vec![segment(1, 3, 1_000_001, 1_764_133_200_000_000)],
    );
    let json = concat!(
        r#"{"format_version":1,"id":"b1","created":"2026-11-26T00:00:00Z","first_lsn":1,"#,
        r#""last_lsn":3,"first_time_micros":1000001,"last_time_micros":1764133200000000,"#,
        r#""segments":[{"format_version":1,"seq":1,"first_lsn":1,"last_lsn":3,"#,
        r#""first_time_micros":1000001,"last_time_micros":1764133200000000,"size":10,"sha256":"00"}]}"#
    );
    assert_eq!(serde_json::to_string(&m).unwrap(), json);
    assert_eq!(serde_json::from_str::<Manifest>(json).unwrap(), m);
    let summary: ManifestSummary = serde_json::from_str(
        r#"{"id":"b0","first_lsn":0,"last_lsn":0,"first_time_micros":0,"last_time_micros":0}"#,
    )
    .unwrap();
    assert_eq!(summary.id, "b0");
    let full: ManifestSummary = serde_json::from_str(json).unwrap();
    assert_eq!((full.first_lsn, full.last_lsn), (1, 3));
}
