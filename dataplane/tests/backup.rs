//! Backups and point-in-time recovery against real server processes and a `file://` backup store:
//! an oracle test restoring to many random moments, base backups, corrupt and missing objects, and
//! a store outage during writes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{BINARY, Server, client, micros, put_text};
use koru_dataplane::metrics::StoreMetrics;
use koru_dataplane::{Store, StoreConfig};
use serde_json::{Value, json};

/// Small segments and a short archive timeout, so a small workload spans many archived segments.
fn server_args(store: &Path) -> Vec<String> {
    [
        "--segment-size",
        "4096",
        "--archive-timeout",
        "150ms",
        "--fsync",
        "always",
        "--backup-store",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([store_url(store)])
    .collect()
}

fn store_url(store: &Path) -> String {
    format!("file://{}", store.display())
}

fn start(data: &Path, store: &Path) -> Server {
    let args = server_args(store);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &args)
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
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test]
async fn restores_to_any_moment_match_the_oracle() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
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
    let segments = std::fs::read_dir(store.join("wal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wal")
        })
        .count();
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
    let url = store_url(&store);
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

#[tokio::test]
async fn base_backups_are_listed_and_restore_exactly_to_their_end() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let server = start(&tmp.path().join("data"), &store);
    let mut oracle = Oracle::default();
    let mut rng = Rng(42);
    workload(&server, &mut oracle, &mut rng, 150).await;
    let http = client();
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
    assert!(store.join(format!("base/{id}/manifest.json")).is_file());

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

    let url = store_url(&store);
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

#[tokio::test]
async fn corrupt_and_missing_objects_fail_the_restore_by_name_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut server = start(&tmp.path().join("data"), &store);
    let mut oracle = Oracle::default();
    workload(&server, &mut oracle, &mut Rng(7), 150).await;
    wait_archived(&server, oracle.last_lsn(), Duration::from_secs(30)).await;
    server.term();
    let url = store_url(&store);
    let wal = store.join("wal");
    let seg2 = wal.join("00000000000000000002.wal");
    let side2 = wal.join("00000000000000000002.json");
    let original = std::fs::read(&seg2).unwrap();
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
    let mut bad = original.clone();
    bad[100] ^= 0x01;
    std::fs::write(&seg2, &bad).unwrap();
    let err = attempt("flipped");
    assert!(
        err.contains("00000000000000000002.wal")
            && err.contains("corrupt")
            && err.contains("sha256"),
        "{err}"
    );

    // The same damage with the sidecar rewritten to match: every record's CRC still catches it.
    let sidecar = std::fs::read_to_string(&side2).unwrap();
    let mut meta: Value = serde_json::from_str(&sidecar).unwrap();
    let sha = koru_dataplane::backup::layout::sha256_hex(&bad);
    meta["sha256"] = json!(sha);
    std::fs::write(&side2, serde_json::to_vec(&meta).unwrap()).unwrap();
    let err = attempt("tampered");
    assert!(
        err.contains("00000000000000000002.wal") && err.contains("checksum mismatch"),
        "{err}"
    );
    std::fs::write(&side2, &sidecar).unwrap();
    std::fs::write(&seg2, &original).unwrap();

    // A truncated object.
    std::fs::write(&seg2, &original[..original.len() - 10]).unwrap();
    let err = attempt("truncated");
    assert!(
        err.contains("00000000000000000002.wal") && err.contains("size"),
        "{err}"
    );
    std::fs::write(&seg2, &original).unwrap();

    // A missing segment object (its sidecar still there).
    std::fs::remove_file(&seg2).unwrap();
    let err = attempt("missing-object");
    assert!(
        err.contains("00000000000000000002.wal") && err.contains("missing"),
        "{err}"
    );
    std::fs::write(&seg2, &original).unwrap();

    // A missing sidecar in the middle: the gap is named.
    std::fs::remove_file(&side2).unwrap();
    let err = attempt("missing-sidecar");
    assert!(
        err.contains("00000000000000000002.wal") && err.contains("missing"),
        "{err}"
    );
    std::fs::write(&side2, &sidecar).unwrap();

    // A garbled sidecar.
    std::fs::write(&side2, b"{not json").unwrap();
    let err = attempt("garbled-sidecar");
    assert!(
        err.contains("00000000000000000002.json") && err.contains("corrupt"),
        "{err}"
    );
    std::fs::write(&side2, &sidecar).unwrap();

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

#[tokio::test]
async fn a_store_outage_delays_archiving_but_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let server = start(&tmp.path().join("data"), &store);
    let mut oracle = Oracle::default();
    let mut rng = Rng(99);
    workload(&server, &mut oracle, &mut rng, 60).await;
    wait_archived(&server, oracle.last_lsn(), Duration::from_secs(30)).await;
    let archived_before = metric(&server, "koru_archived_segments_total").await;

    // Tests run as root, so permissions cannot make the store fail: a file where the store
    // directory was makes every request fail instead.
    let aside = tmp.path().join("store-aside");
    std::fs::rename(&store, &aside).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
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
    std::fs::remove_file(&store).unwrap();
    std::fs::rename(&aside, &store).unwrap();
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
    let (ok, _, err) = restore(&[
        "--from",
        &store_url(&store),
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_state(&dir, &oracle, &oracle.state(|_| true));
}

#[tokio::test]
async fn a_restart_archives_segments_sealed_while_no_store_was_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = tmp.path().join("store");
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
    let before = std::fs::read_dir(store.join("wal")).unwrap().count();
    let server = start(&data, &store);
    wait_archived(&server, oracle.last_lsn(), Duration::from_secs(30)).await;
    assert_eq!(
        std::fs::read_dir(store.join("wal")).unwrap().count(),
        before
    );
    let dir = tmp.path().join("restored");
    let (ok, _, err) = restore(&[
        "--from",
        &store_url(&store),
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_state(&dir, &oracle, &oracle.state(|_| true));
}

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
