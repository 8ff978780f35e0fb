//! Every route of the HTTP API and every error case, through the real router (no socket needed),
//! checking the KoruDelta v1 response shapes field by field.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use koru_dataplane::auth::{Claims, Scope, Verifier};
use koru_dataplane::http::{AppState, app};
use koru_dataplane::metrics::Metrics;
use koru_dataplane::{Store, StoreConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A store in a temp dir and the router over it.
struct Api {
    router: Router,
    _dir: tempfile::TempDir,
    store: Store,
}

impl Api {
    fn with(
        configure: impl FnOnce(&mut StoreConfig),
        verifier: Option<Verifier>,
        ops_per_sec: Option<u32>,
    ) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        configure(&mut config);
        let metrics = Arc::new(Metrics::default());
        let (store, _) = Store::open(config, Arc::clone(&metrics.store)).unwrap();
        let router = app(AppState::new(store.clone(), metrics, verifier, ops_per_sec));
        Api {
            router,
            _dir: dir,
            store,
        }
    }

    fn new() -> Api {
        Self::with(|_| {}, None, None)
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (StatusCode, Value, header::HeaderMap) {
        let auth = token.map(|t| (header::AUTHORIZATION, format!("Bearer {t}")));
        self.send_with(method, uri, body, auth.as_slice()).await
    }

    /// Sends a request with `headers`; the status, the JSON answer and the answer's headers.
    async fn send_with(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
        headers: &[(header::HeaderName, String)],
    ) -> (StatusCode, Value, header::HeaderMap) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() && !headers.iter().any(|(name, _)| name == header::CONTENT_TYPE) {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, json, headers)
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        let (s, v, _) = self.send(method, uri, body.as_deref(), None).await;
        (s, v)
    }

    async fn put(&self, ns: &str, key: &str, value: Value) -> Value {
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/api/v1/{ns}/{key}"),
                Some(json!({ "value": value })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn keys_of(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn put_get_history_and_time_travel_have_the_v1_shapes() {
    let api = Api::new();
    let first = api
        .put("users", "alice", json!({"name": "Alice", "age": 30}))
        .await;
    assert_eq!(
        keys_of(&first),
        ["previous_version", "timestamp", "versionId", "version_id"]
    );
    assert_eq!(
        first["versionId"], first["version_id"],
        "the kdelta CLI reads versionId"
    );
    assert!(first["previous_version"].is_null());
    let second = api
        .put("users", "alice", json!({"name": "Alice", "age": 31}))
        .await;
    assert_eq!(second["previous_version"], first["version_id"]);

    let (status, got) = api.call(Method::GET, "/api/v1/users/alice", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys_of(&got),
        ["previous_version", "timestamp", "value", "version_id"]
    );
    assert_eq!(got["value"]["age"], 31);
    assert_eq!(got["version_id"], second["version_id"]);

    let (_, history) = api
        .call(Method::GET, "/api/v1/users/alice/history", None)
        .await;
    assert_eq!(keys_of(&history), ["key", "namespace", "versions"]);
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        keys_of(&versions[0]),
        ["timestamp", "value", "versionId", "version_id"]
    );
    assert_eq!(versions[0]["value"]["age"], 30);

    let at = first["timestamp"].as_str().unwrap();
    let (status, old) = api
        .call(Method::GET, &format!("/api/v1/users/alice/at/{at}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(old["value"]["age"], 30);
    let (status, body) = api
        .call(
            Method::GET,
            "/api/v1/users/alice/at/2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = api
        .call(Method::GET, "/api/v1/users/alice/at/last-tuesday", None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn delete_writes_a_tombstone_that_history_keeps() {
    let api = Api::new();
    let put = api.put("ns", "k", json!(1)).await;
    let (status, del) = api.call(Method::DELETE, "/api/v1/ns/k", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(del["previous_version"], put["version_id"]);
    let (status, body) = api.call(Method::GET, "/api/v1/ns/k", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = api.call(Method::DELETE, "/api/v1/ns/k", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, history) = api.call(Method::GET, "/api/v1/ns/k/history", None).await;
    assert_eq!(history["versions"][1]["deleted"], true);
    assert!(history["versions"][1]["value"].is_null());
    let (_, at) = api
        .call(
            Method::GET,
            &format!("/api/v1/ns/k/at/{}", put["timestamp"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        at["value"], 1,
        "time travel sees the value before the delete"
    );
}

/// A `PUT` (with `value`) or `DELETE` of `uri` with `If-Match: version`.
async fn if_match(
    api: &Api,
    method: Method,
    uri: &str,
    version: &str,
    value: Option<Value>,
) -> (StatusCode, Value) {
    let body = value.map(|v| json!({ "value": v }).to_string());
    let headers = [(header::IF_MATCH, version.to_string())];
    let (status, json, _) = api.send_with(method, uri, body.as_deref(), &headers).await;
    (status, json)
}

#[tokio::test]
async fn if_match_writes_only_over_the_latest_version() {
    let api = Api::new();
    let first = api.put("ns", "k", json!(1)).await;
    let v1 = first["version_id"].as_str().unwrap().to_string();
    let uri = "/api/v1/ns/k";
    let (status, second) = if_match(&api, Method::PUT, uri, &v1, Some(json!(2))).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["previous_version"], first["version_id"]);
    // The version read is no longer the latest: refused, and nothing written.
    let (status, body) = if_match(&api, Method::PUT, uri, &v1, Some(json!(3))).await;
    assert_error(
        status,
        &body,
        StatusCode::PRECONDITION_FAILED,
        "version_mismatch",
    );
    let (status, body) = if_match(&api, Method::DELETE, uri, &v1, None).await;
    assert_error(
        status,
        &body,
        StatusCode::PRECONDITION_FAILED,
        "version_mismatch",
    );
    let (_, now) = api.call(Method::GET, uri, None).await;
    assert_eq!(now["value"], 2);
    assert_eq!(now["version_id"], second["version_id"]);
    // GET gives the version as its entity tag too, quoted; a delete over the latest version.
    let (_, _, headers) = api.send(Method::GET, uri, None, None).await;
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(
        etag,
        format!("\"{}\"", second["version_id"].as_str().unwrap())
    );
    let (status, body) = if_match(&api, Method::DELETE, uri, &etag, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A key never written has no version to match.
    let (status, body) = if_match(&api, Method::PUT, "/api/v1/ns/new", &v1, Some(json!(1))).await;
    assert_error(
        status,
        &body,
        StatusCode::PRECONDITION_FAILED,
        "version_mismatch",
    );
    let (status, _) = api.call(Method::GET, "/api/v1/ns/new", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["", "abc", "7", "0.0", "1.x", "\"1.0", "1.0.0"] {
        let (status, body) = if_match(&api, Method::PUT, uri, bad, Some(json!(4))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (_, history) = api.call(Method::GET, &format!("{uri}/history"), None).await;
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        3,
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_modify_writes_with_if_match_lose_no_update() {
    let api = Arc::new(Api::new());
    api.put("ns", "counter", json!(0)).await;
    let (clients, each) = (8, 25);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let api = Arc::clone(&api);
        tasks.spawn(async move {
            let (mut done, mut refused) = (0, 0);
            while done < each {
                let (_, now) = api.call(Method::GET, "/api/v1/ns/counter", None).await;
                let n = now["value"].as_u64().unwrap();
                let version = now["version_id"].as_str().unwrap();
                let (status, body) = if_match(
                    &api,
                    Method::PUT,
                    "/api/v1/ns/counter",
                    version,
                    Some(json!(n + 1)),
                )
                .await;
                match status {
                    StatusCode::OK => done += 1,
                    StatusCode::PRECONDITION_FAILED => refused += 1,
                    other => panic!("{other}: {body}"),
                }
            }
            refused
        });
    }
    let refused: u32 = tasks.join_all().await.into_iter().sum();
    let (_, end) = api.call(Method::GET, "/api/v1/ns/counter", None).await;
    assert_eq!(end["value"], clients * each, "refused {refused} times");
}

#[tokio::test]
async fn query_filters_sorts_and_limits() {
    let api = Api::new();
    for (k, age, city) in [
        ("a", 30, "Oslo"),
        ("b", 25, "Rome"),
        ("c", 41, "Oslo"),
        ("d", 19, "Lima"),
    ] {
        api.put("people", k, json!({"age": age, "address": {"city": city}}))
            .await;
    }
    let (status, body) = api
        .call(Method::POST, "/api/v1/people/query", Some(json!({"filter": {"field": "age", "op": "gte", "value": 25}, "sort": {"field": "age", "descending": true}, "limit": 2})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys_of(&body), ["namespace", "results", "total"]);
    assert_eq!(body["total"], 3);
    let results = body["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["key"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["c", "a"]
    );
    assert_eq!(
        keys_of(&results[0]),
        ["key", "timestamp", "value", "version_id"]
    );
    let (_, body) = api
        .call(
            Method::POST,
            "/api/v1/people/query",
            Some(json!({"filter": {"field": "address.city", "op": "eq", "value": "Oslo"}})),
        )
        .await;
    assert_eq!(body["total"], 2);
    let (_, body) = api
        .call(Method::POST, "/api/v1/people/query", Some(json!({})))
        .await;
    assert_eq!(body["total"], 4);
    for op in ["ne", "gt", "lt", "lte", "contains", "exists"] {
        let (status, _) = api
            .call(
                Method::POST,
                "/api/v1/people/query",
                Some(json!({"filter": {"field": "age", "op": op, "value": 1}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "operator {op}");
    }
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/people/query",
            Some(json!({"filter": {"field": "age", "op": "like", "value": 1}})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn listings_and_status() {
    let api = Api::new();
    for i in 0..5 {
        api.put("orders", &format!("order:{i}"), json!(i)).await;
    }
    api.put("users", "u1", json!(null)).await;
    let (_, ns) = api.call(Method::GET, "/api/v1/namespaces", None).await;
    assert_eq!(ns, json!({"namespaces": ["orders", "users"]}));
    let (_, keys) = api.call(Method::GET, "/api/v1/orders/keys", None).await;
    assert_eq!(keys["namespace"], "orders");
    assert_eq!(keys["keys"].as_array().unwrap().len(), 5);
    assert!(keys.get("next_cursor").is_none());
    let (_, page) = api
        .call(
            Method::GET,
            "/api/v1/orders/keys?prefix=order:&limit=2",
            None,
        )
        .await;
    assert_eq!(page["keys"], json!(["order:0", "order:1"]));
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = api
        .call(
            Method::GET,
            &format!("/api/v1/orders/keys?prefix=order:&limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(page2["keys"], json!(["order:2", "order:3"]));
    let (status, body) = api
        .call(Method::GET, "/api/v1/orders/keys?limit=0", None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (_, status) = api.call(Method::GET, "/api/v1/status", None).await;
    assert_eq!(status["key_count"], 6);
    assert_eq!(status["total_versions"], 6);
    assert_eq!(status["namespace_count"], 2);
    assert_eq!(status["namespaces"], json!(["orders", "users"]));
}

#[tokio::test]
async fn views_are_created_queried_refreshed_and_deleted() {
    let api = Api::new();
    api.put("users", "a", json!({"age": 30})).await;
    api.put("users", "b", json!({"age": 10})).await;
    let def = json!({"name": "adults", "source": "users", "filter": {"field": "age", "op": "gte", "value": 18}, "description": "grown-ups"});
    let (status, body) = api
        .call(Method::POST, "/api/v1/views", Some(def.clone()))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"created": true})));
    let (status, body) = api.call(Method::POST, "/api/v1/views", Some(def)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "already_exists");
    let (_, list) = api.call(Method::GET, "/api/v1/views", None).await;
    assert_eq!(list["views"][0]["name"], "adults");
    assert_eq!(list["views"][0]["source"], "users");
    assert_eq!(list["views"][0]["auto_refresh"], false);

    api.put("users", "c", json!({"age": 50})).await;
    let (_, rows) = api.call(Method::GET, "/api/v1/views/adults", None).await;
    assert_eq!(rows["namespace"], "adults");
    assert_eq!(
        rows["total"], 1,
        "a view answers as of its last refresh: {rows}"
    );
    let (status, body) = api
        .call(Method::POST, "/api/v1/views/adults/refresh", None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"refreshed": true})));
    let (_, rows) = api.call(Method::GET, "/api/v1/views/adults", None).await;
    assert_eq!(rows["total"], 2);

    let (_, status_body) = api.call(Method::GET, "/api/v1/status", None).await;
    assert_eq!(
        status_body["namespaces"],
        json!(["users"]),
        "view definitions are not user data"
    );
    let (status, _) = api.call(Method::DELETE, "/api/v1/views/adults", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.call(Method::GET, "/api/v1/views/adults", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = api
        .call(Method::POST, "/api/v1/views/nope/refresh", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn batches_are_atomic_and_batch_reads_report_missing_keys() {
    let api = Api::new();
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/batch",
            Some(json!({"writes": [
                {"namespace": "a", "key": "1", "value": {"x": 1}},
                {"namespace": "b", "key": "2", "value": [1, 2]},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    let lsn = body["lsn"].as_u64().unwrap();
    assert_eq!(body["results"][1]["version_id"], format!("{lsn}.1"));

    // One bad write refuses the whole batch: nothing of it is stored.
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/batch",
            Some(json!({"writes": [
                {"namespace": "a", "key": "3", "value": 3},
                {"namespace": "bad name", "key": "4", "value": 4},
            ]})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_name");
    let (status, _) = api.call(Method::GET, "/api/v1/a/3", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/batch",
            Some(json!({"writes": [{"namespace": "a", "key": "3"}]})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = api
        .call(Method::POST, "/api/v1/batch", Some(json!({"writes": []})))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");

    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/batch",
            Some(json!({"writes": [{"namespace": "a", "key": "1", "delete": true}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, got) = api
        .call(Method::POST, "/api/v1/batch/get", Some(json!({"keys": [
            {"namespace": "b", "key": "2"},
            {"namespace": "a", "key": "1"},
            {"namespace": "a", "key": "1", "at": body["timestamp"].as_str().unwrap().replace('Z', "+00:00").as_str().to_string() },
        ]})))
        .await;
    assert_eq!(got["results"][0]["found"], true);
    assert_eq!(got["results"][0]["value"], json!([1, 2]));
    assert_eq!(got["results"][1]["found"], false);
    assert_eq!(got["results"][2]["found"], false, "deleted at that time");
}

#[tokio::test]
async fn the_change_feed_pages_through_committed_records() {
    let api = Api::new();
    for i in 0..5 {
        api.put("ns", &format!("k{i}"), json!(i)).await;
    }
    let (_, page) = api
        .call(Method::GET, "/api/v1/changes?since=1&limit=2", None)
        .await;
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(
        changes
            .iter()
            .map(|c| c["lsn"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(
        changes[0]["ops"][0],
        json!({"op": "put", "namespace": "ns", "key": "k1", "value": 1, "version_id": "2.0"})
    );
    assert_eq!(page["next_since"], 3);
    assert_eq!(page["last_lsn"], 5);
    let (_, tail) = api.call(Method::GET, "/api/v1/changes?since=5", None).await;
    assert_eq!(tail["changes"], json!([]));
    let (status, body) = api
        .call(Method::GET, "/api/v1/changes?since=abc", None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let api = Api::new();
    let (status, body, _) = api
        .send(Method::PUT, "/api/v1/ns/k", Some("{\"value\": "), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    let (status, body, _) = api
        .send(Method::PUT, "/api/v1/ns/k", Some("{\"val\": 1}"), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    let (status, body) = api
        .call(Method::PUT, "/api/v1/bad%20ns/k", Some(json!({"value": 1})))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_name");
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v1/_koru_views/k",
            Some(json!({"value": 1})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_name");
    // `keys` and `query` are API paths under a namespace, so they cannot be keys.
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/batch",
            Some(json!({"writes": [{"namespace": "ns", "key": "keys", "value": 1}]})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_name");
    let (status, body) = api
        .call(Method::PUT, "/api/v1/ns/query", Some(json!({"value": 1})))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let long_key = "k".repeat(2000);
    let (status, body) = api
        .call(Method::GET, &format!("/api/v1/ns/{long_key}"), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_name");
    for unreadable in [
        "1e400",
        "\"\\ud800\"",
        &format!("{}{}", "[".repeat(200), "]".repeat(200)),
    ] {
        let (status, body, _) = api
            .send(
                Method::PUT,
                "/api/v1/ns/k",
                Some(&format!("{{\"value\": {unreadable}}}")),
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_value");
    }
    let (status, body) = api.call(Method::GET, "/api/v1/ns/missing", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = api.call(Method::GET, "/nope", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // PATCH is taken (CRDT operations); POST is not, on a key.
    let (status, body) = api
        .call(Method::POST, "/api/v1/ns/k", Some(json!({"value": 1})))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn size_limits_give_413() {
    let api = Api::with(
        |c| {
            c.max_value_bytes = 100;
            c.max_batch_ops = 3;
        },
        None,
        None,
    );
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v1/ns/k",
            Some(json!({"value": "x".repeat(200)})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "value_too_large",
    );
    let writes: Vec<Value> = (0..4)
        .map(|i| json!({"namespace": "n", "key": format!("k{i}"), "value": i}))
        .collect();
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/batch",
            Some(json!({ "writes": writes })),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
    );
    let huge = format!("{{\"value\":\"{}\"}}", "y".repeat(70 * 1024 * 1024));
    let (status, body, _) = api
        .send(Method::PUT, "/api/v1/ns/k", Some(&huge), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    assert_eq!(api.store.stats().versions, 0, "nothing refused was stored");
}

#[tokio::test]
async fn the_storage_quota_gives_507_and_reads_keep_working() {
    let api = Api::with(|c| c.max_stored_bytes = Some(2000), None, None);
    let mut refused = None;
    for i in 0..100 {
        let (status, body) = api
            .call(
                Method::PUT,
                &format!("/api/v1/ns/k{i}"),
                Some(json!({"value": "v".repeat(100)})),
            )
            .await;
        if status != StatusCode::OK {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.expect("the quota was never enforced");
    assert_error(
        status,
        &body,
        StatusCode::INSUFFICIENT_STORAGE,
        "storage_quota_exceeded",
    );
    let (status, _) = api.call(Method::GET, "/api/v1/ns/k0", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(api.store.stored_bytes() <= 2000);
}

#[tokio::test]
async fn the_rate_limit_gives_429_with_retry_after() {
    let api = Api::with(|_| {}, None, Some(5));
    let mut limited = None;
    for i in 0..20 {
        let (status, body, headers) = api
            .send(Method::GET, &format!("/api/v1/ns/k{i}"), None, None)
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((body, headers));
            break;
        }
    }
    let (body, headers) = limited.expect("20 requests at once never hit a 5 ops/s limit");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(headers.get(header::RETRY_AFTER).is_some());
    let (status, _) = api.call(Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "health checks are not rate-limited");
}

/// A key pair for tokens: the PEM public key for the server and a signer for tests.
fn keys() -> (String, EncodingKey) {
    let signing = SigningKey::from_bytes(&[7; 32]);
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

fn token(key: &EncodingKey, cluster: &str, scope: Scope, exp_offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Claims {
        sub: "tester".into(),
        cluster: cluster.into(),
        scope,
        exp: (now + exp_offset) as u64,
        iat: now as u64,
        aud: koru_dataplane::auth::audience(cluster),
        jti: "test-token".into(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key).unwrap()
}

#[tokio::test]
async fn tokens_are_checked_for_signature_expiry_cluster_and_scope() {
    let (public, signer) = keys();
    let verifier = Verifier::from_pem(public.as_bytes(), "test.pem", "c-1").unwrap();
    let api = Api::with(|_| {}, Some(verifier), None);
    let put = Some("{\"value\": 1}");

    let (status, body, _) = api.send(Method::PUT, "/api/v1/ns/k", put, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body, _) = api
        .send(Method::PUT, "/api/v1/ns/k", put, Some("not.a.jwt"))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let expired = token(&signer, "c-1", Scope::Write, -3600);
    let (status, body, _) = api
        .send(Method::PUT, "/api/v1/ns/k", put, Some(&expired))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (_, other_signer) = {
        let s = SigningKey::from_bytes(&[9; 32]);
        (
            (),
            EncodingKey::from_ed_pem(s.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap(),
        )
    };
    let forged = token(&other_signer, "c-1", Scope::Admin, 3600);
    let (status, body, _) = api
        .send(Method::PUT, "/api/v1/ns/k", put, Some(&forged))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let elsewhere = token(&signer, "c-2", Scope::Write, 3600);
    let (status, body, _) = api
        .send(Method::PUT, "/api/v1/ns/k", put, Some(&elsewhere))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let reader = token(&signer, "c-1", Scope::Read, 3600);
    let (status, body, _) = api
        .send(Method::PUT, "/api/v1/ns/k", put, Some(&reader))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let writer = token(&signer, "c-1", Scope::Write, 3600);
    let (status, _, _) = api
        .send(Method::PUT, "/api/v1/ns/k", put, Some(&writer))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = api
        .send(Method::GET, "/api/v1/ns/k", None, Some(&reader))
        .await;
    assert_eq!((status, &body["value"]), (StatusCode::OK, &json!(1)));
    let (status, _, _) = api
        .send(Method::POST, "/api/v1/ns/query", Some("{}"), Some(&reader))
        .await;
    assert_eq!(status, StatusCode::OK, "a query is a read");
    let (status, _, _) = api.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "probes need no token");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let api = Api::new();
    api.put("ns", "k", json!(1)).await;
    api.call(Method::GET, "/api/v1/ns/k", None).await;
    let (status, body) = api.call(Method::GET, "/healthz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = api.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    let (status, text) = api.call(Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    for needle in [
        "koru_http_requests_total{route=\"/api/v1/{namespace}/{key}\",method=\"PUT\",status=\"200\"} 1",
        "koru_http_request_duration_seconds_bucket",
        "koru_fsync_duration_seconds",
        "koru_log_bytes ",
        "koru_keys 1",
        "koru_versions 1",
        "koru_process_cpu_seconds_total ",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
    // What the operator's autoscalers read: the data directory's volume and this process.
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let (used, capacity) = (
        value("koru_volume_used_bytes"),
        value("koru_volume_capacity_bytes"),
    );
    assert!(
        capacity > 0.0 && used > 0.0 && used <= capacity,
        "{used} of {capacity}"
    );
    assert!(value("koru_process_resident_memory_bytes") > 0.0);
}

#[tokio::test]
async fn rs256_tokens_are_accepted_too() {
    // A key pair made for this test only (tests/data/rs256-test-*.pem); it guards nothing.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let public = std::fs::read(data.join("rs256-test-public.pem")).unwrap();
    let private = std::fs::read(data.join("rs256-test-private.pem")).unwrap();
    let verifier = Verifier::from_pem(&public, "rs256-test-public.pem", "c-1").unwrap();
    let api = Api::with(|_| {}, Some(verifier), None);
    let signer = EncodingKey::from_rsa_pem(&private).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: "tester".into(),
        cluster: "c-1".into(),
        scope: Scope::Write,
        exp: now + 3600,
        iat: now,
        aud: koru_dataplane::auth::audience("c-1"),
        jti: "test-token".into(),
    };
    let rs256 = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &signer).unwrap();
    let (status, body, _) = api
        .send(
            Method::PUT,
            "/api/v1/ns/k",
            Some("{\"value\": 1}"),
            Some(&rs256),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An EdDSA token cannot pass for the RSA key.
    let (_, ed_signer) = keys();
    let ed = token(&ed_signer, "c-1", Scope::Write, 3600);
    let (status, body, _) = api
        .send(
            Method::PUT,
            "/api/v1/ns/k",
            Some("{\"value\": 2}"),
            Some(&ed),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}
