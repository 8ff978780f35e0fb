//! What the store does when the disk fails under it: a failed fsync or a short write makes it
//! refuse writes (readiness fails) while reads go on, and a restart recovers everything acknowledged.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use koru_dataplane::http::{AppState, app};
use koru_dataplane::metrics::{Metrics, StoreMetrics};
use koru_dataplane::wal::faults::Faults;
use koru_dataplane::{FsyncMode, Store, StoreConfig, StoreError, WriteOp};
use serde_json::value::RawValue;
use tower::ServiceExt;

fn value(n: u32) -> Box<RawValue> {
    RawValue::from_string(n.to_string()).unwrap()
}

fn open(dir: &std::path::Path, faults: Option<Arc<Faults>>) -> Store {
    let mut config = StoreConfig::new(dir);
    config.fsync = FsyncMode::Always;
    config.faults = faults;
    Store::open(config, Arc::new(StoreMetrics::default()))
        .unwrap()
        .0
}

#[tokio::test]
async fn a_failed_fsync_makes_the_store_read_only_and_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let store = open(dir.path(), Some(Arc::clone(&faults)));
    store
        .write(vec![WriteOp::put("ns", "a", value(1))])
        .await
        .unwrap();
    faults.fail_next_sync();
    let err = store
        .write(vec![WriteOp::put("ns", "b", value(2))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly), "{err}");
    // Even though the fault fired once, the store does not trust the disk again.
    assert!(matches!(
        store.write(vec![WriteOp::put("ns", "c", value(3))]).await,
        Err(StoreError::ReadOnly)
    ));
    assert_eq!(
        store.get("ns", "a").unwrap().unwrap().value.as_deref(),
        Some("1"),
        "reads go on"
    );

    let router = app(AppState::new(
        store.clone(),
        Arc::new(Metrics::default()),
        None,
        None,
    ));
    let ready = router
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    store.close();
    drop(store);
    let store = open(dir.path(), None);
    assert_eq!(
        store.get("ns", "a").unwrap().unwrap().value.as_deref(),
        Some("1")
    );
    store
        .write(vec![WriteOp::put("ns", "d", value(4))])
        .await
        .expect("a restart recovers");
}

#[tokio::test]
async fn a_short_write_is_a_torn_tail_that_restart_cuts_off() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let store = open(dir.path(), Some(Arc::clone(&faults)));
    for i in 0..10 {
        store
            .write(vec![WriteOp::put("ns", format!("k{i}"), value(i))])
            .await
            .unwrap();
    }
    faults.short_write_next(7);
    let err = store
        .write(vec![WriteOp::put("ns", "torn", value(99))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly), "{err}");
    assert!(
        store.get("ns", "torn").unwrap().is_none(),
        "an unacknowledged write is not visible"
    );
    store.close();
    drop(store);

    let store = open(dir.path(), None);
    for i in 0..10 {
        assert_eq!(
            store.get("ns", &format!("k{i}")).unwrap().unwrap().value,
            Some(i.to_string())
        );
    }
    assert!(store.get("ns", "torn").unwrap().is_none());
    let next = store
        .write(vec![WriteOp::put("ns", "after", value(1))])
        .await
        .unwrap();
    assert_eq!(
        next.lsn, 11,
        "the torn record's LSN is reused after the cut"
    );
}

#[tokio::test]
async fn interval_mode_fsyncs_within_the_interval_without_the_commit_thread() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::default();
    let mut config = StoreConfig::new(dir.path());
    config.fsync = FsyncMode::Interval(std::time::Duration::from_millis(20));
    let (store, _) = Store::open(config, Arc::clone(&metrics.store)).unwrap();
    let fsyncs = || {
        let text = metrics.encode();
        text.lines()
            .find_map(|l| l.strip_prefix("koru_fsync_duration_seconds_count "))
            .map_or(0, |n| n.trim().parse::<u64>().unwrap())
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(fsyncs(), 0, "nothing written, nothing to sync");
    store
        .write(vec![WriteOp::put("ns", "k", value(1))])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fsyncs() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(fsyncs(), 1, "one write, one interval fsync");
}
