//! Time over the whole database (roadmap 3.4) through the real `koru-dataplane` process: the
//! change feed from a moment (`since_time`), the NDJSON snapshot of a moment checked against
//! the as-of reads of every key, its namespace filter and streaming of a large snapshot, import
//! into a second server reproducing it key by key, who may ask for raw and internal data, and
//! bad input.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::collections::BTreeMap;

use common::{Server, client, micros, put_text};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use koru_dataplane::auth::{Claims, Scope};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A snapshot's header and its key lines.
struct Snap {
    header: Value,
    lines: Vec<Value>,
}

impl Snap {
    /// (namespace, key) → value of every line.
    fn values(&self) -> BTreeMap<(String, String), Value> {
        self.lines
            .iter()
            .map(|l| {
                let id = (
                    l["namespace"].as_str().unwrap().to_string(),
                    l["key"].as_str().unwrap().to_string(),
                );
                (id, l["value"].clone())
            })
            .collect()
    }

    /// The stream's text again, as an import takes it.
    fn text(&self) -> String {
        let mut out = format!("{}\n", self.header);
        for l in &self.lines {
            out.push_str(&format!("{l}\n"));
        }
        out
    }
}

fn parse(text: &str) -> Snap {
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let header = lines.next().expect("a header line");
    Snap {
        header,
        lines: lines.collect(),
    }
}

