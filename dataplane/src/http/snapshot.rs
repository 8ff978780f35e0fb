//! Time routes (roadmap 3.4): the change feed's `since_time`, the NDJSON snapshot of a moment
//! streamed a page of keys at a time, and the admin import that writes such a stream here.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::error::ApiQuery;
use super::{ApiError, AppState, blocking, media};
use crate::auth::Scope as AuthScope;
use crate::region::apply::Watermark;
use crate::region::{IMPORT_PREFIX, REGION_NS, WATERMARK_PREFIX};
use crate::snapshot::import::{self, LineError, Lines, Seeding};
use crate::snapshot::{self as snap, Cursor, Header, PAGE_KEYS, Scope, SnapshotError};
use crate::store::WriteOp;

/// The snapshot stream's media type.
pub const NDJSON: &str = "application/x-ndjson";

/// Room on an import line for the names and fields around the largest value.
const LINE_SLACK: usize = 64 * 1024;

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Name(n) => crate::StoreError::from(n).into(),
            SnapshotError::Store(s) => s.into(),
            other => {
                let status = if matches!(other, SnapshotError::BeforeHistory { .. }) {
                    StatusCode::GONE
                } else {
                    StatusCode::BAD_REQUEST
                };
                ApiError::new(status, other.code(), other.to_string())
            }
        }
    }
}

/// Where the change feed starts for `since` or `since_time` (one of them, 0 when neither):
/// the batch route's `changes` calls this with its query parameters.
pub async fn feed_start(
    state: &AppState,
    since: Option<u64>,
    since_time: Option<String>,
) -> Result<u64, ApiError> {
    match (since, since_time) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give either since (an LSN) or since_time (RFC 3339), not both",
        )),
        (since, None) => Ok(since.unwrap_or(0)),
        (None, Some(at)) => {
            let store = state.store.clone();
            blocking::read(move || Ok(snap::since_for_time(&store, &at)?)).await
        }
    }
}

/// Refuses anyone but an admin (the static admin token or an admin-scoped token) when auth is on.
fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.verifier.is_none() {
        return Ok(());
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    crate::auth::authorize(
        state.verifier.as_deref(),
        state.admin_token.as_deref(),
        header,
        AuthScope::Admin,
    )
    .map(|_| ())
    .map_err(ApiError::from)
}

/// Query string of the snapshot route.
#[derive(Deserialize)]
pub struct SnapshotParams {
    at: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    internal: bool,
}

/// `GET /api/v1/snapshot?at=&namespace=&raw=&internal=`: every key live at a moment as NDJSON,
/// after a header line; read and sent a page of keys at a time.
pub async fn snapshot(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<SnapshotParams>,
) -> Result<Response, ApiError> {
    if params.raw || params.internal {
        require_admin(&state, &headers)?;
    }
    let scope = Scope {
        namespace: params.namespace,
        raw: params.raw,
        internal: params.internal,
    };
    let store = state.store.clone();
    let at = params.at;
    let (head, cursor) = blocking::read(move || {
        let (head, _) = snap::moment(&store, at.as_deref(), crate::clock::now_micros())?;
        let cursor = Cursor::new(store, head.lsn, &scope)?;
        Ok((head, cursor))
    })
    .await?;
    let first = ndjson_line(&head).map_err(internal)?;
    let pages = futures::stream::try_unfold(Some(cursor), |cursor| async move {
        let Some(mut cursor) = cursor else {
            return Ok(None);
        };
        let (cursor, page) = tokio::task::spawn_blocking(move || {
            let page = cursor.next_page(PAGE_KEYS);
            (cursor, page)
        })
        .await
        .map_err(std::io::Error::other)?;
        let page = page.map_err(|e| {
            // The status line is gone: the stream is cut short, which clients see as an error.
            tracing::error!(error = %e, "snapshot read failed mid-stream");
            std::io::Error::other(e)
        })?;
        let Some(lines) = page else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(lines.len() * 128);
        for line in &lines {
            serde_json::to_writer(&mut out, line).map_err(std::io::Error::other)?;
            out.push(b'\n');
        }
        Ok::<_, std::io::Error>(Some((Bytes::from(out), Some(cursor))))
    });
    let stream = futures::stream::once(async move { Ok(first) }).chain(pages);
    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(response)
}

fn ndjson_line(value: &impl Serialize) -> Result<Bytes, serde_json::Error> {
    let mut out = serde_json::to_vec(value)?;
    out.push(b'\n');
    Ok(Bytes::from(out))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "serializing a snapshot failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the snapshot could not be written; see the server log",
    )
}

/// Answer of the import route.
#[derive(Serialize)]
pub struct ImportOut {
    imported: u64,
    source_lsn: u64,
    snapshot_at: String,
}

/// A bad line: 400 `invalid_line`, saying how many keys were written before it.
fn line_error(e: LineError, imported: u64) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_line",
        format!(
            "{e}; the {imported} keys before it were imported, nothing from this line on \
             (resume with the lines from {} on)",
            e.line
        ),
    )
}

/// Query string of the import route.
#[derive(Deserialize)]
pub struct ImportParams {
    /// Seeds this region from that region's raw, internal snapshot (REGIONS.md).
    source_region: Option<String>,
}

/// The seeding of this region from `source`, when it may be seeded: a valid other region's
/// name, and no stream running here (a seed's watermarks would race the streams' own).
fn seeding(state: &AppState, source: Option<String>) -> Result<Option<Seeding>, ApiError> {
    let Some(source) = source else {
        return Ok(None);
    };
    crate::region::check_name(&source).map_err(ApiError::bad_request)?;
    let config = &state.regions.config;
    if source == config.name {
        return Err(ApiError::bad_request(format!(
            "source_region {source:?} is this region; seed a region from another one"
        )));
    }
    if !config.peers.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "region_streaming",
            "this region already streams from its peers: seed it started without \
             --region-peer, then restart it with its peers",
        ));
    }
    Ok(Some(Seeding::new(&source, &config.name)))
}

