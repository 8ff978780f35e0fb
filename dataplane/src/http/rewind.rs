//! `POST /admin/rewind`: puts a namespace or key prefix back to an earlier moment as new versions
//! (see [`crate::rewind`] for the plan, the guard and the semantics under concurrent writes).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::error::JsonBody;
use super::{ApiError, AppState, json, max_batch_bytes};
use crate::rewind::{self, Limits, Rewind};
use crate::wal::record::{BODY_HEADER_LEN, MAX_AUTHOR_LEN, MAX_BODY_LEN, META_MIN_LEN};

/// Body of `POST /admin/rewind` (unknown fields are refused: a misspelt `prefix` must not turn
/// into a rewind of the whole namespace), and its answer.
pub use koru_dataplane_api::data::{RewindChange, RewindOutcome, RewindRequest as RewindBody};

/// `POST /admin/rewind`. On a replicated cluster the leader plans it and commits it through the
/// Raft log (a follower passes the request on).
pub async fn rewind(
    State(state): State<AppState>,
    author: super::meta::Author,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<RewindBody>,
) -> Result<Response, ApiError> {
    if state.replica.is_some() {
        let forwarded = serde_json::to_vec(&body).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
            )
        })?;
        if let Some(answer) = super::ops::to_leader_with(
            &state,
            "/admin/rewind",
            &headers,
            Some(forwarded),
            author.0.as_deref(),
        )
        .await
        {
            return answer;
        }
    }
    let request = Rewind {
        as_of_micros: json::parse_timestamp(&body.as_of)?,
        namespace: body.namespace,
        prefix: body.prefix.unwrap_or_default(),
        dry_run: body.dry_run,
        if_unchanged_since: body.if_unchanged_since,
    };
    let config = state.store.config();
    // What a client could send as one batch, and never more than one log record holds.
    let limits = Limits {
        max_ops: config.max_batch_ops,
        max_bytes: max_batch_bytes(config)
            .min(MAX_BODY_LEN - BODY_HEADER_LEN - META_MIN_LEN - MAX_AUTHOR_LEN),
    };
    let (namespace, prefix, as_of) = (
        request.namespace.clone(),
        request.prefix.clone(),
        json::timestamp(request.as_of_micros),
    );
    let dry_run = request.dry_run;
    let admit = |n| state.take_ops(n);
    let by = author.0;
    let outcome = match &state.replica {
        Some(replica) => rewind::run(&state.store, &**replica, request, limits, by, admit).await?,
        None => rewind::run(&state.store, &state.store, request, limits, by, admit).await?,
    };
    let plan = outcome.plan;
    let (change_count, truncated) = (plan.change_count, plan.truncated());
    let changes = plan
        .listed
        .into_iter()
        .map(|c| {
            Ok(RewindChange {
                key: c.key,
                action: c.action,
                from: c.from.map(json::raw).transpose()?,
                to: c.to.map(json::raw).transpose()?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(RewindOutcome {
        namespace,
        prefix,
        as_of,
        dry_run,
        planned_lsn: plan.planned_lsn,
        changes,
        change_count,
        truncated,
        unchanged: plan.unchanged,
        applied_lsn: outcome.applied.as_ref().map(|c| c.lsn),
        applied_at: outcome
            .applied
            .as_ref()
            .map(|c| json::timestamp(c.timestamp_micros)),
    })
    .into_response())
}
