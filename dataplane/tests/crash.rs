//! Crash tests: the real server killed with SIGKILL or stopped with SIGTERM under load, two servers
//! on one data directory, and start-up on logs with a torn tail or a damaged record.
//!
//! Everything is checked the way a client sees it, over HTTP after a restart: which acknowledged
//! writes survive, that a batch is all there or not at all, and what start-up says and does to the
//! files. Random choices come from one seed printed at the start of each test; rerun a failure with
//! `KORU_CRASH_SEED=<seed>`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Server, client};
use koru_dataplane::wal::record::{self, OpKind, OpRef};
use koru_dataplane::wal::segment::HEADER_LEN;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Namespace every workload writes to.
const NAMESPACE: &str = "crash";
/// Concurrent writers; each owns its keys, so each key's history is one writer's sequence of writes.
const WRITERS: usize = 16;
/// Keys per writer.
const KEYS_PER_WRITER: usize = 4;
/// Bound on requests per writer per cycle, so a server that never dies cannot make a test spin.
const MAX_WRITES_PER_CYCLE: usize = 5_000;
/// Bound on the time writers run per cycle, for the same reason.
const WRITER_DEADLINE: Duration = Duration::from_secs(20);
/// Small segments make the workloads seal and start segments while being killed.
const WORKLOAD_SEGMENT_SIZE: &str = "32768";

/// The seed for this run: `KORU_CRASH_SEED` if set, else the clock; printed so failures replay.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("KORU_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: seed {seed} (rerun with KORU_CRASH_SEED={seed})");
    seed
}

// ---------------------------------------------------------------------------------------------
// The workload model: what each writer sent and what the server acknowledged.
// ---------------------------------------------------------------------------------------------

/// One version of a key as the history route reports it; `value` is None for a delete.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    version: String,
    value: Option<Value>,
}

/// What the server answered to a write.
#[derive(Debug, Clone)]
struct Acked {
    version: String,
    /// When the client had the answer; durability bounds are measured from here.
    at: Instant,
}

/// One write of one key: a put (`value` Some) or a delete, alone or as part of a batch.
#[derive(Debug)]
struct Attempt {
    value: Option<Value>,
    /// None when no answer came: the write may or may not have happened.
    acked: Option<Acked>,
}

/// A key and everything known about it: its history as verified after the last restart, and the
/// writes sent since. All attempts but the last are acknowledged, because a writer stops at its
/// first unanswered request.
#[derive(Debug)]
struct KeyModel {
    name: String,
    base: Vec<Entry>,
    attempts: Vec<Attempt>,
}

impl KeyModel {
    /// Whether the key reads as present once every write sent so far has happened.
    fn live(&self) -> bool {
        match self.attempts.last() {
            Some(a) => a.value.is_some(),
            None => self.base.last().is_some_and(|e| e.value.is_some()),
        }
    }

    /// The version a new write supersedes, which the server must report as `previous_version`.
    fn latest_version(&self) -> Option<String> {
        match self.attempts.last() {
            Some(a) => a.acked.as_ref().map(|a| a.version.clone()),
            None => self.base.last().map(|e| e.version.clone()),
        }
    }
}

/// One concurrent client and the keys it alone writes.
#[derive(Debug)]
struct Writer {
    id: usize,
    keys: Vec<KeyModel>,
    /// Per batch, the (key, attempt) pairs it wrote.
    batches: Vec<Vec<(usize, usize)>>,
    /// Makes every value ever written unique, so a version can never be confused with another.
    counter: u64,
}

/// How one request ended.
enum Outcome {
    Acked,
    /// No answer (connection refused or cut, or a 5xx while stopping): stop writing.
    Unknown,
}

impl Writer {
    fn new(id: usize) -> Writer {
        Writer {
            id,
            keys: (0..KEYS_PER_WRITER)
                .map(|k| KeyModel {
                    name: format!("w{id}-k{k}"),
                    base: Vec::new(),
                    attempts: Vec::new(),
                })
                .collect(),
            batches: Vec::new(),
            counter: 0,
        }
    }

    /// A value no one has written before, of varying size so records straddle segment ends.
    fn fresh_value(&mut self, rng: &mut StdRng) -> Value {
        self.counter += 1;
        let pad = "x".repeat(rng.random_range(0..160));
        json!({ "writer": self.id, "n": self.counter, "pad": pad })
    }