/// `POST /admin/v1/import[?source_region=]`: a snapshot stream (header line first) written here
/// as puts through the normal write path, in batches of at most `--max-batch-ops`; with
/// `source_region`, as the seed of this region (see [`seeding`] and REGIONS.md).
pub async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<ImportParams>,
    body: Body,
) -> Result<Json<ImportOut>, ApiError> {
    // Declared NDJSON or JSON: a cross-site form post cannot send either without asking first.
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = declared.split(';').next().unwrap_or_default().trim();
    if !(essence.eq_ignore_ascii_case(NDJSON) || media::is_json(declared)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the snapshot as Content-Type: {NDJSON}"),
        ));
    }
    let mut seed = seeding(&state, params.source_region)?;
    let config = state.store.config();
    // A seeding batch also writes its progress and, the last one, the source's watermark.
    let max_batch = match seed {
        Some(_) => config.max_batch_ops.saturating_sub(2).max(1),
        None => config.max_batch_ops.max(1),
    };
    let mut lines = Lines::new(config.max_value_bytes.saturating_add(LINE_SLACK));
    let mut stream = body.into_data_stream();
    let mut head: Option<Header> = None;
    let mut batch: Vec<WriteOp> = Vec::new();
    let mut imported = 0u64;
    let mut end = false;
    loop {
        loop {
            let next = lines.next_line(end);
            let (number, text) = match next {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    let marks = progress(&seed, &head, imported + batch.len() as u64);
                    imported += flush(&state, &mut batch, marks).await?;
                    return Err(line_error(e, imported));
                }
            };
            if head.is_none() {
                head = Some(import::header(number, &text).map_err(|e| line_error(e, 0))?);
                continue;
            }
            match import::entry(&state.store, number, &text, seed.as_mut()) {
                Ok(Some(op)) => batch.push(op),
                Ok(None) => {}
                Err(e) => {
                    let marks = progress(&seed, &head, imported + batch.len() as u64);
                    imported += flush(&state, &mut batch, marks).await?;
                    return Err(line_error(e, imported));
                }
            }
            if batch.len() >= max_batch {
                let marks = progress(&seed, &head, imported + batch.len() as u64);
                imported += flush(&state, &mut batch, marks).await?;
            }
        }
        if end {
            break;
        }
        match stream.next().await {
            Some(Ok(chunk)) => lines.push(&chunk),
            Some(Err(e)) => {
                return Err(ApiError::bad_request(format!(
                    "reading the body failed after {imported} keys were imported: {e}"
                )));
            }
            None => end = true,
        }
    }
    let head = head.ok_or_else(|| {
        line_error(
            LineError {
                line: 1,
                reason: "the body is empty; expected the snapshot header line".into(),
            },
            0,
        )
    })?;
    let last = match &seed {
        // The source's watermark commits with the last batch: its streams resume past it.
        Some(s) => {
            let mut ops = progress(&seed, &Some(head.clone()), imported + batch.len() as u64);
            ops.push(seed_op(
                format!("{WATERMARK_PREFIX}{}", s.source),
                &Watermark {
                    lsn: head.lsn,
                    time: Some(head.snapshot_at.clone()),
                },
            )?);
            state.store.raise_clock(s.latest_micros);
            ops
        }
        None => Vec::new(),
    };
    imported += flush(&state, &mut batch, last).await?;
    Ok(Json(ImportOut {
        imported,
        source_lsn: head.lsn,
        snapshot_at: head.snapshot_at,
    }))
}

/// A seeding import's progress op (`_koru_region/import/<source>`), written with every batch:
/// it marks the batch's record as applied from a peer, so no region streams it back
/// (`origin=local` leaves it out). Empty when not seeding.
fn progress(seed: &Option<Seeding>, head: &Option<Header>, imported: u64) -> Vec<WriteOp> {
    let (Some(s), Some(h)) = (seed, head) else {
        return Vec::new();
    };
    let at = serde_json::json!({"lsn": h.lsn, "snapshot_at": h.snapshot_at, "imported": imported});
    seed_op(format!("{IMPORT_PREFIX}{}", s.source), &at)
        .map(|op| vec![op])
        .unwrap_or_default()
}

fn seed_op(key: String, value: &impl Serialize) -> Result<WriteOp, ApiError> {
    let text = serde_json::to_string(value).map_err(internal)?;
    let raw = serde_json::value::RawValue::from_string(text).map_err(internal)?;
    Ok(WriteOp::put(REGION_NS, key, raw))
}

/// Writes the batch with `extra` (a seeding import's marks) as one record through the normal
/// write path, unless there is nothing to write; returns the batch's size.
async fn flush(
    state: &AppState,
    batch: &mut Vec<WriteOp>,
    extra: Vec<WriteOp>,
) -> Result<u64, ApiError> {
    if batch.is_empty() && extra.is_empty() {
        return Ok(0);
    }
    let mut ops = std::mem::take(batch);
    let n = ops.len() as u64;
    if n > 0 || extra.iter().any(|op| op.key.starts_with(WATERMARK_PREFIX)) {
        ops.extend(extra);
        // Imported values merge another store's state into this one.
        let meta = crate::store::WriteMeta::default().because(crate::store::Cause::Merge);
        state.write(ops, meta).await?;
    }
    Ok(n)
}
