//! Full-text indexes against a real embedded store: search now and as of earlier moments across
//! updates and deletes, the query syntax, restart and rebuild rules, the searchable delay, and a
//! real server killed with SIGKILL while it builds an index.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use koru_dataplane::indexes::def::INDEXES_NAMESPACE;
use koru_dataplane::indexes::{IndexDef, IndexStatus, IndexType};
use koru_dataplane::metrics::StoreMetrics;
use koru_dataplane::store::Committed;
use koru_dataplane::{FsyncMode, Store, StoreConfig, WriteOp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// How long a test waits for the indexer to catch up before failing (generous: a shared 2-core
/// machine running debug builds; the documented delay is about 150 ms).
const CATCH_UP: Duration = Duration::from_secs(30);

fn open(dir: &Path) -> Store {
    let mut config = StoreConfig::new(dir);
    config.fsync = FsyncMode::Off;
    Store::open(config, Arc::new(StoreMetrics::default()))
        .unwrap()
        .0
}

fn raw(v: &Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(v).unwrap()
}

fn put(store: &Store, ns: &str, key: &str, value: Value) -> Committed {
    store
        .write_blocking(vec![WriteOp::put(ns, key, raw(&value))])
        .unwrap()
}

fn delete(store: &Store, ns: &str, key: &str) -> Committed {
    store
        .write_blocking(vec![WriteOp::delete(ns, key)])
        .unwrap()
}

/// Writes a text index's definition as the index-creation path stores it.
fn define(store: &Store, ns: &str, field: &str) -> Committed {
    let def = IndexDef::new(ns, field, IndexType::Text);
    let value = serde_json::to_value(&def).unwrap();
    put(store, INDEXES_NAMESPACE, &def.key(), value)
}

/// Waits until the index is ready and has committed everything written so far.
fn caught_up(store: &Store, ns: &str, name: &str) -> Duration {
    let started = Instant::now();
    let target = store.last_applied().0;
    loop {
        let ready = store
            .text_status(ns, name)
            .is_some_and(|(s, _)| s == IndexStatus::Ready);
        if ready && store.text_indexed_lsn(ns, name).unwrap_or(0) >= target {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CATCH_UP,
            "index {ns}/{name} not caught up with LSN {target}: {:?}",
            store.text_stats(ns, name)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn keys(store: &Store, ns: &str, query: &str, at: Option<i64>) -> Vec<String> {
    store
        .text_search(ns, "bio", query, at, 100, false)
        .unwrap()
        .expect("a ready text index")
        .into_iter()
        .map(|h| h.key)
        .collect()
}

fn set(keys: Vec<String>) -> BTreeSet<String> {
    keys.into_iter().collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn searches_now_and_as_of_earlier_moments_across_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    put(&store, "users", "early", json!({"bio": "database pioneer"}));
    let before_index = store.last_applied().1;
    define(&store, "users", "bio");
    put(
        &store,
        "users",
        "a",
        json!({"bio": "database performance is great"}),
    );
    put(
        &store,
        "users",
        "b",
        json!({"bio": "slow database performance"}),
    );
    put(&store, "users", "c", json!({"bio": "performance tuning"}));
    let t1 = put(&store, "users", "d", json!({"bio": "database only"})).timestamp_micros;
    put(&store, "users", "a", json!({"bio": "graph store"}));
    let t2 = put(&store, "users", "e", json!({"name": "no bio"})).timestamp_micros;
    delete(&store, "users", "b");
    put(&store, "users", "early", json!({"bio": 42}));
    let t3 = store.last_applied().1;
    put(&store, "other", "x", json!({"bio": "database"}));
    caught_up(&store, "users", "bio");

    // The roadmap's query: `performance` required, `slow` excluded, `database` ranks higher.
    assert_eq!(
        keys(&store, "users", "database +performance -slow", Some(t1)),
        ["a", "c"]
    );
    assert_eq!(
        set(keys(&store, "users", "database", Some(t1))),
        names(&["a", "b", "d", "early"])
    );
    assert_eq!(
        set(keys(&store, "users", "database", Some(t2))),
        names(&["b", "d", "early"])
    );
    assert_eq!(
        set(keys(&store, "users", "database", Some(t3))),
        names(&["d"])
    );
    assert_eq!(set(keys(&store, "users", "database", None)), names(&["d"]));
    // Moments before the definition are answered too: the index covers the whole history.
    assert_eq!(
        keys(&store, "users", "database", Some(before_index)),
        ["early"]
    );
    assert!(keys(&store, "users", "database", Some(before_index - 1)).is_empty());
    assert_eq!(keys(&store, "users", "graph", None), ["a"]);
    assert!(keys(&store, "users", "graph", Some(t1)).is_empty());
    // Another namespace's documents are not in this namespace's index.
    assert!(
        store
            .text_search("other", "bio", "database", None, 10, false)
            .unwrap()
            .is_none()
    );
    let (status, live) = store.text_status("users", "bio").unwrap();
    assert_eq!((status, live), (IndexStatus::Ready, 3), "a, c, d are live");
}

#[test]
fn phrases_prefixes_arrays_highlights_and_bad_queries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    define(&store, "docs", "bio");
    put(
        &store,
        "docs",
        "p",
        json!({"bio": "Database performance matters"}),
    );
    put(
        &store,
        "docs",
        "q",
        json!({"bio": "performance of a database"}),
    );
    put(
        &store,
        "docs",
        "r",
        json!({"bio": ["tags", "Databases everywhere"]}),
    );
    put(&store, "docs", "s", json!({"bio": {"nested": "database"}}));
    caught_up(&store, "docs", "bio");

    assert_eq!(
        keys(&store, "docs", "\"database performance\"", None),
        ["p"]
    );
    assert_eq!(keys(&store, "docs", "\"database perf\"*", None), ["p"]);
    assert_eq!(
        set(keys(&store, "docs", "datab*", None)),
        names(&["p", "q", "r"])
    );
    assert_eq!(
        set(keys(&store, "docs", "+DATAB* -perf*", None)),
        names(&["r"])
    );
    assert_eq!(keys(&store, "docs", "tags", None), ["r"]);
    assert_eq!(
        set(keys(&store, "docs", "database OR everywhere", None)),
        names(&["p", "q", "r"])
    );
    // Users cannot send regular expressions: `/` separates words like any punctuation.
    assert_eq!(keys(&store, "docs", "/data.*/", None), Vec::<String>::new());

    let hits = store
        .text_search("docs", "bio", "database", None, 10, true)
        .unwrap()
        .unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits[0].score >= hits[1].score && hits[1].score > 0.0);
    let p = hits.iter().find(|h| h.key == "p").unwrap();
    assert_eq!(
        p.highlight.as_deref(),
        Some("<b>Database</b> performance matters")
    );
    let limited = store
        .text_search("docs", "bio", "database", None, 1, false)
        .unwrap()
        .unwrap();
    assert_eq!(limited.len(), 1);
    assert!(limited[0].highlight.is_none());

    let bad = store
        .text_search("docs", "bio", "\"unclosed AND (", None, 10, false)
        .unwrap_err();
    assert!(
        matches!(bad, koru_dataplane::StoreError::InvalidRequest(_)),
        "{bad:?}"
    );
    assert!(
        store
            .text_search("docs", "nope", "x", None, 10, false)
            .unwrap()
            .is_none()
    );
    assert!(store.text_status("docs", "nope").is_none());
}

#[test]
fn restart_resumes_from_the_commit_payload_and_a_missing_or_damaged_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        define(&store, "users", "bio");
        for i in 0..300 {
            put(
                &store,
                "users",
                &format!("k{i}"),
                json!({"bio": format!("word{} common", i % 7)}),
            );
        }
        caught_up(&store, "users", "bio");
        let stats = store.text_stats("users", "bio").unwrap();
        assert!(
            stats.rebuilt_on_open && stats.added_since_open == 300,
            "{stats:?}"
        );
        store.close();
    }
    // Reopened: no document is indexed again, and new writes are indexed from the payload's LSN.
    {
        let store = open(dir.path());
        caught_up(&store, "users", "bio");
        let stats = store.text_stats("users", "bio").unwrap();
        assert!(!stats.rebuilt_on_open, "{stats:?}");
        assert_eq!(stats.added_since_open, 0, "{stats:?}");
        assert_eq!(stats.live, 300);
        assert_eq!(keys(&store, "users", "word3", None).len(), 43);
        put(&store, "users", "k3", json!({"bio": "renamed"}));
        caught_up(&store, "users", "bio");
        // The old version's document is closed (deleted and re-added), the new one added.
        assert_eq!(
            store.text_stats("users", "bio").unwrap().added_since_open,
            2
        );
        assert_eq!(keys(&store, "users", "word3", None).len(), 42);
        store.close();
    }
    // The directory deleted: rebuilt from the log, same answers.
    std::fs::remove_dir_all(dir.path().join("text")).unwrap();
    {
        let store = open(dir.path());
        caught_up(&store, "users", "bio");
        let stats = store.text_stats("users", "bio").unwrap();
        assert!(stats.rebuilt_on_open, "{stats:?}");
        assert_eq!(stats.live, 300);
        assert_eq!(keys(&store, "users", "word3", None).len(), 42);
        assert_eq!(keys(&store, "users", "renamed", None), ["k3"]);
        store.close();
    }
    // A damaged segment file: rebuilt too.
    let index_dir = dir.path().join("text/users/bio");
    let victim = std::fs::read_dir(&index_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .expect("a segment's postings file");
    std::fs::write(&victim, b"garbage").unwrap();
    {
        let store = open(dir.path());
        caught_up(&store, "users", "bio");
        assert!(store.text_stats("users", "bio").unwrap().rebuilt_on_open);
        assert_eq!(keys(&store, "users", "word3", None).len(), 42);
        // The definition deleted: the index and its directory go.
        delete(&store, INDEXES_NAMESPACE, "users/bio");
        let started = Instant::now();
        while index_dir.exists() || store.text_status("users", "bio").is_some() {
            assert!(started.elapsed() < CATCH_UP, "dropped index still there");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            store
                .text_search("users", "bio", "word3", None, 10, false)
                .unwrap()
                .is_none()
        );
        store.close();
    }
}

#[test]
fn an_empty_meta_file_as_a_power_failure_may_leave_is_rebuilt() {
    // Index files are not fsynced (the log rebuilds them): after a power failure the renamed
    // meta.json may be empty.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        define(&store, "p", "bio");
        put(&store, "p", "k", json!({"bio": "survives"}));
        caught_up(&store, "p", "bio");
        store.close();
    }
    std::fs::write(dir.path().join("text/p/bio/meta.json"), b"").unwrap();
    let store = open(dir.path());
    caught_up(&store, "p", "bio");
    assert!(store.text_stats("p", "bio").unwrap().rebuilt_on_open);
    assert_eq!(
        store
            .text_search("p", "bio", "survives", None, 10, false)
            .unwrap()
            .unwrap()[0]
            .key,
        "k"
    );
}

