//! Backups and point-in-time recovery against real server processes, each test once with a
//! `file://` backup store and once with the S3-compatible test server (`<test>::file`,
//! `<test>::s3`; see `common/stores.rs`): an oracle test restoring to many random moments, base
//! backups, corrupt and missing objects, a store outage during writes, re-archiving after a restart.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::stores::{StoreKind, TestStore};
use common::{BINARY, Server, client, micros, put_text};
use koru_dataplane::metrics::StoreMetrics;
use koru_dataplane::{Store, StoreConfig};
use serde_json::{Value, json};

/// Starts a server archiving to `store`, with small segments and a short archive timeout so a small
/// workload spans many archived segments.
fn start(data: &Path, store: &TestStore) -> Server {
    let args = [
        "--segment-size",
        "4096",
        "--archive-timeout",
        "150ms",
        "--fsync",
        "always",
        "--backup-store",
        &store.url,
    ];
    Server::start_with_env(data, &args, &store.server_env())
}

/// Deterministic xorshift, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One acknowledged version, as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Acked {
    version: String,
    lsn: u64,
    time_micros: i64,
    namespace: String,
    key: String,
    /// The value's JSON text as sent; None for a delete.
    value: Option<String>,
}

/// Everything the workload was told, in commit order.
#[derive(Default)]
struct Oracle {
    acked: Vec<Acked>,
}

fn lsn_of(version: &str) -> u64 {
    version.split('.').next().unwrap().parse().unwrap()
}

impl Oracle {
    /// Every key ever written, as (namespace, key).
    fn keys(&self) -> BTreeSet<(String, String)> {
        self.acked
            .iter()
            .map(|a| (a.namespace.clone(), a.key.clone()))
            .collect()
    }

    /// Each key's versions committed while `keep` holds, oldest first.
    fn state(&self, keep: impl Fn(&Acked) -> bool) -> BTreeMap<(String, String), Vec<Acked>> {
        let mut out: BTreeMap<_, Vec<Acked>> = BTreeMap::new();
        for a in self.acked.iter().filter(|a| keep(a)) {
            out.entry((a.namespace.clone(), a.key.clone()))
                .or_default()
                .push(a.clone());
        }
        for versions in out.values_mut() {
            versions.sort_by_key(|a| (a.lsn, a.version.clone()));
        }
        out
    }

    fn last_lsn(&self) -> u64 {
        self.acked.iter().map(|a| a.lsn).max().unwrap_or(0)
    }
}

