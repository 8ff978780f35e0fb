//! Multi-region through real `koru-dataplane` processes linked by cuttable TCP proxies: writes in
//! every region while links are cut and healed and a region is killed mid-stream, then every
//! region equal, the last writer by HLC kept, every acknowledged write either kept or listed as
//! a conflict's loser, nothing applied twice; home-region routing; session tokens and reads
//! exactly as of a time.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;
mod region_mesh;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{client, micros};
use region_mesh::{Mesh, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

const NS: &str = "app";
const KEYS: u64 = 8;

/// An acknowledged write: its region, key, value (null for a delete) and HLC time.
#[derive(Debug, Clone)]
struct Ack {
    region: String,
    key: String,
    value: Value,
    micros: i64,
}

/// Writes `n` values to random keys of `region`, returning the acknowledged ones.
async fn writes(http: reqwest::Client, url: String, region: String, n: u64, seed: u64) -> Vec<Ack> {
    let mut acks = Vec::new();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = format!("k{}", (x >> 33) % KEYS);
        // One write in eight is a delete.
        let (value, request) = if (x >> 20).is_multiple_of(8) {
            (Value::Null, http.delete(format!("{url}/api/v1/{NS}/{key}")))
        } else {
            let value = json!({"r": region, "i": seed * 1000 + i});
            let put = http.put(format!("{url}/api/v1/{NS}/{key}"));
            (value.clone(), put.json(&json!({ "value": value })))
        };
        let resp = request.send().await;
        if let Ok(resp) = resp
            && resp.status().is_success()
        {
            let body: Value = resp.json().await.unwrap();
            acks.push(Ack {
                region: region.clone(),
                key,
                value,
                micros: micros(body["timestamp"].as_str().unwrap()),
            });
        }
    }
    acks
}

