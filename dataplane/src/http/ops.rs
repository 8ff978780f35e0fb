//! Operational endpoints: liveness, readiness, and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use koru_dataplane_api::backup::{ArchivedSpan, BackupList};

use super::{ApiError, AppState};
use crate::backup::{BackupError, base};
use crate::clock::rfc3339;

/// `GET /healthz`: the process is serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 while writes are accepted, 503 once the store is read-only. Anyone may
/// ask, so a member's view of its group comes without the members' addresses.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.store.stats();
    let read_only = state.store.is_read_only();
    // A member cut off from its cluster (no leader known) cannot serve linearizable requests.
    let member_ok = state.replica.as_ref().is_none_or(|r| r.is_ready());
    let label = match (read_only, member_ok) {
        (true, _) => "read_only",
        (false, false) => "no_leader",
        (false, true) => "ready",
    };
    let status = if label == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Archive trouble is reported, not made fatal: the server keeps serving while the store is down.
    let ready = koru_dataplane_api::Readiness {
        status: label.into(),
        read_only,
        last_lsn: stats.applied_lsn,
        archive: state.archive.as_ref().map(|a| a.report()),
        replication: state
            .replica
            .as_ref()
            .map(|r| r.status().without_addresses()),
    };
    // Through a Value, whose keys sort: the bytes stay those readers have always seen.
    (
        status,
        Json(serde_json::to_value(ready).unwrap_or_default()),
    )
}

/// `GET /metrics`: Prometheus/OpenMetrics text.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.store.stats();
    let m = &state.metrics;
    m.keys.set(stats.live_keys as i64);
    m.versions.set(stats.versions as i64);
    m.last_lsn.set(stats.applied_lsn as i64);
    m.read_only.set(i64::from(state.store.is_read_only()));
    m.usage.refresh(&state.store.config().data_dir);
    if let Some(archive) = &state.archive {
        m.archive.lag_seconds.set(archive.lag_seconds());
    }
    if let Some(replica) = &state.replica {
        refresh_raft_metrics(&m.raft, &replica.status());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

/// Copies a member's view of the cluster into the replication metrics.
fn refresh_raft_metrics(m: &crate::metrics::RaftMetrics, s: &crate::raft::replica::ReplicaStatus) {
    let previous = m.term.get();
    if previous > 0 && (s.term as i64) > previous {
        m.elections.inc_by(s.term - previous as u64);
    }
    m.term.set(s.term as i64);
    for role in ["leader", "follower", "candidate", "learner", "shutdown"] {
        m.role
            .get_or_create(&crate::metrics::RoleLabels { role: role.into() })
            .set(i64::from(role == s.role.as_str()));
    }
    m.last_log_index.set(s.last_log_index as i64);
    m.applied_index.set(s.applied_index as i64);
    for member in &s.members {
        let gauge = m
            .replication_lag
            .get_or_create(&crate::metrics::PeerLabels {
                peer: member.id.to_string(),
            });
        gauge.set(member.lag.map_or(0, |l| l as i64));
    }
}

/// `POST /admin/backups`: takes a base backup now (then applies `--backup-retention`); 201 with
/// its manifest.
pub async fn create_backup(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let archive = state.archive.as_ref().ok_or_else(not_configured)?;
    if let Some(forwarded) = to_leader(&state, "/admin/backups", &headers).await {
        return forwarded;
    }
    let manifest = crate::backup::schedule::backup_and_prune(
        archive,
        base::DEFAULT_BACKUP_WAIT,
        archive.retention,
    )
    .await
    .map_err(backup_error)?;
    Ok((StatusCode::CREATED, Json(manifest)).into_response())
}

/// On a follower of a replicated cluster, the answer of the leader to the same admin request
/// (backups, drills and hand-overs are the leader's); None where this process answers itself.
pub(super) async fn to_leader(
    state: &AppState,
    path: &str,
    headers: &axum::http::HeaderMap,
) -> Option<Result<Response, ApiError>> {
    to_leader_with(state, path, headers, None, None).await
}

/// [`to_leader`] for a request with a JSON body.
pub(super) async fn to_leader_with(
    state: &AppState,
    path: &str,
    _headers: &axum::http::HeaderMap,
    body: Option<Vec<u8>>,
    author: Option<&str>,
) -> Option<Result<Response, ApiError>> {
    // The caller was authorized here; the leader's peer listener takes the member credential,
    // never the caller's token.
    let replica = state.replica.as_ref()?;
    let forwarded = replica.forward_admin(path, body, author).await?;
    Some(forwarded.map_err(ApiError::from).map(|(status, body)| {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }))
}

/// `GET /admin/backups`: every base backup, oldest first, without their segment lists, and the
/// span the archived log makes recoverable (`archive`, null before anything is archived).
pub async fn list_backups(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let archive = state.archive.as_ref().ok_or_else(not_configured)?;
    let manifests = base::list(&archive.store).await.map_err(backup_error)?;
    let sidecars = base::read_sidecars(&archive.store)
        .await
        .map_err(backup_error)?;
    let recoverable = crate::backup::layout::recoverable(&sidecars).map(|r| ArchivedSpan {
        first_lsn: r.first_lsn,
        last_lsn: r.last_lsn,
        first_time: rfc3339(r.first_time_micros),
        last_time: rfc3339(r.last_time_micros),
        segments: r.segments,
    });
    let list = BackupList {
        backups: manifests.iter().map(|m| m.listed()).collect(),
        archive: recoverable,
        verification: archive.verification(),
    };
    let body = list.to_json().map_err(|e| {
        tracing::error!(error = %e, "cannot encode the backup list");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the backup list could not be encoded",
        )
    })?;
    Ok(Json(body))
}

/// `POST /admin/backups/verify`: a restore drill now (the newest base backup restored into a
/// scratch directory and checked); 200 with its outcome, `ok: false` included.
pub async fn verify_backup(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let archive = state.archive.as_ref().ok_or_else(not_configured)?;
    if let Some(forwarded) = to_leader(&state, "/admin/backups/verify", &headers).await {
        return forwarded;
    }
    Ok(Json(crate::backup::verify::drill(archive).await).into_response())
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "backups_not_configured",
        "archiving is not configured: start the server with --backup-store",
    )
}

/// Maps a backup failure to 503 (the store is unreachable or behind); details go to the log once.
fn backup_error(e: BackupError) -> ApiError {
    tracing::error!(error = %e, "base backup request failed");
    let message = match &e {
        BackupError::Timeout { .. } => "the backup store is not keeping up; try again later",
        _ => "the backup store failed; see the server log",
    };
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "backup_unavailable",
        message,
    )
}
