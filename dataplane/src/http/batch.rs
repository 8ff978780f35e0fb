//! Extensions for throughput and replication: atomic batch writes, batch reads, the change feed.

use axum::Json;
use axum::extract::State;
use koru_dataplane_api::data::Changes;
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiQuery, JsonBody};
use super::json::JsonBytes;
use super::{ApiError, AppState, blocking, json};
use crate::db::WireWrite;
use crate::names;
use crate::store::WriteOp;

/// Body of `POST /api/v1/batch`.
#[derive(Deserialize)]
pub struct BatchBody {
    #[serde(alias = "ops")]
    writes: Vec<WireWrite>,
}

/// `POST /api/v1/batch`: all writes in one record, so all or none become durable.
pub async fn write(
    State(state): State<AppState>,
    author: super::meta::Author,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<JsonBytes, ApiError> {
    // The request itself took one operation from the rate limit in the guard.
    state.take_ops(body.writes.len().saturating_sub(1))?;
    let mut ops = Vec::with_capacity(body.writes.len());
    for (i, w) in body.writes.into_iter().enumerate() {
        names::validate_namespace(&w.namespace).map_err(crate::StoreError::from)?;
        ops.push(match (w.value, w.delete) {
            (Some(value), false) => {
                WriteOp::user_put(w.namespace, w.key, value, &state.region.name)?
            }
            (None, true) => WriteOp::delete(w.namespace, w.key),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "writes[{i}]: give either a value or \"delete\": true"
                )));
            }
        });
    }
    // The names go into the response before the ops move into the store, so none is copied; the
    // body is written by hand because serde_json::json! cost a quarter of a batch's CPU time.
    let mut names = Vec::with_capacity(ops.len() * 48);
    let mut ends = Vec::with_capacity(ops.len());
    for op in &ops {
        names.extend_from_slice(b"{\"namespace\":");
        json::push_str(&mut names, &op.namespace);
        names.extend_from_slice(b",\"key\":");
        json::push_str(&mut names, &op.key);
        ends.push(names.len());
    }
    let committed = state.write(ops, author.write()).await?;
    let mut out = Vec::with_capacity(names.len() + ends.len() * 64 + 96);
    let head = format!(
        "{{\"lsn\":{},\"timestamp\":\"{}\",\"results\":[",
        committed.lsn,
        json::timestamp(committed.timestamp_micros)
    );
    out.extend_from_slice(head.as_bytes());
    let mut start = 0;
    for (i, (&end, &(version, previous))) in ends.iter().zip(&committed.versions).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&names[start..end]);
        start = end;
        out.extend_from_slice(b",\"version_id\":");
        json::push_version(&mut out, Some(version));
        out.extend_from_slice(b",\"previous_version\":");
        json::push_version(&mut out, previous);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(JsonBytes(out))
}

/// One key of a batch read, optionally as of a time.
#[derive(Deserialize)]
pub struct BatchKey {
    namespace: String,
    key: String,
    #[serde(default)]
    at: Option<String>,
}

/// Body of `POST /api/v1/batch/get`.
#[derive(Deserialize)]
pub struct BatchGetBody {
    keys: Vec<BatchKey>,
}

/// `POST /api/v1/batch/get`: many reads in one request; missing keys come back with `found: false`.
pub async fn get(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BatchGetBody>,
) -> Result<Json<Value>, ApiError> {
    let limit = state.store.config().max_batch_ops;
    if body.keys.len() > limit {
        return Err(crate::StoreError::BatchTooLarge {
            count: body.keys.len(),
            limit,
        }
        .into());
    }
    state.take_ops(body.keys.len().saturating_sub(1))?;
    let store = state.store.clone();
    blocking::read(move || read_keys(&store, body.keys)).await
}

/// The reads of a batch, in order; values are read from the log here, off the async runtime.
fn read_keys(store: &crate::Store, keys: Vec<BatchKey>) -> Result<Json<Value>, ApiError> {
    let mut results = Vec::with_capacity(keys.len());
    for k in keys {
        names::validate_namespace(&k.namespace).map_err(crate::StoreError::from)?;
        names::validate_key(&k.key).map_err(crate::StoreError::from)?;
        let found = match &k.at {
            Some(at) => store.get_at(&k.namespace, &k.key, json::parse_timestamp(at)?)?,
            None => store.get(&k.namespace, &k.key)?,
        };
        results.push(match found {
            Some(f) => serde_json::json!({
                "namespace": k.namespace,
                "key": k.key,
                "found": true,
                "value": json::raw(f.value.unwrap_or_else(|| "null".into()))?,
                "version_id": f.version.to_string(),
                "timestamp": json::timestamp(f.timestamp_micros),
                "previous_version": f.previous.map(|p| p.to_string()),
            }),
            None => serde_json::json!({ "namespace": k.namespace, "key": k.key, "found": false }),
        });
    }
    Ok(Json(serde_json::json!({ "results": results })))
}

/// Most records one change-feed page returns.
pub const MAX_CHANGES: usize = 10_000;

/// Query string of the change feed.
#[derive(Deserialize)]
pub struct ChangesParams {
    since: Option<u64>,
    /// RFC 3339: start at the first record committed at or after it (instead of `since`).
    since_time: Option<String>,
    limit: Option<usize>,
    /// Values as stored (CRDT states unrendered): for other regions' streams.
    #[serde(default)]
    raw: bool,
    /// `local`: leave out the records this region applied from its peers.
    #[serde(default)]
    origin: Option<String>,
    /// Add each record's `author` and `cause`.
    #[serde(default)]
    meta: bool,
}

/// `GET /api/v1/changes?since=<lsn>|since_time=<RFC 3339>&limit=&meta=`: committed records after an LSN (or from
/// the first committed at or after a time), in order, at most
/// `limit` of them and `--max-read-bytes` of log (always at least one record when any follows).
pub async fn changes(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::region::Privileged>>,
    ApiQuery(params): ApiQuery<ChangesParams>,
) -> Result<Json<Changes>, ApiError> {
    let local_only = match params.origin.as_deref() {
        None => false,
        Some("local") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "origin must be \"local\", not {other:?}"
            )));
        }
    };
    if (params.raw || local_only) && state.verifier.is_some() && caller.is_none() {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "raw and origin need the admin token or the region token",
        ));
    }
    let limit = params.limit.unwrap_or(1000);
    if !(1..=MAX_CHANGES).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_CHANGES}"
        )));
    }
    let since = super::snapshot::feed_start(&state, params.since, params.since_time).await?;
    let store = state.store.clone();
    // Read before the page, so the page holds every record up to it (commit times grow with
    // LSNs: nothing later can commit at or before the last record's time).
    let (closed_lsn, closed_micros) = state.store.last_applied();
    let changes = blocking::read(move || {
        let budget = store.config().max_read_bytes;
        Ok(store.changes_page(since, limit, budget)?)
    })
    .await?;
    let next_since = changes.last().map_or(since, |c| c.lsn);
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        if local_only && crate::region::applied_from_peer(&c) {
            continue;
        }
        out.push(c.into_answer(params.meta, |v| {
            let v = if params.raw {
                v
            } else {
                crate::crdt::as_read(v).map_err(crate::StoreError::from)?
            };
            json::raw(v)
        })?);
    }
    Ok(Json(Changes {
        changes: out,
        next_since,
        last_lsn: closed_lsn.max(next_since),
        closed_time: (closed_lsn > 0 && next_since >= closed_lsn)
            .then(|| json::timestamp(closed_micros)),
    }))
}
