//! The store on a memory volume: the same behaviour as on files, a restart on the same volume
//! keeps everything, and nothing touches the file system.

use std::path::Path;
use std::sync::Arc;

use koru_dataplane::db::{BatchKey, BatchWrite, BlockingDb, Options};
use koru_dataplane::wal::storage::{MemoryStorage, Storage};
use koru_dataplane::{FsyncMode, StoreConfig};

/// A data directory that must never appear on disk.
const DIR: &str = "/nonexistent-koru-memory-volume/data";

fn open(volume: &MemoryStorage, fsync: FsyncMode) -> BlockingDb {
    open_mode(volume, fsync, false)
}

fn open_mode(volume: &MemoryStorage, fsync: FsyncMode, inline_commit: bool) -> BlockingDb {
    let mut options = Options::new(DIR)
        .fsync(fsync)
        .storage(Arc::new(volume.clone()));
    // Small segments so a few hundred writes roll several times.
    options.store.segment_size = 4096;
    options.store.inline_commit = inline_commit;
    BlockingDb::open(options).expect("open on memory")
}

#[test]
fn put_get_history_and_restart_on_the_same_volume() {
    let fsyncs = [
        FsyncMode::Always,
        FsyncMode::Off,
        "interval=5".parse().unwrap(),
    ];
    // The single-threaded commit (what wasm runs) as well as the commit thread.
    for (fsync, inline) in fsyncs.into_iter().flat_map(|f| [(f, false), (f, true)]) {
        let volume = MemoryStorage::new();
        let open = |volume: &MemoryStorage, fsync| open_mode(volume, fsync, inline);
        let db = open(&volume, fsync);
        let w1 = db.put("users", "alice", r#"{"age":30}"#, None).unwrap();
        let w2 = db.put("users", "alice", r#"{"age":31}"#, None).unwrap();
        for i in 0..300 {
            db.put(
                "bulk",
                &format!("k{i:03}"),
                &format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(40)),
                None,
            )
            .unwrap();
        }
        db.delete("bulk", "k007", None).unwrap();
        assert_eq!(
            db.get("users", "alice").unwrap().value.get(),
            r#"{"age":31}"#
        );
        let at = serde_json::to_value(&w1).unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            db.get_at("users", "alice", &at).unwrap().value.get(),
            r#"{"age":30}"#
        );
        let changes_before = serde_json::to_value(db.changes(0, None).unwrap()).unwrap();
        db.close();
        drop(db);
        assert!(!Path::new(DIR).exists(), "a memory store wrote to disk");
        let segments = volume.list_dir(&Path::new(DIR).join("wal")).unwrap();
        assert!(segments.len() > 3, "segments rolled: {segments:?}");

        let db = open(&volume, fsync);
        assert_eq!(
            db.get("users", "alice").unwrap().value.get(),
            r#"{"age":31}"#
        );
        let history =
            serde_json::to_value(db.history("users", "alice", None, None).unwrap()).unwrap();
        let versions = history["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(
            versions[0]["version_id"],
            serde_json::to_value(&w1).unwrap()["version_id"]
        );
        assert_eq!(
            versions[1]["version_id"],
            serde_json::to_value(&w2).unwrap()["version_id"]
        );
        assert_eq!(
            db.get("bulk", "k299").unwrap().value.get(),
            format!(r#"{{"i":299,"pad":"{}"}}"#, "x".repeat(40))
        );
        assert_eq!(db.get("bulk", "k007").unwrap_err().code(), "not_found");
        assert_eq!(
            serde_json::to_value(db.changes(0, None).unwrap()).unwrap(),
            changes_before,
            "the change feed reads the same log back"
        );
        let found = db
            .batch_get(vec![BatchKey {
                namespace: "users".into(),
                key: "alice".into(),
                at: None,
            }])
            .unwrap();
        assert!(found[0].entry.is_some());
        db.batch_put(vec![BatchWrite::Put {
            namespace: "users".into(),
            key: "bob".into(),
            value: r#"{"age":5}"#.into(),
        }])
        .unwrap();
        assert_eq!(
            db.namespaces().unwrap(),
            vec!["bulk".to_string(), "users".to_string()]
        );
    }
}

#[test]
fn a_volume_is_locked_while_open_and_volumes_are_separate() {
    let volume = MemoryStorage::new();
    let db = open(&volume, FsyncMode::Always);
    let again = BlockingDb::open(Options::new(DIR).storage(Arc::new(volume.clone())));
    assert_eq!(again.map(|_| ()).unwrap_err().code(), "locked");
    let other = MemoryStorage::new();
    let db2 = open(&other, FsyncMode::Always);
    db.put("a", "k", "1", None).unwrap();
    assert_eq!(db2.get("a", "k").unwrap_err().code(), "not_found");
    drop(db);
    assert!(BlockingDb::open(Options::new(DIR).storage(Arc::new(volume))).is_ok());
}

#[test]
fn text_search_says_it_needs_files() {
    let volume = MemoryStorage::new();
    let db = open(&volume, FsyncMode::Always);
    db.put("docs", "a", r#"{"body":"hello world"}"#, None)
        .unwrap();
    let err = db
        .store()
        .unwrap()
        .text_search("docs", "body", "hello", None, 10, false)
        .unwrap_err();
    assert_eq!(err.code(), "bad_request");
    assert!(err.to_string().contains("memory storage"), "{err}");
}

#[test]
fn the_default_storage_is_files() {
    let config = StoreConfig::new("/tmp/x");
    assert!(config.storage.is_os_files());
}

#[test]
fn inline_commit_builds_value_indexes_and_answers_queries() {
    let volume = MemoryStorage::new();
    let db = open_mode(&volume, FsyncMode::Always, true);
    for i in 0..50 {
        db.put("u", &format!("k{i}"), &format!(r#"{{"n":{i}}}"#), None)
            .unwrap();
    }
    let answer = db
        .query(
            "u",
            r#"{"filter":{"field":"n","op":"gte","value":45},"sort":{"field":"n"}}"#,
        )
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["total"], 5, "{answer}");
    let store = db.store().unwrap();
    let roll = store.roll();
    let sealed = block_on(roll).unwrap();
    assert_eq!(sealed, 50);
}

/// Polls a future that the inline mode has already completed.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}