/// Runs `writes` random puts, deletes and batches against the server, recording every ack.
async fn workload(server: &Server, oracle: &mut Oracle, rng: &mut Rng, writes: usize) {
    let http = client();
    for i in 0..writes {
        let ns = format!("ns{}", rng.below(3));
        let key = format!("k{}", rng.below(12));
        let value = format!(
            "{{\"i\":{i},\"r\":{},\"pad\":\"{}\"}}",
            rng.below(1000),
            "p".repeat(rng.below(120) as usize)
        );
        match rng.below(10) {
            0..=5 => {
                let body = put_text(&http, server, &ns, &key, &value).await;
                let version = body["version_id"].as_str().unwrap().to_string();
                oracle.acked.push(Acked {
                    lsn: lsn_of(&version),
                    version,
                    time_micros: micros(body["timestamp"].as_str().unwrap()),
                    namespace: ns,
                    key,
                    value: Some(value),
                });
            }
            6..=7 => {
                let resp = http
                    .delete(server.api(&format!("/{ns}/{key}")))
                    .send()
                    .await
                    .unwrap();
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    continue; // never written or already deleted: no version
                }
                assert!(resp.status().is_success(), "delete: {}", resp.status());
                let body: Value = resp.json().await.unwrap();
                let version = body["version_id"].as_str().unwrap().to_string();
                oracle.acked.push(Acked {
                    lsn: lsn_of(&version),
                    version,
                    time_micros: micros(body["timestamp"].as_str().unwrap()),
                    namespace: ns,
                    key,
                    value: None,
                });
            }
            _ => {
                let key2 = format!("k{}", rng.below(12));
                // Built as text so the stored value is exactly the text the oracle holds.
                let key2 = if key2 == key {
                    format!("{key2}x")
                } else {
                    key2
                };
                let body = format!(
                    "{{\"writes\":[{{\"namespace\":\"{ns}\",\"key\":\"{key}\",\"value\":{value}}},\
                     {{\"namespace\":\"bulk\",\"key\":\"{key2}\",\"delete\":true}},\
                     {{\"namespace\":\"bulk\",\"key\":\"{key}\",\"value\":{i}}}]}}"
                );
                let resp = http
                    .post(server.api("/batch"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                if !resp.status().is_success() {
                    panic!("batch: {}: {}", resp.status(), resp.text().await.unwrap());
                }
                let body: Value = resp.json().await.unwrap();
                let lsn = body["lsn"].as_u64().unwrap();
                let time = micros(body["timestamp"].as_str().unwrap());
                let results = body["results"].as_array().unwrap();
                let texts = [Some(value.clone()), None, Some(i.to_string())];
                for (r, text) in results.iter().zip(texts) {
                    let version = r["version_id"].as_str().unwrap().to_string();
                    oracle.acked.push(Acked {
                        lsn,
                        version,
                        time_micros: time,
                        namespace: r["namespace"].as_str().unwrap().to_string(),
                        key: r["key"].as_str().unwrap().to_string(),
                        value: text,
                    });
                }
            }
        }
    }
}

async fn readyz(server: &Server) -> Value {
    client()
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the archive holds every record up to `lsn`.
async fn wait_archived(server: &Server, lsn: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let ready = readyz(server).await;
        if ready["archive"]["last_archived_lsn"].as_u64().unwrap() >= lsn {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "archive did not reach LSN {lsn} within {within:?}: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `koru-dataplane restore` with `args`; returns (success, stdout, stderr).
fn restore(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BINARY)
        .arg("restore")
        .args(args)
        .env("KORU_LOG", "warn")
        .output()
        .expect("running koru-dataplane restore");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Opens a restored directory with the library and checks every key of `oracle` against `expected`.
fn assert_state(dir: &Path, oracle: &Oracle, expected: &BTreeMap<(String, String), Vec<Acked>>) {
    let (store, _) = Store::open(StoreConfig::new(dir), Arc::new(StoreMetrics::default()))
        .unwrap_or_else(|e| panic!("opening restored {}: {e}", dir.display()));
    for (ns, key) in oracle.keys() {
        let got = store.history(&ns, &key).unwrap();
        let want = expected.get(&(ns.clone(), key.clone()));
        match (got, want) {
            (None, None) => {}
            (Some(got), Some(want)) => {
                let got: Vec<(String, i64, Option<String>)> = got
                    .into_iter()
                    .map(|f| (f.version.to_string(), f.timestamp_micros, f.value))
                    .collect();
                let want: Vec<(String, i64, Option<String>)> = want
                    .iter()
                    .map(|a| (a.version.clone(), a.time_micros, a.value.clone()))
                    .collect();
                assert_eq!(got, want, "history of {ns}/{key} in {}", dir.display());
            }
            (got, want) => panic!(
                "{ns}/{key} in {}: restored {:?}, expected {:?}",
                dir.display(),
                got.map(|g| g.len()),
                want.map(Vec::len)
            ),
        }
    }
    // Nothing beyond the oracle's keys: the live keys match exactly.
    let mut live = BTreeSet::new();
    for ns in store.namespaces() {
        let (keys, more) = store.keys(&ns, "", None, 100_000);
        assert!(more.is_none());
        live.extend(keys.into_iter().map(|k| (ns.clone(), k)));
    }
    let want_live: BTreeSet<_> = expected
        .iter()
        .filter(|(_, v)| v.last().is_some_and(|a| a.value.is_some()))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(live, want_live, "live keys in {}", dir.display());
    store.close();
}

/// Directory entries of `dir` whose names start with a dot (leftovers of a failed restore).
fn hidden_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

fn rfc3339(micros: i64) -> String {
    koru_dataplane::clock::rfc3339(micros)
}

async fn restores_to_any_moment_match_the_oracle(kind: StoreKind) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(store) = TestStore::new(kind, "oracle", tmp.path()) else {
        return;
    };
    let mut server = start(&tmp.path().join("data"), &store);
    let mut oracle = Oracle::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4 {
        workload(&server, &mut oracle, &mut rng, 120).await;
        // Pauses longer than the archive timeout: some segments are sealed by time, not size.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let last = oracle.last_lsn();
    wait_archived(&server, last, Duration::from_secs(30)).await;
    let segments = store.names("wal", ".wal").await.len();
    assert!(segments >= 10, "only {segments} segments archived");
    server.term();

    let first = oracle.acked.first().unwrap().time_micros;
    let end = oracle.acked.last().unwrap().time_micros;
    let mut targets: Vec<i64> = vec![first - 1, first, end, end + 1_000_000];
    for _ in 0..16 {
        targets.push(first + rng.below((end - first) as u64 + 1) as i64);
    }
    for _ in 0..6 {
        // Exactly at a commit and just before it: the boundary is inclusive.
        let at = oracle.acked[rng.below(oracle.acked.len() as u64) as usize].time_micros;
        targets.extend([at, at - 1]);
    }
    let url = store.url.clone();
    for (i, &t) in targets.iter().enumerate() {
        let dir = tmp.path().join(format!("time-{i}"));
        let (ok, out, err) = restore(&[
            "--from",
            &url,
            "--target-time",
            &rfc3339(t),
            "--data-dir",
            dir.to_str().unwrap(),
        ]);
        assert!(ok, "restore to {} failed: {err}", rfc3339(t));
        let summary: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            summary["target_after_newest_archived_write"],
            json!(t > end),
            "{summary}"
        );
        assert_state(&dir, &oracle, &oracle.state(|a| a.time_micros <= t));
    }
    for (i, lsn) in [0, 1, last / 3, last / 2, last - 1, last]
        .into_iter()
        .enumerate()
    {
        let dir = tmp.path().join(format!("lsn-{i}"));
        let (ok, _, err) = restore(&[
            "--from",
            &url,
            "--target-lsn",
            &lsn.to_string(),
            "--data-dir",
            dir.to_str().unwrap(),
        ]);
        assert!(ok, "restore to LSN {lsn} failed: {err}");
        assert_state(&dir, &oracle, &oracle.state(|a| a.lsn <= lsn));
    }
    assert!(hidden_entries(tmp.path()).is_empty());

    // The normal server starts from a restored directory and carries on after its last LSN.
    // `lsn-3` holds everything up to LSN last/2.
    let dir = tmp.path().join("lsn-3");
    let restored = Server::start(&dir, &[]);
    let resp = client()
        .put(restored.api("/ns0/after-restore"))
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["version_id"], json!(format!("{}.0", last / 2 + 1)));
}
backup_test!(restores_to_any_moment_match_the_oracle);

async fn base_backups_are_listed_and_restore_exactly_to_their_end(kind: StoreKind) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(store) = TestStore::new(kind, "base-backups", tmp.path()) else {
        return;
    };
    let server = start(&tmp.path().join("data"), &store);
    let mut oracle = Oracle::default();
    let mut rng = Rng(42);
    let http = client();
    // An authored put and delete (not live, so the live-key check below holds): the restore
    // copies segments byte for byte, so their author comes back with them.
    let author = koru_dataplane_api::data::AUTHOR_HEADER;
    let put = http
        .put(server.api("/authored/k"))
        .header(author, "ada@example.com")
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let del = http
        .delete(server.api("/authored/k"))
        .header(author, "grace")
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success());
    workload(&server, &mut oracle, &mut rng, 150).await;
    let resp = http
        .post(format!("{}/admin/backups", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let manifest: Value = resp.json().await.unwrap();
    let at_backup = oracle.last_lsn();
    assert_eq!(manifest["last_lsn"], json!(at_backup));
    assert_eq!(manifest["first_lsn"], json!(1));
    assert_eq!(manifest["format_version"], json!(1));
    let id = manifest["id"].as_str().unwrap().to_string();
    let segments = manifest["segments"].as_array().unwrap();
    assert!(segments.len() > 3);
    assert!(
        segments
            .iter()
            .all(|s| s["sha256"].as_str().unwrap().len() == 64)
    );
    assert!(store.exists(&format!("base/{id}/manifest.json")).await);

    workload(&server, &mut oracle, &mut rng, 100).await;
    let listed: Value = http
        .get(format!("{}/admin/backups", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1);
    assert_eq!(listed["backups"][0]["id"], json!(id));
    assert_eq!(listed["backups"][0]["last_lsn"], json!(at_backup));

    let url = store.url.clone();
    let dir = tmp.path().join("from-backup");
    let (ok, _, err) = restore(&[
        "--from",
        &url,
        "--backup",
        &id,
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_state(&dir, &oracle, &oracle.state(|a| a.lsn <= at_backup));
    let (restored, _) =
        Store::open(StoreConfig::new(&dir), Arc::new(StoreMetrics::default())).unwrap();
    let authors: Vec<Option<String>> = restored
        .history("authored", "k")
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|f| f.meta.author.map(|a| a.to_string()))
        .collect();
    assert_eq!(
        authors,
        [Some("ada@example.com".into()), Some("grace".into())]
    );
    restored.close();
    drop(restored);

    // From the backup onwards, later archived segments reach later targets.
    let last = oracle.last_lsn();
    wait_archived(&server, last, Duration::from_secs(30)).await;
    let dir = tmp.path().join("from-backup-later");
    let (ok, _, err) = restore(&[
        "--from",
        &url,
        "--backup",
        &id,
        "--target-lsn",
        &last.to_string(),
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_state(&dir, &oracle, &oracle.state(|a| a.lsn <= last));

    let (ok, _, err) = restore(&[
        "--from",
        &url,
        "--backup",
        "nope",
        "--data-dir",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("no base backup \"nope\""), "{err}");
}
backup_test!(base_backups_are_listed_and_restore_exactly_to_their_end);

async fn corrupt_and_missing_objects_fail_the_restore_by_name_and_leave_nothing(kind: StoreKind) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(store) = TestStore::new(kind, "corrupt", tmp.path()) else {
        return;
    };
    let mut server = start(&tmp.path().join("data"), &store);
    let mut oracle = Oracle::default();
    workload(&server, &mut oracle, &mut Rng(7), 150).await;
    wait_archived(&server, oracle.last_lsn(), Duration::from_secs(30)).await;
    server.term();
    let url = store.url.clone();
    let seg2 = "wal/00000000000000000002.wal";
    let side2 = "wal/00000000000000000002.json";
    let original = store.get(seg2).await;
    let restores = tmp.path().join("restores");
    std::fs::create_dir(&restores).unwrap();
    let attempt = |name: &str| {
        let dir = restores.join(name);
        let (ok, _, err) = restore(&["--from", &url, "--data-dir", dir.to_str().unwrap()]);
        assert!(!ok, "{name}: restore succeeded");
        assert!(!dir.exists(), "{name}: {} was left behind", dir.display());
        assert!(
            hidden_entries(&restores).is_empty(),
            "{name}: temporary directory left behind"
        );
        err
    };

    // A flipped byte: the object's checksum no longer matches its sidecar.
    let mut bad = original.to_vec();
    bad[100] ^= 0x01;
    store.put(seg2, bad.clone()).await;
    let err = attempt("flipped");
    assert!(
        err.contains("00000000000000000002.wal")
            && err.contains("corrupt")
            && err.contains("sha256"),
        "{err}"
    );

    // The same damage with the sidecar rewritten to match: every record's CRC still catches it.
    let sidecar = store.get(side2).await;
    let mut meta: Value = serde_json::from_slice(&sidecar).unwrap();
    let sha = koru_dataplane::backup::layout::sha256_hex(&bad);
    meta["sha256"] = json!(sha);
    store.put(side2, serde_json::to_vec(&meta).unwrap()).await;
    let err = attempt("tampered");
    assert!(
        err.contains("00000000000000000002.wal") && err.contains("checksum mismatch"),
        "{err}"
    );
    store.put(side2, sidecar.clone()).await;
    store.put(seg2, original.clone()).await;

    // A truncated object.
    store.put(seg2, original.slice(..original.len() - 10)).await;
    let err = attempt("truncated");
    assert!(
        err.contains("00000000000000000002.wal") && err.contains("size"),
        "{err}"
    );
    store.put(seg2, original.clone()).await;

    // A missing segment object (its sidecar still there).
    store.delete(seg2).await;
    let err = attempt("missing-object");
    assert!(
        err.contains("00000000000000000002.wal") && err.contains("missing"),
        "{err}"
    );
    store.put(seg2, original.clone()).await;

    // A missing sidecar in the middle: the gap is named.
    store.delete(side2).await;
    let err = attempt("missing-sidecar");
    assert!(
        err.contains("00000000000000000002.wal") && err.contains("missing"),
        "{err}"
    );
    store.put(side2, sidecar.clone()).await;

    // A garbled sidecar.
    store.put(side2, &b"{not json"[..]).await;
    let err = attempt("garbled-sidecar");
    assert!(
        err.contains("00000000000000000002.json") && err.contains("corrupt"),
        "{err}"
    );
    store.put(side2, sidecar).await;

    // Everything put back: the restore succeeds, into an existing empty directory too.
    let dir = restores.join("fine");
    std::fs::create_dir(&dir).unwrap();
    let (ok, _, err) = restore(&["--from", &url, "--data-dir", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_state(&dir, &oracle, &oracle.state(|_| true));
    // A non-empty directory is refused and left alone.
    let (ok, _, err) = restore(&["--from", &url, "--data-dir", dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("is not empty"), "{err}");
    assert_state(&dir, &oracle, &oracle.state(|_| true));
}
backup_test!(corrupt_and_missing_objects_fail_the_restore_by_name_and_leave_nothing);

/// An object of the default segment size goes up and comes back whole: the archive writes every
/// object with one PUT (no multipart upload), which S3 allows up to 5 GiB.
async fn a_full_size_segment_object_round_trips(kind: StoreKind) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(store) = TestStore::new(kind, "full-size", tmp.path()) else {
        return;
    };
    let key = "wal/00000000000000000001.wal";
    let mut rng = Rng(3);
    let size = koru_dataplane::store::DEFAULT_SEGMENT_SIZE as usize;
    let bytes: Vec<u8> = (0..size / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    store.put(key, bytes.clone()).await;
    assert_eq!(store.list("wal").await, [key]);
    let back = store.get(key).await;
    assert_eq!(back.len(), size);
    assert!(back == bytes, "{key} came back with other contents");
    store.delete(key).await;
    assert!(!store.exists(key).await);
}
backup_test!(a_full_size_segment_object_round_trips);

/// Reads one sample of a metric from `/metrics`.
async fn metric(server: &Server, name: &str) -> f64 {
    let text = client()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

async fn a_store_outage_delays_archiving_but_loses_nothing(kind: StoreKind) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(store) = TestStore::new(kind, "outage", tmp.path()) else {
        return;
    };
    let store = store.with_outage_switch();
    let server = start(&tmp.path().join("data"), &store);
    let mut oracle = Oracle::default();
    let mut rng = Rng(99);
    workload(&server, &mut oracle, &mut rng, 60).await;
    wait_archived(&server, oracle.last_lsn(), Duration::from_secs(30)).await;
    let archived_before = metric(&server, "koru_archived_segments_total").await;

    store.outage(true);
    let outage_started = Instant::now();
    workload(&server, &mut oracle, &mut rng, 150).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ready = client()
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        reqwest::StatusCode::OK,
        "readiness must survive the outage"
    );
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["archive"]["last_error"].is_string(), "{ready}");
    assert!(
        ready["archive"]["pending_segments"].as_u64().unwrap() > 0,
        "{ready}"
    );
    let lag1 = metric(&server, "koru_archive_lag_seconds").await;
    assert!(
        lag1 >= 1.0,
        "lag {lag1} after {:?} of outage",
        outage_started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lag2 = metric(&server, "koru_archive_lag_seconds").await;
    assert!(lag2 > lag1, "lag did not grow: {lag1} then {lag2}");
    assert!(metric(&server, "koru_archive_errors_total").await > 0.0);
    assert_eq!(
        metric(&server, "koru_archived_segments_total").await,
        archived_before
    );

    // The store comes back: the backlog goes out and the lag returns to zero.
    store.outage(false);
    wait_archived(&server, oracle.last_lsn(), Duration::from_secs(30)).await;
    let ready = readyz(&server).await;
    assert!(ready["archive"]["last_error"].is_null(), "{ready}");
    assert!(metric(&server, "koru_archived_segments_total").await > archived_before);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&server, "koru_archive_lag_seconds").await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "lag stays above zero with nothing to archive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let dir = tmp.path().join("restored");
    let (ok, _, err) = restore(&["--from", &store.url, "--data-dir", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_state(&dir, &oracle, &oracle.state(|_| true));
}
backup_test!(a_store_outage_delays_archiving_but_loses_nothing);

async fn a_restart_archives_segments_sealed_while_no_store_was_configured(kind: StoreKind) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(store) = TestStore::new(kind, "restart", tmp.path()) else {
        return;
    };
    let data = tmp.path().join("data");
    let mut oracle = Oracle::default();
    {
        // No --backup-store: segments are sealed but go nowhere.
        let mut plain = Server::start(&data, &["--segment-size", "4096"]);
        workload(&plain, &mut oracle, &mut Rng(5), 100).await;
        plain.term();
    }
    let mut server = start(&data, &store);
    wait_archived(&server, oracle.last_lsn(), Duration::from_secs(30)).await;
    server.term();
    // A second start finds everything archived with matching checksums and uploads nothing new.
    let before = store.list("wal").await;
    assert!(!before.is_empty());
    let server = start(&data, &store);
    wait_archived(&server, oracle.last_lsn(), Duration::from_secs(30)).await;
    assert_eq!(store.list("wal").await, before);
    let dir = tmp.path().join("restored");
    let (ok, _, err) = restore(&["--from", &store.url, "--data-dir", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_state(&dir, &oracle, &oracle.state(|_| true));
}
backup_test!(a_restart_archives_segments_sealed_while_no_store_was_configured);

#[test]
fn admin_routes_need_the_admin_scope() {
    use axum::http::Method;
    use koru_dataplane::auth::Scope;
    use koru_dataplane::http::required_scope;
    assert_eq!(
        required_scope(&Method::POST, Some("/admin/backups")),
        Scope::Admin
    );
    assert_eq!(
        required_scope(&Method::GET, Some("/admin/backups")),
        Scope::Admin
    );
    assert_eq!(
        required_scope(&Method::GET, Some("/api/v1/{namespace}/keys")),
        Scope::Read
    );
}