    /// Writes until the first unanswered request (the server died) or a safety bound.
    async fn run(mut self, http: reqwest::Client, url: String, seed: u64) -> Writer {
        let mut rng = StdRng::seed_from_u64(seed);
        let deadline = Instant::now() + WRITER_DEADLINE;
        for _ in 0..MAX_WRITES_PER_CYCLE {
            if Instant::now() > deadline {
                break;
            }
            let outcome = match rng.random_range(0..10) {
                0..6 => self.put(&http, &url, &mut rng).await,
                6..8 => self.batch(&http, &url, &mut rng).await,
                _ => self.delete(&http, &url, &mut rng).await,
            };
            if let Outcome::Unknown = outcome {
                break;
            }
        }
        self
    }

    async fn put(&mut self, http: &reqwest::Client, url: &str, rng: &mut StdRng) -> Outcome {
        let k = rng.random_range(0..KEYS_PER_WRITER);
        let value = self.fresh_value(rng);
        let request = http
            .put(format!("{url}/api/v1/{NAMESPACE}/{}", self.keys[k].name))
            .json(&json!({ "value": value }));
        self.single(k, Some(value), request).await
    }

    async fn delete(&mut self, http: &reqwest::Client, url: &str, rng: &mut StdRng) -> Outcome {
        let live: Vec<usize> = (0..KEYS_PER_WRITER)
            .filter(|&k| self.keys[k].live())
            .collect();
        if live.is_empty() {
            return self.put(http, url, rng).await;
        }
        let k = live[rng.random_range(0..live.len())];
        let request = http.delete(format!("{url}/api/v1/{NAMESPACE}/{}", self.keys[k].name));
        self.single(k, None, request).await
    }

    /// Sends a single-key write and records its outcome.
    async fn single(
        &mut self,
        k: usize,
        value: Option<Value>,
        request: reqwest::RequestBuilder,
    ) -> Outcome {
        let expected_previous = self.keys[k].latest_version();
        self.keys[k].attempts.push(Attempt { value, acked: None });
        let Some(body) = answer(request).await else {
            return Outcome::Unknown;
        };
        let version = body["version_id"].as_str().map(str::to_string);
        let version = version.unwrap_or_else(|| panic!("write answer without version_id: {body}"));
        assert_eq!(
            body["previous_version"].as_str().map(str::to_string),
            expected_previous,
            "{}: previous_version of {version} is not the version written before it",
            self.keys[k].name
        );
        if let Some(last) = self.keys[k].attempts.last_mut() {
            last.acked = Some(Acked {
                version,
                at: Instant::now(),
            });
        }
        Outcome::Acked
    }

    /// An atomic batch over 2 or more distinct keys of this writer, some of them deletes.
    async fn batch(&mut self, http: &reqwest::Client, url: &str, rng: &mut StdRng) -> Outcome {
        let mut order: Vec<usize> = (0..KEYS_PER_WRITER).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        order.truncate(rng.random_range(2..=KEYS_PER_WRITER));
        let mut members = Vec::new();
        let mut writes = Vec::new();
        let mut expected_previous = Vec::new();
        for &k in &order {
            let value = if self.keys[k].live() && rng.random_bool(0.25) {
                None
            } else {
                Some(self.fresh_value(rng))
            };
            let name = &self.keys[k].name;
            writes.push(match &value {
                Some(v) => json!({ "namespace": NAMESPACE, "key": name, "value": v }),
                None => json!({ "namespace": NAMESPACE, "key": name, "delete": true }),
            });
            expected_previous.push(self.keys[k].latest_version());
            members.push((k, self.keys[k].attempts.len()));
            self.keys[k].attempts.push(Attempt { value, acked: None });
        }
        self.batches.push(members.clone());
        let request = http
            .post(format!("{url}/api/v1/batch"))
            .json(&json!({ "writes": writes }));
        let Some(body) = answer(request).await else {
            return Outcome::Unknown;
        };
        let at = Instant::now();
        let results = body["results"]
            .as_array()
            .unwrap_or_else(|| panic!("batch answer without results: {body}"));
        assert_eq!(results.len(), members.len(), "batch answer: {body}");
        for (((k, a), result), previous) in members.into_iter().zip(results).zip(expected_previous)
        {
            let version = result["version_id"].as_str().map(str::to_string);
            let version = version.unwrap_or_else(|| panic!("batch result: {result}"));
            assert_eq!(
                result["previous_version"].as_str().map(str::to_string),
                previous,
                "{}: previous_version of {version} in a batch",
                self.keys[k].name
            );
            self.keys[k].attempts[a].acked = Some(Acked { version, at });
        }
        Outcome::Acked
    }
}

