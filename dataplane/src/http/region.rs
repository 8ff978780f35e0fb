//! The multi-region routes (status, policies, conflicts) and the layer every data route goes
//! through: home-region routing of writes, session tokens on writes, and reads that wait for the
//! streams (`X-Koru-Session`, `X-Koru-Read-At`).

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::JsonBody;
use super::{ApiError, AppState, blocking, json};
use crate::region::conflicts::{self, Conflict};
use crate::region::policy::{self, Policy};
use crate::region::session::{self, MAX_WAIT_HEADER, READ_AT_HEADER, SESSION_HEADER, Wait};
use crate::region::{POLICY_NS, apply};
use crate::store::WriteOp;

/// `GET /admin/v1/regions`.
pub async fn status(
    State(state): State<AppState>,
) -> Json<koru_dataplane_api::region::RegionStatus> {
    Json(state.regions.status())
}

/// `GET /admin/v1/namespaces/{ns}/policy`.
pub async fn get_policy(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
) -> Result<Json<Policy>, ApiError> {
    crate::names::validate_namespace(&namespace).map_err(crate::StoreError::from)?;
    Ok(Json(policy::get(&state.store, &namespace)))
}

/// `PUT /admin/v1/namespaces/{ns}/policy`: written like data, so it replicates.
pub async fn put_policy(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<Policy>,
) -> Result<Json<Policy>, ApiError> {
    crate::names::validate_namespace(&namespace).map_err(crate::StoreError::from)?;
    body.validate().map_err(ApiError::bad_request)?;
    let text = serde_json::to_string(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let value = json::raw(text)?;
    state
        .write(
            vec![WriteOp::put(POLICY_NS, namespace, value)],
            Default::default(),
        )
        .await?;
    Ok(Json(body))
}

/// `GET /api/v1/{ns}/{key}/conflicts`.
pub async fn list_conflicts(
    State(state): State<AppState>,
    Path((namespace, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    crate::names::validate_namespace(&namespace).map_err(crate::StoreError::from)?;
    let store = state.store.clone();
    let found: Vec<Conflict> =
        blocking::read(move || Ok(conflicts::list(&store, &namespace, &key)?)).await?;
    Ok(Json(serde_json::json!({ "conflicts": found })))
}

/// The path parameters of a data route (`namespace`, `key`), decoded as the handlers see them.
async fn path_params(request: &mut Request) -> HashMap<String, String> {
    use axum::RequestExt;
    request
        .extract_parts::<Path<HashMap<String, String>>>()
        .await
        .map(|Path(p)| p)
        .unwrap_or_default()
}

/// The region layer (inside the auth guard): home-region routing and session tokens for writes,
/// the streams' wait for reads that ask for it, and reads exactly as of `X-Koru-Read-At`.
pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if super::is_api_write(&request) {
        // Most databases set no policy: then no write pays for the lookup.
        if state.store.live_keys(POLICY_NS) > 0 {
            let namespaces = match path_params(&mut request).await.remove("namespace") {
                Some(ns) => vec![ns],
                None => {
                    let (names, rebuilt) = batch_namespaces(request).await;
                    request = rebuilt;
                    names
                }
            };
            for ns in namespaces {
                let found = policy::get(&state.store, &ns);
                if let Err(wrong) = policy::check_write(&state.regions.config, &found) {
                    return wrong_region(&ns, &wrong, &request);
                }
            }
        }
        let sent = request
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(session::parse)
            .unwrap_or_default();
        let mut response = next.run(request).await;
        if response.status().is_success() {
            let mut s = sent;
            // A follower that forwarded the write catches up first: then the last LSN here
            // bounds the write's own, and waiting for it is waiting for the write.
            if let Some(replica) = &state.replica
                && !replica.is_leader()
            {
                let _ = replica.read_barrier(None).await;
            }
            let lsn = state.store.last_applied().0;
            let e = s.entry(state.regions.config.name.clone()).or_default();
            *e = (*e).max(lsn);
            if let Ok(v) = HeaderValue::from_str(&session::format(&s)) {
                response.headers_mut().insert(SESSION_HEADER, v);
            }
        }
        return response;
    }
    if !super::is_api_read(&request) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut wait = Wait::default();
    if let Some(s) = text(SESSION_HEADER) {
        match session::parse(s) {
            Some(s) => wait.session = s,
            None => {
                return ApiError::bad_request("X-Koru-Session is not <region>:<lsn>[,…]")
                    .into_response();
            }
        }
    }
    if let Some(t) = text(READ_AT_HEADER) {
        match crate::clock::parse_micros(t) {
            Ok(t) => wait.read_at = Some(t),
            Err(e) => {
                return ApiError::bad_request(format!("X-Koru-Read-At: {e}")).into_response();
            }
        }
    }
    if wait.read_at.is_none() && wait.session.is_empty() {
        return next.run(request).await;
    }
    let max = text(MAX_WAIT_HEADER)
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(session::DEFAULT_MAX_WAIT, Duration::from_millis);
    if !session::wait(&state.regions, &wait, max).await {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "replica_behind",
            "this region has not yet applied what the read asks for; retry, or read elsewhere",
        );
        e.retry_after = Some(1);
        return e.into_response();
    }
    let is_key_get = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str() == "/api/v1/{namespace}/{key}");
    match (wait.read_at, is_key_get) {
        (Some(at), true) => read_key_at(&state, path_params(&mut request).await, at).await,
        _ => next.run(request).await,
    }
}

