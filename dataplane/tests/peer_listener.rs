//! The member routes (`/raft/*`) through the real `koru-dataplane` process: they are served on
//! the peer listener only, open only to the member credential (never a data-plane token, even of
//! admin scope); a membership change naming an address other than a configured peer's is refused
//! and nothing is sent there; forwarded writes are charged to the leader's rate limit; a page of
//! records stops at its byte budget.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::cluster::free_port;
use common::{Server, client};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The member credential (here the admin token, as the operator sets it up).
const SECRET: &str = "9c3e1a7b5d2f48e6a0b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f6071";

/// A one-member replicated cluster with token auth on: the member credential, a signer of
/// data-plane tokens for cluster `c-1`, and `extra` arguments.
struct Member {
    server: Server,
    peer: String,
    peer_addr: String,
    signer: EncodingKey,
    _dir: tempfile::TempDir,
}

fn start_member(extra: &[&str]) -> Member {
    let dir = tempfile::tempdir().unwrap();
    let signing = SigningKey::from_bytes(&[11; 32]);
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = dir.path().join("public.pem");
    std::fs::write(&key, public).unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, format!("{SECRET}\n")).unwrap();
    let peer_addr = format!("127.0.0.1:{}", free_port());
    let peers = format!("1={peer_addr}");
    let (key, token) = (key.display().to_string(), token.display().to_string());
    let mut args = vec![
        "--auth-public-key",
        &key,
        "--cluster-id",
        "c-1",
        "--admin-token-file",
        &token,
        "--node-id",
        "1",
        "--peers",
        &peers,
        "--peer-listen",
        &peer_addr,
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&dir.path().join("data"), &args);
    Member {
        server,
        peer: format!("http://{peer_addr}"),
        peer_addr,
        signer: EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
        _dir: dir,
    }
}

/// A data-plane token of `scope` for cluster `c-1`, valid for an hour.
fn jwt(key: &EncodingKey, scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "sub": "tenant-admin",
        "cluster": "c-1",
        "scope": scope,
        "exp": now + 3600,
        "iat": now,
        "aud": koru_dataplane::auth::audience("c-1"),
        "jti": "tenant-admin-token",
    });
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key).unwrap()
}

/// Sends `method url` with a JSON body and an optional bearer token; the status and body.
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the member leads its group of one.
async fn wait_leader(http: &reqwest::Client, m: &Member) {
    for _ in 0..200 {
        let (status, body) = send(
            http,
            Method::GET,
            &format!("{}/raft/status", m.peer),
            Some(SECRET),
            None,
        )
        .await;
        if status == StatusCode::OK && body["role"] == "leader" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the member never led: {}", m.server.stderr());
}

/// A forwarded write's body (`raft::Command`) putting `value` at `ns/key`.
fn command(key: &str) -> Value {
    json!({
        "proposed_micros": 1_700_000_000_000_000i64,
        "ops": [{"delete": false, "namespace": "ns", "key": key, "value": "1"}],
    })
}

/// Every member route with a body that would be accepted.
fn member_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::POST, "/raft/append", Some(json!({}))),
        (Method::POST, "/raft/vote", Some(json!({}))),
        (Method::POST, "/raft/snapshot", Some(json!({}))),
        (Method::POST, "/raft/write", Some(command("w"))),
        (Method::POST, "/raft/read-index", Some(json!(null))),
        (Method::GET, "/raft/status", None),
        (Method::POST, "/raft/faults", Some(json!({"blocked": []}))),
        (Method::GET, "/raft/records?since=0&limit=10", None),
        (
            Method::POST,
            "/raft/membership",
            Some(json!({"voters": [1]})),
        ),
        (Method::POST, "/raft/step-down", None),
        (Method::POST, "/raft/elect", None),
    ]
}

