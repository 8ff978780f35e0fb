//! The audit log over the real router and a real database (SQLite and PostgreSQL): one event per
//! state-changing request and login, tenant isolation, filters and pages, the JSON-lines export,
//! chain verification by the API and the real `koru-controlplane audit` binary, tampering,
//! signed digests, and concurrent appends.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod chains;
#[path = "../common/mod.rs"]
mod common;
mod recording;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use common::{Api, backends};
use http_body_util::BodyExt;
use koru_controlplane::audit::chain::{ChainKind, GENESIS_HASH, Record};
use koru_controlplane::audit::digest::{self, TrustedKeys};
use koru_controlplane::audit::export::{ExportLine, verify_export};
use koru_controlplane::audit::store;
use koru_controlplane::audit::verify::{Scope, Verification, verify};
use koru_controlplane::audit::{Filter, StoredEvent};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The client address every request of these tests comes from.
const CLIENT: ([u8; 4], u16) = ([203, 0, 113, 7], 40000);

/// A response: status, headers and body text.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// Sends a request from [`CLIENT`] with optional token, JSON body and request id.
async fn send(
    api: &Api,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    request_id: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let mut req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(CLIENT)));
    let response = koru_controlplane::http::app(api.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Every event, oldest first.
async fn all_events(api: &Api) -> Vec<StoredEvent> {
    store::global_events(&api.state.db, &Filter::default(), 0, 100_000)
        .await
        .unwrap()
}

/// Sends a request and checks it appended exactly one event, which it returns with the reply.
async fn step(
    api: &Api,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (Reply, Record) {
    let before = all_events(api).await.len();
    let request_id = format!("req-{}", uuid::Uuid::new_v4().simple());
    let reply = send(api, method, path, token, body, Some(&request_id)).await;
    let events = all_events(api).await;
    assert_eq!(
        events.len(),
        before + 1,
        "[{}] {method} {path} must append one event",
        api.backend
    );
    let record = events.last().unwrap().record.clone();
    assert_eq!(
        record.request_id, request_id,
        "[{}] the client's request id is kept",
        api.backend
    );
    assert_eq!(
        reply.headers["x-request-id"],
        request_id.as_str(),
        "[{}] and echoed",
        api.backend
    );
    assert_eq!(record.source_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(record.target, path.split('?').next().unwrap());
    (reply, record)
}

fn check(b: &str, r: &Record, action: &str, actor: Option<&str>, org: Option<&str>, outcome: &str) {
    assert_eq!(r.action, action, "[{b}] {r:?}");
    assert_eq!(r.actor.as_deref(), actor, "[{b}] actor of {action}: {r:?}");
    assert_eq!(r.org_id.as_deref(), org, "[{b}] org of {action}: {r:?}");
    assert_eq!(r.outcome, outcome, "[{b}] outcome of {action}: {r:?}");
}

async fn user_id(api: &Api, token: &str) -> String {
    let (_, me) = api.call("GET", "/api/v1/me", Some(token), None).await;
    me["user"]["id"].as_str().unwrap().to_string()
}

fn password() -> &'static str {
    "correct horse battery"
}

/// Signs up an admin of a fresh organization and records `n` token creations there.
async fn org_with_events(api: &Api, email: &str, name: &str, n: usize) -> (String, String) {
    let (owner, org, _) = api.signup(email, name).await;
    for i in 0..n {
        let (status, e) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/tokens"),
                Some(&owner),
                Some(json!({"name": format!("t{i}"), "role": "viewer"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
    }
    (owner, org)
}

/// Runs the real binary; returns its exit code and output.
fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_koru-controlplane"))
        .arg("audit")
        .args(args)
        .env_remove("KORU_DATABASE_URL")
        .output()
        .expect("running koru-controlplane");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn api_verify(api: &Api, owner: &str, org: &str) -> Verification {
    let (status, v) = api
        .call(
            "GET",
            &format!("/api/v1/orgs/{org}/audit/verify"),
            Some(owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    serde_json::from_value(v).unwrap()
}

async fn exec(api: &Api, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&api.state.db)
        .await
        .unwrap();
}
