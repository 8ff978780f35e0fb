//! Who wrote each version: authors recorded from the token's `sub` (auth on; `X-Koru-Author`
//! ignored, so a token holder cannot write as someone else) or from `X-Koru-Author` (auth off),
//! shown by `?meta=true` reads and the change feed, with rewinds and CRDT merges named as such,
//! and kept across a restart. Through the real router, no socket.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use koru_dataplane::auth::{Claims, Scope, Verifier};
use koru_dataplane::http::{AppState, app};
use koru_dataplane::metrics::Metrics;
use koru_dataplane::{Store, StoreConfig};
use koru_dataplane_api::data::{AUTHOR_HEADER, Changes, History, MAX_AUTHOR_LEN};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A router over a store in `dir`, with token auth when `verifier` is given.
struct Api {
    router: Router,
    store: Store,
}

impl Api {
    fn open(dir: &Path, verifier: Option<Verifier>) -> Api {
        let metrics = Arc::new(Metrics::default());
        let (store, _) = Store::open(StoreConfig::new(dir), Arc::clone(&metrics.store)).unwrap();
        let router = app(AppState::new(store.clone(), metrics, verifier, None));
        Api { router, store }
    }

    /// Sends a request; the status and the body's text.
    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (name, value) in headers {
            // From bytes: an author may be any UTF-8 (`from_str` takes visible ASCII only).
            req = req.header(*name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn json(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        h: &[(&str, &str)],
    ) -> Value {
        let (status, text) = self.send(method, uri, body, h).await;
        assert!(status.is_success(), "{uri}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn put_as(
        &self,
        key: &str,
        value: Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let uri = format!("/api/v1/ns/{key}");
        self.send(Method::PUT, &uri, Some(json!({ "value": value })), headers)
            .await
    }

    /// (author, op) of each version of `ns/key`.
    async fn authors(&self, key: &str, headers: &[(&str, &str)]) -> Vec<(Option<String>, String)> {
        let uri = format!("/api/v1/ns/{key}/history?meta=true");
        let (status, text) = self.send(Method::GET, &uri, None, headers).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let history: History = serde_json::from_str(&text).unwrap();
        history
            .versions
            .into_iter()
            .map(|e| {
                let op = serde_json::to_value(e.op.unwrap()).unwrap();
                (e.author, op.as_str().unwrap().to_string())
            })
            .collect()
    }
}

fn by(author: &str, op: &str) -> (Option<String>, String) {
    (Some(author.to_string()), op.to_string())
}

fn keys() -> (String, EncodingKey) {
    let signing = SigningKey::from_bytes(&[9; 32]);
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
    (
        public,
        EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
    )
}

fn token(key: &EncodingKey, sub: &str, scope: Scope) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: sub.into(),
        cluster: "c-1".into(),
        scope,
        exp: now + 600,
        iat: now,
        aud: koru_dataplane::auth::audience("c-1"),
        jti: format!("t-{sub}"),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key).unwrap()
}

#[tokio::test]
async fn with_auth_on_the_author_is_the_tokens_subject_and_the_header_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (public, signer) = keys();
    let verifier = Verifier::from_pem(public.as_bytes(), "test.pem", "c-1").unwrap();
    let api = Api::open(dir.path(), Some(verifier));
    let ada = format!("Bearer {}", token(&signer, "ada@example.com", Scope::Admin));
    let eve = format!("Bearer {}", token(&signer, "eve@example.com", Scope::Write));

