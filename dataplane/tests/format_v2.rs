//! Format version 2 adds each record's cause and author: a data directory written by it
//! (committed in `tests/data/format-v2`) must open and read back exactly, authors and operations
//! included, in every later release; and a version 1 directory goes on in version 2 segments
//! without one file mixing the two.
//!
//! The fixture was written once by `write_fixture` below (run it with `--ignored` only when a new
//! format version ships, into a new directory; never rewrite an old one).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::path::{Path, PathBuf};

use koru_dataplane::WriteOp;
use koru_dataplane::db::{BlockingDb, Options};
use koru_dataplane::store::{Cause, WriteMeta};
use koru_dataplane::wal::segment;
use koru_dataplane_api::data::VersionOp;
use serde_json::value::RawValue;

fn fixture(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/format-v{version}"))
}

/// Copies the contents of directory `from` into `to` (created if missing).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut options = fs_extra::dir::CopyOptions::new();
    options.content_only = true;
    fs_extra::dir::copy(from, to, &options).unwrap();
}

fn open(dir: &Path) -> BlockingDb {
    let mut options = Options::new(dir);
    options.store.segment_size = 4096;
    BlockingDb::open(options).unwrap()
}

/// The format version in each segment's header, in log order.
fn versions(dir: &Path) -> Vec<u32> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            segment::decode_header(&std::fs::read(p).unwrap())
                .unwrap()
                .version
        })
        .collect()
}

/// (author, op) of each version of a key.
fn authored(db: &BlockingDb, ns: &str, key: &str) -> Vec<(Option<String>, Option<VersionOp>)> {
    db.history_meta(ns, key, None, None)
        .unwrap()
        .versions
        .into_iter()
        .map(|e| (e.author, e.op))
        .collect()
}

fn who(author: &str, op: VersionOp) -> (Option<String>, Option<VersionOp>) {
    (Some(author.to_string()), Some(op))
}

