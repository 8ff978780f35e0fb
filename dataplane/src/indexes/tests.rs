//! Value indexes through the embedded store: lookups against a naive scan of the history at
//! every moment, online builds, restarts, and the unique check in the commit thread.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::encode;
use super::{IndexDef, IndexKind, IndexStatus, IndexType, Probe};
use crate::error::StoreError;
use crate::metrics::StoreMetrics;
use crate::store::{Store, StoreConfig, WriteOp};

fn open(dir: &std::path::Path) -> Store {
    Store::open(StoreConfig::new(dir), Arc::new(StoreMetrics::default()))
        .unwrap()
        .0
}

fn put(ns: &str, key: &str, value: Value) -> WriteOp {
    WriteOp::put(
        ns,
        key,
        serde_json::value::RawValue::from_string(value.to_string()).unwrap(),
    )
}

/// The keys whose `field` equals `value` at `at`, by reading every live key's value then.
fn naive(store: &Store, ns: &str, field: &str, value: &Value, at: Option<i64>) -> Vec<String> {
    let path = encode::split_path(field);
    let want = encode::encode_value(value);
    store
        .snapshot(ns, at)
        .into_iter()
        .filter(|(_, v)| {
            let text = store.fetch(*v, None).unwrap().value.unwrap();
            encode::extract(text.as_bytes(), &path) == want
        })
        .map(|(k, _)| k)
        .collect()
}