#[test]
fn a_directory_left_by_a_deleted_definition_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let orphan = dir.path().join("text/gone/bio");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("meta.json"), b"{}").unwrap();
    let store = open(dir.path());
    define(&store, "kept", "bio");
    caught_up(&store, "kept", "bio");
    assert!(!orphan.exists());
    assert!(dir.path().join("text/kept/bio").exists());
}

#[test]
fn a_write_is_searchable_within_the_documented_delay() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    define(&store, "live", "bio");
    caught_up(&store, "live", "bio");
    let mut delays = Vec::new();
    for i in 0..20 {
        let word = format!("fresh{i}");
        put(&store, "live", &format!("k{i}"), json!({ "bio": word }));
        let started = Instant::now();
        loop {
            if keys(&store, "live", &word, None) == [format!("k{i}")] {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "write {i} not searchable after 2 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        delays.push(started.elapsed());
    }
    delays.sort();
    eprintln!(
        "searchable after: p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    // Read-your-writes: a caller that asks waits for a commit made at once for it.
    let mut waits = Vec::new();
    for i in 0..20 {
        let word = format!("asked{i}");
        put(&store, "live", &format!("w{i}"), json!({ "bio": word }));
        let started = Instant::now();
        assert!(store.text_catch_up("live", "bio", Duration::from_secs(5)));
        waits.push(started.elapsed());
        assert_eq!(keys(&store, "live", &word, None), [format!("w{i}")]);
    }
    waits.sort();
    eprintln!(
        "text_catch_up took: p50 {:?}, max {:?}",
        waits[10], waits[19]
    );
    assert!(!store.text_catch_up("live", "nope", Duration::from_millis(1)));
}

#[test]
fn an_index_of_another_history_is_rebuilt() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (dir, word) in [(&a, "apple"), (&b, "banana")] {
        let store = open(dir.path());
        define(&store, "fruit", "bio");
        put(&store, "fruit", "k", json!({ "bio": word }));
        caught_up(&store, "fruit", "bio");
        store.close();
    }
    // B's log with A's index (same LSNs, other records): as after restoring an older backup.
    std::fs::remove_dir_all(b.path().join("text")).unwrap();
    fs_extra::dir::copy(
        a.path().join("text"),
        b.path(),
        &fs_extra::dir::CopyOptions::new(),
    )
    .unwrap();
    let store = open(b.path());
    caught_up(&store, "fruit", "bio");
    assert!(store.text_stats("fruit", "bio").unwrap().rebuilt_on_open);
    assert_eq!(keys(&store, "fruit", "banana", None), ["k"]);
    assert!(keys(&store, "fruit", "apple", None).is_empty());
}

/// A naive evaluator: the keys whose value at `at` has `word` in the field, by reading every
/// key's version at that moment.
fn naive(store: &Store, ns: &str, keys: &[String], word: &str, at: i64) -> BTreeSet<String> {
    keys.iter()
        .filter(|k| {
            store.get_at(ns, k, at).unwrap().is_some_and(|f| {
                let v: Value = serde_json::from_str(f.value.as_deref().unwrap()).unwrap();
                v["bio"]
                    .as_str()
                    .is_some_and(|s| s.split(' ').any(|w| w == word))
            })
        })
        .cloned()
        .collect()
}

#[test]
fn random_histories_match_a_naive_evaluator_at_random_moments() {
    let seed: u64 = std::env::var("KORU_TEXT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("KORU_TEXT_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let words = ["red", "green", "blue", "cyan", "pink"];
    let keys: Vec<String> = (0..15).map(|i| format!("k{i}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut moments = Vec::new();
    let mut store = open(dir.path());
    define(&store, "ns", "bio");
    for round in 0..200 {
        let n = rng.random_range(1..4);
        let ops: Vec<WriteOp> = (0..n)
            .map(|_| {
                let key = &keys[rng.random_range(0..keys.len())];
                if rng.random_range(0..5) == 0 {
                    WriteOp::delete("ns", key)
                } else {
                    let text: Vec<&str> = (0..rng.random_range(0..3))
                        .map(|_| words[rng.random_range(0..words.len())])
                        .collect();
                    WriteOp::put("ns", key, raw(&json!({"bio": text.join(" ")})))
                }
            })
            .collect();
        moments.push(store.write_blocking(ops).unwrap().timestamp_micros);
        if round == 120 {
            // Restart mid-history: the rest is indexed from the payload's LSN.
            caught_up(&store, "ns", "bio");
            store.close();
            drop(store);
            store = open(dir.path());
            caught_up(&store, "ns", "bio");
            assert!(!store.text_stats("ns", "bio").unwrap().rebuilt_on_open);
        }
    }
    caught_up(&store, "ns", "bio");
    for _ in 0..60 {
        let at = moments[rng.random_range(0..moments.len())] + rng.random_range(-1..2);
        let word = words[rng.random_range(0..words.len())];
        let found = set(keys_of(&store, word, Some(at)));
        assert_eq!(
            found,
            naive(&store, "ns", &keys, word, at),
            "{word} at {at}"
        );
    }
    let last = *moments.last().unwrap();
    for word in words {
        assert_eq!(
            set(keys_of(&store, word, None)),
            naive(&store, "ns", &keys, word, last)
        );
    }
}

fn keys_of(store: &Store, word: &str, at: Option<i64>) -> Vec<String> {
    keys(store, "ns", word, at)
}

/// Copies the log (only) of a data directory: opening the copy rebuilds every text index.
fn copy_log(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("wal")).unwrap();
    for entry in std::fs::read_dir(from.join("wal")).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join("wal").join(entry.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_indexing_then_restart_equals_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let words = ["alpha", "beta", "gamma", "delta", "omega"];
    let mut middle = 0;
    {
        let store = open(dir.path());
        let def = IndexDef::new("crash", "bio", IndexType::Text);
        let value = raw(&serde_json::to_value(&def).unwrap());
        store
            .write(vec![WriteOp::put(INDEXES_NAMESPACE, def.key(), value)])
            .await
            .unwrap();
        for batch in 0..60 {
            let ops = (0..1000)
                .map(|i| {
                    let n = batch * 1000 + i;
                    let bio = format!("{} {} doc{n}", words[n % 5], words[(n / 5) % 5]);
                    WriteOp::put(
                        "crash",
                        format!("k{}", n % 40_000),
                        raw(&json!({ "bio": bio })),
                    )
                })
                .collect();
            let committed = store.write(ops).await.unwrap();
            if batch == 30 {
                middle = committed.timestamp_micros;
            }
        }
        store.close();
    }
    // The server rebuilds the index from scratch while taking writes; it dies mid-way.
    std::fs::remove_dir_all(dir.path().join("text")).unwrap();
    let mut server = common::Server::start(dir.path(), &["--fsync", "off"]);
    let http = common::client();
    // Writes while it builds; killed once a commit of the build is on disk, before the end.
    let meta = dir.path().join("text/crash/bio/meta.json");
    let committed_lsn = || -> u64 {
        let Ok(text) = std::fs::read_to_string(&meta) else {
            return 0;
        };
        let Ok(meta) = serde_json::from_str::<Value>(&text) else {
            return 0;
        };
        meta["payload"]
            .as_str()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| p["lsn"].as_u64())
            .unwrap_or(0)
    };
    let started = Instant::now();
    let mut i = 0;
    while committed_lsn() == 0 {
        let value = format!("{{\"bio\": \"{} late{i}\"}}", words[i % 5]);
        common::put_text(&http, &server, "crash", &format!("k{i}"), &value).await;
        i += 1;
        assert!(started.elapsed() < CATCH_UP, "no commit of the build");
    }
    server.kill();
    let stderr = server.stderr();
    eprintln!(
        "{}",
        stderr
            .lines()
            .filter(|l| l.contains("text"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stderr.contains("text index opened"), "{stderr}");

    let rebuilt_dir = tempfile::tempdir().unwrap();
    copy_log(dir.path(), rebuilt_dir.path());
    let (recovered, rebuilt) = tokio::task::spawn_blocking(move || {
        let recovered = open(dir.path());
        let rebuilt = open(rebuilt_dir.path());
        caught_up(&recovered, "crash", "bio");
        caught_up(&rebuilt, "crash", "bio");
        let stats = recovered.text_stats("crash", "bio").unwrap();
        let full = rebuilt.text_stats("crash", "bio").unwrap();
        eprintln!("after the kill: {stats:?}; a rebuild: {full:?}");
        // Resumed from the build's last commit, not rebuilt.
        assert!(!stats.rebuilt_on_open && full.rebuilt_on_open, "{stats:?}");
        assert!(stats.added_since_open < full.added_since_open, "{stats:?}");
        let answers = |store: &Store| {
            let mut out = Vec::new();
            for q in [
                "alpha",
                "+beta -gamma",
                "\"delta omega\"",
                "late1*",
                "doc59999",
            ] {
                for at in [None, Some(middle)] {
                    let hits = store
                        .text_search("crash", "bio", q, at, 100_000, false)
                        .unwrap()
                        .unwrap();
                    out.push((q, at, set(hits.into_iter().map(|h| h.key).collect())));
                }
            }
            out
        };
        let r = (answers(&recovered), recovered.text_status("crash", "bio"));
        let b = (answers(&rebuilt), rebuilt.text_status("crash", "bio"));
        (r, b)
    })
    .await
    .unwrap();
    assert_eq!(recovered.1, rebuilt.1);
    for (r, b) in recovered.0.iter().zip(&rebuilt.0) {
        assert_eq!(r, b, "{} at {:?}", r.0, r.1);
    }
    assert!(recovered.0.iter().any(|(_, _, keys)| keys.len() > 1000));
}

/// Size in bytes of the files under `dir`.
fn disk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => disk_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Figures for the issue's report (run with `--release -- --ignored text_figures`): indexing
/// throughput of 100k short documents, query latency p50/p99, index size on disk.
#[test]
#[ignore = "a measurement, not a check: run it in release"]
fn text_figures() {
    let docs = 100_000usize;
    let mut rng = StdRng::seed_from_u64(18);
    let vocab: Vec<String> = (0..2_000).map(|i| format!("w{i}")).collect();
    let common = ["database", "performance", "slow", "fast", "storage"];
    let text = |rng: &mut StdRng| {
        let mut words: Vec<&str> = (0..8)
            .map(|_| vocab[rng.random_range(0..vocab.len())].as_str())
            .collect();
        words.push(common[rng.random_range(0..common.len())]);
        words.push(common[rng.random_range(0..common.len())]);
        words.join(" ")
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Live indexing: the index exists while the documents are written.
    define(&store, "bench", "bio");
    caught_up(&store, "bench", "bio");
    let started = Instant::now();
    let mut middle = 0;
    for batch in 0..docs / 1_000 {
        let ops = (0..1_000)
            .map(|i| {
                let bio = text(&mut rng);
                WriteOp::put(
                    "bench",
                    format!("k{}", batch * 1_000 + i),
                    raw(&json!({ "bio": bio })),
                )
            })
            .collect();
        let c = store.write_blocking(ops).unwrap();
        if batch == docs / 2_000 {
            middle = c.timestamp_micros;
        }
    }
    let written = started.elapsed();
    caught_up(&store, "bench", "bio");
    let live = started.elapsed();
    eprintln!(
        "live: {docs} docs written in {written:?}, searchable after {live:?} ({:.0} docs/s)",
        docs as f64 / live.as_secs_f64()
    );
    eprintln!("index size: {} bytes", disk_size(&dir.path().join("text")));
    eprintln!("log size: {} bytes", disk_size(&dir.path().join("wal")));
    store.close();
    drop(store);
    // Rebuild: the same log, the index deleted.
    std::fs::remove_dir_all(dir.path().join("text")).unwrap();
    let started = Instant::now();
    let store = open(dir.path());
    caught_up(&store, "bench", "bio");
    let rebuild = started.elapsed();
    eprintln!(
        "rebuild from the log: {rebuild:?} ({:.0} docs/s); index size {} bytes",
        docs as f64 / rebuild.as_secs_f64(),
        disk_size(&dir.path().join("text"))
    );
    let queries = [
        "database",
        "database +performance -slow",
        "\"fast storage\"",
        "w12*",
        "w7 w8 w9",
    ];
    for q in queries {
        for at in [None, Some(middle)] {
            let mut times = Vec::new();
            let mut hits = 0;
            for _ in 0..300 {
                let t = Instant::now();
                hits = store
                    .text_search("bench", "bio", q, at, 10, false)
                    .unwrap()
                    .unwrap()
                    .len();
                times.push(t.elapsed());
            }
            times.sort();
            eprintln!(
                "query {q:?} at {}: p50 {:?} p99 {:?} ({hits} hits, limit 10)",
                if at.is_some() { "50% back" } else { "now" },
                percentile(&times, 0.5),
                percentile(&times, 0.99)
            );
        }
    }
}