/// A key's value exactly as of `at`: the version with the greatest clock among those whose
/// clock is at or before `at` (a value applied from a peer counts at its origin's time, not at
/// the later time it was applied here).
async fn read_key_at(state: &AppState, mut params: HashMap<String, String>, at: i64) -> Response {
    let (Some(ns), Some(key)) = (params.remove("namespace"), params.remove("key")) else {
        return ApiError::bad_request("no key").into_response();
    };
    let store = state.store.clone();
    let region = state.regions.config.name.clone();
    let found = blocking::read(move || {
        let mut best: Option<(crate::crdt::Hlc, crate::store::Version, Option<String>)> = None;
        for (v, value) in store.history_raw(&ns, &key)? {
            let held = apply::held_version(&store, &region, &ns, &key, v, value);
            if held.hlc.micros <= at && best.as_ref().is_none_or(|(h, _, _)| held.hlc > *h) {
                best = Some((held.hlc, v, held.value));
            }
        }
        Ok((ns, key, best))
    })
    .await;
    match found {
        Err(e) => e.into_response(),
        Ok((ns, key, Some((_, v, Some(value))))) => {
            let rendered = match crate::crdt::is_crdt(&value) {
                true => crate::crdt::render(&value).unwrap_or(value),
                false => value,
            };
            let body = match json::raw(rendered) {
                Ok(raw) => raw,
                Err(e) => return e.into_response(),
            };
            Json(serde_json::json!({
                "namespace": ns,
                "key": key,
                "value": body,
                "version_id": v.id().to_string(),
                "timestamp": json::timestamp(v.timestamp_micros),
            }))
            .into_response()
        }
        Ok((ns, key, _)) => ApiError::not_found(format!(
            "key {key:?} not found in namespace {ns:?} at that time"
        ))
        .into_response(),
    }
}

/// The namespaces a `POST /api/v1/batch` writes, and the request to pass on (its body read
/// and put back); none for other routes or a body the route itself will refuse.
async fn batch_namespaces(request: Request) -> (Vec<String>, Request) {
    let is_batch = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str() == "/api/v1/batch");
    if !is_batch {
        return (Vec::new(), request);
    }
    #[derive(serde::Deserialize)]
    struct Item {
        namespace: String,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(alias = "ops")]
        writes: Vec<Item>,
    }
    let (parts, body) = request.into_parts();
    // The body limit layer already bounds what this reads.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut names: Vec<String> = serde_json::from_slice::<Body>(&bytes)
        .map(|b| b.writes.into_iter().map(|w| w.namespace).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names.dedup();
    (
        names,
        Request::from_parts(parts, axum::body::Body::from(bytes)),
    )
}

/// 307 to the home region when it is a known peer, else 421; both with the error body.
fn wrong_region(namespace: &str, wrong: &policy::WrongRegion, request: &Request) -> Response {
    let message = format!(
        "namespace {namespace:?} takes writes in region {:?} only",
        wrong.home
    );
    let location = wrong.endpoint.as_ref().map(|url| {
        format!(
            "{url}{}",
            request.uri().path_and_query().map_or("/", |p| p.as_str())
        )
    });
    let status = match location {
        Some(_) => StatusCode::TEMPORARY_REDIRECT,
        None => StatusCode::MISDIRECTED_REQUEST,
    };
    let mut error = serde_json::json!({
        "code": "wrong_region",
        "message": message,
        "home_region": wrong.home,
    });
    if let Some(endpoint) = &wrong.endpoint {
        error["endpoint"] = Value::String(endpoint.clone());
    }
    let mut response = (status, Json(serde_json::json!({ "error": error }))).into_response();
    if let Some(l) = location
        && let Ok(v) = HeaderValue::from_str(&l)
    {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
