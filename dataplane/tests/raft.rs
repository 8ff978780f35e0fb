//! Replicated clusters of real `koru-dataplane` processes on loopback: the leader killed with
//! SIGKILL under concurrent writes (3 and 5 members), a partitioned leader (an injected fault in
//! the members' transport, see `common::cluster`), and a linearizability check of single-key
//! read/write/compare-and-set histories recorded while members are killed and partitioned.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Server, client};
use parking_lot::Mutex;
use serde_json::{Value, json};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// An acknowledged write: key, value, when its request was sent, when it was acknowledged.
type Acked = (String, u64, Instant, Instant);

/// PUTs `{"value": value}` through member `id`; the status, or None if no answer came.
async fn put(http: &reqwest::Client, cluster_url: &str, key: &str, value: u64) -> Option<u16> {
    let resp = http
        .put(format!("{cluster_url}/api/v1/acked/{key}"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

/// POSTs `body` (or nothing) to `url`; the status and the JSON answer.
async fn post_json(http: &reqwest::Client, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = http.post(url);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON body"))
}

/// GETs `url` and reads the JSON answer.
async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("a JSON body")
}

/// Latest value of every key in a change feed.
fn state_of(feed: &[Value]) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    for record in feed {
        for op in record["ops"].as_array().expect("ops") {
            let key = op["key"].as_str().expect("key").to_owned();
            state.insert(key, op.get("value").cloned().unwrap_or(Value::Null));
        }
    }
    state
}

/// Clients writing unique keys (`<prefix><client>-<n>`) round-robin through `urls` until `stop`;
/// every acknowledged write is recorded in `acked`.
fn spawn_writers(
    http: &reqwest::Client,
    urls: &[String],
    clients: u64,
    prefix: &'static str,
    acked: &Arc<Mutex<Vec<Acked>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|t| {
            let (http, urls, acked, stop) = (
                http.clone(),
                urls.to_vec(),
                Arc::clone(acked),
                Arc::clone(stop),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let key = format!("{prefix}{t}-{i}");
                    let url = &urls[((t + i) % urls.len() as u64) as usize];
                    let sent = Instant::now();
                    match put(&http, url, &key, i).await {
                        Some(200) => acked.lock().push((key, i, sent, Instant::now())),
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect()
}

/// Starts `n` members, writes from four concurrent clients through every member, kills the
/// leader with SIGKILL, and checks that a new leader takes writes within seconds, that every
/// acknowledged write is on every survivor, and that the restarted member ends with exactly
/// the same history (every record: LSN, time, operations).
async fn leader_killed_under_writes(n: u64) {
    let mut cluster = Cluster::start(n);
    let http = client();
    let leader = cluster.leader(&http).await;
    let urls: Vec<String> = (1..=n).map(|id| cluster.url(id)).collect();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&http, &urls, 4, "w", &acked, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = acked.lock().len();
    assert!(
        before > 0,
        "no write acknowledged before the kill:\n{}",
        cluster.logs()
    );
    cluster.kill(leader);
    let killed_at = Instant::now();
    let failover = loop {
        let first = acked
            .lock()
            .iter()
            .filter(|(_, _, sent, _)| *sent > killed_at)
            .map(|(_, _, _, done)| *done)
            .min();
        if let Some(first) = first {
            break first - killed_at;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no write acknowledged within 15 s of killing leader {leader}:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().clone();
    eprintln!(
        "{n} members: {} writes acknowledged ({before} before the kill); the first write sent \
         after the kill was acknowledged {failover:?} after it",
        acked.len()
    );
    let new_leader = cluster.leader(&http).await;
    assert_ne!(new_leader, leader);
    let metrics = http
        .get(format!("{}/metrics", cluster.url(new_leader)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("koru_raft_role{role=\"leader\"} 1"),
        "{metrics}"
    );
    for id in 1..=n {
        assert!(
            metrics.contains(&format!(
                "koru_raft_replication_lag_entries{{peer=\"{id}\"}}"
            )),
            "no lag for member {id}: {metrics}"
        );
    }
    let survivors = cluster.running();
    for &id in &survivors {
        let state = state_of(&cluster.changes(&http, id).await);
        for (key, value, _, _) in &acked {
            assert_eq!(
                state.get(key),
                Some(&json!(value)),
                "member {id} lacks acknowledged write {key}={value}"
            );
        }
    }
    cluster.restart(leader);
    cluster.leader(&http).await;
    let reference = cluster.changes(&http, new_leader).await;
    for id in 1..=n {
        let feed = cluster.changes(&http, id).await;
        assert_eq!(
            feed.len(),
            reference.len(),
            "member {id} has {} records, the leader {}",
            feed.len(),
            reference.len()
        );
        assert!(
            feed == reference,
            "member {id}'s history differs from the leader's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_keep_every_acknowledged_write_when_the_leader_is_killed() {
    leader_killed_under_writes(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_members_keep_every_acknowledged_write_when_the_leader_is_killed() {
    leader_killed_under_writes(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_acknowledges_nothing_and_the_majority_goes_on() {
    let cluster = Cluster::start(3);
    let http = client();
    let old = cluster.leader(&http).await;
    assert_eq!(put(&http, &cluster.url(old), "before", 1).await, Some(200));
    let others: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    cluster.block(&http, old, &others).await;
    for &id in &others {
        cluster.block(&http, id, &[old]).await;
    }

    // The minority side: a write is not acknowledged, a linearizable read is refused.
    let status = put(&http, &cluster.url(old), "lost", 1).await;
    assert!(
        matches!(status, Some(503)),
        "the cut-off leader answered {status:?} to a write"
    );
    let read = http
        .get(format!("{}/api/v1/acked/before", cluster.url(old)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status(),
        503,
        "a linearizable read on the minority side"
    );
    // A client that accepts staleness is served from what the member has.
    let stale = http
        .get(format!("{}/api/v1/acked/before", cluster.url(old)))
        .header("x-koru-max-staleness-ms", "600000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status(),
        200,
        "a bounded-stale read on the minority side"
    );

    // The majority side elects a leader of a later term and keeps taking writes.
    let new = cluster
        .leader_among(&http, &others, Duration::from_secs(20))
        .await;
    assert_ne!(new, old);
    for (i, &id) in others.iter().enumerate() {
        assert_eq!(
            put(&http, &cluster.url(id), &format!("during-{i}"), 2).await,
            Some(200)
        );
    }
    let old_term = cluster.status(&http, old).await.unwrap()["term"].clone();
    let new_term = cluster.status(&http, new).await.unwrap()["term"].clone();
    assert!(
        new_term.as_u64() > old_term.as_u64(),
        "new leader's term {new_term} is not past the old leader's {old_term}"
    );

    // Healed: everyone follows one leader, with one history, without the unacknowledged write.
    for id in 1..=3 {
        cluster.block(&http, id, &[]).await;
    }
    cluster.leader(&http).await;
    let reference = cluster.changes(&http, new).await;
    let state = state_of(&reference);
    assert!(state.contains_key("before") && state.contains_key("during-0"));
    assert!(
        !state.contains_key("lost"),
        "an unacknowledged write surfaced"
    );
    for id in 1..=3 {
        assert!(
            cluster.changes(&http, id).await == reference,
            "member {id} did not converge"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_three_to_five_to_three_under_writes_lose_nothing() {
    let mut cluster = Cluster::start_some(5, 3);
    let http = client();
    cluster.leader(&http).await;
    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id)).collect();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&http, &urls, 3, "m", &acked, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart(4);
    cluster.restart(5);
    let grown = cluster.set_members(&http, 2, &[1, 2, 3, 4, 5], false).await;
    let voters = |status: &Value| -> Vec<u64> {
        status["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["voter"] == true)
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(voters(&grown), vec![1, 2, 3, 4, 5], "{grown}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shrunk = cluster.set_members(&http, 4, &[1, 2, 3], true).await;
    assert_eq!(voters(&shrunk), vec![1, 2, 3], "{shrunk}");
    cluster.kill(4);
    cluster.kill(5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().clone();
    assert!(acked.len() > 10, "only {} writes acknowledged", acked.len());
    let leader = cluster.leader(&http).await;
    let reference = cluster.changes(&http, leader).await;
    let state = state_of(&reference);
    for (key, value, _, _) in &acked {
        assert_eq!(state.get(key), Some(&json!(value)), "lost {key}={value}");
    }
    for id in 1..=3 {
        assert!(
            cluster.changes(&http, id).await == reference,
            "member {id} differs from the leader"
        );
    }
    eprintln!(
        "3 -> 5 -> 3 members: {} writes acknowledged, none lost",
        acked.len()
    );
}

/// An operation on one key, as the checker models it. Every write puts a value no other write
/// puts, so a version id stands for the value written with it: `Cas(expected, new)` is a `PUT`
/// of `new` with `If-Match` naming the version that holds `expected`.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Read,
    Write(u64),
    Cas(u64, u64),
}

/// What an [`Op`] returned.
#[derive(Debug, Clone, PartialEq)]
enum Ret {
    ReadOk(u64),
    WriteOk,
    CasOk,
    CasFailed,
}

/// The sequential model the histories must be linearizable against: a register with
/// compare-and-set; 0 is the key before any write.
#[derive(Debug, Clone)]
struct CasRegister(u64);

impl SequentialSpec for CasRegister {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Read => Ret::ReadOk(self.0),
            Op::Write(v) => {
                self.0 = v;
                Ret::WriteOk
            }
            Op::Cas(expected, new) if self.0 == expected => {
                self.0 = new;
                Ret::CasOk
            }
            Op::Cas(..) => Ret::CasFailed,
        }
    }
}

/// One event of a recorded history.
#[derive(Debug, Clone)]
enum Event {
    Invoke(usize, Op),
    Return(usize, Ret),
}

/// How a write or compare-and-set was answered, for the history.
enum Outcome {
    /// Acknowledged (200).
    Done,
    /// Refused because the key was at another version (412): nothing was written.
    Mismatch,
    /// Refused before anything was proposed (503 `no_leader`): as if never invoked.
    NotProposed,
    /// Anything else: it may take effect later.
    Unknown,
}

/// Sends a request and classifies its answer.
async fn outcome(req: reqwest::RequestBuilder) -> Outcome {
    let resp = req.send().await;
    let status = resp.as_ref().map(|r| r.status().as_u16()).ok();
    let code = match resp {
        Ok(r) => r
            .json::<Value>()
            .await
            .ok()
            .map(|b| b["error"]["code"].clone()),
        Err(_) => None,
    };
    match status {
        Some(200) => Outcome::Done,
        Some(412) if code == Some(json!("version_mismatch")) => Outcome::Mismatch,
        Some(503) if code == Some(json!("no_leader")) => Outcome::NotProposed,
        _ => Outcome::Unknown,
    }
}

/// Runs one client against `key`: random reads, writes and compare-and-sets (a read, then a
/// `PUT` with `If-Match` on the version it returned) through random members, recorded into
/// `history`. A request whose outcome is unknown leaves its operation in flight and the client
/// continues under a new id, as the checker requires.
async fn client_loop(
    http: reqwest::Client,
    urls: Vec<String>,
    key: String,
    first_id: usize,
    history: Arc<Mutex<Vec<Event>>>,
    stop: Arc<AtomicBool>,
    ops: usize,
) {
    let mut id = first_id;
    let mut seed = first_id as u64 * 7919 + 1;
    // The value and version id this client last read, for its next compare-and-set.
    let mut last_read: Option<(u64, String)> = None;
    for n in 0..ops {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let url = &urls[(seed >> 33) as usize % urls.len()];
        let value = (first_id * 100_000 + n + 1) as u64;
        let put = http
            .put(format!("{url}/api/v1/lin/{key}"))
            .json(&json!({ "value": value }));
        let (op, ret, req) = match ((seed >> 40) % 3, last_read.take()) {
            (0, _) => (Op::Write(value), Ret::WriteOk, put),
            (1, Some((expected, version))) => (
                Op::Cas(expected, value),
                Ret::CasOk,
                put.header("if-match", version),
            ),
            _ => {
                history.lock().push(Event::Invoke(id, Op::Read));
                let resp = http.get(format!("{url}/api/v1/lin/{key}")).send().await;
                match resp.as_ref().map(|r| r.status().as_u16()) {
                    Ok(200) => {
                        let body: Value = resp.unwrap().json().await.unwrap();
                        let v = body["value"].as_u64().expect("a written value");
                        let version = body["version_id"].as_str().unwrap().to_string();
                        history.lock().push(Event::Return(id, Ret::ReadOk(v)));
                        last_read = Some((v, version));
                    }
                    Ok(404) => history.lock().push(Event::Return(id, Ret::ReadOk(0))),
                    // A failed read has no effect: drop it.
                    _ => forget_last_invoke(&history, id),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let is_cas = matches!(op, Op::Cas(..));
        history.lock().push(Event::Invoke(id, op));
        match outcome(req).await {
            Outcome::Done => history.lock().push(Event::Return(id, ret)),
            Outcome::Mismatch if is_cas => history.lock().push(Event::Return(id, Ret::CasFailed)),
            Outcome::NotProposed => forget_last_invoke(&history, id),
            // Unknown: it may take effect later; this client id stays in flight.
            Outcome::Mismatch | Outcome::Unknown => id += 1_000,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Settles the writes and compare-and-sets whose outcome is unknown, from the key's full
/// history (`written`: every value it ever held; each value is written by one operation only).
/// One whose value never became a version did not take effect and is dropped; one whose value
/// did is answered at the end of the history, so the checker places it anywhere after its
/// invocation. (Dropping only the unobserved ones is not enough with compare-and-set: a failed
/// one may be all that saw a write.)
fn settle_unknowns(events: Vec<Event>, written: &std::collections::HashSet<u64>) -> Vec<Event> {
    let answered = |at: usize, id: usize| {
        events[at + 1..]
            .iter()
            .any(|e| matches!(e, Event::Return(i, _) if *i == id))
    };
    let mut settled = Vec::new();
    let mut late = Vec::new();
    for (at, e) in events.iter().enumerate() {
        match e {
            Event::Invoke(id, op @ (Op::Write(v) | Op::Cas(_, v))) if !answered(at, *id) => {
                if written.contains(v) {
                    let ret = match op {
                        Op::Cas(..) => Ret::CasOk,
                        _ => Ret::WriteOk,
                    };
                    late.push(Event::Return(*id, ret));
                    settled.push(e.clone());
                }
            }
            _ => settled.push(e.clone()),
        }
    }
    settled.extend(late);
    settled
}

fn forget_last_invoke(history: &Mutex<Vec<Event>>, id: usize) {
    let mut h = history.lock();
    let at = h
        .iter()
        .rposition(|e| matches!(e, Event::Invoke(i, _) if *i == id))
        .expect("the invoke being forgotten");
    h.remove(at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_key_histories_under_kills_and_partitions_are_linearizable() {
    let mut cluster = Cluster::start(3);
    // Installs the TLS provider reqwest wants before any client is built.
    let _ = client();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    cluster.leader(&http).await;
    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let keys = ["a", "b"];
    let mut histories = Vec::new();
    let mut tasks = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let history: Arc<Mutex<Vec<Event>>> = Arc::default();
        histories.push(Arc::clone(&history));
        for c in 0..3 {
            tasks.push(tokio::spawn(client_loop(
                http.clone(),
                urls.clone(),
                key.to_string(),
                k * 10 + c + 1,
                Arc::clone(&history),
                Arc::clone(&stop),
                60,
            )));
        }
    }
    // The nemesis: kill the leader, bring it back, then cut the new leader off and heal.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = cluster.leader(&http).await;
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart(leader);
    let leader = cluster.leader(&http).await;
    let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    cluster.block(&http, leader, &others).await;
    for &id in &others {
        cluster.block(&http, id, &[leader]).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in 1..=3 {
        cluster.block(&http, id, &[]).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for (key, history) in keys.iter().zip(histories) {
        // A final read through the healed cluster completes every history.
        let last = get_json(&http, format!("{}/api/v1/lin/{key}", cluster.url(1))).await;
        let last = last["value"].as_u64().unwrap_or(0);
        history.lock().push(Event::Invoke(usize::MAX, Op::Read));
        history
            .lock()
            .push(Event::Return(usize::MAX, Ret::ReadOk(last)));
        let versions = get_json(
            &http,
            format!("{}/api/v1/lin/{key}/history", cluster.url(1)),
        )
        .await;
        let written = versions["versions"]
            .as_array()
            .expect("the key's history")
            .iter()
            .filter_map(|v| v["value"].as_u64())
            .collect();
        let events = settle_unknowns(history.lock().clone(), &written);
        let completed = events
            .iter()
            .filter(|e| matches!(e, Event::Return(..)))
            .count();
        assert!(
            completed >= 20,
            "key {key}: only {completed} operations completed"
        );
        let returned = |ret: Ret| {
            events
                .iter()
                .filter(|e| matches!(e, Event::Return(_, r) if *r == ret))
                .count()
        };
        let (swapped, refused) = (returned(Ret::CasOk), returned(Ret::CasFailed));
        assert!(swapped >= 1, "key {key}: no compare-and-set succeeded");
        let mut tester = LinearizabilityTester::new(CasRegister(0));
        for e in &events {
            match e.clone() {
                Event::Invoke(id, op) => tester.on_invoke(id, op).map(|_| ()),
                Event::Return(id, ret) => tester.on_return(id, ret).map(|_| ()),
            }
            .unwrap_or_else(|err| panic!("key {key}: malformed history ({err}): {events:?}"));
        }
        assert!(
            tester.is_consistent(),
            "key {key}: the history is not linearizable: {events:?}"
        );
        eprintln!(
            "key {key}: {completed} operations ({swapped} compare-and-sets done, {refused} \
             refused), linearizable"
        );
    }
}

#[test]
fn membership_flags_are_checked_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--node-id", "1"], "--peers"),
        (
            &["--node-id", "1", "--peers", "1=127.0.0.1:1"],
            "--peers needs --peer-listen",
        ),
        (
            &["--node-id", "4", "--peers", "1=127.0.0.1:1"],
            "not among --peers",
        ),
        (&["--node-id", "1", "--peers", "1=nowhere"], "host:port"),
        (
            &["--node-id", "1", "--peers", "1", "--peer-template", "x:1"],
            "no {id}",
        ),
        (&["--raft-snapshot-entries", "5"], "not in 10.."),
    ];
    for (args, says) in cases {
        let e = Server::try_start(tmp.path(), args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} started"));
        assert!(!e.status.success());
        assert!(e.stderr.contains(says), "{args:?}: {}", e.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_archives_and_archiving_carries_on_after_failover() {
    let archive = tempfile::tempdir().unwrap();
    let store = format!("file://{}", archive.path().join("store").display());
    let extra = [
        "--backup-store",
        store.as_str(),
        "--archive-timeout",
        "1s",
        "--segment-size",
        "4096",
    ];
    let mut cluster = Cluster::start_with(3, 3, &extra);
    let http = client();
    let leader = cluster.leader(&http).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    for i in 0..150u64 {
        let via = cluster.url(1 + i % 3);
        assert_eq!(put(&http, &via, &format!("a{i}"), i).await, Some(200));
    }
    // Asked of a follower, taken by the leader.
    let first = http
        .post(format!("{}/admin/backups", cluster.url(follower)))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201, "{:?}", first.text().await);
    cluster.kill(leader);
    let new_leader = cluster.leader(&http).await;
    for i in 0..150u64 {
        let via = cluster.url(new_leader);
        assert_eq!(put(&http, &via, &format!("b{i}"), i).await, Some(200));
    }
    let second: Value = http
        .post(format!("{}/admin/backups", cluster.url(new_leader)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last_lsn = second["last_lsn"]
        .as_u64()
        .unwrap_or_else(|| panic!("{second}"));
    let logs = cluster.logs();
    assert!(
        !logs.contains("different contents"),
        "members archived different segments:\n{logs}"
    );
    // The archive restores to the cluster's history, record for record.
    let restored = archive.path().join("restored");
    let out = std::process::Command::new(common::BINARY)
        .args(["restore", "--from", &store, "--data-dir"])
        .arg(&restored)
        .env("KORU_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let single = Server::start(&restored, &[]);
    let feed = common::cluster::changes_at(&http, &single.url).await;
    let reference: Vec<Value> = cluster
        .changes(&http, new_leader)
        .await
        .into_iter()
        .filter(|r| r["lsn"].as_u64().unwrap() <= last_lsn)
        .collect();
    assert_eq!(
        last_lsn, 300,
        "every acknowledged write is in the second backup"
    );
    assert_eq!(feed.len(), reference.len());
    assert!(
        feed == reference,
        "the restored history differs from the cluster's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_can_redirect_writes_to_the_leader() {
    let cluster = Cluster::start_with(3, 3, &["--follower-writes", "redirect"]);
    let http = client();
    let leader = cluster.leader(&http).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_follow
        .put(format!("{}/api/v1/acked/r?x=1", cluster.url(follower)))
        .json(&json!({ "value": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 307);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("{}/api/v1/acked/r?x=1", cluster.url(leader))
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_leader", "{body}");
    // A client that follows redirects just writes; reads are still served by the follower.
    assert_eq!(put(&http, &cluster.url(follower), "r", 2).await, Some(200));
    let read = get_json(&http, format!("{}/api/v1/acked/r", cluster.url(follower))).await;
    assert_eq!(read["value"], 2, "{read}");
}

/// A stopped single node's data directory holding `n` writes to namespace `ns`.
async fn single_node_data(dir: &std::path::Path, ns: &str, n: usize) {
    let mut single = Server::start(dir, &[]);
    let http = client();
    for i in 0..n {
        common::put_text(&http, &single, ns, &format!("k{i}"), &i.to_string()).await;
    }
    single.term();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_node_becomes_the_first_member_and_the_others_copy_its_records() {
    let mut cluster = Cluster::start_some(3, 0);
    single_node_data(&cluster.dir.path().join("member-1"), "old", 300).await;
    for id in 1..=3 {
        cluster.restart(id);
    }
    let http = client();
    cluster.leader(&http).await;
    assert_eq!(put(&http, &cluster.url(3), "after", 7).await, Some(200));
    let reference = cluster.changes(&http, 1).await;
    assert_eq!(reference.len(), 301, "300 old records and the new one");
    assert_eq!(reference[0]["lsn"], 1);
    for id in 2..=3 {
        assert!(
            cluster.changes(&http, id).await == reference,
            "member {id} does not hold the same history"
        );
    }
    let old = get_json(&http, format!("{}/api/v1/old/k299", cluster.url(2))).await;
    assert_eq!(old["value"], 299, "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_with_other_records_is_refused_and_nothing_diverges() {
    let mut cluster = Cluster::start_some(2, 0);
    single_node_data(&cluster.dir.path().join("member-2"), "foreign", 5).await;
    cluster.restart(1);
    cluster.restart(2);
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.members[&2]
        .stderr()
        .contains("written outside this cluster")
    {
        assert!(
            Instant::now() < deadline,
            "member 2 did not refuse the cluster's records:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = http
        .get(format!("{}/readyz", cluster.url(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        503,
        "the refusing member says it is not ready"
    );
    let foreign = http
        .get(format!("{}/api/v1/foreign/k0", cluster.url(1)))
        .header("x-koru-max-staleness-ms", "60000")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404, "member 2's records reached member 1");
}

#[test]
fn the_checker_rejects_a_stale_read_and_a_lost_update() {
    let check = |events: &[(usize, Result<Op, Ret>)]| {
        let mut tester = LinearizabilityTester::new(CasRegister(0));
        for (id, e) in events {
            match e.clone() {
                Ok(op) => tester.on_invoke(*id, op).map(|_| ()),
                Err(ret) => tester.on_return(*id, ret).map(|_| ()),
            }
            .unwrap();
        }
        tester.is_consistent()
    };
    // Write 1 completes, then a later read returns the initial 0: not linearizable.
    let stale = [
        (1, Ok(Op::Write(1))),
        (1, Err(Ret::WriteOk)),
        (2, Ok(Op::Read)),
        (2, Err(Ret::ReadOk(0))),
    ];
    assert!(!check(&stale));
    // The same read overlapping the write may see either value.
    let overlapping = [
        (1, Ok(Op::Write(1))),
        (2, Ok(Op::Read)),
        (2, Err(Ret::ReadOk(0))),
        (1, Err(Ret::WriteOk)),
    ];
    assert!(check(&overlapping));
    // Two compare-and-sets over the same value, one after the other, cannot both succeed.
    let lost_update = [
        (1, Ok(Op::Write(1))),
        (1, Err(Ret::WriteOk)),
        (2, Ok(Op::Cas(1, 2))),
        (2, Err(Ret::CasOk)),
        (3, Ok(Op::Cas(1, 3))),
        (3, Err(Ret::CasOk)),
    ];
    assert!(!check(&lost_update));
    let refused = [
        (1, Ok(Op::Write(1))),
        (1, Err(Ret::WriteOk)),
        (2, Ok(Op::Cas(1, 2))),
        (2, Err(Ret::CasOk)),
        (3, Ok(Op::Cas(1, 3))),
        (3, Err(Ret::CasFailed)),
    ];
    assert!(check(&refused));
}

/// The sealed segments (all but the active, highest-numbered one) of member `id`, by name.
fn sealed_segments(cluster: &Cluster, id: u64) -> BTreeMap<String, Vec<u8>> {
    let dir = cluster.dir.path().join(format!("member-{id}")).join("wal");
    let mut files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.pop_last();
    files
}

/// Each segment's name, first LSN (from its header) and length, for a failure message.
fn describe(segments: &BTreeMap<String, Vec<u8>>) -> String {
    segments
        .iter()
        .map(|(name, bytes)| {
            let first = bytes
                .get(20..28)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
            format!("{name} (first LSN {first:?}, {} bytes)", bytes.len())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until member `id` holds exactly member `reference`'s history.
async fn converges(cluster: &Cluster, http: &reqwest::Client, id: u64, reference: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for member in [id, reference] {
            let probe = get_json(
                http,
                format!("{}/api/v1/changes?since=0&limit=1", cluster.url(member)),
            )
            .await;
            assert!(
                probe.get("error").is_none(),
                "member {member}: {probe}\n{}",
                cluster.logs()
            );
        }
        let want = cluster.changes(http, reference).await;
        if cluster.changes(http, id).await == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {id} did not catch up with member {reference}:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_behind_the_purged_log_installs_a_snapshot_and_copies_the_records() {
    let archive = tempfile::tempdir().unwrap();
    let store = format!("file://{}", archive.path().join("store").display());
    // Small snapshots, and segments sealed by time (seal entries the lagging member never
    // sees), so the copy must reproduce the leader's segment boundaries from the records pages.
    let extra = [
        "--raft-snapshot-entries",
        "50",
        "--backup-store",
        store.as_str(),
        "--archive-timeout",
        "1s",
    ];
    let mut cluster = Cluster::start_with(3, 3, &extra);
    let http = client();
    let leader = cluster.leader(&http).await;
    // Not member 1: a first member with an empty data directory would form a group of its own.
    let lagging = (2..=3).rev().find(|&id| id != leader).unwrap();
    for i in 0..20u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("a{i}"), i).await,
            Some(200)
        );
    }
    let before = get_json(&http, format!("{}/raft/status", cluster.peer_url(lagging))).await;
    cluster.kill(lagging);
    let mut n = 0u64;
    for _round in 0..3 {
        for _ in 0..100 {
            assert_eq!(
                put(&http, &cluster.url(leader), &format!("b{n}"), n).await,
                Some(200)
            );
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let status = get_json(&http, format!("{}/raft/status", cluster.peer_url(leader))).await;
    let purged = status["purged_index"].as_u64().unwrap_or(0);
    assert!(
        purged > before["last_log_index"].as_u64().unwrap(),
        "the leader kept the entries the stopped member lacks, so no snapshot is needed: {status} vs {before}"
    );

    // Restarted with its data: it holds a prefix of the records and copies the rest.
    cluster.restart(lagging);
    converges(&cluster, &http, lagging, leader).await;
    assert!(
        cluster.members[&lagging]
            .stderr()
            .contains("installed a snapshot"),
        "{}",
        cluster.logs()
    );
    let read = get_json(
        &http,
        format!("{}/api/v1/acked/b{}", cluster.url(lagging), n - 1),
    )
    .await;
    assert_eq!(read["value"], n - 1, "{read}");
    let sealed = sealed_segments(&cluster, leader);
    assert!(
        sealed.len() >= 2,
        "the test needs sealed segments: {:?}",
        sealed.keys()
    );
    let copied = sealed_segments(&cluster, lagging);
    for (name, bytes) in &copied {
        assert!(
            sealed.get(name) == Some(bytes),
            "sealed segment {name} of member {lagging} differs from the leader's:\n\
             leader {leader}: {}\nmember {lagging}: {}\n{}",
            describe(&sealed),
            describe(&copied),
            cluster.logs()
        );
    }

    // Replaced with an empty data directory (a new volume): it copies everything.
    cluster.kill(lagging);
    std::fs::remove_dir_all(cluster.dir.path().join(format!("member-{lagging}"))).unwrap();
    for i in 0..100u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("c{i}"), i).await,
            Some(200)
        );
    }
    cluster.restart(lagging);
    converges(&cluster, &http, lagging, leader).await;
    let sealed = sealed_segments(&cluster, leader);
    let copied = sealed_segments(&cluster, lagging);
    assert!(copied.len() >= 2, "{:?}", copied.keys());
    for (name, bytes) in &copied {
        assert!(
            sealed.get(name) == Some(bytes),
            "sealed segment {name} of the replaced member {lagging} differs from the leader's"
        );
    }
    // Writes through it still work, and reach everyone.
    assert_eq!(
        put(&http, &cluster.url(lagging), "after", 1).await,
        Some(200)
    );
    converges(&cluster, &http, lagging, leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_batched_into_one_entry_each_get_their_own_answer() {
    let cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    // 64 writes at once through the leader and the followers: the leader batches what reaches
    // it together, and every writer must still get the version of its own record.
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let http = http.clone();
        let url = cluster.url(1 + i % 3);
        tasks.push(tokio::spawn(async move {
            let resp = http
                .put(format!("{url}/api/v1/batched/k{i}"))
                .json(&json!({ "value": i }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            (
                format!("k{i}"),
                body["version_id"].as_str().unwrap().to_owned(),
            )
        }));
    }
    let mut answered = BTreeMap::new();
    for t in tasks {
        let (key, version) = t.await.unwrap();
        answered.insert(key, version);
    }
    let mut recorded = BTreeMap::new();
    for record in cluster.changes(&http, leader).await {
        for (i, op) in record["ops"].as_array().unwrap().iter().enumerate() {
            recorded.insert(
                op["key"].as_str().unwrap().to_owned(),
                format!("{}.{i}", record["lsn"]),
            );
        }
    }
    assert_eq!(answered.len(), 64);
    for (key, version) in &answered {
        assert_eq!(recorded.get(key), Some(version), "the answer to {key}");
    }
    let status = get_json(&http, format!("{}/raft/status", cluster.peer_url(leader))).await;
    assert!(
        status["last_log_index"].as_u64().unwrap() < 60,
        "64 concurrent writes took one entry each: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_hands_leadership_over_and_no_write_fails() {
    let cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id)).collect();
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let (http, urls, failed, acked, stop) = (
                http.clone(),
                urls.clone(),
                Arc::clone(&failed),
                Arc::clone(&acked),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let url = &urls[((t + i) % 3) as usize];
                    let resp = http
                        .put(format!("{url}/api/v1/acked/h{t}-{i}"))
                        .json(&json!({ "value": i }))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => {
                            let body = r.text().await.unwrap_or_default();
                            failed.lock().push(format!("{url}: {body}"));
                        }
                        Err(e) => failed.lock().push(format!("{url}: {e}")),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Asked of a follower, passed on to the leader.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let (status, body) = post_json(
        &http,
        format!("{}/admin/members/step-down", cluster.url(follower)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let new_leader = body["leader"].as_u64().unwrap();
    assert_ne!(new_leader, leader, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(cluster.leader(&http).await, new_leader);
    assert!(
        failed.lock().is_empty(),
        "writes failed during the hand-over: {:?}",
        failed.lock()
    );
    assert!(acked.load(Ordering::SeqCst) > 0);
    // Every member holds the same history afterwards.
    let reference = cluster.changes(&http, new_leader).await;
    for id in 1..=3 {
        converges(&cluster, &http, id, new_leader).await;
    }
    assert!(!reference.is_empty());
    // With a member down, the two left still hand over: the old leader's vote makes the majority.
    let mut cluster = cluster;
    let down = (1..=3).find(|&id| id != new_leader).unwrap();
    cluster.kill(down);
    let (status, body) = post_json(
        &http,
        format!("{}/raft/step-down", cluster.peer_url(new_leader)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let third = body["leader"].as_u64().unwrap();
    assert!(third != new_leader && third != down, "{body}");
    assert_eq!(
        put(&http, &cluster.url(new_leader), "after-handover", 1).await,
        Some(200)
    );
    // A member that does not lead, alone, or a single node cannot hand anything over.
    let single = tempfile::tempdir().unwrap();
    let server = Server::start(single.path(), &[]);
    let resp = http
        .post(format!("{}/raft/step-down", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// `POST /admin/rewind` through the member at `url`; the status and body.
async fn rewind_via(http: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    post_json(http, format!("{url}/admin/rewind"), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewind_is_committed_through_the_log_and_its_guard_decides_alike_everywhere() {
    let cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    assert_eq!(put(&http, &cluster.url(leader), "u:a", 1).await, Some(200));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let moment = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(put(&http, &cluster.url(leader), "u:a", 2).await, Some(200));
    assert_eq!(
        put(&http, &cluster.url(follower), "u:b", 3).await,
        Some(200)
    );
    let ask = |dry_run: bool, since: Option<u64>| {
        let mut body =
            json!({"namespace": "acked", "prefix": "u:", "as_of": moment, "dry_run": dry_run});
        if let Some(since) = since {
            body["if_unchanged_since"] = json!(since);
        }
        body
    };
    // A reviewed plan goes stale when the range is written after it: refused on every member
    // alike (the guard is checked where the entry is applied), nothing written.
    let (status, dry) = rewind_via(&http, &cluster.url(follower), ask(true, None)).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["change_count"], 2, "{dry}");
    let reviewed = dry["planned_lsn"].as_u64().unwrap();
    assert_eq!(
        put(&http, &cluster.url(follower), "u:c", 4).await,
        Some(200)
    );
    let (status, stale) =
        rewind_via(&http, &cluster.url(follower), ask(false, Some(reviewed))).await;
    assert_eq!(status, 409, "{stale}");
    assert_eq!(stale["error"]["code"], "rewind_conflict", "{stale}");
    // Asked of a follower, planned and committed by the leader, applied everywhere.
    let (status, done) = rewind_via(&http, &cluster.url(follower), ask(false, None)).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["change_count"], 3, "{done}");
    let lsn = done["applied_lsn"].as_u64().unwrap();
    for id in 1..=3 {
        let a = get_json(&http, format!("{}/api/v1/acked/u:a", cluster.url(id))).await;
        assert_eq!(a["value"], 1, "member {id}: {a}");
        let b = http
            .get(format!("{}/api/v1/acked/u:b", cluster.url(id)))
            .send()
            .await
            .unwrap();
        assert_eq!(b.status(), 404, "member {id} still has u:b");
        converges(&cluster, &http, id, leader).await;
    }
    let feed = cluster.changes(&http, leader).await;
    assert_eq!(feed.last().unwrap()["lsn"], lsn);
    assert_eq!(
        feed.len() as u64,
        lsn,
        "no LSN was taken by the refused rewind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_member_on_an_empty_data_directory_rejoins_instead_of_forming_a_new_group() {
    let mut cluster = Cluster::start(3);
    let http = client();
    let mut leader = cluster.leader(&http).await;
    for i in 0..20u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("f{i}"), i).await,
            Some(200)
        );
    }
    if leader == 1 {
        let (status, body) = post_json(
            &http,
            format!("{}/raft/step-down", cluster.peer_url(1)),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        leader = cluster.leader(&http).await;
    }
    // Member 1 (the one that forms a new cluster) comes back on a new, empty volume.
    cluster.kill(1);
    std::fs::remove_dir_all(cluster.dir.path().join("member-1")).unwrap();
    for i in 20..30u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("f{i}"), i).await,
            Some(200)
        );
    }
    cluster.restart(1);
    converges(&cluster, &http, 1, leader).await;
    let status = get_json(&http, format!("{}/raft/status", cluster.peer_url(1))).await;
    assert_eq!(status["leader"].as_u64(), Some(leader), "{status}");
    assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");
    assert!(
        cluster.members[&1]
            .stderr()
            .contains("already belongs to the formed group"),
        "{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_back_on_an_empty_data_directory_does_not_vote_until_caught_up() {
    let mut cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let (behind, wiped) = (followers[0], followers[1]);
    assert_eq!(
        put(&http, &cluster.url(leader), "before", 0).await,
        Some(200)
    );
    // Writes acknowledged by the leader and `wiped` only.
    cluster.block(&http, behind, &[leader, wiped]).await;
    for i in 0..10u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("during-{i}"), i).await,
            Some(200)
        );
    }
    // The only other copy of those writes is lost with `wiped`'s volume; the leader dies.
    cluster.kill(wiped);
    std::fs::remove_dir_all(cluster.dir.path().join(format!("member-{wiped}"))).unwrap();
    cluster.kill(leader);
    cluster.block(&http, behind, &[]).await;
    cluster.restart(wiped);

    // `behind` lacks the writes; had `wiped` voted for it, it would lead without them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for id in [behind, wiped] {
        let status = cluster.status(&http, id).await.expect("a running member");
        assert_ne!(
            status["role"],
            "leader",
            "member {id} leads without the old leader: {status}\n{}",
            cluster.logs()
        );
    }
    assert!(
        cluster.members[&wiped].stderr().contains("without voting"),
        "{}",
        cluster.logs()
    );
    let status = cluster.status(&http, wiped).await.unwrap();
    assert_eq!(status["votes_held"], true, "{status}");

    // The old leader comes back and every member ends with every acknowledged write.
    cluster.restart(leader);
    let now = cluster.leader(&http).await;
    for id in (1..=3).filter(|&id| id != now) {
        converges(&cluster, &http, id, now).await;
    }
    for id in 1..=3 {
        let state = state_of(&cluster.changes(&http, id).await);
        for i in 0..10 {
            assert!(
                state.contains_key(&format!("during-{i}")),
                "member {id}: {state:?}"
            );
        }
    }
    let status = cluster.status(&http, wiped).await.unwrap();
    assert_eq!(status["votes_held"], false, "{status}");
    // Caught up, it votes again: with the leader gone, the two others elect one of them.
    cluster.kill(now);
    let others: Vec<u64> = (1..=3).filter(|&id| id != now).collect();
    let next = cluster
        .leader_among(&http, &others, Duration::from_secs(20))
        .await;
    assert_ne!(next, now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_modify_writes_with_if_match_through_every_member_lose_no_update() {
    let cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    assert_eq!(
        put(&http, &cluster.url(leader), "counter", 0).await,
        Some(200)
    );
    let (per_member, each) = (2, 10);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 1..=3 {
        for _ in 0..per_member {
            let (http, url) = (http.clone(), cluster.url(id));
            tasks.spawn(async move {
                let mut done = 0;
                while done < each {
                    let now = get_json(&http, format!("{url}/api/v1/acked/counter")).await;
                    let n = now["value"].as_u64().unwrap();
                    let resp = http
                        .put(format!("{url}/api/v1/acked/counter"))
                        .header("if-match", now["version_id"].as_str().unwrap())
                        .json(&json!({ "value": n + 1 }))
                        .send()
                        .await
                        .unwrap();
                    match resp.status().as_u16() {
                        200 => done += 1,
                        412 => {}
                        other => panic!("{other}: {:?}", resp.text().await),
                    }
                }
            });
        }
    }
    tasks.join_all().await;
    let end = get_json(
        &http,
        format!("{}/api/v1/acked/counter", cluster.url(leader)),
    )
    .await;
    assert_eq!(end["value"], 3 * per_member * each, "{end}");
}
