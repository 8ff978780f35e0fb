//! Single-key routes (get, put, delete, history, as-of reads) and the listing routes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{ApiPath, ApiQuery, JsonBody};
use super::json::{self, JsonBytes};
use super::meta::{Author, MetaParams, version_op};
use super::{ApiError, AppState, blocking};
use crate::names;
use crate::store::{Committed, NoWait, VersionId, WriteMeta, WriteOp};
use koru_dataplane_api::data::{self, HistoryEntry};

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

/// `GET /api/v1/{ns}/{key}?meta=`: the latest version, also as the `ETag`.
pub async fn get(
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<MetaParams>,
) -> Result<Response, ApiError> {
    check_names(&namespace, &key)?;
    // A cached value is answered here; only one on disk goes to the blocking pool.
    let found = match state.store.get_nowait(&namespace, &key)? {
        NoWait::Ready(found) => found,
        NoWait::WouldBlock => {
            let store = state.store.clone();
            let (ns, k) = (namespace.clone(), key.clone());
            blocking::read(move || Ok(store.get(&ns, &k)?)).await?
        }
    };
    match found {
        Some(f) => Ok(tagged(
            f.version,
            json::versioned(&f, f.value.as_deref().unwrap_or("null"), params.meta),
        )),
        None => Err(no_key(&namespace, &key)),
    }
}

/// `body` with the version as its entity tag (`ETag: "<version_id>"`), for `If-Match`.
pub(super) fn tagged(version: VersionId, body: JsonBytes) -> Response {
    ([(header::ETAG, format!("\"{version}\""))], body).into_response()
}

/// `GET /api/v1/{ns}/{key}/at/{timestamp}?meta=`: the version current at a moment.
pub async fn get_at(
    State(state): State<AppState>,
    ApiPath((namespace, key, at)): ApiPath<(String, String, String)>,
    ApiQuery(params): ApiQuery<MetaParams>,
) -> Result<JsonBytes, ApiError> {
    check_names(&namespace, &key)?;
    let micros = json::parse_timestamp(&at)?;
    let store = state.store.clone();
    let (ns, k) = (namespace.clone(), key.clone());
    match blocking::read(move || Ok(store.get_at(&ns, &k, micros)?)).await? {
        Some(f) => Ok(json::versioned(
            &f,
            f.value.as_deref().unwrap_or("null"),
            params.meta,
        )),
        None => Err(ApiError::not_found(format!(
            "key {key:?} in namespace {namespace:?} had no value at {at}"
        ))),
    }
}

