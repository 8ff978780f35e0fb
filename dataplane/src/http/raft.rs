//! The member-to-member routes of a replicated cluster (`/raft/*`): Raft's own RPCs, forwarded
//! writes and read indexes for followers, and the member's view of the cluster. They need the
//! cluster's admin token when one is set (every member has it), or admin scope with token auth.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

use super::AppState;
use super::error::{ApiError, JsonBody};
use crate::auth::Scope;
use crate::raft::replica::{ForwardReply, MembersBody, ReplicaStatus};
use crate::raft::{Command, NodeId, Replica, TypeConfig};

fn replica(state: &AppState) -> Result<&Arc<Replica>, ApiError> {
    state.replica.as_ref().ok_or_else(|| {
        ApiError::not_found("this server is a single node, not a member of a replicated cluster")
    })
}

/// Lets only members (the admin token) and admins call `/raft/*`; open when the server has
/// neither an admin token nor token auth.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let from = request
        .headers()
        .get(crate::raft::network::MEMBER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<NodeId>().ok());
    if let (Some(replica), Some(from)) = (&state.replica, from)
        && replica.is_blocked(from)
    {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::raft::network::PARTITIONED,
            format!("member {from} is cut off (an injected partition, or a hand-over under way)"),
        )
        .into_response();
    }
    let admin = state.admin_token.as_deref();
    let is_member = admin.is_some_and(|a| crate::auth::bearer(header).is_ok_and(|t| a.matches(&t)));
    let allowed = if is_member {
        Ok(())
    } else if state.verifier.is_some() {
        crate::auth::authorize(state.verifier.as_deref(), admin, header, Scope::Admin)
            .map(|_| ())
            .map_err(ApiError::from)
    } else if admin.is_some() {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "member routes need the cluster's admin token",
        ))
    } else {
        Ok(())
    };
    match allowed {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /raft/append`: AppendEntries from the leader.
pub async fn append(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<AppendEntriesRequest<TypeConfig>>,
) -> Result<impl IntoResponse, ApiError> {
    let replica = replica(&state)?;
    let commit = req.leader_commit.map(|l| l.index);
    let reply = replica.raft().append_entries(req).await;
    if reply.as_ref().is_ok_and(|r| r.is_success()) {
        replica.heard_from_leader(commit);
    }
    Ok(Json(reply))
}

/// `POST /raft/vote`: RequestVote from a candidate.
pub async fn vote(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<VoteRequest<NodeId>>,
) -> Result<impl IntoResponse, ApiError> {
    let replica = replica(&state)?;
    if replica.votes_held() {
        return Err(crate::raft::ReplicaError::HoldingVote.into());
    }
    Ok(Json(replica.raft().vote(req).await))
}

/// `POST /raft/snapshot`: a snapshot chunk (refused by this version's state machine).
pub async fn snapshot(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<InstallSnapshotRequest<TypeConfig>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(replica(&state)?.raft().install_snapshot(req).await))
}

/// `POST /raft/write`: a write forwarded by a follower, proposed here if this member leads.
pub async fn write(
    State(state): State<AppState>,
    JsonBody(cmd): JsonBody<Command>,
) -> Result<Json<ForwardReply>, ApiError> {
    Ok(Json(replica(&state)?.forwarded_write(cmd).await))
}

/// `POST /raft/read-index`: the leader's read index for a follower's linearizable read; null
/// when this member does not lead.
pub async fn read_index(State(state): State<AppState>) -> Result<Json<Option<u64>>, ApiError> {
    Ok(Json(replica(&state)?.read_index().await.ok()))
}

/// Query of `GET /raft/records`.
#[derive(Debug, serde::Deserialize)]
pub struct RecordsQuery {
    /// Records after this LSN.
    pub since: u64,
    /// At most this many (1..=10000).
    pub limit: usize,
}

/// `GET /raft/records?since=&limit=`: committed records (and where this member's segments
/// start among them) for a member copying the cluster's base or a snapshot, with the body's
/// SHA-256 in `x-koru-sha256`.
pub async fn records(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<RecordsQuery>,
) -> Result<Response, ApiError> {
    replica(&state)?;
    if !(1..=10_000).contains(&q.limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let store = state.store.clone();
    let changes = tokio::task::spawn_blocking(move || store.changes_since(q.since, q.limit))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    let upto = changes.last().map_or(q.since, |c| c.lsn);
    let page = crate::raft::network::RecordsPage {
        segment_starts: state.store.segment_starts(q.since, upto),
        changes,
    };
    let body = serde_json::to_vec(&page)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let sum = crate::backup::layout::sha256_hex(&body);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::HeaderName::from_static(crate::raft::network::RECORDS_SHA256_HEADER),
                sum,
            ),
        ],
        body,
    )
        .into_response())
}

/// The body of `POST /raft/faults`.
#[derive(Debug, serde::Deserialize)]
pub struct FaultsBody {
    /// Members to cut this one off from (empty heals).
    pub blocked: Vec<NodeId>,
}

/// `POST /raft/faults`: injects a network partition (tests; needs `KORU_FAULT_INJECTION=1`).
pub async fn faults(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<FaultsBody>,
) -> Result<StatusCode, ApiError> {
    replica(&state)?.set_blocked(body.blocked)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /raft/membership`: makes the given members the voters (see
/// [`Replica::change_members`]); answers once the change is committed.
pub async fn membership(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<MembersBody>,
) -> Result<Json<ReplicaStatus>, ApiError> {
    let replica = replica(&state)?;
    let mut members = body.members;
    for id in body.voters {
        let addr = replica.address_of(id).ok_or_else(|| {
            ApiError::bad_request(format!(
                "no address for member {id}: give it in `members` or start the members with --peer-template"
            ))
        })?;
        members.insert(id, addr);
    }
    Ok(Json(replica.change_members(members).await?))
}

/// `POST /raft/step-down`: the leader hands leadership to its most caught-up follower before
/// it is restarted (see [`Replica::step_down`]); a follower passes it on to the leader.
/// Answers with the leader's status once another member leads.
pub async fn step_down(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let replica = replica(&state)?;
    if let Some(answer) = super::ops::to_leader(&state, "/raft/step-down", &headers).await {
        return answer;
    }
    Ok(Json(replica.step_down().await?).into_response())
}

/// `POST /raft/elect`: stand for election at once (what a leader handing over asks of the
/// member it chose).
pub async fn elect(State(state): State<AppState>) -> Result<Json<()>, ApiError> {
    replica(&state)?.elect().await?;
    Ok(Json(()))
}

/// `GET /raft/status`: this member's view of the cluster.
pub async fn status(State(state): State<AppState>) -> Result<Json<ReplicaStatus>, ApiError> {
    Ok(Json(replica(&state)?.status()))
}