/// A round of concurrent writes in `regions`.
async fn round(mesh: &Mesh, regions: &[&str], n: u64, seed: u64) -> Vec<Ack> {
    let http = client();
    let tasks: Vec<_> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            tokio::spawn(writes(
                http.clone(),
                mesh.url(r),
                r.to_string(),
                n,
                seed * 10 + i as u64,
            ))
        })
        .collect();
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    acks
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let resp = http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// The convergence checker: replays the acknowledged writes and checks every server in `urls`
/// (`(region, base URL)`; several members of one region may be listed) holds, for every key, the
/// write with the greatest (time, region); that each region's last write of a key that lost is
/// listed as a conflict's loser somewhere; and that no value was applied twice anywhere.
async fn assert_converged(
    http: &reqwest::Client,
    urls: &[(String, String)],
    acks: &[Ack],
) -> Result<(), String> {
    let mut winners: BTreeMap<String, Ack> = BTreeMap::new();
    for a in acks {
        let w = winners.entry(a.key.clone()).or_insert_with(|| a.clone());
        if (a.micros, &a.region) > (w.micros, &w.region) {
            *w = a.clone();
        }
    }
    let read = |url: &str, key: &str| {
        let url = format!("{url}/api/v1/{NS}/{key}");
        async move {
            // A deleted key reads as absent.
            get_json(http, &url)
                .await
                .map_or(Value::Null, |g| g["value"].clone())
        }
    };
    let converged = eventually(Duration::from_secs(60), || {
        let (winners, read) = (&winners, &read);
        async move {
            for (key, w) in winners {
                for (_, url) in urls {
                    if read(url, key).await != w.value {
                        return false;
                    }
                }
            }
            true
        }
    })
    .await;
    if !converged {
        let mut report = String::from("the regions did not converge on the last writer:\n");
        for (key, w) in &winners {
            for (r, url) in urls {
                let got = read(url, key).await;
                report += &format!("{key} in {r}: {got}, expected {} ({w:?})\n", w.value);
            }
        }
        return Err(report);
    }

    let mut conflicts: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for key in winners.keys() {
        for (_, url) in urls {
            let got = get_json(http, &format!("{url}/api/v1/{NS}/{key}/conflicts"))
                .await
                .ok_or("no conflicts list")?;
            conflicts.entry(key.clone()).or_default().extend(
                got["conflicts"]
                    .as_array()
                    .ok_or("no array")?
                    .iter()
                    .cloned(),
            );
        }
    }
    let listed: usize = conflicts.values().map(Vec::len).sum();
    if listed == 0 {
        return Err(format!("concurrent writes to {KEYS} keys made no conflict"));
    }
    let mut last: BTreeMap<(String, String), Ack> = BTreeMap::new();
    for a in acks {
        let e = last
            .entry((a.region.clone(), a.key.clone()))
            .or_insert_with(|| a.clone());
        if a.micros > e.micros {
            *e = a.clone();
        }
    }
    for ((region, key), a) in &last {
        if a.value == winners[key].value {
            continue;
        }
        let found = conflicts[key]
            .iter()
            .any(|c| c["loser"]["region"] == json!(region) && c["loser"]["value"] == a.value);
        if !found {
            return Err(format!(
                "{region}'s last write of {key} ({}) lost but is not listed",
                a.value
            ));
        }
    }

    for key in winners.keys() {
        for (r, url) in urls {
            let h = get_json(http, &format!("{url}/api/v1/{NS}/{key}/history"))
                .await
                .ok_or("no history")?;
            let mut seen = std::collections::BTreeSet::new();
            for v in h["versions"].as_array().ok_or("no versions")? {
                if v["deleted"] == json!(true) {
                    continue;
                }
                if !seen.insert(v["value"].to_string()) {
                    return Err(format!("{key} in {r}: {} applied twice", v["value"]));
                }
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_regions_converge_through_cuts_and_a_restart_and_lose_no_acknowledged_write() {
    let names = ["a", "b", "c"];
    let mut mesh = Mesh::start(&names, &[]).await;
    let http = client();
    let mut acks = round(&mesh, &names, 30, 1).await;
    // a and b cannot see each other.
    mesh.set_link("a", "b", false);
    mesh.set_link("b", "a", false);
    acks.extend(round(&mesh, &names, 30, 2).await);
    mesh.set_link("a", "b", true);
    mesh.set_link("b", "a", true);
    // c is cut off from everyone.
    mesh.isolate("c", true);
    acks.extend(round(&mesh, &names, 30, 3).await);
    mesh.isolate("c", false);
    // b is killed while it catches up with c (no writes are sent to it while it is down).
    tokio::time::sleep(Duration::from_millis(150)).await;
    mesh.kill("b");
    acks.extend(round(&mesh, &["a", "c"], 30, 4).await);
    mesh.restart("b");
    acks.extend(round(&mesh, &names, 30, 5).await);
    // A backlog for b, and b killed while it applies it: restarted, it resumes from its
    // watermark and applies nothing twice.
    mesh.isolate("b", true);
    acks.extend(round(&mesh, &["a", "c"], 100, 6).await);
    mesh.isolate("b", false);
    tokio::time::sleep(Duration::from_millis(40)).await;
    mesh.kill("b");
    mesh.restart("b");
    acks.extend(round(&mesh, &names, 10, 7).await);
    assert!(acks.len() > 400, "only {} writes acknowledged", acks.len());

    let urls: Vec<(String, String)> = names.iter().map(|r| (r.to_string(), mesh.url(r))).collect();
    if let Err(e) = assert_converged(&http, &urls, &acks).await {
        for r in names {
            eprintln!("{r}: {}", mesh.status(&http, r).await);
        }
        panic!("{e}\n{}", mesh.logs());
    }

    // The status shows every link streaming.
    for r in names {
        let s = mesh.status(&http, r).await;
        assert_eq!(s["region"], json!(r));
        let peers = s["peers"].as_array().unwrap();
        assert_eq!(peers.len(), 2);
        for p in peers {
            assert_eq!(p["state"], json!("streaming"), "{r}: {s}");
            assert!(p["applied_lsn"].as_u64().unwrap() > 0, "{r}: {s}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn home_regions_route_writes_and_reads_wait_for_sessions_and_times() {
    let mesh = Mesh::start(&["a", "b"], &[]).await;
    let http = client();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (a, b) = (mesh.url("a"), mesh.url("b"));

    // A policy set in a replicates to b; then b sends the namespace's writes home.
    let policy = json!({"mode": "home_region", "home": "a"});
    let resp = http
        .put(format!("{a}/admin/v1/namespaces/pinned/policy"))
        .json(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let replicated = eventually(Duration::from_secs(10), || {
        let (http, b, policy) = (&http, &b, &policy);
        async move {
            get_json(http, &format!("{b}/admin/v1/namespaces/pinned/policy")).await
                == Some(policy.clone())
        }
    })
    .await;
    assert!(replicated, "{}", mesh.logs());
    let resp = no_redirects
        .put(format!("{b}/api/v1/pinned/x?w=1"))
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    let home = format!("http://{}", mesh.links[&("b".into(), "a".into())].addr);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("{home}/api/v1/pinned/x?w=1")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_region");
    assert_eq!(body["error"]["home_region"], "a");
    assert_eq!(body["error"]["endpoint"], json!(home));
    let resp = http
        .put(format!("{a}/api/v1/pinned/x"))
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A home no region knows: 421 without a Location.
    http.put(format!("{a}/admin/v1/namespaces/elsewhere/policy"))
        .json(&json!({"mode": "home_region", "home": "zz"}))
        .send()
        .await
        .unwrap();
    let resp = http
        .put(format!("{a}/api/v1/elsewhere/x"))
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(resp.headers().get("location").is_none());

    // Read-your-writes in the other region with the session token.
    for i in 0..20 {
        let resp = http
            .put(format!("{a}/api/v1/{NS}/s{i}"))
            .json(&json!({"value": i}))
            .send()
            .await
            .unwrap();
        let session = resp.headers()["x-koru-session"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(session.starts_with("a:"), "{session}");
        let got: Value = http
            .get(format!("{b}/api/v1/{NS}/s{i}"))
            .header("x-koru-session", &session)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["value"], json!(i), "session {session}: {got}");
    }

    // Reads exactly as of a time, in the other region.
    let put = |v: i64| {
        let (http, a) = (http.clone(), a.clone());
        async move {
            let body: Value = http
                .put(format!("{a}/api/v1/{NS}/t"))
                .json(&json!({ "value": v }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["timestamp"].as_str().unwrap().to_owned()
        }
    };
    let t1 = put(1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t2 = put(2).await;
    let read_at = |at: String| {
        let (http, b) = (http.clone(), b.clone());
        async move {
            http.get(format!("{b}/api/v1/{NS}/t"))
                .header("x-koru-read-at", at)
                .header("x-koru-max-wait-ms", "5000")
                .send()
                .await
                .unwrap()
        }
    };
    let r1: Value = read_at(t1.clone()).await.json().await.unwrap();
    if r1["value"] != json!(1) {
        let h = get_json(&http, &format!("{b}/api/v1/{NS}/t/history")).await;
        let f = get_json(&http, &format!("{b}/api/v1/changes?raw=true")).await;
        panic!("t1 {t1} t2 {t2}: {r1} history {h:?} feed {f:?}");
    }
    assert_eq!(r1["value"], json!(1), "{r1}");
    let r2: Value = read_at(t2.clone()).await.json().await.unwrap();
    assert_eq!(r2["value"], json!(2));
    let before = common::micros(&t1) - 1;
    let before = chrono::DateTime::from_timestamp_micros(before)
        .unwrap()
        .to_rfc3339();
    assert_eq!(read_at(before).await.status(), StatusCode::NOT_FOUND);

    // With the link cut, b cannot promise the present: 503 replica_behind.
    mesh.set_link("b", "a", false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = chrono::Utc::now().to_rfc3339();
    let resp = http
        .get(format!("{b}/api/v1/{NS}/t"))
        .header("x-koru-read-at", now)
        .header("x-koru-max-wait-ms", "300")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "replica_behind");
    mesh.set_link("b", "a", true);

    // The raw local-origin feed leaves out what b applied, and renders registers without raw.
    let feed: Value = get_json(
        &http,
        &format!("{b}/api/v1/changes?raw=true&origin=local&limit=10000"),
    )
    .await
    .unwrap();
    for c in feed["changes"].as_array().unwrap() {
        for op in c["ops"].as_array().unwrap() {
            assert_ne!(
                op["namespace"],
                json!(NS),
                "b wrote nothing in {NS} itself: {c}"
            );
        }
    }
    assert!(feed["closed_time"].is_string(), "{feed}");
    let feed: Value = get_json(&http, &format!("{b}/api/v1/changes?limit=10000"))
        .await
        .unwrap();
    let rendered = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["ops"].as_array().unwrap().clone())
        .find(|op| op["namespace"] == json!(NS) && op["key"] == json!("t"))
        .unwrap();
    assert!(rendered["value"].is_number(), "{rendered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_auth_on_the_region_token_opens_the_raw_feed_and_nothing_else() {
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    const TOKEN: &str = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let dir = tempfile::tempdir().unwrap();
    let public = SigningKey::from_bytes(&[5; 32])
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let key = dir.path().join("public.pem");
    std::fs::write(&key, public).unwrap();
    let token = dir.path().join("region-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let (key, token) = (key.display().to_string(), token.display().to_string());
    let extra = [
        "--auth-public-key",
        key.as_str(),
        "--cluster-id",
        "c-1",
        "--region-token-file",
        token.as_str(),
    ];
    let mesh = Mesh::start(&["a", "b"], &extra).await;
    let http = client();
    let a = mesh.url("a");
    let feed = format!("{a}/api/v1/changes?raw=true&origin=local");
    let status = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status() };
    assert_eq!(status(http.get(&feed)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(http.get(&feed).bearer_auth("not-the-token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(http.get(&feed).bearer_auth(TOKEN)).await,
        StatusCode::OK
    );
    // The region token is no data-plane credential.
    let key_url = format!("{a}/api/v1/{NS}/k");
    assert_eq!(
        status(http.get(&key_url).bearer_auth(TOKEN)).await,
        StatusCode::UNAUTHORIZED
    );
    let regions = format!("{a}/admin/v1/regions");
    assert_eq!(
        status(http.get(&regions).bearer_auth(TOKEN)).await,
        StatusCode::UNAUTHORIZED
    );
    // The streams present it: each region has read a page of the other (its lag is set once a
    // round succeeds; rounds before the other region listened failed).
    let streaming = eventually(Duration::from_secs(10), || {
        let (http, mesh) = (&http, &mesh);
        async move {
            let mut all = true;
            for r in ["a", "b"] {
                let m = http
                    .get(format!("{}/metrics", mesh.url(r)))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                all &= m.lines().any(|l| l.starts_with("koru_region_lag_seconds{"));
            }
            all
        }
    })
    .await;
    assert!(streaming, "{}", mesh.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_raft_region_streams_from_its_leader_and_resumes_from_the_watermark_after_failover() {
    use common::cluster::{Cluster, free_port};
    use region_mesh::Proxy;
    let http = client();
    // s is a single node; r is a three-member Raft group. Each reads the other through a proxy.
    let s_port = free_port();
    let r_reads_s = Proxy::start(format!("127.0.0.1:{s_port}").parse().unwrap()).await;
    let s_reads_r = Proxy::start(format!("127.0.0.1:{s_port}").parse().unwrap()).await;
    let s_peer = format!("s=http://{}", r_reads_s.addr);
    let mut r = Cluster::start_with(3, 3, &["--region", "r", "--region-peer", &s_peer]);
    let s_dir = tempfile::tempdir().unwrap();
    let r_peer = format!("r=http://{}", s_reads_r.addr);
    let s = common::Server::try_start_at(
        s_dir.path(),
        &format!("127.0.0.1:{s_port}"),
        &["--region", "s", "--region-peer", &r_peer],
        &[],
    )
    .unwrap();
    let member_addr = |r: &Cluster, id: u64| -> std::net::SocketAddr {
        r.url(id).trim_start_matches("http://").parse().unwrap()
    };
    let leader = r.leader(&http).await;
    s_reads_r.retarget(member_addr(&r, leader));
    let streaming = |url: String| {
        let http = http.clone();
        async move {
            eventually(Duration::from_secs(20), || {
                let (http, url) = (&http, &url);
                async move {
                    get_json(http, &format!("{url}/admin/v1/regions"))
                        .await
                        .is_some_and(|s| s["peers"][0]["state"] == json!("streaming"))
                }
            })
            .await
        }
    };
    assert!(streaming(r.url(leader)).await, "{}", r.logs());
    assert!(streaming(s.url.clone()).await, "{}", s.stderr());

    let both = |r_url: String, seed: u64| {
        let (http, s_url) = (http.clone(), s.url.clone());
        async move {
            let a = tokio::spawn(writes(http.clone(), r_url, "r".into(), 40, seed));
            let b = tokio::spawn(writes(http, s_url, "s".into(), 40, seed + 1));
            let mut acks = a.await.unwrap();
            acks.extend(b.await.unwrap());
            acks
        }
    };
    let mut acks = both(r.url(leader), 10).await;
    let urls = |r: &Cluster| -> Vec<(String, String)> {
        let mut urls: Vec<(String, String)> = r
            .running()
            .into_iter()
            .map(|id| ("r".to_string(), r.url(id)))
            .collect();
        urls.push(("s".into(), s.url.clone()));
        urls
    };
    if let Err(e) = assert_converged(&http, &urls(&r), &acks).await {
        panic!("{e}\n{}\n{}", r.logs(), s.stderr());
    }
    let status: Value = get_json(&http, &format!("{}/admin/v1/regions", r.url(leader)))
        .await
        .unwrap();
    assert_eq!(status["peers"][0]["state"], json!("streaming"), "{status}");
    assert!(
        status["peers"][0]["applied_lsn"].as_u64().unwrap() > 0,
        "{status}"
    );

    // The leader dies: a new one resumes r's stream from the replicated watermark, and s reads
    // r's feed from a surviving member.
    r.kill(leader);
    let leader = r.leader(&http).await;
    s_reads_r.retarget(member_addr(&r, leader));
    assert!(streaming(r.url(leader)).await, "{}", r.logs());
    acks.extend(both(r.url(leader), 20).await);
    if let Err(e) = assert_converged(&http, &urls(&r), &acks).await {
        panic!("{e}\n{}\n{}", r.logs(), s.stderr());
    }
    let status: Value = get_json(&http, &format!("{}/admin/v1/regions", r.url(leader)))
        .await
        .unwrap();
    assert_eq!(status["peers"][0]["state"], json!("streaming"), "{status}");
}
