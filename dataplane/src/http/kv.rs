//! Single-key routes (get, put, delete, history, as-of reads) and the listing routes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::{ApiPath, ApiQuery, JsonBody};
use super::json::{self, JsonBytes};
use super::{ApiError, AppState};
use crate::names;
use crate::store::{Committed, VersionId, WriteOp};

/// Body of `PUT /api/v1/{ns}/{key}`.
#[derive(Deserialize)]
pub struct PutBody {
    value: Box<RawValue>,
}

/// Checks the names in a path before they are looked up or written.
fn check_names(namespace: &str, key: &str) -> Result<(), ApiError> {
    names::validate_namespace(namespace).map_err(crate::StoreError::from)?;
    names::validate_key(key).map_err(crate::StoreError::from)?;
    Ok(())
}

fn no_key(namespace: &str, key: &str) -> ApiError {
    ApiError::not_found(format!("key {key:?} not found in namespace {namespace:?}"))
}

/// `GET /api/v1/{ns}/{key}`: the latest version, also as the `ETag`.
pub async fn get(
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    check_names(&namespace, &key)?;
    match state.store.get(&namespace, &key)? {
        Some(f) => Ok(tagged(
            f.version,
            json::versioned(&f, f.value.as_deref().unwrap_or("null")),
        )),
        None => Err(no_key(&namespace, &key)),
    }
}

/// `body` with the version as its entity tag (`ETag: "<version_id>"`), for `If-Match`.
fn tagged(version: VersionId, body: JsonBytes) -> Response {
    ([(header::ETAG, format!("\"{version}\""))], body).into_response()
}

/// `GET /api/v1/{ns}/{key}/at/{timestamp}`: the version current at a moment.
pub async fn get_at(
    State(state): State<AppState>,
    ApiPath((namespace, key, at)): ApiPath<(String, String, String)>,
) -> Result<JsonBytes, ApiError> {
    check_names(&namespace, &key)?;
    let micros = json::parse_timestamp(&at)?;
    match state.store.get_at(&namespace, &key, micros)? {
        Some(f) => Ok(json::versioned(&f, f.value.as_deref().unwrap_or("null"))),
        None => Err(ApiError::not_found(format!(
            "key {key:?} in namespace {namespace:?} had no value at {at}"
        ))),
    }
}

/// The version an `If-Match` header asks for (extension: a compare-and-set), if any.
fn if_match(headers: &HeaderMap) -> Result<Option<VersionId>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not text"))?;
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("If-Match: {e}")))
}

/// Writes `op`, only over version `expected` when one is given.
async fn write_one(
    state: &AppState,
    op: WriteOp,
    expected: Option<VersionId>,
) -> Result<Committed, ApiError> {
    match expected {
        Some(expected) => state.write_if_latest(op, expected).await,
        None => state.write(vec![op]).await,
    }
}

/// `PUT /api/v1/{ns}/{key}`: writes a new version (its id also the `ETag`); with
/// `If-Match: <version_id>`, only if that is still the key's latest version (412
/// `version_mismatch` otherwise).
pub async fn put(
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PutBody>,
) -> Result<Response, ApiError> {
    names::validate_namespace(&namespace).map_err(crate::StoreError::from)?;
    let expected = if_match(&headers)?;
    let committed = write_one(&state, WriteOp::put(namespace, key, body.value), expected).await?;
    let (version, previous) = committed.versions[0];
    Ok(tagged(
        version,
        json::written(version, committed.timestamp_micros, previous),
    ))
}

/// `DELETE /api/v1/{ns}/{key}`: writes a tombstone version; 404 when the key is not live. With
/// `If-Match: <version_id>`, only if that is still the key's latest version.
pub async fn delete(
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_names(&namespace, &key)?;
    let expected = if_match(&headers)?;
    if state.store.get(&namespace, &key)?.is_none() {
        return Err(no_key(&namespace, &key));
    }
    let committed = write_one(&state, WriteOp::delete(namespace, key), expected).await?;
    let (version, previous) = committed.versions[0];
    Ok(tagged(
        version,
        json::written(version, committed.timestamp_micros, previous),
    ))
}

/// One entry of a key's history.
#[derive(Serialize)]
struct HistoryEntry {
    value: Box<RawValue>,
    version_id: String,
    timestamp: String,
    /// The same id under the name the kdelta CLI reads.
    #[serde(rename = "versionId")]
    version_id_camel: String,
    /// Extension: true for delete (tombstone) versions, whose value is null.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

/// Body of the history route.
#[derive(Serialize)]
struct History {
    namespace: String,
    key: String,
    versions: Vec<HistoryEntry>,
}

/// `GET /api/v1/{ns}/{key}/history`: every version, oldest first.
pub async fn history(
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
) -> Result<Json<impl Serialize>, ApiError> {
    check_names(&namespace, &key)?;
    let versions = state
        .store
        .history(&namespace, &key)?
        .ok_or_else(|| no_key(&namespace, &key))?;
    let versions = versions
        .into_iter()
        .map(|f| {
            Ok(HistoryEntry {
                deleted: f.value.is_none(),
                value: json::raw(f.value.unwrap_or_else(|| "null".into()))?,
                version_id: f.version.to_string(),
                version_id_camel: f.version.to_string(),
                timestamp: json::timestamp(f.timestamp_micros),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(History {
        namespace,
        key,
        versions,
    }))
}

/// Most keys one listing returns when the client names no limit.
pub const DEFAULT_KEYS_LIMIT: usize = 10_000;
/// Most keys one listing returns at all.
pub const MAX_KEYS_LIMIT: usize = 100_000;

/// Query string of the key listing.
#[derive(Deserialize)]
pub struct KeysParams {
    #[serde(default)]
    prefix: String,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/{ns}/keys?prefix=&cursor=&limit=`: live keys in order, paginated.
pub async fn keys(
    State(state): State<AppState>,
    ApiPath(namespace): ApiPath<String>,
    ApiQuery(params): ApiQuery<KeysParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    names::validate_namespace(&namespace).map_err(crate::StoreError::from)?;
    let limit = params.limit.unwrap_or(DEFAULT_KEYS_LIMIT);
    if !(1..=MAX_KEYS_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_KEYS_LIMIT}"
        )));
    }
    let (keys, next) =
        state
            .store
            .keys(&namespace, &params.prefix, params.cursor.as_deref(), limit);
    let mut body = serde_json::json!({ "namespace": namespace, "keys": keys });
    if let Some(next) = next {
        body["next_cursor"] = next.into();
    }
    Ok(Json(body))
}

/// `GET /api/v1/namespaces`.
pub async fn namespaces(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "namespaces": state.store.namespaces() }))
}

/// `GET /api/v1/status`: counts over user namespaces.
pub async fn status(State(state): State<AppState>) -> Json<serde_json::Value> {
    let stats = state.store.stats();
    let namespaces = state.store.namespaces();
    Json(serde_json::json!({
        "key_count": stats.live_keys,
        "total_versions": stats.versions,
        "namespace_count": namespaces.len(),
        "namespaces": namespaces,
        "last_lsn": stats.applied_lsn,
        "stored_bytes": state.store.stored_bytes(),
        // The kdelta CLI reads these camelCase names, which koru-delta's own server never sent.
        "keyCount": stats.live_keys,
        "totalVersions": stats.versions,
        "namespaceCount": namespaces.len(),
    }))
}