/// The version an `If-Match` header asks for (extension: a compare-and-set), if any.
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<VersionId>, ApiError> {
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

/// Writes `op` by `meta`'s author, only over version `expected` when one is given.
async fn write_one(
    state: &AppState,
    op: WriteOp,
    expected: Option<VersionId>,
    meta: WriteMeta,
) -> Result<Committed, ApiError> {
    match expected {
        Some(expected) => state.write_if_latest(op, expected, meta).await,
        None => state.write(vec![op], meta).await,
    }
}

/// `PUT /api/v1/{ns}/{key}`: writes a new version (its id also the `ETag`); with
/// `If-Match: <version_id>`, only if that is still the key's latest version (412
/// `version_mismatch` otherwise).
pub async fn put(
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
    author: Author,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PutBody>,
) -> Result<Response, ApiError> {
    names::validate_namespace(&namespace).map_err(crate::StoreError::from)?;
    let expected = if_match(&headers)?;
    let op = WriteOp::user_put(namespace, key, body.value, &state.region.name)?;
    let committed = write_one(&state, op, expected, author.write()).await?;
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
    author: Author,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_names(&namespace, &key)?;
    let expected = if_match(&headers)?;
    if !state.store.is_live(&namespace, &key) {
        return Err(no_key(&namespace, &key));
    }
    let delete = WriteOp::delete(namespace, key);
    let committed = write_one(&state, delete, expected, author.write()).await?;
    let (version, previous) = committed.versions[0];
    Ok(tagged(
        version,
        json::written(version, committed.timestamp_micros, previous),
    ))
}

/// Most versions one history page returns when the client asks for a count.
pub const MAX_HISTORY_LIMIT: usize = 100_000;

/// Query string of the history route (extension; KoruDelta v1 sends none).
#[derive(Deserialize)]
pub struct HistoryParams {
    /// The last version id of the previous page: this page starts after it.
    cursor: Option<String>,
    /// Most versions in the page.
    limit: Option<usize>,
    /// Add each version's `author` and `op`.
    #[serde(default)]
    meta: bool,
}

/// `GET /api/v1/{ns}/{key}/history?cursor=&limit=&meta=`: the versions, oldest first, in pages of at
/// most `--max-read-bytes` of values; a history that fits is one answer in the v1 shape.
pub async fn history(
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HistoryParams>,
    uri: Uri,
) -> Result<Response, ApiError> {
    check_names(&namespace, &key)?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<VersionId>()
                .map_err(|e| ApiError::bad_request(format!("cursor: {e}")))
        })
        .transpose()?;
    if params
        .limit
        .is_some_and(|l| !(1..=MAX_HISTORY_LIMIT).contains(&l))
    {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_HISTORY_LIMIT}"
        )));
    }
    let limit = params.limit.unwrap_or(usize::MAX);
    let store = state.store.clone();
    let (ns, k) = (namespace.clone(), key.clone());
    let page = blocking::read(move || {
        let budget = store.config().max_read_bytes;
        Ok(store.history_page(&ns, &k, after, limit, budget)?)
    })
    .await?
    .ok_or_else(|| no_key(&namespace, &key))?;
    let next_cursor = page
        .more
        .then(|| page.versions.last().map(|f| f.version.to_string()))
        .flatten();
    let versions = page
        .versions
        .into_iter()
        .map(|f| {
            let deleted = f.value.is_none();
            Ok(HistoryEntry {
                deleted,
                value: json::raw(f.value.unwrap_or_else(|| "null".into()))?,
                version_id: f.version.to_string(),
                version_id_alias: f.version.to_string(),
                timestamp: json::timestamp(f.timestamp_micros),
                author: f.meta.author.filter(|_| params.meta).map(|a| a.to_string()),
                op: params.meta.then(|| version_op(f.meta.cause, deleted)),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let link = next_cursor.as_ref().and_then(|cursor| {
        let limit = params
            .limit
            .map_or_else(String::new, |l| format!("&limit={l}"));
        // Version ids are `<digits>.<digits>` and the path is the client's own, already encoded.
        let meta = if params.meta { "&meta=true" } else { "" };
        HeaderValue::from_str(&format!(
            "<{}?cursor={cursor}{limit}{meta}>; rel=\"next\"",
            uri.path()
        ))
        .ok()
    });
    let mut response = Json(data::History {
        namespace,
        key,
        versions,
        next_cursor,
    })
    .into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
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
) -> Result<Json<data::Keys>, ApiError> {
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
    Ok(Json(data::Keys {
        keys,
        namespace,
        next_cursor: next,
    }))
}

/// Query string of the namespace listing.
#[derive(Deserialize)]
pub struct NamespacesParams {
    /// Add each namespace's live keys and versions.
    #[serde(default)]
    stats: bool,
}

/// `GET /api/v1/namespaces?stats=`.
pub async fn namespaces(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<NamespacesParams>,
) -> Json<data::Namespaces> {
    if !params.stats {
        return Json(data::Namespaces {
            namespaces: state.store.namespaces(),
            stats: None,
        });
    }
    let stats: Vec<data::NamespaceStats> = state
        .store
        .namespace_stats()
        .into_iter()
        .map(|(namespace, keys, versions)| data::NamespaceStats {
            namespace,
            keys,
            versions,
        })
        .collect();
    Json(data::Namespaces {
        namespaces: stats.iter().map(|s| s.namespace.clone()).collect(),
        stats: Some(stats),
    })
}

/// `GET /api/v1/status`: counts over user namespaces, and the span of time the log holds.
pub async fn status(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let stats = state.store.stats();
    let namespaces = state.store.namespaces();
    let status = data::Status {
        key_count: stats.live_keys as u64,
        total_versions: stats.versions,
        namespace_count: namespaces.len() as u64,
        namespaces,
        last_lsn: stats.applied_lsn,
        stored_bytes: state.store.stored_bytes(),
        first_timestamp: state.store.first_timestamp_micros().map(json::timestamp),
        last_timestamp: state.store.last_timestamp_micros().map(json::timestamp),
    };
    let mut body = serde_json::to_value(&status).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )
    })?;
    // The kdelta CLI reads these camelCase names, which koru-delta's own server never sent.
    if let Some(fields) = body.as_object_mut() {
        fields.insert("keyCount".into(), status.key_count.into());
        fields.insert("totalVersions".into(), status.total_versions.into());
        fields.insert("namespaceCount".into(), status.namespace_count.into());
    }
    Ok(Json(body))
}
