//! The crash tests' workload: concurrent writers, a model of what each sent and what the server
//! acknowledged, verification after a restart, and the kill/restart cycles that drive it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{Server, client};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Namespace every workload writes to.
pub(crate) const NAMESPACE: &str = "crash";
/// Concurrent writers; each owns its keys, so each key's history is one writer's sequence of writes.
pub(crate) const WRITERS: usize = 16;
/// Keys per writer.
pub(crate) const KEYS_PER_WRITER: usize = 4;
/// Bound on requests per writer per cycle, so a server that never dies cannot make a test spin.
pub(crate) const MAX_WRITES_PER_CYCLE: usize = 5_000;
/// Bound on the time writers run per cycle, for the same reason.
pub(crate) const WRITER_DEADLINE: Duration = Duration::from_secs(20);
/// Small segments make the workloads seal and start segments while being killed.
pub(crate) const WORKLOAD_SEGMENT_SIZE: &str = "32768";

/// The seed for this run: `KORU_CRASH_SEED` if set, else the clock; printed so failures replay.
pub(crate) fn seed(test: &str) -> u64 {
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
pub(crate) struct Entry {
    version: String,
    value: Option<Value>,
}

/// What the server answered to a write.
#[derive(Debug, Clone)]
pub(crate) struct Acked {
    version: String,
    /// When the client had the answer; durability bounds are measured from here.
    at: Instant,
}

/// One write of one key: a put (`value` Some) or a delete, alone or as part of a batch.
#[derive(Debug)]
pub(crate) struct Attempt {
    value: Option<Value>,
    /// None when no answer came: the write may or may not have happened.
    acked: Option<Acked>,
}

/// A key and everything known about it: its history as verified after the last restart, and the
/// writes sent since. All attempts but the last are acknowledged, because a writer stops at its
/// first unanswered request.
#[derive(Debug)]
pub(crate) struct KeyModel {
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
pub(crate) struct Writer {
    id: usize,
    keys: Vec<KeyModel>,
    /// Per batch, the (key, attempt) pairs it wrote.
    batches: Vec<Vec<(usize, usize)>>,
    /// Makes every value ever written unique, so a version can never be confused with another.
    counter: u64,
}

/// How one request ended.
pub(crate) enum Outcome {
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
pub(crate) async fn answer(request: reqwest::RequestBuilder) -> Option<Value> {
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
pub(crate) struct Tally {
    /// Acknowledged writes checked.
    pub(crate) acked: usize,
    /// Acknowledged writes not found, allowed because they were inside the durability window.
    pub(crate) acked_lost_in_window: usize,
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
pub(crate) async fn history(http: &reqwest::Client, server: &Server, key: &str) -> Vec<Entry> {
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
pub(crate) fn lsn(version: &str) -> u64 {
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
pub(crate) async fn verify(
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
    assert_eq!(
        last_lsn(http, server).await,
        last,
        "status disagrees with the histories"
    );
    tally
}

/// The server's last LSN, from the status route.
pub(crate) async fn last_lsn(http: &reqwest::Client, server: &Server) -> u64 {
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

/// The plain read of a key must agree with the last version of its history.
pub(crate) async fn check_latest(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
    last: Option<&Entry>,
) {
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
pub(crate) enum Stop {
    /// SIGKILL after a random 50–400 ms of load.
    Kill,
    /// SIGTERM after a random 50–400 ms of load; the server must exit 0.
    Term,
}

/// Runs `cycles` rounds of: start the server on `dir`, verify everything so far, load it with
/// `WRITERS` concurrent writers, stop it. Acknowledged writes older than `window` at the stop must
/// survive. A last start verifies the final round and stops the server with SIGTERM.
pub(crate) async fn cycles(
    dir: &Path,
    args: &[&str],
    cycles: usize,
    stop: Stop,
    window: Duration,
) -> Tally {
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