/// GETs a snapshot; returns the status, the content type and the body.
async fn get_snapshot(
    http: &reqwest::Client,
    server: &Server,
    query: &str,
    token: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = http.get(server.api(&format!("/snapshot{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

async fn snapshot_ok(http: &reqwest::Client, server: &Server, query: &str) -> Snap {
    let (status, content_type, body) = get_snapshot(http, server, query, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/x-ndjson");
    parse(&body)
}

async fn import(
    http: &reqwest::Client,
    server: &Server,
    body: String,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = http
        .post(format!("{}/admin/v1/import", server.url))
        .header("content-type", "application/x-ndjson")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_json(http: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let response = http.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn delete(http: &reqwest::Client, server: &Server, ns: &str, key: &str) -> Value {
    let response = http
        .delete(server.api(&format!("/{ns}/{key}")))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.json().await.unwrap()
}

/// The LSN a write's `version_id` (`<lsn>.<op>`) names.
fn lsn_of(written: &Value) -> u64 {
    let id = written["version_id"].as_str().unwrap();
    id.split('.').next().unwrap().parse().unwrap()
}

/// An RFC 3339 text for `micros`.
fn rfc3339(micros: i64) -> String {
    koru_dataplane::clock::rfc3339(micros)
}

#[tokio::test]
async fn since_time_and_snapshots_follow_the_log_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("a"), &[]);
    let http = client();

    // Before the moment.
    put_text(&http, &server, "s", "a", "1").await;
    put_text(&http, &server, "s", "b", r#"{"n":"b"}"#).await;
    put_text(&http, &server, "t", "x", "[1,2]").await;
    let last_before = put_text(&http, &server, "s", "c", "\"c1\"").await;
    let moment = micros(last_before["timestamp"].as_str().unwrap());
    // After it: an overwrite, a delete, a new key and a new namespace.
    let first_after = put_text(&http, &server, "s", "a", "2").await;
    delete(&http, &server, "s", "b").await;
    put_text(&http, &server, "s", "d", "true").await;
    put_text(&http, &server, "u", "y", "null").await;

    // since_time at a record's own time starts at that record; a microsecond later, at the next.
    let feed = |at: i64| {
        let url = server.api(&format!("/changes?since_time={}", rfc3339(at)));
        let http = http.clone();
        async move { get_json(&http, &url).await }
    };
    let (status, body) = feed(moment).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changes"][0]["lsn"], lsn_of(&last_before), "{body}");
    let (_, body) = feed(moment + 1).await;
    assert_eq!(body["changes"][0]["lsn"], lsn_of(&first_after), "{body}");
    assert_eq!(body["changes"].as_array().unwrap().len(), 4, "{body}");
    let (_, body) = feed(0).await;
    assert_eq!(body["changes"][0]["lsn"], 1, "{body}");
    let (_, body) = feed(koru_dataplane::clock::now_micros() + 60_000_000).await;
    assert_eq!(body["changes"], json!([]), "{body}");
    assert_eq!(body["next_since"], body["last_lsn"], "{body}");

    // The snapshot at the moment equals the as-of reads of every key ever written.
    let snap = snapshot_ok(&http, &server, &format!("?at={}", rfc3339(moment))).await;
    assert_eq!(snap.header["lsn"], lsn_of(&last_before), "{}", snap.header);
    assert_eq!(snap.header["snapshot_at"], rfc3339(moment));
    let values = snap.values();
    for (ns, key) in [
        ("s", "a"),
        ("s", "b"),
        ("s", "c"),
        ("s", "d"),
        ("t", "x"),
        ("u", "y"),
    ] {
        let url = server.api(&format!("/{ns}/{key}/at/{}", rfc3339(moment)));
        let (status, body) = get_json(&http, &url).await;
        let id = (ns.to_string(), key.to_string());
        match status {
            StatusCode::OK => assert_eq!(values.get(&id), Some(&body["value"]), "{ns}/{key}"),
            StatusCode::NOT_FOUND => assert!(!values.contains_key(&id), "{ns}/{key}"),
            other => panic!("{ns}/{key}: {other} {body}"),
        }
    }
    assert_eq!(values.len(), 4, "a, b, c and x were live then: {values:?}");
    assert_eq!(values[&("s".into(), "a".into())], json!(1));
    assert_eq!(snap.lines[0]["version_id"], "1.0");

    // Now: the overwrite, the delete and the later keys show.
    let now = snapshot_ok(&http, &server, "").await;
    let values = now.values();
    assert_eq!(values[&("s".into(), "a".into())], json!(2));
    assert!(!values.contains_key(&("s".into(), "b".into())));
    assert_eq!(values[&("u".into(), "y".into())], Value::Null);
    assert_eq!(values.len(), 5, "{values:?}");
    assert_eq!(now.header["lsn"], 8, "{}", now.header);

    // One namespace.
    let only_t = snapshot_ok(&http, &server, "?namespace=t").await;
    assert_eq!(only_t.lines.len(), 1);
    assert_eq!(only_t.lines[0]["key"], "x");

    // Import into an empty server reproduces the snapshot key by key.
    let other = Server::start(&dir.path().join("b"), &["--max-batch-ops", "2"]);
    let (status, answer) = import(&http, &other, now.text(), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["imported"], 5, "{answer}");
    assert_eq!(answer["source_lsn"], 8, "{answer}");
    assert_eq!(answer["snapshot_at"], now.header["snapshot_at"], "{answer}");
    let copied = snapshot_ok(&http, &other, "").await;
    assert_eq!(copied.values(), now.values());
    // Three batches of at most two keys.
    assert_eq!(copied.header["lsn"], 3, "{}", copied.header);

    // Bad input.
    let bad = |query: &'static str| {
        let (http, server) = (http.clone(), &server);
        async move { get_snapshot(&http, server, query, None).await }
    };
    let (status, _, body) = bad("?at=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("invalid_time"), "{body}");
    let (status, _, body) = bad("?at=2999-01-01T00:00:00Z").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("future"), "{body}");
    let (status, _, body) = bad("?at=2001-01-01T00:00:00Z").await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(body.contains("before_history"), "{body}");
    let (status, _, body) = bad("?namespace=no%20spaces").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = get_json(
        &http,
        &server.api("/changes?since=1&since_time=2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = get_json(&http, &server.api("/changes?since_time=soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A bad line: the lines before it are written, nothing from it on.
    let third = Server::start(&dir.path().join("c"), &[]);
    let (status, body) = import(&http, &third, "{\"namespace\":\"s\"}\n".into(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{body}"
    );
    let stream = format!(
        "{}\n{}\n{{\"namespace\":\"s\",\"key\":\"k2\"}}\n{}\n",
        now.header, now.lines[0], now.lines[1]
    );
    let (status, body) = import(&http, &third, stream, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_line", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{body}"
    );
    let partial = snapshot_ok(&http, &third, "").await;
    assert_eq!(partial.lines.len(), 1, "only line 2 was written");
    assert_eq!(partial.lines[0]["key"], now.lines[0]["key"]);
    let (status, body) = import(&http, &third, String::new(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let response = http
        .post(format!("{}/admin/v1/import", third.url))
        .header("content-type", "text/plain")
        .body(now.text())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(snapshot_ok(&http, &third, "").await.lines.len(), 1);
}

#[tokio::test]
async fn a_large_snapshot_streams_and_imports_in_batches() {
    const KEYS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("a"), &[]);
    let http = client();
    for chunk in 0..KEYS / 1000 {
        let writes: Vec<Value> = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                json!({"namespace": "big", "key": format!("k{n:06}"), "value": {"n": n, "pad": "x".repeat(40)}})
            })
            .collect();
        let response = http
            .post(server.api("/batch"))
            .json(&json!({ "writes": writes }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    let response = http.get(server.api("/snapshot")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("content-length").is_none(),
        "a streamed body has no length: {:?}",
        response.headers()
    );
    let snap = parse(&response.text().await.unwrap());
    assert_eq!(snap.lines.len(), KEYS);
    for (i, line) in snap.lines.iter().enumerate() {
        assert_eq!(line["key"], format!("k{i:06}"));
        assert_eq!(line["value"]["n"], i);
    }

    let other = Server::start(&dir.path().join("b"), &["--max-batch-ops", "3000"]);
    let (status, answer) = import(&http, &other, snap.text(), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["imported"], KEYS);
    let copied = snapshot_ok(&http, &other, "").await;
    assert_eq!(copied.header["lsn"], KEYS.div_ceil(3000));
    assert_eq!(copied.values(), snap.values());
}

const SECRET: &str = "5f2b9c0d7e4a41a8b3c6d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4";

fn jwt(key: &EncodingKey, scope: Scope) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: "tester".into(),
        cluster: "c-1".into(),
        scope,
        exp: now + 3600,
        iat: now,
        aud: koru_dataplane::auth::audience("c-1"),
        jti: "test-token".into(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key).unwrap()
}

#[tokio::test]
async fn raw_internal_and_import_are_for_admins() {
    let dir = tempfile::tempdir().unwrap();
    let signing = SigningKey::from_bytes(&[7; 32]);
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = dir.path().join("public.pem");
    std::fs::write(&key, public).unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{SECRET}\n")).unwrap();
    let signer = EncodingKey::from_ed_pem(private.as_bytes()).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--auth-public-key",
            &key.display().to_string(),
            "--cluster-id",
            "c-1",
            "--admin-token-file",
            &token_file.display().to_string(),
        ],
    );
    let http = client();
    let reader = jwt(&signer, Scope::Read);
    let writer = jwt(&signer, Scope::Write);

    // A raw CRDT state (a register) and an index (an internal namespace), imported by the admin.
    let state = koru_dataplane::crdt::register(
        &serde_json::value::RawValue::from_string("{\"v\":1}".into()).unwrap(),
        &koru_dataplane::crdt::Hlc {
            micros: 1_000,
            region: "eu".into(),
        },
    );
    let line = json!({"namespace": "c", "key": "r", "value": serde_json::from_str::<Value>(&state).unwrap()});
    let stream = format!("{{\"snapshot_at\":\"2026-01-01T00:00:00Z\",\"lsn\":9}}\n{line}\n");
    let (status, body) = import(&http, &server, stream.clone(), Some(&writer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = import(&http, &server, stream.clone(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = import(&http, &server, stream, Some(SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = http
        .post(server.api("/c/indexes"))
        .bearer_auth(SECRET)
        .json(&json!({"name": "by_v", "field": "v"}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );

    // A reader sees rendered values and user namespaces only.
    let (status, _, body) = get_snapshot(&http, &server, "", Some(&reader)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plain = parse(&body);
    assert_eq!(plain.lines.len(), 1, "{body}");
    assert_eq!(plain.lines[0]["value"], json!({"v": 1}));
    for query in ["?raw=true", "?internal=true", "?raw=true&internal=true"] {
        let (status, _, body) = get_snapshot(&http, &server, query, Some(&reader)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}: {body}");
    }
    // The admin gets the stored state and the internal namespaces.
    let (status, _, body) =
        get_snapshot(&http, &server, "?raw=true&internal=true", Some(SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let raw = parse(&body);
    let ours = raw.lines.iter().find(|l| l["namespace"] == "c").unwrap();
    assert_eq!(
        ours["value"],
        serde_json::from_str::<Value>(&state).unwrap()
    );
    assert!(
        raw.lines
            .iter()
            .any(|l| l["namespace"].as_str().unwrap().starts_with("_koru")),
        "{body}"
    );
}

#[tokio::test]
async fn import_through_a_follower_reaches_every_member_of_a_cluster() {
    let cluster = common::cluster::Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    let follower = cluster
        .running()
        .into_iter()
        .find(|&id| id != leader)
        .unwrap();
    let mut stream = String::from("{\"snapshot_at\":\"2026-02-06T12:00:00Z\",\"lsn\":77}\n");
    for i in 0..25 {
        let line = json!({"namespace": "r", "key": format!("k{i:02}"), "version_id": "1.0",
            "timestamp": "2026-02-06T11:00:00Z", "value": {"i": i}});
        stream.push_str(&format!("{line}\n"));
    }
    let response = http
        .post(format!("{}/admin/v1/import", cluster.url(follower)))
        .header("content-type", "application/x-ndjson")
        .body(stream)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["imported"], 25, "{answer}");
    assert_eq!(answer["source_lsn"], 77, "{answer}");
    for id in cluster.running() {
        let response = http
            .get(format!("{}/api/v1/snapshot?namespace=r", cluster.url(id)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "member {id}");
        let snap = parse(&response.text().await.unwrap());
        assert_eq!(snap.lines.len(), 25, "member {id}");
        for (i, line) in snap.lines.iter().enumerate() {
            assert_eq!(line["value"], json!({"i": i}), "member {id}");
        }
    }
}
