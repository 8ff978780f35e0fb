//! CRDT values over HTTP against a real `koru-dataplane` process: literals on `PUT` and batch
//! writes, each `PATCH` operation, plain reads (GET, history, as-of), the errors and their
//! codes, concurrent increments from many clients, and a three-member replicated group.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::{Server, client};
use reqwest::Client;
use serde_json::{Value, json};

async fn put(http: &Client, base: &str, path: &str, value: Value) -> (u16, Value) {
    let resp = http
        .put(format!("{base}/api/v1/{path}"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn patch(http: &Client, base: &str, path: &str, ops: Value) -> (u16, Value) {
    patch_if(http, base, path, ops, None).await
}

async fn patch_if(
    http: &Client,
    base: &str,
    path: &str,
    ops: Value,
    if_match: Option<&str>,
) -> (u16, Value) {
    let mut req = http.patch(format!("{base}/api/v1/{path}")).json(&ops);
    if let Some(v) = if_match {
        req = req.header("if-match", v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn get(http: &Client, base: &str, path: &str) -> (u16, Value) {
    let resp = http
        .get(format!("{base}/api/v1/{path}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn literals_store_crdts_that_read_back_as_plain_json_in_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--region", "us-east"]);
    let http = client();
    let base = server.url.as_str();

    let (status, first) = put(
        &http,
        base,
        "stats/views",
        json!({"count": {"$counter": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        get(&http, base, "stats/views").await.1["value"],
        json!({"count": 1})
    );
    let (status, patched) = patch(
        &http,
        base,
        "stats/views",
        json!({"op": "increment", "path": "count", "by": 5}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["value"], json!({"count": 6}));
    assert_eq!(patched["previous_version"], first["version_id"]);
    assert!(patched["version_id"].is_string() && patched["timestamp"].is_string());

    // Whole-value literals, and a plain value beside them stays byte for byte.
    put(&http, base, "c/n", json!({"$counter": -2})).await;
    put(&http, base, "c/tags", json!({"$set": ["b", "a", "b"]})).await;
    put(&http, base, "c/reg", json!({"$register": {"x": 1}})).await;
    put(&http, base, "c/mv", json!({"$mvregister": "v"})).await;
    put(
        &http,
        base,
        "c/plain",
        json!({"$note": "not a literal", "a": [1]}),
    )
    .await;
    assert_eq!(get(&http, base, "c/n").await.1["value"], json!(-2));
    assert_eq!(
        get(&http, base, "c/tags").await.1["value"],
        json!(["a", "b"])
    );
    assert_eq!(get(&http, base, "c/reg").await.1["value"], json!({"x": 1}));
    assert_eq!(get(&http, base, "c/mv").await.1["value"], json!(["v"]));
    assert_eq!(
        get(&http, base, "c/plain").await.1["value"],
        json!({"$note": "not a literal", "a": [1]})
    );

    // Batch writes take literals too.
    let resp = http
        .post(format!("{base}/api/v1/batch"))
        .json(&json!({"writes": [
            {"namespace": "b", "key": "k", "value": {"n": {"$counter": 3}, "name": "x"}},
            {"namespace": "b", "key": "plain", "value": 7}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        get(&http, base, "b/k").await.1["value"],
        json!({"n": 3, "name": "x"})
    );
    let resp = http
        .post(format!("{base}/api/v1/batch/get"))
        .json(&json!({"keys": [{"namespace": "b", "key": "k"}]}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["results"][0]["value"],
        json!({"n": 3, "name": "x"}),
        "{body}"
    );

    // History shows every state, rendered; an as-of read answers the state then.
    let (_, history) = get(&http, base, "stats/views/history").await;
    let values: Vec<&Value> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["value"])
        .collect();
    assert_eq!(values, [&json!({"count": 1}), &json!({"count": 6})]);
    let at = first["timestamp"].as_str().unwrap();
    let (status, then) = get(&http, base, &format!("stats/views/at/{at}")).await;
    assert_eq!(status, 200);
    assert_eq!(then["value"], json!({"count": 1}));

    // A query sees the rendered value.
    let resp = http
        .post(format!("{base}/api/v1/stats/query"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["results"][0]["value"], json!({"count": 6}), "{body}");
}

#[tokio::test]
async fn every_operation_changes_its_type_and_if_match_guards_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    let base = server.url.as_str();

    // Operations on an absent key create it.
    let (status, body) = patch(
        &http,
        base,
        "o/n",
        json!([{"op": "increment", "by": 10}, {"op": "decrement", "by": 3}, {"op": "decrement"}]),
    )
    .await;
    assert_eq!((status, &body["value"]), (200, &json!(6)), "{body}");
    assert_eq!(body["previous_version"], Value::Null);

    let (_, body) = patch(
        &http,
        base,
        "o/s",
        json!([{"op": "add", "value": "x"}, {"op": "add", "value": {"id": 1}}, {"op": "add", "value": "y"}]),
    )
    .await;
    assert_eq!(body["value"], json!(["x", "y", {"id": 1}]));
    let (_, body) = patch(&http, base, "o/s", json!({"op": "remove", "value": "x"})).await;
    assert_eq!(body["value"], json!(["y", {"id": 1}]));

    let (_, body) = patch(&http, base, "o/r", json!({"op": "set", "value": "first"})).await;
    assert_eq!(body["value"], json!("first"));
    let (_, body) = patch(&http, base, "o/r", json!({"op": "set", "value": [2]})).await;
    assert_eq!(body["value"], json!([2]));
    put(&http, base, "o/mv", json!({"$mvregister": 1})).await;
    let (_, body) = patch(&http, base, "o/mv", json!({"op": "set", "value": 2})).await;
    assert_eq!(body["value"], json!([2]));

    // Maps: nested CRDTs by path, registers, deleted fields.
    let (_, body) = patch(
        &http,
        base,
        "o/cart",
        json!([
            {"op": "set", "path": "owner", "value": "ann"},
            {"op": "set", "path": "items", "value": {"$set": []}},
            {"op": "add", "path": "items", "value": "apple"},
            {"op": "increment", "path": "totals.count", "by": 2},
            {"op": "set", "path": "note", "value": "tmp"},
            {"op": "delete_field", "path": "note"}
        ]),
    )
    .await;
    assert_eq!(
        body["value"],
        json!({"owner": "ann", "items": ["apple"], "totals": {"count": 2}})
    );
    assert_eq!(
        get(&http, base, "o/cart").await.1["value"],
        json!({"owner": "ann", "items": ["apple"], "totals": {"count": 2}})
    );

    // If-Match: only over that version, 412 otherwise and nothing is written.
    let (_, current) = get(&http, base, "o/n").await;
    let version = current["version_id"].as_str().unwrap();
    let (status, body) = patch_if(
        &http,
        base,
        "o/n",
        json!({"op": "increment"}),
        Some("999.0"),
    )
    .await;
    assert_eq!((status, code(&body)), (412, "version_mismatch"), "{body}");
    let (status, body) = patch_if(
        &http,
        base,
        "o/n",
        json!({"op": "increment"}),
        Some(version),
    )
    .await;
    assert_eq!((status, &body["value"]), (200, &json!(7)), "{body}");
    assert_eq!(get(&http, base, "o/n").await.1["value"], json!(7));
}

#[tokio::test]
async fn refusals_carry_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    let base = server.url.as_str();

    let (status, body) = put(&http, base, "e/k", json!({"$crdt": {"counter": {}}})).await;
    assert_eq!((status, code(&body)), (400, "invalid_value"), "{body}");
    for bad in [
        json!({"$counter": "one"}),
        json!({"$set": 1}),
        json!({"$counter": 1, "other": 2}),
    ] {
        let (status, body) = put(&http, base, "e/k", bad.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (400, "invalid_value"),
            "{bad}: {body}"
        );
    }
    assert_eq!(get(&http, base, "e/k").await.0, 404, "nothing was written");

    put(&http, base, "e/plain", json!({"a": 1})).await;
    let (status, body) = patch(&http, base, "e/plain", json!({"op": "increment"})).await;
    assert_eq!((status, code(&body)), (409, "not_a_crdt"), "{body}");

    put(&http, base, "e/set", json!({"$set": []})).await;
    let (status, body) = patch(&http, base, "e/set", json!({"op": "increment"})).await;
    assert_eq!((status, code(&body)), (409, "crdt_type_mismatch"), "{body}");
    let (status, body) = patch(
        &http,
        base,
        "e/set",
        json!({"op": "set", "path": "a", "value": 1}),
    )
    .await;
    assert_eq!((status, code(&body)), (409, "crdt_type_mismatch"), "{body}");

    for bad in [
        json!({"op": "explode"}),
        json!([]),
        json!({"op": "add"}),
        json!({"op": "increment", "path": "a..b"}),
        json!({"op": "delete_field"}),
    ] {
        let (status, body) = patch(&http, base, "e/set", bad.clone()).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}: {body}");
    }
    // An array is atomic: a failing operation writes none of those before it.
    let (status, _) = patch(
        &http,
        base,
        "e/set",
        json!([{"op": "add", "value": 1}, {"op": "increment"}]),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(get(&http, base, "e/set").await.1["value"], json!([]));
}

async fn increments_from_many_clients(urls: &[String], clients: usize, each: usize) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = urls[c % urls.len()].clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            for _ in 0..each {
                let (status, body) =
                    patch(&http, &url, "hits/page", json!({"op": "increment"})).await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_from_many_clients_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    increments_from_many_clients(std::slice::from_ref(&server.url), 8, 25).await;
    let (_, body) = get(&http, &server.url, "hits/page").await;
    assert_eq!(body["value"], json!(200));
    let (_, history) = get(&http, &server.url, "hits/page/history").await;
    assert_eq!(history["versions"].as_array().unwrap().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replicated_group_takes_operations_on_every_member() {
    let cluster = Cluster::start(3);
    let http = client();
    cluster.leader(&http).await;
    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id)).collect();
    let (status, body) = put(&http, &urls[1], "hits/tags", json!({"$set": ["a"]})).await;
    assert_eq!(status, 200, "{body}");
    increments_from_many_clients(&urls, 6, 10).await;
    let (status, body) = patch(
        &http,
        &urls[2],
        "hits/tags",
        json!({"op": "add", "value": "b"}),
    )
    .await;
    assert_eq!(
        (status, &body["value"]),
        (200, &json!(["a", "b"])),
        "{body}"
    );
    // Every member converges on the same rendered values.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for url in &urls {
        loop {
            let (_, n) = get(&http, url, "hits/page").await;
            let (_, tags) = get(&http, url, "hits/tags").await;
            if n["value"] == json!(60) && tags["value"] == json!(["a", "b"]) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{url}: {n} {tags}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn queries_and_indexes_see_crdt_values_as_they_render() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    let base = server.url.as_str();
    let resp = http
        .post(format!("{base}/api/v1/shop/indexes"))
        .json(&json!({"field": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    put(
        &http,
        base,
        "shop/c1",
        json!({"owner": "ann", "n": {"$counter": 1}}),
    )
    .await;
    put(
        &http,
        base,
        "shop/c2",
        json!({"owner": "bob", "n": {"$counter": 1}}),
    )
    .await;
    patch(
        &http,
        base,
        "shop/c2",
        json!({"op": "increment", "path": "n", "by": 4}),
    )
    .await;
    patch(
        &http,
        base,
        "shop/c1",
        json!({"op": "set", "path": "owner", "value": "cy"}),
    )
    .await;

    let (status, found) = get(&http, base, "shop/by/owner/cy").await;
    assert_eq!(status, 200, "{found}");
    assert!(found.to_string().contains("c1"), "{found}");
    let (_, gone) = get(&http, base, "shop/by/owner/ann").await;
    assert!(!gone.to_string().contains("c1"), "{gone}");
    let resp = http
        .post(format!("{base}/api/v1/shop/query"))
        .json(&json!({"filter": {"field": "n", "op": "gt", "value": 3}}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["total"], json!(1), "{body}");
    assert_eq!(body["results"][0]["key"], json!("c2"));
    assert_eq!(body["results"][0]["value"], json!({"n": 5, "owner": "bob"}));
}
