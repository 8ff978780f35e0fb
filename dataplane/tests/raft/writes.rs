//! What the group does with writes: the leader archives (and archiving carries on after a
//! failover), followers redirect writes to the leader, concurrent writes batched into one entry
//! each get their own answer, and a rewind committed through the log.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::cluster::Cluster;
use crate::common::{self, Server, client};
use crate::support::{converges, get_json, post_json, put};

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

    // Who wrote it travels in the entries: a write and a rewind, each asked of a follower,
    // read back with their authors and operations on every member.
    let author = koru_dataplane_api::data::AUTHOR_HEADER;
    let put = http
        .put(format!("{}/api/v1/acked/u:z", cluster.url(follower)))
        .header(author, "ada@example.com")
        .json(&json!({"value": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let rewind = http
        .post(format!("{}/admin/rewind", cluster.url(follower)))
        .header(author, "root")
        .json(&ask(false, None))
        .send()
        .await
        .unwrap();
    assert_eq!(rewind.status(), 200, "{:?}", rewind.text().await);
    for id in 1..=3 {
        let url = format!("{}/api/v1/acked/u:z/history?meta=true", cluster.url(id));
        let history = get_json(&http, url).await;
        let seen: Vec<(Value, Value)> = history["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["author"].clone(), v["op"].clone()))
            .collect();
        assert_eq!(
            seen,
            [
                (json!("ada@example.com"), json!("put")),
                (json!("root"), json!("rewind"))
            ],
            "member {id}: {history}"
        );
    }
}