async fn wait_ready(store: &Store, ns: &str, name: &str) -> IndexStatus {
    for _ in 0..500 {
        let status = store.index(ns, name).unwrap().status;
        if !matches!(status, IndexStatus::Building { .. }) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("index {ns}/{name} did not finish building");
}

/// Deterministic pseudo-random writes: puts (some without the field, some with other kinds),
/// deletes and batches; returns the commit time of each record.
async fn churn(store: &Store, seed: u64, n: u64) -> Vec<i64> {
    let mut x = seed;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut times = Vec::new();
    for _ in 0..n {
        let mut ops = Vec::new();
        for _ in 0..1 + next() % 3 {
            let key = format!("k{}", next() % 40);
            let op = match next() % 6 {
                0 => WriteOp::delete("u", key),
                1 => put("u", &key, json!({ "other": 1 })),
                2 => put("u", &key, json!({ "city": next() % 3, "n": 1 })),
                _ => put(
                    "u",
                    &key,
                    json!({ "city": format!("c{}", next() % 5), "n": 2 }),
                ),
            };
            ops.push(op);
        }
        times.push(store.write(ops).await.unwrap().timestamp_micros);
    }
    times
}

fn candidates() -> Vec<Value> {
    let mut v: Vec<Value> = (0..5).map(|i| json!(format!("c{i}"))).collect();
    v.extend((0..3).map(|i| json!(i)));
    v.push(json!(1.0));
    v
}

fn check_all(store: &Store, times: &[i64]) {
    for value in candidates() {
        let probe = Probe::Eq(value.clone());
        let now = store
            .index_lookup("u", "city", &probe, None, usize::MAX)
            .unwrap();
        assert_eq!(
            now.as_deref(),
            Some(&naive(store, "u", "city", &value, None)[..]),
            "{value} now"
        );
        for &t in times {
            for at in [t - 1, t] {
                let got = store
                    .index_lookup("u", "city", &probe, Some(at), usize::MAX)
                    .unwrap();
                assert_eq!(
                    got.as_deref(),
                    Some(&naive(store, "u", "city", &value, Some(at))[..]),
                    "{value} at {at}"
                );
            }
        }
    }
}

#[tokio::test]
async fn lookups_equal_a_scan_of_the_history_before_and_after_a_build_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut times = churn(&store, 7, 150).await;
    let info = store
        .create_index("u", "city", IndexType::NonUnique)
        .await
        .unwrap();
    assert_eq!(info.def.field, "city");
    // Writes go on while it builds.
    times.extend(churn(&store, 11, 50).await);
    assert_eq!(wait_ready(&store, "u", "city").await, IndexStatus::Ready);
    times.extend(churn(&store, 13, 50).await);
    check_all(&store, &times);
    let docs = store.get_by_index("u", "city", "c1").await.unwrap();
    assert_eq!(
        docs.iter().map(|d| d.key.clone()).collect::<Vec<_>>(),
        naive(&store, "u", "city", &json!("c1"), None)
    );
    assert!(docs.iter().all(|d| d.value["city"] == "c1"));
    let info = store.index("u", "city").unwrap();
    assert_eq!(info.entries as usize, {
        let mut n = 0;
        for v in candidates().iter().filter(|v| **v != json!(1.0)) {
            n += naive(&store, "u", "city", v, None).len();
        }
        n
    });
    store.close();
    drop(store);
    // Rebuilt from the log at open: the same answers.
    let store = open(dir.path());
    assert_eq!(store.index("u", "city").unwrap().status, IndexStatus::Ready);
    check_all(&store, &times);
    assert_eq!(store.index("u", "city").unwrap().entries, info.entries);
    assert_eq!(
        store.index("u", "city").unwrap().distinct_values,
        info.distinct_values
    );
    // Dropped, it is gone; lookups say so.
    store.drop_index("u", "city").await.unwrap();
    assert!(store.index("u", "city").is_none());
    assert!(matches!(
        store.drop_index("u", "city").await,
        Err(StoreError::NoSuchIndex { .. })
    ));
    assert_eq!(
        store
            .index_lookup("u", "city", &Probe::Eq(json!("c1")), None, 10)
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn unique_indexes_refuse_a_second_live_key_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let info = store
        .create_index("users", "email", IndexType::Unique)
        .await
        .unwrap();
    assert_eq!(
        info.status,
        IndexStatus::Ready,
        "an empty namespace is ready at once"
    );
    assert!(matches!(
        store
            .create_index("users", "email", IndexType::NonUnique)
            .await,
        Err(StoreError::IndexExists { .. })
    ));
    store
        .write(vec![put("users", "a", json!({"email": "x@"}))])
        .await
        .unwrap();
    // The same key may keep its value.
    store
        .write(vec![put("users", "a", json!({"email": "x@", "v": 2}))])
        .await
        .unwrap();
    let err = store
        .write(vec![put("users", "b", json!({"email": "x@"}))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UniqueViolation(v) if v.existing == "a" && v.value == "\"x@\""),
        "{err}"
    );
    // Deleting a and giving b its value in one batch is fine.
    store
        .write(vec![
            WriteOp::delete("users", "a"),
            put("users", "b", json!({"email": "x@"})),
        ])
        .await
        .unwrap();
    // Two keys of one batch with one value: the whole batch is refused.
    let before = store.last_applied().0;
    let err = store
        .write(vec![
            put("users", "c", json!({"email": "y@"})),
            put("users", "d", json!({"email": "y@"})),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UniqueViolation(_)), "{err}");
    assert_eq!(store.last_applied().0, before, "nothing was written");
    // Concurrent writers of one value: exactly one wins (some share a commit group).
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(vec![put(
                        "users",
                        &format!("w{i}"),
                        json!({"email": "race@"}),
                    )])
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for w in writers {
        match w.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::UniqueViolation(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        store
            .get_by_index("users", "email", "race@")
            .await
            .unwrap()
            .len(),
        1
    );
    // Numbers meet by value: 1 and 1.0 are one value.
    store
        .create_index("users", "n", IndexType::Unique)
        .await
        .unwrap();
    store
        .write(vec![put("users", "p", json!({"n": 1}))])
        .await
        .unwrap();
    assert!(
        store
            .write(vec![put("users", "q", json!({"n": 1.0}))])
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_racing_a_unique_definition_are_checked_from_its_lsn_on() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let def = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_index("users", "email", IndexType::Unique)
                    .await
            })
        };
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .write(vec![put(
                            "users",
                            &format!("w{i}"),
                            json!({"email": "same@"}),
                        )])
                        .await
                })
            })
            .collect();
        def.await.unwrap().unwrap();
        let def_lsn = store
            .latest_version(super::def::INDEXES_NAMESPACE, "users/email")
            .unwrap()
            .lsn;
        let mut after = 0;
        for w in writers {
            if let Ok(c) = w.await.unwrap() {
                after += usize::from(c.lsn > def_lsn);
            }
        }
        assert!(
            after <= 1,
            "round {round}: {after} writes of one value after the definition"
        );
    }
}