    let (status, text) = api
        .put_as("k", json!(1), &[("authorization", ada.as_str())])
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // The spoofing attack: eve holds a token and names ada as the author.
    let (status, text) = api
        .put_as(
            "k",
            json!(2),
            &[
                ("authorization", eve.as_str()),
                (AUTHOR_HEADER, "ada@example.com"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // With auth on the header is not even checked: it is not what names the author.
    let (status, text) = api
        .put_as(
            "k",
            json!(3),
            &[
                ("authorization", eve.as_str()),
                (AUTHOR_HEADER, "bad\tname"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let auth = [("authorization", ada.as_str())];
    assert_eq!(
        api.authors("k", &auth).await,
        [
            by("ada@example.com", "put"),
            by("eve@example.com", "put"),
            by("eve@example.com", "put"),
        ]
    );
}

#[tokio::test]
async fn with_auth_off_the_header_names_the_author_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::open(dir.path(), None);
    let (status, _) = api.put_as("k", json!(1), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.put_as("k", json!(2), &[(AUTHOR_HEADER, "grace")]).await;
    assert_eq!(status, StatusCode::OK);
    let longest = "é".repeat(MAX_AUTHOR_LEN / 2);
    let (status, _) = api
        .put_as("k", json!(3), &[(AUTHOR_HEADER, &longest)])
        .await;
    assert_eq!(status, StatusCode::OK);

    let too_long = "x".repeat(MAX_AUTHOR_LEN + 1);
    // HTTP itself carries no other control character than a tab in a header.
    for bad in [too_long.as_str(), "line\tbreak", "tab\t"] {
        let (status, text) = api.put_as("k", json!(4), &[(AUTHOR_HEADER, bad)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["code"], "invalid_author", "{text}");
    }
    // Nor bytes that are not UTF-8.
    let req = Request::builder()
        .method(Method::PUT)
        .uri("/api/v1/ns/k")
        .header("content-type", "application/json")
        .header(
            AUTHOR_HEADER,
            HeaderValue::from_bytes(&[b'a', 0xff]).unwrap(),
        )
        .body(Body::from(r#"{"value":4}"#))
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Nothing of the refused writes was written.
    assert_eq!(api.store.stats().applied_lsn, 3);
    let (status, _) = api
        .send(
            Method::DELETE,
            "/api/v1/ns/k",
            None,
            &[(AUTHOR_HEADER, "grace")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.authors("k", &[]).await,
        [
            (None, "put".to_string()),
            by("grace", "put"),
            by(&longest, "put"),
            by("grace", "delete"),
        ]
    );
}

#[tokio::test]
async fn meta_reads_show_authors_and_plain_reads_stay_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::open(dir.path(), None);
    let (_, first) = api
        .put_as("k", json!({"a": 1}), &[(AUTHOR_HEADER, "ada")])
        .await;
    let first: Value = serde_json::from_str(&first).unwrap();
    api.put_as("k", json!({"a": 2}), &[(AUTHOR_HEADER, "grace")])
        .await;

    let (_, plain) = api.send(Method::GET, "/api/v1/ns/k", None, &[]).await;
    let plain: Value = serde_json::from_str(&plain).unwrap();
    assert!(plain.get("author").is_none() && plain.get("op").is_none());
    let meta = api
        .json(Method::GET, "/api/v1/ns/k?meta=true", None, &[])
        .await;
    assert_eq!(
        (meta["author"].as_str(), meta["op"].as_str()),
        (Some("grace"), Some("put"))
    );
    let mut without = meta.clone();
    let fields = without.as_object_mut().unwrap();
    fields.remove("author");
    fields.remove("op");
    assert_eq!(without, plain, "meta only adds author and op");

    let at = first["timestamp"].as_str().unwrap();
    let old = api
        .json(
            Method::GET,
            &format!("/api/v1/ns/k/at/{at}?meta=true"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (old["author"].as_str(), old["value"]["a"].as_i64()),
        (Some("ada"), Some(1))
    );

    let (_, history) = api
        .send(Method::GET, "/api/v1/ns/k/history", None, &[])
        .await;
    assert!(
        !history.contains("author") && !history.contains("\"op\""),
        "{history}"
    );

    let changes = api
        .json(Method::GET, "/api/v1/changes?since=0&meta=true", None, &[])
        .await;
    let changes: Changes = serde_json::from_value(changes).unwrap();
    let seen: Vec<(Option<&str>, Value)> = changes
        .changes
        .iter()
        .map(|c| (c.author.as_deref(), serde_json::to_value(c.cause).unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("ada"), json!("write")),
            (Some("grace"), json!("write"))
        ]
    );
    let (_, plain) = api
        .send(Method::GET, "/api/v1/changes?since=0", None, &[])
        .await;
    assert!(
        !plain.contains("author") && !plain.contains("cause"),
        "{plain}"
    );
}

#[tokio::test]
async fn rewinds_and_crdt_patches_are_named_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::open(dir.path(), None);
    api.put_as("k", json!("old"), &[(AUTHOR_HEADER, "ada")])
        .await;
    let before = api.store.last_applied().1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    api.put_as("k", json!("new"), &[(AUTHOR_HEADER, "grace")])
        .await;
    let as_of = koru_dataplane::clock::rfc3339(before);
    let rewind = json!({"namespace": "ns", "as_of": as_of, "dry_run": false});
    let (status, text) = api
        .send(
            Method::POST,
            "/admin/rewind",
            Some(rewind),
            &[(AUTHOR_HEADER, "root")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = api
        .send(
            Method::PATCH,
            "/api/v1/ns/c",
            Some(json!({"op": "increment", "by": 2})),
            &[(AUTHOR_HEADER, "counter-bot")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        api.authors("k", &[]).await,
        [by("ada", "put"), by("grace", "put"), by("root", "rewind")]
    );
    assert_eq!(api.authors("c", &[]).await, [by("counter-bot", "merge")]);
    let changes = api
        .json(Method::GET, "/api/v1/changes?since=2&meta=true", None, &[])
        .await;
    let causes: Vec<&str> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["rewind", "merge"]);
}

#[tokio::test]
async fn authors_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let api = Api::open(dir.path(), None);
        api.put_as("k", json!(1), &[(AUTHOR_HEADER, "ada")]).await;
        api.put_as("k", json!(2), &[]).await;
        api.store.close();
    }
    let api = Api::open(dir.path(), None);
    assert_eq!(
        api.authors("k", &[]).await,
        [by("ada", "put"), (None, "put".to_string())]
    );
}

#[tokio::test]
async fn namespace_stats_and_status_times() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::open(dir.path(), None);
    let status = api.json(Method::GET, "/api/v1/status", None, &[]).await;
    assert!(status["first_timestamp"].is_null() && status["last_timestamp"].is_null());
    api.send(
        Method::PUT,
        "/api/v1/users/a",
        Some(json!({"value": 1})),
        &[],
    )
    .await;
    api.send(
        Method::PUT,
        "/api/v1/users/a",
        Some(json!({"value": 2})),
        &[],
    )
    .await;
    api.send(
        Method::PUT,
        "/api/v1/orders/o",
        Some(json!({"value": 1})),
        &[],
    )
    .await;
    api.send(Method::DELETE, "/api/v1/orders/o", None, &[])
        .await;
    api.send(
        Method::PUT,
        "/api/v1/users/b",
        Some(json!({"value": 1})),
        &[],
    )
    .await;

    let (_, plain) = api.send(Method::GET, "/api/v1/namespaces", None, &[]).await;
    assert_eq!(plain, r#"{"namespaces":["users"]}"#);
    let stats = api
        .json(Method::GET, "/api/v1/namespaces?stats=true", None, &[])
        .await;
    assert_eq!(
        stats,
        json!({"namespaces": ["users"], "stats": [{"namespace": "users", "keys": 2, "versions": 3}]})
    );
    let status = api.json(Method::GET, "/api/v1/status", None, &[]).await;
    let first = status["first_timestamp"].as_str().unwrap();
    let last = status["last_timestamp"].as_str().unwrap();
    assert!(first < last, "{status}");
    assert_eq!(
        koru_dataplane::clock::parse_micros(last).unwrap(),
        api.store.last_applied().1
    );
    assert_eq!(status["keyCount"], 2, "the kdelta CLI's names stay");
}
