//! The archive format is a contract too: a backup store written by archive format version 1
//! (committed in `tests/data/archive-v1`: sealed segments, their sidecars and a base backup
//! manifest) must restore exactly, in every later release, to its end and to any moment in it.
//!
//! The fixture was written once by `write_fixture` below, by archiving the committed data-directory
//! fixture `tests/data/format-v1` (run it with `--ignored` only when a new archive format ships,
//! into a new directory; never rewrite an old one).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use koru_dataplane::backup::restore::{RestoreRequest, restore};
use koru_dataplane::backup::{BackupStore, BackupUrl, Target, base};
use koru_dataplane::metrics::StoreMetrics;
use koru_dataplane::{Store, StoreConfig};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Copies the contents of directory `from` into `to` (created if missing).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut options = fs_extra::dir::CopyOptions::new();
    options.content_only = true;
    fs_extra::dir::copy(from, to, &options).unwrap();
}

fn url(dir: &Path) -> BackupUrl {
    format!("file://{}", dir.display()).parse().unwrap()
}

fn open(dir: &Path) -> Store {
    let mut config = StoreConfig::new(dir);
    config.segment_size = 4096;
    Store::open(config, Arc::new(StoreMetrics::default()))
        .unwrap()
        .0
}

#[tokio::test]
#[ignore = "writes the committed fixture; only for a new archive format version"]
async fn write_fixture() {
    let archive = data("archive-v1");
    assert!(!archive.exists(), "never rewrite a shipped fixture");
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&data("format-v1"), tmp.path());
    let store = open(tmp.path());
    common::stores::base_backup(&store, &url(&archive)).await;
    store.close();
}

/// The one base backup of the fixture.
async fn backup_id(archive: &Path) -> String {
    let backups = base::list(&BackupStore::open(&url(archive), false).unwrap())
        .await
        .unwrap();
    assert_eq!(backups.len(), 1, "{backups:?}");
    backups[0].id.clone()
}

#[tokio::test]
async fn an_archive_v1_restores_exactly_to_its_end_and_to_a_moment() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    copy_dir(&data("archive-v1"), &archive);
    let id = backup_id(&archive).await;

    // To the base backup's end: everything the format-v1 fixture holds.
    let full = tmp.path().join("full");
    let report = restore(&RestoreRequest {
        from: url(&archive),
        backup: Some(id),
        target: Target::End,
        data_dir: full.clone(),
    })
    .await
    .unwrap();
    assert_eq!((report.last_lsn, report.versions), (65, 66));
    let store = open(&full);
    let stats = store.stats();
    assert_eq!(
        (stats.live_keys, stats.versions, stats.applied_lsn),
        (4, 66, 65)
    );
    let alice = store.history("users", "alice").unwrap().unwrap();
    assert_eq!(alice.len(), 3);
    assert!(store.get("users", "alice").unwrap().is_none());
    assert_eq!(
        store.get("users", "bob").unwrap().unwrap().value.as_deref(),
        Some(r#"{"name":"Bob","tags":["a","é"]}"#)
    );
    let moment = alice[1].timestamp_micros;
    store.close();

    // To the moment of alice's second version: nothing after it.
    let before = tmp.path().join("before");
    let report = restore(&RestoreRequest {
        from: url(&archive),
        backup: None,
        target: Target::TimeMicros(moment),
        data_dir: before.clone(),
    })
    .await
    .unwrap();
    assert_eq!(report.last_lsn, 2);
    let store = open(&before);
    assert_eq!(
        store
            .get("users", "alice")
            .unwrap()
            .unwrap()
            .value
            .as_deref(),
        Some(r#"{"name":"Alice","age":31}"#)
    );
    assert!(store.get("users", "bob").unwrap().is_none());
    assert_eq!(store.stats().versions, 2);
    store.close();
}

#[test]
fn the_restore_command_reads_an_archive_v1() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    copy_dir(&data("archive-v1"), &archive);
    let out = Command::new(env!("CARGO_BIN_EXE_koru-dataplane"))
        .args(["restore", "--from"])
        .arg(format!("file://{}", archive.display()))
        .args(["--target-lsn", "4", "--data-dir"])
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = open(&tmp.path().join("d"));
    assert_eq!(store.stats().applied_lsn, 4);
    assert_eq!(
        store
            .get("users", "carol")
            .unwrap()
            .unwrap()
            .version
            .to_string(),
        "4.1"
    );
    store.close();
}
