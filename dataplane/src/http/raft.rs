//! The member-to-member routes of a replicated cluster (`/raft/*`): Raft's own RPCs, forwarded
//! writes and read indexes for followers, record copies, and the member's view of the cluster.
//! They are served on the peer listener only (`--peer-listen`, which the cluster's network
//! policy opens to its own members) and open only to the member credential
//! (`--peer-token-file`, else the admin token), never to a data-plane token of any scope. The
//! peer listener also takes the admin requests a follower authorized and passes on to the
//! leader (backups, drills, rewinds).
//!
//! The operator's part (the group's status, membership changes, hand-overs) is on the public
//! listener under `/admin/members`, open to the cluster's admin token only, likewise never to a
//! data-plane token: a tenant's admin token must not be able to disrupt the group.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

use super::error::{ApiError, JsonBody};
use super::{AppState, ops};
use crate::auth::AdminToken;
use crate::error::StoreError;
use crate::raft::codec;
use crate::raft::replica::{ForwardReply, MembersBody, ReplicaStatus};
use crate::raft::{Command, NodeId, Replica, TypeConfig};

/// Most bytes of records one `GET /raft/records` answer carries (at least one record, however
/// large), so a page never holds more than this in memory however many records are asked for.
pub const RECORDS_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Records read from the store at a time while a page fills.
const RECORDS_CHUNK: usize = 64;

fn replica(state: &AppState) -> Result<&Arc<Replica>, ApiError> {
    state.replica.as_ref().ok_or_else(|| {
        ApiError::not_found("this server is a single node, not a member of a replicated cluster")
    })
}

/// The router of the peer listener: the member routes, and the leader-only admin requests a
/// follower passes on.
pub fn peer_app(state: AppState) -> Router {
    let body_limit =
        super::max_batch_bytes(state.store.config()).saturating_add(super::BODY_LIMIT_SLACK);
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/write", post(write))
        .route("/raft/read-index", post(read_index))
        .route("/raft/status", get(status))
        .route("/raft/faults", post(faults))
        .route("/raft/records", get(records))
        .route("/raft/membership", post(membership))
        .route("/raft/step-down", post(step_down))
        .route("/raft/elect", post(elect))
        .route("/admin/backups", post(ops::create_backup))
        .route("/admin/backups/verify", post(ops::verify_backup))
        .route("/admin/rewind", post(super::rewind::rewind))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .fallback(super::not_found)
        .method_not_allowed_fallback(super::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            super::observe,
        ))
        .with_state(state)
}

/// The operator's routes on the public listener (`/admin/members`).
pub fn operator_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/members", get(members).post(set_members))
        .route("/admin/members/step-down", post(operator_step_down))
        .route_layer(middleware::from_fn_with_state(state, operator_guard))
}

/// Whether the `Authorization` header carries `secret`.
fn presents(secret: &AdminToken, request: &Request) -> bool {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    crate::auth::bearer(header).is_ok_and(|t| secret.matches(&t))
}

/// 401 for anything but `credential`.
fn refuse(credential: &str) -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        format!(
            "this route needs the cluster's {credential}; data-plane tokens are not accepted \
             here, whatever their scope"
        ),
    )
    .into_response()
}

/// Lets only members in: the member credential, never a data-plane token. Open only on a
/// development server with neither a member credential nor token auth.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
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
    let allowed = match state.member_token.as_deref() {
        Some(secret) => presents(secret, &request),
        None => state.verifier.is_none(),
    };
    if !allowed {
        return refuse("member credential (--peer-token-file, else --admin-token-file)");
    }
    // A member forwarding a caller's request names the author it authenticated.
    let author = super::meta::Author::forwarded(request.headers());
    request.extensions_mut().insert(author);
    next.run(request).await
}

/// Lets only the operator in: the cluster's admin token, never a data-plane token (a tenant's
/// admin-scope token must not change or hand over the group). Open only on a development
/// server with neither an admin token nor token auth.
async fn operator_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let allowed = match state.admin_token.as_deref() {
        Some(secret) => presents(secret, &request),
        None => state.verifier.is_none(),
    };
    if !allowed {
        return refuse("admin token (--admin-token-file)");
    }
    next.run(request).await
}

/// `GET /admin/members`: the group as its leader sees it (this member's view when no leader
/// can be asked), for the operator.
async fn members(State(state): State<AppState>) -> Result<Json<ReplicaStatus>, ApiError> {
    Ok(Json(replica(&state)?.leader_view().await))
}

/// `POST /admin/members`: as `POST /raft/membership`.
async fn set_members(
    state: State<AppState>,
    body: JsonBody<MembersBody>,
) -> Result<Json<ReplicaStatus>, ApiError> {
    membership(state, body).await
}