/// What the fixture holds: `users/ada` put by ada twice, then deleted by grace; `users/bob` put
/// by nobody known; a batch by grace over two namespaces; a counter incremented (a merge) by ada;
/// a rewind by root putting `users/ada` back; and 40 padded puts by bot so it spans segments.
#[test]
#[ignore = "writes the committed fixture; only for a new format version"]
fn write_fixture() {
    let dir = fixture(2);
    assert!(!dir.exists(), "never rewrite a shipped fixture");
    let db = open(&dir);
    let ada = db.with_author("ada@example.com").unwrap();
    let grace = db.with_author("grace").unwrap();
    ada.put("users", "ada", r#"{"name":"Ada","v":1}"#, None)
        .unwrap();
    ada.put("users", "ada", r#"{"name":"Ada","v":2}"#, None)
        .unwrap();
    db.put("users", "bob", r#"{"name":"Bob","tags":["é"]}"#, None)
        .unwrap();
    grace
        .batch_put(vec![
            koru_dataplane::db::BatchWrite::Put {
                namespace: "orders".into(),
                key: "o:1".into(),
                value: "1.5e300".into(),
            },
            koru_dataplane::db::BatchWrite::Put {
                namespace: "users".into(),
                key: "carol".into(),
                value: "null".into(),
            },
        ])
        .unwrap();
    grace.delete("users", "ada", None).unwrap();
    ada.patch("counters", "hits", r#"{"op":"increment","by":3}"#, None)
        .unwrap();
    let back = RawValue::from_string(r#"{"name":"Ada","v":2}"#.into()).unwrap();
    db.store()
        .unwrap()
        .write_blocking_with(
            vec![WriteOp::put("users", "ada", back)],
            WriteMeta::by(Some("root".into())).because(Cause::Rewind),
        )
        .unwrap();
    let bot = db.with_author("bot").unwrap();
    for i in 0..40 {
        bot.put(
            "log",
            "line",
            &format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(60)),
            None,
        )
        .unwrap();
    }
    db.close();
    std::fs::remove_file(dir.join("LOCK")).unwrap();
}

#[test]
fn a_format_v2_directory_reads_back_exactly_with_authors() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(2), dir.path());
    let before = versions(dir.path());
    assert!(before.len() >= 2, "the fixture spans segments");
    assert!(before.iter().all(|&v| v == 2));
    let db = open(dir.path());

    let ada = db.history("users", "ada", None, None).unwrap();
    let values: Vec<&str> = ada.versions.iter().map(|e| e.value.get()).collect();
    assert_eq!(
        values,
        [
            r#"{"name":"Ada","v":1}"#,
            r#"{"name":"Ada","v":2}"#,
            "null",
            r#"{"name":"Ada","v":2}"#
        ]
    );
    assert!(ada.versions[2].deleted);
    assert_eq!(
        authored(&db, "users", "ada"),
        [
            who("ada@example.com", VersionOp::Put),
            who("ada@example.com", VersionOp::Put),
            who("grace", VersionOp::Delete),
            who("root", VersionOp::Rewind),
        ]
    );
    assert_eq!(
        authored(&db, "users", "bob"),
        [(None, Some(VersionOp::Put))]
    );
    assert_eq!(
        db.get("users", "bob").unwrap().value.get(),
        r#"{"name":"Bob","tags":["é"]}"#
    );
    let o1 = db.get_meta("orders", "o:1").unwrap();
    assert_eq!(
        (o1.version_id.as_str(), o1.value.get(), o1.author.as_deref()),
        ("4.0", "1.5e300", Some("grace"))
    );
    assert_eq!(db.get_meta("users", "carol").unwrap().version_id, "4.1");
    let hits = db.get_meta("counters", "hits").unwrap();
    assert_eq!(hits.value.get(), "3");
    assert_eq!(
        (hits.author.as_deref(), hits.op),
        (Some("ada@example.com"), Some(VersionOp::Merge))
    );
    let log = authored(&db, "log", "line");
    assert_eq!(log.len(), 40);
    assert!(log.iter().all(|a| *a == who("bot", VersionOp::Put)));

    let changes = db.changes_meta(0, Some(7)).unwrap();
    let causes: Vec<(Option<&str>, Option<Cause>)> = changes
        .changes
        .iter()
        .map(|c| (c.author.as_deref(), c.cause))
        .collect();
    assert_eq!(
        causes,
        [
            (Some("ada@example.com"), Some(Cause::Write)),
            (Some("ada@example.com"), Some(Cause::Write)),
            (None, Some(Cause::Write)),
            (Some("grace"), Some(Cause::Write)),
            (Some("grace"), Some(Cause::Write)),
            (Some("ada@example.com"), Some(Cause::Merge)),
            (Some("root"), Some(Cause::Rewind)),
        ]
    );
    assert_eq!(db.store().unwrap().stats().applied_lsn, 47);
}

#[test]
fn a_format_v1_directory_reads_with_unknown_authors_and_goes_on_in_version_2() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(1), dir.path());
    let old = versions(dir.path());
    assert!(old.iter().all(|&v| v == 1));
    let db = open(dir.path());
    assert_eq!(
        authored(&db, "users", "alice"),
        [
            (None, Some(VersionOp::Put)),
            (None, Some(VersionOp::Put)),
            (None, Some(VersionOp::Delete)),
        ]
    );
    // The old active segment was sealed as it was, and writing goes on in a version 2 one.
    let now = versions(dir.path());
    assert_eq!(&now[..old.len()], &old[..]);
    assert_eq!(now.len(), old.len() + 1);
    assert_eq!(now.last(), Some(&2));

    db.with_author("ada")
        .unwrap()
        .put("users", "alice", r#"{"back":true}"#, None)
        .unwrap();
    db.close();
    drop(db);
    // After a restart, both formats replay: the old versions unknown, the new one ada's.
    let db = open(dir.path());
    assert_eq!(
        authored(&db, "users", "alice"),
        [
            (None, Some(VersionOp::Put)),
            (None, Some(VersionOp::Put)),
            (None, Some(VersionOp::Delete)),
            who("ada", VersionOp::Put),
        ]
    );
    assert_eq!(db.store().unwrap().stats().applied_lsn, 66);
    assert_eq!(versions(dir.path()).len(), old.len() + 1, "no further roll");
}