#[tokio::test]
async fn data_tokens_open_no_member_route_on_either_listener() {
    let m = start_member(&[]);
    let http = client();
    wait_leader(&http, &m).await;
    let admin = jwt(&m.signer, "admin");
    // The token is good: it writes and takes admin routes on the public listener.
    let (status, body) = send(
        &http,
        Method::PUT,
        &m.server.api("/ns/k"),
        Some(&admin),
        Some(json!({"value": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for (method, path, body) in member_routes() {
        // Not on the public listener at all, whoever asks.
        for token in [Some(admin.as_str()), Some(SECRET), None] {
            let url = format!("{}{path}", m.server.url);
            let (status, answer) = send(&http, method.clone(), &url, token, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{method} {path} on the public listener: {answer}"
            );
        }
        // On the peer listener, an admin-scope data token is refused like no token at all.
        let url = format!("{}{path}", m.peer);
        for token in [Some(admin.as_str()), None, Some(&SECRET[1..])] {
            let (status, answer) = send(&http, method.clone(), &url, token, body.clone()).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {path} on the peer listener with {token:?}: {answer}"
            );
        }
    }
    // The member credential opens them.
    let (status, body) = send(
        &http,
        Method::GET,
        &format!("{}/raft/status", m.peer),
        Some(SECRET),
        None,
    )
    .await;
    assert_eq!((status, body["id"].as_u64()), (StatusCode::OK, Some(1)));

    // The operator's routes on the public listener take the admin token, never a data token.
    for (method, path, body) in [
        (Method::GET, "/admin/members", None),
        (Method::POST, "/admin/members", Some(json!({"voters": [1]}))),
        (Method::POST, "/admin/members/step-down", None),
    ] {
        let url = format!("{}{path}", m.server.url);
        let (status, answer) = send(&http, method.clone(), &url, Some(&admin), body).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
    }
    let (status, view) = send(
        &http,
        Method::GET,
        &format!("{}/admin/members", m.server.url),
        Some(SECRET),
        None,
    )
    .await;
    assert_eq!(
        (status, view["role"].as_str()),
        (StatusCode::OK, Some("leader"))
    );
    assert_eq!(view["members"][0]["addr"], m.peer_addr.as_str(), "{view}");
}

#[tokio::test]
async fn membership_refuses_foreign_addresses_and_sends_nothing_there() {
    let m = start_member(&[]);
    let http = client();
    wait_leader(&http, &m).await;
    // Where an attacker would like the leader to send its credential and log.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let foreign = trap.local_addr().unwrap().to_string();
    let body = json!({"members": {"1": m.peer_addr, "2": foreign}});
    for url in [
        format!("{}/raft/membership", m.peer),
        format!("{}/admin/members", m.server.url),
    ] {
        let (status, answer) =
            send(&http, Method::POST, &url, Some(SECRET), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {answer}");
        assert_eq!(
            answer["error"]["code"], "foreign_member_address",
            "{answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(&foreign), "{message}");
    }
    // A configured member at another member's address is foreign too.
    let (status, answer) = send(
        &http,
        Method::POST,
        &format!("{}/raft/membership", m.peer),
        Some(SECRET),
        Some(json!({"members": {"2": m.peer_addr}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // An id with no configured address is refused, not guessed.
    let (status, answer) = send(
        &http,
        Method::POST,
        &format!("{}/raft/membership", m.peer),
        Some(SECRET),
        Some(json!({"voters": [1, 9]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    match trap.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the leader connected to the foreign address: {other:?}"),
    }
    // The group is as it was.
    let (_, view) = send(
        &http,
        Method::GET,
        &format!("{}/raft/status", m.peer),
        Some(SECRET),
        None,
    )
    .await;
    assert_eq!(view["members"].as_array().map(Vec::len), Some(1), "{view}");
}

#[tokio::test]
async fn forwarded_writes_count_against_the_leaders_rate_limit() {
    let m = start_member(&["--max-ops-per-sec", "3"]);
    let http = client();
    wait_leader(&http, &m).await;
    let mut answers = Vec::new();
    for i in 0..8 {
        let (status, body) = send(
            &http,
            Method::POST,
            &format!("{}/raft/write", m.peer),
            Some(SECRET),
            Some(command(&format!("k{i}"))),
        )
        .await;
        answers.push((status, body));
    }
    let limited: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .map(|(_, b)| b)
        .collect();
    assert!(
        !limited.is_empty(),
        "8 forwarded writes in a burst passed a 3 ops/s limit: {answers:?}"
    );
    assert_eq!(limited[0]["error"]["code"], "rate_limited");
    let written = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert!(
        (1..=4).contains(&written),
        "each forwarded write is charged once: {answers:?}"
    );
}

#[tokio::test]
async fn record_pages_stop_at_their_byte_budget_and_page_on() {
    let m = start_member(&[]);
    let http = client();
    wait_leader(&http, &m).await;
    let big = "x".repeat(1000);
    for i in 0..10 {
        let (status, body) = send(
            &http,
            Method::PUT,
            &m.server.api(&format!("/ns/k{i}")),
            Some(SECRET),
            Some(json!({ "value": big })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let page = |since: u64, max_bytes: usize| {
        let http = http.clone();
        let url = format!(
            "{}/raft/records?since={since}&limit=10000&max_bytes={max_bytes}",
            m.peer
        );
        async move { send(&http, Method::GET, &url, Some(SECRET), None).await }
    };
    let (status, first) = page(0, 3000).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let n = first["changes"].as_array().unwrap().len();
    assert!(
        (1..=3).contains(&n),
        "a 3000-byte page of 1000-byte records holds {n}"
    );
    let last = first["changes"][n - 1]["lsn"].as_u64().unwrap();
    assert_eq!(first["next_since"].as_u64(), Some(last));
    // A record larger than the budget still comes, alone, so a copy always moves on.
    let (_, one) = page(0, 1).await;
    assert_eq!(one["changes"].as_array().unwrap().len(), 1, "{one}");
    // Paging through with the cursor reads every record once.
    let mut since = 0;
    let mut seen = Vec::new();
    loop {
        let (status, body) = page(since, 2500).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let changes = body["changes"].as_array().unwrap();
        if changes.is_empty() {
            break;
        }
        seen.extend(changes.iter().map(|c| c["lsn"].as_u64().unwrap()));
        since = body["next_since"].as_u64().unwrap();
    }
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(seen, expected);
    assert!(seen.len() >= 10, "{seen:?}");
}

#[tokio::test]
async fn append_entries_are_taken_in_messagepack_and_in_json() {
    let m = start_member(&[]);
    let http = client();
    wait_leader(&http, &m).await;
    // From a member 2 that claims to lead in term 0: both encodings are read and answered in
    // kind, and the answer (this member's higher vote) is the same.
    let body = json!({
        "vote": {"leader_id": {"term": 0, "node_id": 2}, "committed": true},
        "prev_log_id": null,
        "entries": [],
        "leader_commit": null,
    });
    let url = format!("{}/raft/append", m.peer);
    let json_reply = http
        .post(&url)
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(json_reply.status(), StatusCode::OK);
    let json_answer: Value = json_reply.json().await.unwrap();
    assert!(json_answer["Ok"]["HigherVote"].is_object(), "{json_answer}");
    let packed = koru_dataplane::raft::codec::to_msgpack(&body).unwrap();
    let mp_reply = http
        .post(&url)
        .bearer_auth(SECRET)
        .header("content-type", koru_dataplane::raft::codec::MSGPACK)
        .body(packed)
        .send()
        .await
        .unwrap();
    assert_eq!(mp_reply.status(), StatusCode::OK);
    assert_eq!(
        mp_reply.headers()["content-type"],
        koru_dataplane::raft::codec::MSGPACK
    );
    let bytes = mp_reply.bytes().await.unwrap();
    let mp_answer: Value = koru_dataplane::raft::codec::from_msgpack(&bytes).unwrap();
    assert_eq!(mp_answer, json_answer);
    // Anything else is refused as before: what an older leader falls back from.
    let (status, _) = send(&http, Method::POST, &url, Some(SECRET), None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