/// Sends a write; the JSON answer if it succeeded, None if no answer came. A 4xx is a test bug.
async fn answer(request: reqwest::RequestBuilder) -> Option<Value> {
    let response = request.send().await.ok()?;
    let status = response.status();
    let body: Value = response.json().await.ok()?;
    assert!(
        !status.is_client_error(),
        "the server refused a valid write with {status}: {body}"
    );
    status.is_success().then_some(body)
}

// ---------------------------------------------------------------------------------------------
// Checking the model against a restarted server.
// ---------------------------------------------------------------------------------------------

/// What a verification found, summed over cycles for the test's report.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Acknowledged writes checked.
    acked: usize,
    /// Acknowledged writes not found, allowed because they were inside the durability window.
    acked_lost_in_window: usize,
    /// Unanswered writes found to have happened.
    unanswered_present: usize,
    /// Unanswered writes found not to have happened.
    unanswered_absent: usize,
    /// Versions in all histories at the end.
    versions: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.acked += other.acked;
        self.acked_lost_in_window += other.acked_lost_in_window;
        self.unanswered_present += other.unanswered_present;
        self.unanswered_absent += other.unanswered_absent;
        self.versions = other.versions;
    }
}

/// A key's history from the server; empty when the key never existed (404).
async fn history(http: &reqwest::Client, server: &Server, key: &str) -> Vec<Entry> {
    let response = http
        .get(server.api(&format!("/{NAMESPACE}/{key}/history")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("history of {key}: {e}"));
    if response.status() == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(response.status(), StatusCode::OK, "history of {key}");
    let body: Value = response.json().await.expect("history body");
    body["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("history of {key} without versions: {body}"))
        .iter()
        .map(|v| Entry {
            version: v["version_id"].as_str().expect("version_id").to_string(),
            value: (!v["deleted"].as_bool().unwrap_or(false)).then(|| v["value"].clone()),
        })
        .collect()
}

/// The LSN of a version id `lsn.op`.
fn lsn(version: &str) -> u64 {
    version
        .split_once('.')
        .and_then(|(lsn, _)| lsn.parse().ok())
        .unwrap_or_else(|| panic!("malformed version id {version:?}"))
}

/// Checks every writer's keys against a freshly started server, then makes what the server has
/// the new base, so the next cycle's unanswered writes are judged against exactly this state.
///
/// Per key, the history must be the verified base followed by a prefix of the writes sent since,
/// each with its exact value (and, if acknowledged, its exact version id); the prefix must reach
/// every write `must_survive` says is durable. Each batch is present for all its keys or none. Across
/// keys, the LSNs present must be exactly 1..=last: the log is never missing a record in the middle.
async fn verify(
    http: &reqwest::Client,
    server: &Server,
    writers: &mut [Writer],
    must_survive: impl Fn(&Acked) -> bool,
) -> Tally {
    let mut tally = Tally::default();
    let mut lsns = BTreeSet::new();
    for w in writers.iter_mut() {
        // Per key, the versions written since the last restart that are present.
        let mut present: Vec<Vec<String>> = Vec::with_capacity(w.keys.len());
        for key in &mut w.keys {
            let hist = history(http, server, &key.name).await;
            let name = &key.name;
            assert!(
                hist.starts_with(&key.base),
                "{name}: history changed under a restart.\nbefore: {:?}\nnow: {hist:?}",
                key.base
            );
            let new = &hist[key.base.len()..];
            assert!(
                new.len() <= key.attempts.len(),
                "{name}: {} new versions but only {} writes were sent: {new:?}",
                new.len(),
                key.attempts.len()
            );
            for (entry, attempt) in new.iter().zip(&key.attempts) {
                assert_eq!(
                    entry.value, attempt.value,
                    "{name}: version {} holds the wrong value",
                    entry.version
                );
                if let Some(acked) = &attempt.acked {
                    assert_eq!(
                        entry.version, acked.version,
                        "{name}: version id differs from the acknowledged one"
                    );
                }
            }
            let needed = key
                .attempts
                .iter()
                .rposition(|a| a.acked.as_ref().is_some_and(&must_survive))
                .map_or(0, |i| i + 1);
            assert!(
                new.len() >= needed,
                "{name}: acknowledged writes lost: {} of the {} sent since the last restart are \
                 present, but the first {needed} were acknowledged in time to be durable.\n\
                 lost: {:?}",
                new.len(),
                key.attempts.len(),
                &key.attempts[new.len()..needed]
            );
            for (i, a) in key.attempts.iter().enumerate() {
                match (&a.acked, i < new.len()) {
                    (Some(_), true) => tally.acked += 1,
                    (Some(_), false) => tally.acked_lost_in_window += 1,
                    (None, true) => tally.unanswered_present += 1,
                    (None, false) => tally.unanswered_absent += 1,
                }
            }
            assert!(
                hist.windows(2)
                    .all(|pair| lsn(&pair[0].version) < lsn(&pair[1].version)),
                "{name}: history is not in commit order: {hist:?}"
            );
            check_latest(http, server, name, hist.last()).await;
            lsns.extend(hist.iter().map(|e| lsn(&e.version)));
            present.push(new.iter().map(|e| e.version.clone()).collect());
            tally.versions += hist.len();
            key.base = hist;
            key.attempts.clear();
        }
        for members in &w.batches {
            let found: Vec<Option<&String>> =
                members.iter().map(|&(k, a)| present[k].get(a)).collect();
            let names: Vec<&String> = members.iter().map(|&(k, _)| &w.keys[k].name).collect();
            assert!(
                found.iter().all(Option::is_some) || found.iter().all(Option::is_none),
                "writer {}: a batch over {names:?} is partially present: {found:?}",
                w.id,
            );
            // A batch is one record: one LSN, its operations numbered in order.
            for (position, version) in found.iter().enumerate() {
                if let (Some(version), Some(first)) = (version, found[0]) {
                    assert_eq!(
                        **version,
                        format!("{}.{position}", lsn(first)),
                        "writer {}: batch over {names:?} is not one record: {found:?}",
                        w.id
                    );
                }
            }
        }
        w.batches.clear();
    }
    let last = lsns.last().copied().unwrap_or(0);
    assert!(
        lsns.iter().copied().eq(1..=last),
        "the log has holes: {} LSNs present up to {last}",
        lsns.len()
    );
    let status: Value = http
        .get(server.api("/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("status body");
    assert_eq!(status["last_lsn"], json!(last), "status: {status}");
    tally
}

/// The plain read of a key must agree with the last version of its history.
async fn check_latest(http: &reqwest::Client, server: &Server, key: &str, last: Option<&Entry>) {
    let response = http
        .get(server.api(&format!("/{NAMESPACE}/{key}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"));
    match last {
        Some(Entry {
            version,
            value: Some(value),
        }) => {
            assert_eq!(response.status(), StatusCode::OK, "get {key}");
            let body: Value = response.json().await.expect("get body");
            assert_eq!(&body["value"], value, "get {key}");
            assert_eq!(body["version_id"], json!(version), "get {key}");
        }
        _ => assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "get {key}: the key is deleted or was never written"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Kill/restart cycles.
// ---------------------------------------------------------------------------------------------

/// How a cycle stops the server.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGKILL after a random 50–400 ms of load.
    Kill,
    /// SIGTERM after a random 50–400 ms of load; the server must exit 0.
    Term,
}

/// Runs `cycles` rounds of: start the server on `dir`, verify everything so far, load it with
/// `WRITERS` concurrent writers, stop it. Acknowledged writes older than `window` at the stop must
/// survive. A last start verifies the final round and stops the server with SIGTERM.
async fn cycles(dir: &Path, args: &[&str], cycles: usize, stop: Stop, window: Duration) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed(&format!("{stop:?} x{cycles} {args:?}")));
    let mut writers: Vec<Writer> = (0..WRITERS).map(Writer::new).collect();
    let mut total = Tally::default();
    let mut stopped_at: Option<Instant> = None;
    for cycle in 0..=cycles {
        let started = Instant::now();
        let mut server = Server::start(dir, args);
        let http = client();
        let must_survive = move |a: &Acked| stopped_at.is_none_or(|at| a.at + window <= at);
        let tally = verify(&http, &server, &mut writers, must_survive).await;
        total += tally;
        if cycle == cycles {
            let status = tokio::task::block_in_place(|| server.term());
            assert!(status.success(), "final SIGTERM: exit {status}");
            break;
        }
        let tasks: Vec<_> = writers
            .drain(..)
            .map(|w| tokio::spawn(w.run(http.clone(), server.url.clone(), rng.random())))
            .collect();
        let delay = Duration::from_millis(rng.random_range(50..=400));
        tokio::time::sleep(delay).await;
        stopped_at = Some(Instant::now());
        match stop {
            Stop::Kill => tokio::task::block_in_place(|| server.kill()),
            Stop::Term => {
                let status = tokio::task::block_in_place(|| server.term());
                assert!(
                    status.success(),
                    "SIGTERM: exit {status}; stderr:\n{}",
                    server.stderr()
                );
            }
        }
        for task in tasks {
            writers.push(task.await.expect("a writer panicked"));
        }
        let sent: usize = writers
            .iter()
            .flat_map(|w| &w.keys)
            .map(|k| k.attempts.len())
            .sum();
        eprintln!(
            "cycle {cycle}: verified {tally:?}; then {sent} writes in {delay:?} before {stop:?} \
             ({:?} in all)",
            started.elapsed()
        );
    }
    eprintln!("total: {total:?}");
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_always_loses_no_acknowledged_write_across_sigkills() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--fsync", "always", "--segment-size", WORKLOAD_SEGMENT_SIZE];
    let total = cycles(dir.path(), &args, 12, Stop::Kill, Duration::ZERO).await;
    assert!(
        total.acked >= 12 * WRITERS,
        "too few writes to mean anything: {total:?}"
    );
    assert_eq!(total.acked_lost_in_window, 0, "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_interval_keeps_writes_older_than_the_interval_across_sigkills() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [
        "--fsync",
        "interval=50",
        "--segment-size",
        WORKLOAD_SEGMENT_SIZE,
    ];
    // The documented bound is the interval; SIGKILL keeps the page cache, so in practice nothing
    // acknowledged is lost at all, which the report shows as acked_lost_in_window = 0.
    let total = cycles(dir.path(), &args, 8, Stop::Kill, Duration::from_millis(50)).await;
    assert!(
        total.acked >= 8 * WRITERS,
        "too few writes to mean anything: {total:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_exits_zero_and_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    // With fsync off only the shutdown fsync stands between the writes and a later power failure;
    // the restart checks that the drain answered nothing it did not write.
    let args = ["--fsync", "off", "--segment-size", WORKLOAD_SEGMENT_SIZE];
    let total = cycles(dir.path(), &args, 3, Stop::Term, Duration::ZERO).await;
    assert!(total.acked >= 3 * WRITERS, "too few writes: {total:?}");
    assert_eq!(total.acked_lost_in_window, 0, "{total:?}");
}

// ---------------------------------------------------------------------------------------------
// The data directory lock.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_directory_fails_at_once_and_the_lock_dies_with_the_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let http = client();
    let mut first = Server::start(dir.path(), &[]);
    put(&http, &first, "locked", &json!(1)).await;

    let second = Server::try_start(dir.path(), &[]);
    let Err(exited) = second else {
        panic!("a second server started on a directory the first one holds");
    };
    assert!(!exited.status.success(), "exit {}", exited.status);
    assert!(
        exited.stderr.contains("in use by another process")
            && exited.stderr.contains(&dir.path().display().to_string()),
        "the error should say the directory is in use and name it:\n{}",
        exited.stderr
    );
    // "At once": it must not wait for the lock. Generous for a debug build on a busy machine.
    assert!(
        exited.after < Duration::from_secs(10),
        "took {:?}",
        exited.after
    );
    // The first server is unaffected.
    assert_eq!(get(&http, &first, "locked").await, Some(json!(1)));

    tokio::task::block_in_place(|| first.kill());
    // The lock file stays behind after a crash; only the flock on it must be gone.
    assert!(dir.path().join("LOCK").exists());
    let mut third = Server::start(dir.path(), &[]);
    assert_eq!(get(&http, &third, "locked").await, Some(json!(1)));
    put(&http, &third, "locked", &json!(2)).await;
    let status = tokio::task::block_in_place(|| third.term());
    assert!(status.success(), "exit {status}");
}

// ---------------------------------------------------------------------------------------------
// Damaged logs.
// ---------------------------------------------------------------------------------------------

/// Puts a value into `NAMESPACE` and returns its version id.
async fn put(http: &reqwest::Client, server: &Server, key: &str, value: &Value) -> String {
    let response = http
        .put(server.api(&format!("/{NAMESPACE}/{key}")))
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    assert_eq!(response.status(), StatusCode::OK, "put {key}");
    let body: Value = response.json().await.expect("put body");
    body["version_id"].as_str().expect("version_id").to_string()
}

/// The latest value of a key in `NAMESPACE`, None on 404.
async fn get(http: &reqwest::Client, server: &Server, key: &str) -> Option<Value> {
    let response = http
        .get(server.api(&format!("/{NAMESPACE}/{key}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"));
    if response.status() == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(response.status(), StatusCode::OK, "get {key}");
    let body: Value = response.json().await.expect("get body");
    Some(body["value"].clone())
}

/// The server's last LSN.
async fn last_lsn(http: &reqwest::Client, server: &Server) -> u64 {
    let status: Value = http
        .get(server.api("/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("status body");
    status["last_lsn"].as_u64().expect("last_lsn")
}

/// The segment files of a data directory, in log order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .expect("listing wal/")
        .map(|e| e.expect("wal/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// Offset and length of each record of a segment file's bytes, up to the first bad one.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while let Ok(rec) = record::decode(&bytes[pos..]) {
        out.push((pos, rec.encoded_len));
        pos += rec.encoded_len;
    }
    assert_eq!(pos, bytes.len(), "segment has bytes after its last record");
    out
}

/// Every file under a directory with its contents, to prove a failed start-up changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("listing") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("reading"));
            }
        }
    }
    out
}

/// Appends bytes to a file.
fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("opening the segment");
    file.write_all(bytes).expect("appending");
}

/// Waits up to a few seconds for a log line, since stderr is read on another thread.
fn logged(server: &Server, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if server.stderr().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Keys and values the damaged-log tests write: equal sizes, so segments fill predictably.
fn sample(i: usize) -> (String, Value) {
    (format!("k{i:04}"), json!({ "i": i, "pad": "y".repeat(60) }))
}

/// Writes the sample keys in `range` and checks them all.
async fn fill(http: &reqwest::Client, server: &Server, range: std::ops::Range<usize>) {
    for i in range.clone() {
        let (key, value) = sample(i);
        put(http, server, &key, &value).await;
    }
    check_samples(http, server, range).await;
}

/// Checks that the sample keys in `range` hold their values.
async fn check_samples(http: &reqwest::Client, server: &Server, range: std::ops::Range<usize>) {
    for i in range {
        let (key, value) = sample(i);
        assert_eq!(get(http, server, &key).await, Some(value), "{key}");
    }
}

const SMALL_SEGMENTS: [&str; 4] = ["--segment-size", "4096", "--fsync", "always"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_off_with_a_log_line_and_earlier_data_survives() {
    let mut rng = StdRng::seed_from_u64(seed("torn tail"));
    let dir = tempfile::tempdir().expect("temp dir");
    let http = client();
    let mut server = Server::start(dir.path(), &SMALL_SEGMENTS);
    fill(&http, &server, 0..80).await;
    let lsn_before = last_lsn(&http, &server).await;
    tokio::task::block_in_place(|| server.kill());
    assert!(segments(dir.path()).len() >= 2, "expected several segments");

    // Half of a well-formed next record: what a crash in the middle of an append leaves.
    let last = segments(dir.path()).pop().expect("a segment");
    let clean_len = std::fs::metadata(&last).expect("stat").len();
    let mut torn = Vec::new();
    let op = OpRef {
        kind: OpKind::Put,
        namespace: NAMESPACE,
        key: "torn",
        value: br#"{"never":"acknowledged"}"#,
    };
    record::encode(
        &mut torn,
        lsn_before + 1,
        i64::MAX / 2,
        &[op],
        &mut Vec::new(),
    );
    let cut = rng.random_range(1..torn.len());
    append(&last, &torn[..cut]);

    let mut server = Server::start(dir.path(), &SMALL_SEGMENTS);
    assert!(
        logged(&server, "truncating"),
        "no log line about truncating the torn tail:\n{}",
        server.stderr()
    );
    assert_eq!(
        std::fs::metadata(&last).expect("stat").len(),
        clean_len,
        "exactly the torn bytes are cut"
    );
    assert_eq!(last_lsn(&http, &server).await, lsn_before);
    assert_eq!(get(&http, &server, "torn").await, None);
    check_samples(&http, &server, 0..80).await;
    // The log takes writes after the cut, and they too survive the next crash.
    fill(&http, &server, 80..90).await;
    tokio::task::block_in_place(|| server.kill());

    // Plain garbage this time.
    let last = segments(dir.path()).pop().expect("a segment");
    let garbage: Vec<u8> = (0..rng.random_range(1..200))
        .map(|_| rng.random())
        .collect();
    append(&last, &garbage);
    let mut server = Server::start(dir.path(), &SMALL_SEGMENTS);
    assert!(
        logged(&server, "truncating"),
        "no log line about truncating the garbage:\n{}",
        server.stderr()
    );
    check_samples(&http, &server, 0..90).await;
    let status = tokio::task::block_in_place(|| server.term());
    assert!(status.success(), "exit {status}");
}

/// Writes enough samples for at least three 4 KiB segments and stops the server cleanly.
async fn several_segments(dir: &Path) -> Vec<PathBuf> {
    let http = client();
    let mut server = Server::start(dir, &SMALL_SEGMENTS);
    fill(&http, &server, 0..130).await;
    let status = tokio::task::block_in_place(|| server.term());
    assert!(status.success(), "exit {status}");
    let segs = segments(dir);
    assert!(segs.len() >= 3, "expected 3 or more segments: {segs:?}");
    segs
}

/// Flips one bit of the record at `record_index` of `segment` and asserts that start-up then
/// fails naming the file and the record's offset, without changing a byte of the data directory.
fn assert_start_refuses_flip(dir: &Path, segment: &Path, record_index: usize, rng: &mut StdRng) {
    let mut bytes = std::fs::read(segment).expect("reading the segment");
    let (offset, len) = records(&bytes)[record_index];
    bytes[offset + rng.random_range(0..len)] ^= 1 << rng.random_range(0..8);
    std::fs::write(segment, &bytes).expect("writing the damaged segment");
    let before = snapshot(dir);

    let Err(exited) = Server::try_start(dir, &SMALL_SEGMENTS) else {
        panic!("the server started on a log with a damaged record in the middle");
    };
    assert!(!exited.status.success(), "exit {}", exited.status);
    let file = segment.file_name().expect("file name").to_string_lossy();
    assert!(
        exited.stderr.contains(&*file) && exited.stderr.contains(&format!("offset {offset}")),
        "the error should name {file} and offset {offset}:\n{}",
        exited.stderr
    );
    assert!(
        snapshot(dir) == before,
        "a failed start-up changed the data directory"
    );
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_stops_start_up_and_touches_nothing() {
    let mut rng = StdRng::seed_from_u64(seed("sealed flip"));
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let segs = runtime.block_on(several_segments(dir.path()));
    // Any record of a sealed segment, its last one included: nothing in a sealed file is a tail.
    let sealed = &segs[1];
    let count = records(&std::fs::read(sealed).expect("reading")).len();
    let index = rng.random_range(0..count);
    assert_start_refuses_flip(dir.path(), sealed, index, &mut rng);
}

#[test]
fn a_flipped_byte_before_intact_records_of_the_active_segment_stops_start_up() {
    let mut rng = StdRng::seed_from_u64(seed("active flip"));
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let segs = runtime.block_on(several_segments(dir.path()));
    // Damage followed by intact records is not a torn write: cutting it off would drop
    // acknowledged data, so start-up must refuse.
    let active = segs.last().expect("a segment");
    let count = records(&std::fs::read(active).expect("reading")).len();
    assert!(
        count >= 2,
        "the active segment needs 2 or more records, has {count}"
    );
    assert_start_refuses_flip(dir.path(), active, rng.random_range(0..count - 1), &mut rng);
}
