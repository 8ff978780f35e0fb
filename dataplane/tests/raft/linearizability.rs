//! A linearizability check of single-key read/write/compare-and-set histories recorded while
//! members are killed and partitioned, the checker itself, and read-modify-writes with `If-Match`
//! through every member.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

use crate::common::client;
use crate::common::cluster::Cluster;
use crate::common::register::{CasRegister, Op, Ret};
use crate::support::{get_json, put};

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
