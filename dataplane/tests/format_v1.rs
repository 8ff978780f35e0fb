//! The on-disk format is a contract: a data directory written by format version 1 (committed in
//! `tests/data/format-v1`) must open and read back exactly, in every later release.
//!
//! The fixture was written once by `write_fixture` below (run it with `--ignored` only when a new
//! format version ships, into a new directory; never rewrite an old one).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::path::{Path, PathBuf};
use std::sync::Arc;

use koru_dataplane::metrics::StoreMetrics;
use koru_dataplane::{Store, StoreConfig, WriteOp};
use serde_json::value::RawValue;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v1")
}

/// Copies the contents of directory `from` into `to` (created if missing).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut options = fs_extra::dir::CopyOptions::new();
    options.content_only = true;
    fs_extra::dir::copy(from, to, &options).unwrap();
}

fn open(dir: &Path) -> Store {
    let mut config = StoreConfig::new(dir);
    config.segment_size = 4096;
    Store::open(config, Arc::new(StoreMetrics::default()))
        .unwrap()
        .0
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_string()).unwrap()
}

/// What the fixture holds: 2 segments; `users/alice` with two puts and a delete, `users/bob`,
/// a batch over two namespaces, and `counters/c` with 60 versions.
#[test]
#[ignore = "writes the committed fixture; only for a new format version"]
fn write_fixture() {
    let dir = fixture();
    assert!(!dir.exists(), "never rewrite a shipped fixture");
    let store = open(&dir);
    store
        .write_blocking(vec![WriteOp::put(
            "users",
            "alice",
            raw(r#"{"name":"Alice","age":30}"#),
        )])
        .unwrap();
    store
        .write_blocking(vec![WriteOp::put(
            "users",
            "alice",
            raw(r#"{"name":"Alice","age":31}"#),
        )])
        .unwrap();
    store
        .write_blocking(vec![WriteOp::put(
            "users",
            "bob",
            raw(r#"{"name":"Bob","tags":["a","é"]}"#),
        )])
        .unwrap();
    store
        .write_blocking(vec![
            WriteOp::put("orders", "o:1", raw("1.5e300")),
            WriteOp::put("users", "carol", raw("null")),
        ])
        .unwrap();
    store
        .write_blocking(vec![WriteOp::delete("users", "alice")])
        .unwrap();
    for i in 0..60 {
        store
            .write_blocking(vec![WriteOp::put(
                "counters",
                "c",
                raw(&format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(40))),
            )])
            .unwrap();
    }
    store.close();
    std::fs::remove_file(dir.join("LOCK")).unwrap();
}

#[test]
fn a_format_v1_directory_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let store = open(dir.path());
    assert!(
        std::fs::read_dir(dir.path().join("wal")).unwrap().count() >= 2,
        "the fixture spans segments"
    );

    let alice = store.history("users", "alice").unwrap().unwrap();
    let values: Vec<Option<&str>> = alice.iter().map(|f| f.value.as_deref()).collect();
    assert_eq!(
        values,
        [
            Some(r#"{"name":"Alice","age":30}"#),
            Some(r#"{"name":"Alice","age":31}"#),
            None
        ]
    );
    assert_eq!(
        alice
            .iter()
            .map(|f| f.version.to_string())
            .collect::<Vec<_>>(),
        ["1.0", "2.0", "5.0"]
    );
    assert!(store.get("users", "alice").unwrap().is_none());
    assert_eq!(
        store
            .get_at("users", "alice", alice[1].timestamp_micros)
            .unwrap()
            .unwrap()
            .value
            .as_deref(),
        Some(r#"{"name":"Alice","age":31}"#)
    );
    assert_eq!(
        store.get("users", "bob").unwrap().unwrap().value.as_deref(),
        Some(r#"{"name":"Bob","tags":["a","é"]}"#)
    );
    let o1 = store.get("orders", "o:1").unwrap().unwrap();
    assert_eq!(
        (o1.version.to_string(), o1.value.as_deref()),
        ("4.0".to_string(), Some("1.5e300"))
    );
    assert_eq!(
        store
            .get("users", "carol")
            .unwrap()
            .unwrap()
            .version
            .to_string(),
        "4.1"
    );
    let counter = store.history("counters", "c").unwrap().unwrap();
    assert_eq!(counter.len(), 60);
    assert!(
        counter[59]
            .value
            .as_deref()
            .unwrap()
            .starts_with(r#"{"n":59,"#)
    );
    let stats = store.stats();
    assert_eq!(
        (stats.live_keys, stats.versions, stats.applied_lsn),
        (4, 66, 65)
    );
    assert_eq!(store.namespaces(), ["counters", "orders", "users"]);
}
