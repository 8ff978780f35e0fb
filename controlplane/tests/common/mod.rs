//! Test harness of the control plane's API tests: the real router over a real database, once on
//! SQLite and once on PostgreSQL (the server `scripts/pgenv.sh` starts; `make test` does), each
//! test with a fresh database.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use koru_controlplane::auth::keys::KeyPair;
use koru_controlplane::auth::session::Sessions;
use koru_controlplane::state::{AppState, LoginLimiter};
use serde_json::Value;
use tower::ServiceExt;

/// One backend under test.
pub struct Backend {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// Its database URL.
    pub url: String,
}

/// A fresh database on each backend. PostgreSQL is required under `CI=true`; locally a missing
/// server is skipped loudly.
pub async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut out = vec![Backend {
        name: "sqlite",
        url: format!("sqlite://{}?mode=rwc", dir.join("cp.db").display()),
    }];
    match std::env::var("KORU_TEST_POSTGRES_URL") {
        Ok(admin) => {
            sqlx::any::install_default_drivers();
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connecting to the test PostgreSQL server");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("creating a test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            out.push(Backend {
                name: "postgres",
                url: format!("{base}/{name}"),
            });
        }
        Err(_) => {
            let message = "no KORU_TEST_POSTGRES_URL: start PostgreSQL with `eval \"$(scripts/pgenv.sh up)\"` (make test does)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("\n!!! SKIPPING PostgreSQL for this test: {message} !!!\n");
        }
    }
    out
}

/// The API on one backend.
pub struct Api {
    /// The state behind the router.
    pub state: AppState,
    /// Which backend.
    pub backend: &'static str,
    /// Scratch directory (keys, local clusters).
    pub dir: std::path::PathBuf,
}

impl Drop for Api {
    /// Local clusters outlive their provisioner by design (they survive a control-plane restart),
    /// so a finished test kills the data planes it started, found by their data directory.
    fn drop(&mut self) {
        kill_dataplanes_under(&self.dir);
    }
}

pub use koru_testkit::kill_dataplanes_under;

/// The data-plane binary, built from its current sources.
pub fn dataplane_bin() -> std::path::PathBuf {
    // Built by cargo once per test process, so a test never runs a data plane older than its
    // sources.
    koru_testkit::dataplane_binary()
}

impl Api {
    /// A fresh control plane on `backend`.
    pub async fn new(backend: &Backend) -> Api {
        let dir = tempfile::tempdir().unwrap().keep();
        let db = koru_controlplane::db::connect(&backend.url)
            .await
            .expect("database");
        let provisioner = koru_controlplane::provisioner::local::LocalProvisioner::start(
            dir.join("clusters"),
            dataplane_bin(),
        )
        .await
        .expect("local provisioner");
        let state = AppState {
            db,
            sessions: Sessions::new(KeyPair::load_or_generate(&dir.join("session.pem")).unwrap()),
            dataplane_key: KeyPair::load_or_generate(&dir.join("dataplane.pem")).unwrap(),
            provisioner: Arc::new(koru_controlplane::provisioner::Provisioner::Local(
                provisioner,
            )),
            login_limiter: Arc::new(LoginLimiter::new()),
            public_url: "http://127.0.0.1:8080".into(),
            metrics: koru_controlplane::metrics::Metrics::new(),
            sso: Default::default(),
            gateway: Default::default(),
            suspend_policy: Default::default(),
        };
        Api {
            state,
            backend: backend.name,
            dir,
        }
    }

    /// Sends a request; returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with_headers(method, path, token, body, &[]).await
    }

    /// [`Api::call`] with extra headers.
    pub async fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let response = koru_controlplane::http::app(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if status.is_client_error() || status.is_server_error() {
            assert!(
                json["error"]["code"].is_string() && json["error"]["message"].is_string(),
                "[{}] {method} {path}: error body is not {{\"error\":{{\"code\",\"message\"}}}}: {json}",
                self.backend
            );
        }
        (status, json)
    }

    /// Sends `body` as it is, with `content_type` when given (for malformed bodies); returns the
    /// status and the JSON body.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(c) = content_type {
            req = req.header("content-type", c);
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let response = koru_controlplane::http::app(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, json)
    }

    /// Signs up `email` with organization `org`; returns (access token, org id, refresh token).
    pub async fn signup(&self, email: &str, org: &str) -> (String, String, String) {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/signup",
                None,
                Some(serde_json::json!({"email": email, "password": "correct horse battery", "organization": org})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "[{}] signup: {body}",
            self.backend
        );
        (
            body["access_token"].as_str().unwrap().to_string(),
            body["organization"]["id"].as_str().unwrap().to_string(),
            body["refresh_token"].as_str().unwrap().to_string(),
        )
    }

    /// Creates an API token `name` with `role` in organization `org` as `owner`; returns its
    /// secret.
    pub async fn api_token(&self, owner: &str, org: &str, name: &str, role: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/tokens"),
                Some(owner),
                Some(serde_json::json!({"name": name, "role": role})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "[{}] API token: {body}",
            self.backend
        );
        body["token"].as_str().unwrap().to_string()
    }
}

impl Api {
    /// Polls an operation until it ends (at most 120 s); returns it.
    pub async fn wait_operation(&self, token: &str, id: &str) -> Value {
        for _ in 0..1200 {
            let (status, op) = self
                .call(
                    "GET",
                    &format!("/api/v1/operations/{id}"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{op}");
            if op["status"] != "running" {
                return op;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("operation {id} still running after 120 s");
    }
}

/// An HTTP client for calls to data planes, with a short timeout.
pub fn http() -> reqwest::Client {
    // Another crate of the workspace may switch on reqwest's rustls without a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// The value of `ns/key` on the data plane at `endpoint` now (the key path-encoded), `None`
/// when it is not found.
pub async fn data_value(
    endpoint: &str,
    token: &str,
    ns: &str,
    key: &str,
) -> Option<serde_json::Value> {
    let key: String = form_urlencoded::byte_serialize(key.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let response = http()
        .get(format!("{endpoint}/api/v1/{ns}/{key}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert!(
        response.status().is_success(),
        "GET {ns}/{key}: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await.unwrap();
    Some(body["value"].clone())
}