#[tokio::test]
async fn a_unique_index_over_duplicates_fails_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (k, e) in [("a", "x@"), ("b", "y@"), ("c", "x@")] {
        store
            .write(vec![put("users", k, json!({"email": e}))])
            .await
            .unwrap();
    }
    let def = IndexDef {
        namespace: "users".into(),
        name: "by_email".into(),
        field: "email".into(),
        kind: IndexKind::Value,
        unique: true,
    };
    store.create_index_def(def).await.unwrap();
    // While it builds (or once failed) a new duplicate is still refused: the check never
    // depends on the build.
    assert!(
        store
            .write(vec![put("users", "d", json!({"email": "y@"}))])
            .await
            .is_err()
    );
    let status = wait_ready(&store, "users", "by_email").await;
    let IndexStatus::Failed { reason } = status else {
        panic!("{status:?}")
    };
    assert!(
        reason.contains("\"x@\"") && reason.contains("\"a\"") && reason.contains("\"c\""),
        "{reason}"
    );
    assert_eq!(
        store
            .index_lookup("users", "by_email", &Probe::Eq(json!("x@")), None, 10)
            .unwrap(),
        None,
        "a failed index is not used"
    );
    // Lookups still answer, by a scan.
    assert_eq!(
        store
            .get_by_index("users", "by_email", "x@")
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Rough figures for the report: build time and memory per entry for 100k documents, and
/// single-writer PUT throughput with and without two value indexes. Run in release:
/// `cargo test -p koru-dataplane --release --lib -- --ignored measure_value_indexes --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_value_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let n = 100_000u64;
    let doc = |i: u64| {
        json!({"email": format!("user{i}@example.com"), "region": format!("r{}", i % 20),
               "name": format!("User {i}"), "age": i % 90, "bio": "x".repeat(100)})
    };
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let ops = chunk
            .iter()
            .map(|&i| put("bench", &format!("u{i:06}"), doc(i)))
            .collect();
        store.write(ops).await.unwrap();
    }
    let before = rss();
    let started = std::time::Instant::now();
    store
        .create_index("bench", "email", IndexType::Unique)
        .await
        .unwrap();
    wait_ready(&store, "bench", "email").await;
    let build = started.elapsed();
    let after = rss();
    let info = store.index("bench", "email").unwrap();
    println!(
        "build of a unique index over {n} docs: {build:?}; RSS +{} bytes = {} bytes per entry ({} entries)",
        after.saturating_sub(before),
        after.saturating_sub(before) / info.entries.max(1),
        info.entries
    );
    // PUT throughput, one writer at a time (each write its own commit), with and without indexes.
    async fn puts(store: &Store, ns: &str, n: u64) -> f64 {
        let started = std::time::Instant::now();
        for i in 0..n {
            let v = json!({"email": format!("w{i}@x"), "region": format!("r{}", i % 20), "bio": "y".repeat(100)});
            store
                .write(vec![put(ns, &format!("w{i}"), v)])
                .await
                .unwrap();
        }
        n as f64 / started.elapsed().as_secs_f64()
    }
    // 16 concurrent writers (commit groups), as an HTTP server sees them.
    async fn concurrent(store: &Store, ns: &str, n: u64) -> f64 {
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let store = store.clone();
                let ns = ns.to_string();
                tokio::spawn(async move {
                    for i in (t..n).step_by(16) {
                        let v = json!({"email": format!("c{i}@x"), "region": format!("r{}", i % 20), "bio": "y".repeat(100)});
                        store.write(vec![put(&ns, &format!("c{i}"), v)]).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        n as f64 / started.elapsed().as_secs_f64()
    }
    let plain = puts(&store, "plain", 20_000).await;
    store
        .create_index("indexed", "email", IndexType::Unique)
        .await
        .unwrap();
    store
        .create_index("indexed", "region", IndexType::NonUnique)
        .await
        .unwrap();
    let indexed = puts(&store, "indexed", 20_000).await;
    let plain_c = concurrent(&store, "plain", 40_000).await;
    let indexed_c = concurrent(&store, "indexed", 40_000).await;
    println!(
        "PUT/s one writer: {plain:.0} plain, {indexed:.0} with 2 value indexes ({:.2}x); 16 writers: {plain_c:.0} plain, {indexed_c:.0} indexed ({:.2}x)",
        indexed / plain,
        indexed_c / plain_c
    );
    let probe = Probe::Eq(json!("user500@example.com"));
    let started = std::time::Instant::now();
    for _ in 0..100_000 {
        let _ = store
            .index_lookup("bench", "email", &probe, None, 10)
            .unwrap();
    }
    println!(
        "index_lookup by unique email: {:?} each",
        started.elapsed() / 100_000
    );
}