/// `POST /admin/members/step-down`: as `POST /raft/step-down`.
async fn operator_step_down(
    state: State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    step_down(state, headers).await
}

/// `POST /raft/append`: AppendEntries from the leader, in MessagePack (answered in kind) or
/// JSON (members of earlier versions).
pub async fn append(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let msgpack = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == codec::MSGPACK.as_bytes());
    let req: AppendEntriesRequest<TypeConfig> = if msgpack {
        let bytes = axum::body::Bytes::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        codec::from_msgpack(&bytes).map_err(|e| ApiError::bad_request(e.to_string()))?
    } else {
        JsonBody::from_request(request, &state).await?.0
    };
    let replica = replica(&state)?;
    let commit = req.leader_commit.map(|l| l.index);
    let reply = replica.raft().append_entries(req).await;
    if reply.as_ref().is_ok_and(|r| r.is_success()) {
        replica.heard_from_leader(commit);
    }
    if !msgpack {
        return Ok(Json(reply).into_response());
    }
    let body = codec::to_msgpack(&reply)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, codec::MSGPACK)], body).into_response())
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
/// It is charged like a client write: its operations against this member's rate limit (the
/// follower charged only the request it received, on its own limit) and the storage quota;
/// a refusal goes back to the client with its status.
pub async fn write(
    State(state): State<AppState>,
    JsonBody(cmd): JsonBody<Command>,
) -> Result<Json<ForwardReply>, ApiError> {
    let replica = replica(&state)?;
    if replica.is_leader() {
        state.take_ops(cmd.ops.len().max(1))?;
        if let Some(limit) = state.store.config().max_stored_bytes {
            let used = state.store.stored_bytes();
            if used >= limit {
                return Err(StoreError::QuotaExceeded { used, limit }.into());
            }
        }
    }
    Ok(Json(replica.forwarded_write(cmd).await))
}

/// `POST /raft/read-index`: the leader's read index for a follower's linearizable read; null
/// when this member does not lead.
pub async fn read_index(State(state): State<AppState>) -> Result<Json<Option<u64>>, ApiError> {
    Ok(Json(replica(&state)?.read_index().await.ok()))
}

/// Query of `GET /raft/records`.
#[derive(Debug, serde::Deserialize)]
pub struct RecordsQuery {
    /// Records after this LSN (the previous page's `next_since`).
    pub since: u64,
    /// At most this many (1..=10000).
    pub limit: usize,
    /// At most about this many bytes of records (at least one record is sent); at most
    /// [`RECORDS_MAX_BYTES`], which is also the default.
    pub max_bytes: Option<usize>,
}

/// `GET /raft/records?since=&limit=&max_bytes=`: committed records (and where this member's
/// segments start among them) for a member copying the cluster's base or a snapshot, with the
/// body's SHA-256 in `x-koru-sha256`. A page stops at its byte budget; `next_since` is where
/// the next one starts.
pub async fn records(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<RecordsQuery>,
) -> Result<Response, ApiError> {
    replica(&state)?;
    if !(1..=10_000).contains(&q.limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let budget = q
        .max_bytes
        .unwrap_or(RECORDS_MAX_BYTES)
        .clamp(1, RECORDS_MAX_BYTES);
    let store = state.store.clone();
    let changes = tokio::task::spawn_blocking(move || read_page(&store, q.since, q.limit, budget))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    let upto = changes.last().map_or(q.since, |c| c.lsn);
    let page = crate::raft::network::RecordsPage {
        segment_starts: state.store.segment_starts(q.since, upto),
        changes,
        next_since: upto,
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

/// Up to `limit` records after `since`, read a few at a time and stopping once `budget` bytes
/// (their keys and values) are held: never the whole `limit` of large records in memory.
fn read_page(
    store: &crate::store::Store,
    since: u64,
    limit: usize,
    budget: usize,
) -> Result<Vec<crate::store::Change>, StoreError> {
    let mut out: Vec<crate::store::Change> = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = since;
    while out.len() < limit {
        let chunk = store.changes_since(cursor, RECORDS_CHUNK.min(limit - out.len()))?;
        let Some(last) = chunk.last() else { break };
        cursor = last.lsn;
        for change in chunk {
            let size = change_size(&change);
            if !out.is_empty() && bytes.saturating_add(size) > budget {
                return Ok(out);
            }
            bytes = bytes.saturating_add(size);
            out.push(change);
        }
        if bytes >= budget {
            break;
        }
    }
    Ok(out)
}

/// Roughly the bytes a record takes in a page.
fn change_size(change: &crate::store::Change) -> usize {
    change
        .ops
        .iter()
        .map(|op| 32 + op.namespace.len() + op.key.len() + op.value.as_ref().map_or(0, String::len))
        .sum::<usize>()
        + 64
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
