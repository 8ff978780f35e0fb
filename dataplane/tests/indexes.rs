//! Secondary value indexes over HTTP against a real `koru-dataplane` process: defining, listing and
//! dropping them, lookups now and as of a moment, unique refusals (single writes, batches, racing
//! writers), an online build under writes, and restarts (clean and SIGKILL mid-build) after
//! which every lookup equals a naive scan of the keys' histories.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::SecondsFormat;
use serde_json::{Value, json};

use common::{Server, client, micros};

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn put(
    http: &reqwest::Client,
    server: &Server,
    ns: &str,
    key: &str,
    value: Value,
) -> (u16, Value) {
    let resp = http
        .put(server.api(&format!("/{ns}/{key}")))
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn batch(http: &reqwest::Client, server: &Server, writes: Value) -> (u16, Value) {
    let resp = http
        .post(server.api("/batch"))
        .json(&json!({ "writes": writes }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create_index(
    http: &reqwest::Client,
    server: &Server,
    ns: &str,
    body: Value,
) -> (u16, Value) {
    let resp = http
        .post(server.api(&format!("/{ns}/indexes")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn index_list(http: &reqwest::Client, server: &Server, ns: &str) -> Vec<Value> {
    let body: Value = http
        .get(server.api(&format!("/{ns}/indexes")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["indexes"].as_array().unwrap().clone()
}

/// The keys `GET /by/{index}/{value}` finds, as of `at` when given.
async fn by(
    http: &reqwest::Client,
    server: &Server,
    ns: &str,
    index: &str,
    value: &str,
    at: Option<i64>,
) -> Vec<String> {
    let mut url = server.api(&format!("/{ns}/by/{index}/{value}"));
    if let Some(t) = at {
        url = format!("{url}?at={}", rfc3339(t));
    }
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let body: Value = resp.json().await.unwrap();
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_status(
    http: &reqwest::Client,
    server: &Server,
    ns: &str,
    name: &str,
    want: &str,
) -> Value {
    for _ in 0..600 {
        let list = index_list(http, server, ns).await;
        if let Some(ix) = list.iter().find(|i| i["name"] == name)
            && ix["status"] == want
        {
            return ix.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("index {name} never became {want}");
}

/// The keys whose `field` was `value` at `at` according to the histories.
fn naive(
    h: &BTreeMap<String, Vec<(i64, Option<Value>)>>,
    field: &str,
    value: &str,
    at: i64,
) -> Vec<String> {
    h.iter()
        .filter(|(_, versions)| {
            let then = versions.iter().rev().find(|(t, _)| *t <= at);
            then.and_then(|(_, v)| v.as_ref())
                .is_some_and(|v| v[field] == json!(value))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test]
async fn indexes_are_defined_listed_looked_up_as_of_a_moment_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    let (_, first) = put(
        &http,
        &server,
        "users",
        "alice",
        json!({"city": "paris", "age": 30}),
    )
    .await;
    let t1 = micros(first["timestamp"].as_str().unwrap());
    put(
        &http,
        &server,
        "users",
        "bob",
        json!({"city": "oslo", "age": 30.0}),
    )
    .await;
    let (status, ix) = create_index(&http, &server, "users", json!({"field": "city"})).await;
    assert_eq!(status, 201, "{ix}");
    assert_eq!(
        (
            ix["name"].as_str(),
            ix["kind"].as_str(),
            ix["unique"].as_bool()
        ),
        (Some("city"), Some("value"), Some(false))
    );
    let (status, again) = create_index(&http, &server, "users", json!({"field": "city"})).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("already_exists"))
    );
    let (status, _) = create_index(
        &http,
        &server,
        "users",
        json!({"field": "age", "name": "by_age"}),
    )
    .await;
    assert_eq!(status, 201);
    wait_status(&http, &server, "users", "city", "ready").await;
    let aged = wait_status(&http, &server, "users", "by_age", "ready").await;
    assert_eq!(
        (aged["entries"].as_u64(), aged["distinct_values"].as_u64()),
        (Some(2), Some(1)),
        "30 and 30.0 are one value"
    );
    let names: Vec<_> = index_list(&http, &server, "users")
        .await
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, [json!("by_age"), json!("city")]);

    let (_, moved) = put(
        &http,
        &server,
        "users",
        "alice",
        json!({"city": "oslo", "age": 31}),
    )
    .await;
    let t3 = micros(moved["timestamp"].as_str().unwrap());
    assert_eq!(
        by(&http, &server, "users", "city", "oslo", None).await,
        ["alice", "bob"]
    );
    assert_eq!(
        by(&http, &server, "users", "city", "paris", None).await,
        Vec::<String>::new()
    );
    assert_eq!(
        by(&http, &server, "users", "city", "paris", Some(t1)).await,
        ["alice"]
    );
    assert_eq!(
        by(&http, &server, "users", "city", "paris", Some(t3 - 1)).await,
        ["alice"]
    );
    assert_eq!(
        by(&http, &server, "users", "city", "paris", Some(t1 - 1)).await,
        Vec::<String>::new()
    );
    // The path value also matches as a number.
    assert_eq!(
        by(&http, &server, "users", "by_age", "30", None).await,
        ["bob"]
    );
    assert_eq!(
        by(&http, &server, "users", "by_age", "30", Some(t1)).await,
        ["alice"]
    );
    let resp = http
        .get(server.api("/users/by/city/oslo"))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["results"][0]["value"],
        json!({"city": "oslo", "age": 31})
    );
    assert!(
        body["results"][0]["version_id"].is_string() && body["results"][0]["timestamp"].is_string()
    );
    let resp = http
        .get(server.api("/users/by/nope/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Keys named like the routes: "by" is an ordinary key, "indexes" is reserved.
    assert_eq!(
        put(&http, &server, "users", "by", json!({"city": "rome"}))
            .await
            .0,
        200
    );
    let resp = http.get(server.api("/users/by")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .get(server.api("/users/by/history"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    // PUT /users/indexes is the index route's (405); a batch names the key and is refused.
    assert_eq!(
        put(&http, &server, "users", "indexes", json!(1)).await.0,
        405
    );
    let (status, body) = batch(
        &http,
        &server,
        json!([{"namespace": "users", "key": "indexes", "value": 1}]),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_name"))
    );

    let resp = http
        .delete(server.api("/users/indexes/city"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = http
        .delete(server.api("/users/indexes/city"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(index_list(&http, &server, "users").await.len(), 1);
}

#[tokio::test]
async fn unique_indexes_refuse_duplicates_in_writes_batches_and_races() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    let (status, _) = create_index(
        &http,
        &server,
        "users",
        json!({"field": "email", "unique": true}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        put(&http, &server, "users", "a", json!({"email": "x@"}))
            .await
            .0,
        200
    );
    let (status, body) = put(&http, &server, "users", "b", json!({"email": "x@"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("unique_violation")),
        "{body}"
    );
    // A batch moving the value from a to b is fine; one giving two keys a value is refused whole.
    let (status, _) = batch(
        &http,
        &server,
        json!([
            {"namespace": "users", "key": "a", "delete": true},
            {"namespace": "users", "key": "b", "value": {"email": "x@"}},
        ]),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = batch(
        &http,
        &server,
        json!([
            {"namespace": "users", "key": "c", "value": {"email": "y@"}},
            {"namespace": "users", "key": "d", "value": {"email": "y@"}},
        ]),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("unique_violation"))
    );
    assert_eq!(
        http.get(server.api("/users/c"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "nothing written"
    );
    // Racing writers of one value: exactly one wins.
    let racers: Vec<_> = (0..24)
        .map(|i| {
            let (http, url) = (http.clone(), server.api(&format!("/users/r{i}")));
            tokio::spawn(async move {
                http.put(url)
                    .json(&json!({"value": {"email": "race@"}}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in racers {
        statuses.push(r.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 409),
        "{statuses:?}"
    );
    assert_eq!(
        by(&http, &server, "users", "email", "race@", None)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn an_online_build_under_writes_and_a_sigkill_mid_build_leave_exact_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let slow = [
        ("KORU_FAULT_INJECTION".to_string(), "1".to_string()),
        ("KORU_INDEX_BUILD_PAUSE_MS".to_string(), "100".to_string()),
    ];
    let mut server = Server::start_with_env(dir.path(), &[], &slow);
    let http = client();
    let cities = ["paris", "oslo", "rome", "lima", "kyiv"];
    let doc = |i: usize, round: usize| json!({"city": cities[(i + round) % 5], "tag": format!("t{}", i % 3), "i": i});
    let n = 3000;
    let keys: Vec<String> = (0..n).map(|i| format!("d{i:04}")).collect();
    let mut moments = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let writes: Vec<Value> = chunk
            .iter()
            .map(|&i| json!({"namespace": "docs", "key": keys[i], "value": doc(i, 0)}))
            .collect();
        let (status, body) = batch(&http, &server, json!(writes)).await;
        assert_eq!(status, 200, "{body}");
        moments.push(micros(body["timestamp"].as_str().unwrap()));
    }
    let (status, ix) = create_index(&http, &server, "docs", json!({"field": "city"})).await;
    assert_eq!(status, 201);
    assert_eq!(ix["status"], "building", "{ix}");
    assert_eq!(ix["progress"]["total"].as_u64(), Some(n as u64));
    // Writes go on during the build: none waits for it.
    let mut saw_progress = false;
    for round in 1..=60usize {
        let i = (round * 37) % n;
        let (status, body) = put(&http, &server, "docs", &keys[i], doc(i, round)).await;
        assert_eq!(status, 200);
        moments.push(micros(body["timestamp"].as_str().unwrap()));
        let list = index_list(&http, &server, "docs").await;
        saw_progress |=
            list[0]["status"] == "building" && list[0]["progress"]["indexed"].as_u64() > Some(0);
        if round % 7 == 0 {
            let resp = http
                .delete(server.api(&format!("/docs/{}", keys[i + 1])))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    }
    assert!(
        saw_progress,
        "the build's progress was visible while it ran"
    );
    wait_status(&http, &server, "docs", "city", "ready").await;
    let verify = |server: &Server, moments: &[i64]| {
        let moments = moments.to_vec();
        let url = server.url.clone();
        let (http, keys) = (http.clone(), keys.clone());
        async move { verify_lookups(&http, &url, &keys, &moments).await }
    };
    verify(&server, &moments).await;

    // A second index, killed mid-build while a writer runs; after restart both equal the history.
    let (status, _) = create_index(&http, &server, "docs", json!({"field": "tag"})).await;
    assert_eq!(status, 201);
    let writer = {
        let (http, url, keys) = (http.clone(), server.api("/docs"), keys.clone());
        tokio::spawn(async move {
            for round in 0.. {
                let i = (round * 53) % keys.len();
                let body =
                    json!({"value": {"city": "oslo", "tag": format!("t{}", round % 4), "i": i}});
                if http
                    .put(format!("{url}/{}", keys[i]))
                    .json(&body)
                    .send()
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let list = index_list(&http, &server, "docs").await;
    assert_eq!(
        list.iter().find(|i| i["name"] == "tag").unwrap()["status"],
        "building"
    );
    server.kill();
    writer.await.unwrap();
    let server = Server::start(dir.path(), &[]);
    let list = index_list(&http, &server, "docs").await;
    assert!(
        list.iter().all(|i| i["status"] == "ready"),
        "built at open: {list:?}"
    );
    verify(&server, &moments).await;
}

/// Checks every city and tag lookup, now and at each moment, against the keys' histories.
async fn verify_lookups(http: &reqwest::Client, url: &str, keys: &[String], moments: &[i64]) {
    let server = ServerUrl(url.to_string());
    let h = histories_at(http, &server, keys).await;
    let indexed: Vec<Value> = {
        let body: Value = http
            .get(format!("{url}/api/v1/docs/indexes"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["indexes"].as_array().unwrap().clone()
    };
    for ix in indexed {
        let field = ix["field"].as_str().unwrap();
        let values: &[&str] = if field == "city" {
            &["paris", "oslo", "rome", "lima", "kyiv"]
        } else {
            &["t0", "t1", "t2", "t3"]
        };
        for v in values {
            for at in moments.iter().map(|&t| Some(t)).chain([None]) {
                let mut lookup = format!("{url}/api/v1/docs/by/{field}/{v}");
                if let Some(t) = at {
                    lookup = format!("{lookup}?at={}", rfc3339(t));
                }
                let body: Value = http.get(lookup).send().await.unwrap().json().await.unwrap();
                let got: Vec<String> = body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["key"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(
                    got,
                    naive(&h, field, v, at.unwrap_or(i64::MAX)),
                    "{field}={v} at {at:?}"
                );
            }
        }
    }
}

/// A server's base URL (the process may have been restarted since).
struct ServerUrl(String);

/// Every version of every key in `keys` (commit time, value or None when deleted), read from
/// the server's history: the naive answer to any lookup.
async fn histories_at(
    http: &reqwest::Client,
    server: &ServerUrl,
    keys: &[String],
) -> BTreeMap<String, Vec<(i64, Option<Value>)>> {
    let mut out = BTreeMap::new();
    for key in keys {
        let resp = http
            .get(format!("{}/api/v1/docs/{key}/history", server.0))
            .send()
            .await
            .unwrap();
        if resp.status() == 404 {
            continue;
        }
        let body: Value = resp.json().await.unwrap();
        let versions = body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let t = micros(v["timestamp"].as_str().unwrap());
                let deleted = v["deleted"].as_bool().unwrap_or(false);
                (t, (!deleted).then(|| v["value"].clone()))
            })
            .collect();
        out.insert(key.clone(), versions);
    }
    out
}
