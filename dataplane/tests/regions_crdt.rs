//! CRDTs across real regions (`koru-dataplane` processes linked by cuttable TCP proxies): the
//! roadmap's examples through three regions; concurrent counter, set and map operations in
//! every region while links are cut and healed and regions are killed and restarted, checked by
//! a convergence checker replaying the acknowledged operation log; and a fourth region seeded
//! from another region's raw snapshot that joins the mesh and converges without conflicts and
//! without applying anything twice.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;
mod crdt_mesh;
mod region_mesh;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::client;
use crdt_mesh::{NS, PLAIN, assert_converged, counts, round};
use region_mesh::{Mesh, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn urls(mesh: &Mesh, names: &[&str]) -> Vec<(String, String)> {
    names.iter().map(|r| (r.to_string(), mesh.url(r))).collect()
}

async fn patch(http: &reqwest::Client, url: &str, key: &str, op: Value) -> Value {
    let resp = http
        .patch(format!("{url}/api/v1/rm/{key}"))
        .json(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "PATCH {key} {op}");
    resp.json().await.unwrap()
}

async fn put(http: &reqwest::Client, url: &str, key: &str, value: Value) {
    let resp = http
        .put(format!("{url}/api/v1/rm/{key}"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "PUT {key}");
}

/// Waits until every region of the mesh reads `key` as `want`; panics with what they read.
async fn everywhere(http: &reqwest::Client, mesh: &Mesh, key: &str, want: Value) {
    let names: Vec<String> = mesh.regions.keys().cloned().collect();
    let ok = eventually(Duration::from_secs(20), || {
        let (names, want) = (&names, &want);
        async move {
            for r in names {
                if crdt_mesh::read(http, &mesh.url(r), "rm", key).await != *want {
                    return false;
                }
            }
            true
        }
    })
    .await;
    if !ok {
        let mut got = String::new();
        for r in &names {
            got += &format!(
                "{r}: {} ",
                crdt_mesh::read(http, &mesh.url(r), "rm", key).await
            );
        }
        panic!(
            "{key}: expected {want} everywhere, got {got}\n{}",
            mesh.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_roadmap_examples_merge_through_three_real_regions() {
    let names = ["a", "b", "c"];
    let mut mesh = Mesh::start(&names, &[]).await;
    let http = client();
    let (a, b, c) = (mesh.url("a"), mesh.url("b"), mesh.url("c"));

    // "counters: node A +5, node B +3 → 9".
    put(&http, &a, "visits", json!({"$counter": 1})).await;
    everywhere(&http, &mesh, "visits", json!(1)).await;
    let inc = |by: i64| json!({"op": "increment", "by": by});
    let (ra, rb) = tokio::join!(
        patch(&http, &a, "visits", inc(5)),
        patch(&http, &b, "visits", inc(3))
    );
    assert!(ra["value"] == json!(6) || ra["value"] == json!(9), "{ra}");
    assert!(rb["value"] == json!(4) || rb["value"] == json!(9), "{rb}");
    everywhere(&http, &mesh, "visits", json!(9)).await;

    // A set ["a","b"], A adds "c", B adds "d".
    put(&http, &a, "tags", json!({"$set": ["a", "b"]})).await;
    everywhere(&http, &mesh, "tags", json!(["a", "b"])).await;
    let add = |v: &str| json!({"op": "add", "value": v});
    tokio::join!(
        patch(&http, &a, "tags", add("c")),
        patch(&http, &b, "tags", add("d"))
    );
    everywhere(&http, &mesh, "tags", json!(["a", "b", "c", "d"])).await;

    // With every link cut: a removes "a" while b adds it again (that add survives: add-wins),
    // and c removes "b" (every add of it observed: it is gone).
    for r in names {
        mesh.isolate(r, true);
    }
    let remove = |v: &str| json!({"op": "remove", "value": v});
    patch(&http, &a, "tags", remove("a")).await;
    patch(&http, &b, "tags", add("a")).await;
    patch(&http, &c, "tags", remove("b")).await;
    for r in names {
        mesh.isolate(r, false);
    }
    everywhere(&http, &mesh, "tags", json!(["a", "c", "d"])).await;

    // The roadmap's map form, json!({"count": Counter(1)}): fields merge one by one.
    put(
        &http,
        &a,
        "page",
        json!({"count": {"$counter": 1}, "title": "home"}),
    )
    .await;
    everywhere(&http, &mesh, "page", json!({"count": 1, "title": "home"})).await;
    mesh.kill("c");
    let field = |by: i64| json!({"op": "increment", "path": "count", "by": by});
    tokio::join!(
        patch(&http, &a, "page", field(5)),
        patch(&http, &b, "page", field(3)),
    );
    mesh.restart("c");
    patch(
        &http,
        &c,
        "page",
        json!({"op": "set", "path": "title", "value": "start"}),
    )
    .await;
    everywhere(&http, &mesh, "page", json!({"count": 9, "title": "start"})).await;

    // Merges are not conflicts.
    for r in names {
        for key in ["visits", "tags", "page"] {
            let got: Value = http
                .get(format!("{}/api/v1/rm/{key}/conflicts", mesh.url(r)))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(got["conflicts"], json!([]), "{r} {key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_crdt_operations_converge_through_cuts_kills_and_restarts() {
    let started = Instant::now();
    let names = ["a", "b", "c"];
    let mut mesh = Mesh::start(&names, &[]).await;
    let http = client();
    let all = urls(&mesh, &names);
    let ac = urls(&mesh, &["a", "c"]);
    let mut log = round(&all, 25, 1).await;
    // a and b cannot see each other.
    mesh.set_link("a", "b", false);
    mesh.set_link("b", "a", false);
    log.extend(round(&all, 25, 2).await);
    mesh.set_link("a", "b", true);
    mesh.set_link("b", "a", true);
    // c is cut off from everyone.
    mesh.isolate("c", true);
    log.extend(round(&all, 25, 3).await);
    mesh.isolate("c", false);
    // b is killed while it catches up with c (no operation is sent to it while it is down).
    tokio::time::sleep(Duration::from_millis(150)).await;
    mesh.kill("b");
    log.extend(round(&ac, 25, 4).await);
    mesh.restart("b");
    log.extend(round(&all, 25, 5).await);
    // A backlog for b, and b killed while it applies it.
    mesh.isolate("b", true);
    log.extend(round(&ac, 60, 6).await);
    mesh.isolate("b", false);
    tokio::time::sleep(Duration::from_millis(40)).await;
    mesh.kill("b");
    mesh.restart("b");
    log.extend(round(&all, 10, 7).await);
    let (acked, unanswered) = counts(&log);
    assert!(acked > 350, "only {acked} operations acknowledged");
    assert_eq!(unanswered, 0, "operations without an answer");
    let written = started.elapsed();

    if let Err(e) = assert_converged(&http, &all, &log).await {
        for r in names {
            eprintln!("{r}: {}", mesh.status(&http, r).await);
        }
        panic!("{e}\n{}", mesh.logs());
    }
    let crdt_ops = log.iter().filter(|o| o.ns == NS).count();
    eprintln!(
        "{acked} operations ({crdt_ops} CRDT) written in {written:?}, converged and checked \
         after {:?}",
        started.elapsed()
    );
}

/// The records `url` wrote itself after LSN `since` (its raw, local-origin feed).
async fn local_records(http: &reqwest::Client, url: &str, mut since: u64) -> u64 {
    let mut n = 0;
    loop {
        let page: Value = http
            .get(format!(
                "{url}/api/v1/changes?since={since}&limit=10000&raw=true&origin=local"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        n += page["changes"].as_array().unwrap().len() as u64;
        let (next, last) = (
            page["next_since"].as_u64().unwrap(),
            page["last_lsn"].as_u64().unwrap(),
        );
        if next >= last {
            return n;
        }
        since = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_region_seeded_from_a_snapshot_joins_and_converges_without_conflicts_or_repeats() {
    let started = Instant::now();
    let names = ["a", "b", "c", "d"];
    // d is every region's peer from the start, but down until it is seeded.
    let mut mesh = Mesh::start_later(&names, &[], &["d"]).await;
    let http = client();
    let abc = urls(&mesh, &["a", "b", "c"]);
    let mut log = round(&abc, 60, 1).await;

    // While a's snapshot is read and imported into d, every other region keeps writing.
    let meanwhile = {
        let abc = abc.clone();
        tokio::spawn(async move { round(&abc, 40, 2).await })
    };
    mesh.start_bare("d");
    let (a, d) = (mesh.url("a"), mesh.url("d"));
    let snapshot = http
        .get(format!("{a}/api/v1/snapshot?raw=true&internal=true"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = snapshot
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let header = &lines[0];
    let source_lsn = header["lsn"].as_u64().unwrap();
    // Where a had got to in each other region's feed: d resumes each origin from there.
    let mut resume: BTreeMap<String, u64> = lines[1..]
        .iter()
        .filter(|l| l["namespace"] == json!("_koru_region"))
        .filter_map(|l| {
            let peer = l["key"].as_str()?.strip_prefix("watermark/")?;
            Some((peer.to_owned(), l["value"]["lsn"].as_u64()?))
        })
        .collect();
    resume.insert("a".into(), source_lsn);
    let imported_at = Instant::now();
    let resp = http
        .post(format!("{d}/admin/v1/import?source_region=a"))
        .header("content-type", "application/x-ndjson")
        .body(snapshot.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json().await.unwrap();
    let import_took = imported_at.elapsed();
    assert_eq!(answer["source_lsn"], json!(source_lsn), "{answer}");
    assert!(answer["imported"].as_u64().unwrap() > 10, "{answer}");
    // A region cannot seed from itself, nor while it streams.
    let refused = http
        .post(format!("{d}/admin/v1/import?source_region=d"))
        .header("content-type", "application/x-ndjson")
        .body(snapshot.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let refused = http
        .post(format!("{a}/admin/v1/import?source_region=b"))
        .header("content-type", "application/x-ndjson")
        .body(snapshot)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    log.extend(meanwhile.await.unwrap());

    // d restarts with its peers and takes writes like every region.
    mesh.kill("d");
    mesh.restart("d");
    let all = urls(&mesh, &names);
    // While it catches up, d cannot read b for a while, then is killed and restarted.
    mesh.set_link("d", "b", false);
    log.extend(round(&all, 30, 3).await);
    mesh.set_link("d", "b", true);
    tokio::time::sleep(Duration::from_millis(40)).await;
    mesh.kill("d");
    mesh.restart("d");
    log.extend(round(&all, 10, 4).await);
    let (acked, unanswered) = counts(&log);
    assert_eq!(unanswered, 0, "operations without an answer");
    if let Err(e) = assert_converged(&http, &all, &log).await {
        for r in names {
            eprintln!("{r}: {}", mesh.status(&http, r).await);
        }
        panic!("{e}\n{}", mesh.logs());
    }

    // d read each peer's feed only past what the snapshot held.
    let status = mesh.status(&http, "d").await;
    for p in status["peers"].as_array().unwrap() {
        let peer = p["name"].as_str().unwrap();
        let from = resume[peer];
        assert!(from > 0, "the snapshot held nothing of {peer}");
        let after = local_records(&http, &mesh.url(peer), from).await;
        let whole = local_records(&http, &mesh.url(peer), 0).await;
        let read = p["records_applied"].as_u64().unwrap();
        assert!(
            read <= after && after < whole,
            "{peer}: d read {read} records, {after} follow the snapshot's {from}, {whole} in all"
        );
    }
    // What d imported is never streamed back: its own records hold only its own keys.
    let feed: Value = http
        .get(format!(
            "{d}/api/v1/changes?raw=true&origin=local&limit=10000"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for c in feed["changes"].as_array().unwrap() {
        for op in c["ops"].as_array().unwrap() {
            let key = op["key"].as_str().unwrap();
            if op["namespace"] == json!(PLAIN) {
                assert!(key.starts_with("p-d-"), "d sends back {key}: {c}");
            }
        }
    }
    eprintln!(
        "snapshot of a at LSN {source_lsn}: {} keys imported into d in {import_took:?}; {acked} \
         operations in four regions converged and checked after {:?}",
        answer["imported"],
        started.elapsed()
    );
}
