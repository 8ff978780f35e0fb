//! Unit tests against a real embedded store: the time lookup over many segments and seek points
//! (live and after replay), and snapshot pages across deleted keys and namespaces.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::*;
use crate::StoreConfig;
use crate::metrics::StoreMetrics;
use crate::store::{Committed, WriteOp};

fn open(dir: &std::path::Path, segment_size: u64) -> Store {
    let mut config = StoreConfig::new(dir);
    config.segment_size = segment_size;
    Store::open(config, Arc::new(StoreMetrics::default()))
        .unwrap()
        .0
}

fn put(store: &Store, ns: &str, key: &str, value: &str) -> Committed {
    let raw = RawValue::from_string(value.to_string()).unwrap();
    store
        .write_blocking(vec![WriteOp::put(ns, key, raw)])
        .unwrap()
}

/// Every record's own time finds it; a microsecond later finds the next one.
fn check_every_record(store: &Store, written: &[(u64, i64)]) {
    for &(lsn, micros) in written {
        assert_eq!(store.lsn_before_time(micros).unwrap(), lsn - 1, "at {lsn}");
        assert_eq!(
            store.lsn_before_time(micros + 1).unwrap(),
            lsn,
            "after {lsn}"
        );
    }
    let (last, _) = written.last().copied().unwrap();
    assert_eq!(store.lsn_before_time(i64::MAX).unwrap(), last);
    assert_eq!(store.lsn_before_time(0).unwrap(), 0);
}

#[test]
fn the_time_lookup_finds_each_record_across_segments_and_seek_points() {
    // Small segments (every first record is a seek point) and large ones (seek points every
    // 64 KiB inside one segment).
    for segment_size in [8 * 1024, 64 * 1024 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), segment_size);
        let pad = "x".repeat(900);
        let written: Vec<(u64, i64)> = (0..400)
            .map(|i| {
                let c = put(&store, "ns", &format!("k{i}"), &format!("\"{pad}\""));
                (c.lsn, c.timestamp_micros)
            })
            .collect();
        check_every_record(&store, &written);
        store.close();
        drop(store);
        let store = open(dir.path(), segment_size);
        check_every_record(&store, &written);
    }
}

#[test]
fn snapshot_pages_skip_deleted_keys_and_walk_every_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), crate::store::DEFAULT_SEGMENT_SIZE);
    for i in 0..300 {
        put(&store, "a", &format!("k{i:03}"), &i.to_string());
    }
    put(&store, "_koru_test", "hidden", "1");
    let then = put(&store, "b", "only", "\"b\"").lsn;
    // After `then`: most of `a` deleted, one key overwritten, a new namespace.
    let deletes: Vec<WriteOp> = (0..300)
        .filter(|i| i % 50 != 0)
        .map(|i| WriteOp::delete("a", format!("k{i:03}")))
        .collect();
    store.write_blocking(deletes).unwrap();
    put(&store, "a", "k000", "\"new\"");
    put(&store, "c", "late", "1");

    let read = |lsn: u64, scope: Scope| {
        let mut cursor = Cursor::new(store.clone(), lsn, &scope).unwrap();
        let mut out = Vec::new();
        while let Some(page) = cursor.next_page(7).unwrap() {
            assert!(page.len() <= 7);
            out.extend(
                page.into_iter()
                    .map(|l| (l.namespace, l.key, l.value.get().to_string())),
            );
        }
        out
    };
    let past = read(then, Scope::default());
    assert_eq!(past.len(), 301);
    assert_eq!(past[0], ("a".into(), "k000".into(), "0".into()));
    assert_eq!(past[300], ("b".into(), "only".into(), "\"b\"".into()));

    let now_lsn = store.stats().applied_lsn;
    let now = read(now_lsn, Scope::default());
    let keys: Vec<&str> = now.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "k000", "k050", "k100", "k150", "k200", "k250", "only", "late"
        ]
    );
    assert_eq!(now[0].2, "\"new\"");

    let internal = read(
        now_lsn,
        Scope {
            internal: true,
            ..Scope::default()
        },
    );
    assert!(internal.iter().any(|(ns, _, _)| ns == "_koru_test"));
    let only_b = read(
        now_lsn,
        Scope {
            namespace: Some("b".into()),
            ..Scope::default()
        },
    );
    assert_eq!(only_b.len(), 1);
    assert!(
        Cursor::new(
            store.clone(),
            now_lsn,
            &Scope {
                namespace: Some("_koru_test".into()),
                ..Scope::default()
            }
        )
        .is_err(),
        "an internal namespace needs `internal`"
    );
}

#[test]
fn a_moment_is_refused_in_the_future_and_before_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), crate::store::DEFAULT_SEGMENT_SIZE);
    let (header, _) = moment(
        &store,
        Some("2020-01-01T00:00:00Z"),
        crate::clock::now_micros(),
    )
    .unwrap();
    assert_eq!(header.lsn, 0, "an empty store has no history to be before");
    let first = put(&store, "a", "k", "1");
    let now = crate::clock::now_micros();
    assert!(matches!(
        moment(&store, Some("2020-01-01T00:00:00Z"), now),
        Err(SnapshotError::BeforeHistory { .. })
    ));
    assert!(matches!(
        moment(&store, Some("2999-01-01T00:00:00Z"), now),
        Err(SnapshotError::Future { .. })
    ));
    assert!(matches!(
        moment(&store, Some("noon"), now),
        Err(SnapshotError::BadTime { .. })
    ));
    let at = crate::clock::rfc3339(first.timestamp_micros);
    let (header, micros) = moment(&store, Some(&at), now).unwrap();
    assert_eq!((header.lsn, micros), (first.lsn, first.timestamp_micros));
    let (header, _) = moment(&store, None, now).unwrap();
    assert_eq!(header.lsn, first.lsn);
}

#[test]
fn the_roadmap_shapes_work_on_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::BlockingDb::open_path(dir.path()).unwrap();
    db.put("users", "alice", r#"{"plan":"free"}"#, None)
        .unwrap();
    let backup = db.put("users", "bob", "1", None).unwrap();
    let last_backup_time = backup.timestamp.clone();
    db.put("users", "alice", r#"{"plan":"pro"}"#, None).unwrap();
    db.delete("users", "bob", None).unwrap();

    let page = db.changes_since(&last_backup_time).unwrap();
    let lsns: Vec<u64> = page.changes.iter().map(|c| c.lsn).collect();
    assert_eq!(lsns, [2, 3, 4]);
    assert!(db.changes_since("yesterday").is_err());

    let snapshot = db.snapshot_at(&last_backup_time).unwrap();
    assert_eq!(snapshot.header.lsn, 2);
    let lines: Vec<Line> = snapshot.map(Result::unwrap).collect();
    let keys: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l.key.as_str(), l.value.get()))
        .collect();
    assert_eq!(keys, [("alice", r#"{"plan":"free"}"#), ("bob", "1")]);
}
