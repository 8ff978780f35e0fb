//! An organization's audit log (admins only): query with filters and cursor pages, export as
//! JSON lines, verify the chain; and the public key its digests are signed with.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::{IntoParams, ToSchema};

use super::principal::OrgAccess;
use crate::audit::digest::{self, TrustedKeys};
use crate::audit::export::{self, ExportHeader, ExportLine};
use crate::audit::store::{self, Direction};
use crate::audit::verify::{self, Scope, Verification};
use crate::audit::{Filter, OrgEvent};
use crate::auth::Role;
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::state::AppState;

/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest `limit`.
pub const MAX_LIMIT: u32 = 500;
/// Events read per database round trip while exporting.
const EXPORT_PAGE: u32 = 500;

/// Filters and paging of the audit endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exact action, e.g. `POST /api/v1/orgs/{org}/tokens`.
    pub action: Option<String>,
    /// Exact actor, e.g. `user:<id>` or `token:<id>`.
    pub actor: Option<String>,
    /// `success`, `failure` or `failure:<status>`.
    pub outcome: Option<String>,
    /// Events at or after this time, ms since the epoch.
    pub since: Option<i64>,
    /// Events before this time, ms since the epoch.
    pub until: Option<i64>,
    /// `next_cursor` of the previous page (list only).
    pub cursor: Option<String>,
    /// Events per page, 1 to 500 (list only; default 100).
    pub limit: Option<u32>,
}

impl AuditQuery {
    fn filter(&self) -> Result<Filter> {
        let filter = Filter {
            action: self.action.clone(),
            actor: self.actor.clone(),
            outcome: self.outcome.clone(),
            since: self.since,
            until: self.until,
        };
        filter.validate()?;
        Ok(filter)
    }
}

fn query(q: std::result::Result<Query<AuditQuery>, QueryRejection>) -> Result<AuditQuery> {
    q.map(|Query(q)| q)
        .map_err(|e| Error::BadRequest(format!("invalid query: {}", e.body_text())))
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<OrgEvent>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The organization's audit events, newest first (admin).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit", params(("org" = String, Path), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    access: OrgAccess,
    q: std::result::Result<Query<AuditQuery>, QueryRejection>,
) -> Result<axum::Json<AuditPage>> {
    access.require(Role::Admin)?;
    let q = query(q)?;
    let filter = q.filter()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::BadRequest(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                Error::BadRequest("invalid cursor; pass next_cursor from the previous page".into())
            })
        })
        .transpose()?;
    // One more than asked tells whether another page exists.
    let mut events = store::org_events(
        &state.db,
        &access.org.id,
        &filter,
        cursor,
        Direction::Older,
        limit + 1,
    )
    .await?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_cursor = if more {
        events.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        events,
        next_cursor,
    }))
}

/// Where an export stream is.
enum Stage {
    Header(String),
    Events { after: i64 },
    Digests,
    Done,
}

/// The state of an export stream.
struct ExportStream {
    db: AnyPool,
    org_id: String,
    filter: Filter,
    stage: Stage,
    first: Option<i64>,
    last: Option<i64>,
}

fn line(value: &ExportLine, out: &mut Vec<u8>) -> Result<()> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|e| Error::Internal(format!("serializing an export line: {e}")))?;
    out.push(b'\n');
    Ok(())
}

impl ExportStream {
    /// The next chunk of the body, or `None` at the end.
    async fn next(mut self) -> Option<(Result<Bytes>, ExportStream)> {
        let chunk = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Done => return None,
            Stage::Header(header) => {
                self.stage = Stage::Events { after: 0 };
                Ok(Bytes::from(header))
            }
            Stage::Events { after } => self.events(after).await,
            Stage::Digests => self.digests().await,
        };
        if let Err(e) = &chunk {
            // The status line is sent; all that is left is to cut the body short.
            tracing::error!(error = %e, org = %self.org_id, "audit export failed part way");
            self.stage = Stage::Done;
        }
        Some((chunk, self))
    }

    async fn events(&mut self, after: i64) -> Result<Bytes> {
        let page = store::org_events(
            &self.db,
            &self.org_id,
            &self.filter,
            Some(after),
            Direction::Newer,
            EXPORT_PAGE,
        )
        .await?;
        let mut out = Vec::new();
        for event in &page {
            self.first.get_or_insert(event.seq);
            self.last = Some(event.seq);
        }
        self.stage = match page.last() {
            Some(last) if page.len() == EXPORT_PAGE as usize => Stage::Events { after: last.seq },
            _ => Stage::Digests,
        };
        for event in page {
            line(&ExportLine::Event(event), &mut out)?;
        }
        Ok(Bytes::from(out))
    }

    async fn digests(&mut self) -> Result<Bytes> {
        let mut out = Vec::new();
        if let (Some(first), Some(last)) = (self.first, self.last) {
            for d in digest::list(&self.db, &self.org_id, first, last).await? {
                line(&ExportLine::Digest(d), &mut out)?;
            }
        }
        Ok(Bytes::from(out))
    }
}

/// The organization's audit events as JSON lines (admin): a header, the events oldest first,
/// then the signed digests of the exported range (the current head is signed first). Check it
/// with `koru-controlplane audit verify-export`.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit/export", params(("org" = String, Path), AuditQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    access: OrgAccess,
    q: std::result::Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response> {
    access.require(Role::Admin)?;
    let q = query(q)?;
    if q.cursor.is_some() || q.limit.is_some() {
        return Err(Error::BadRequest(
            "the export has every matching event; cursor and limit are for the list".into(),
        ));
    }
    let filter = q.filter()?;
    let keys = state.sessions.key_pair();
    if let Some(head) = store::org_head(&state.db, &access.org.id).await? {
        digest::sign_head(&state.db, &keys.signing, &access.org.id, &head).await?;
    }
    let mut header = Vec::new();
    line(
        &ExportLine::Header(ExportHeader {
            format: export::FORMAT.into(),
            org_id: access.org.id.clone(),
            exported_at: now_ms(),
            key_id: digest::key_id(&keys.signing.verifying_key()),
            public_key_pem: keys.public_pem.clone(),
            filtered: filter.is_set(),
        }),
        &mut header,
    )?;
    let header = String::from_utf8(header).map_err(|e| Error::Internal(e.to_string()))?;
    let stream = ExportStream {
        db: state.db.clone(),
        org_id: access.org.id.clone(),
        filter,
        stage: Stage::Header(header),
        first: None,
        last: None,
    };
    let body = Body::from_stream(futures_util::stream::unfold(stream, ExportStream::next));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit-{}.jsonl\"", access.org.slug),
            ),
        ],
        body,
    )
        .into_response())
}

/// Verifies the organization's chain and its signed digests (admin); reports the first broken
/// link.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit/verify", params(("org" = String, Path)),
    responses((status = 200, body = Verification), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    access: OrgAccess,
) -> Result<axum::Json<Verification>> {
    access.require(Role::Admin)?;
    let keys = TrustedKeys::new([state.sessions.key_pair().signing.verifying_key()]);
    Ok(axum::Json(
        verify::verify(&state.db, &Scope::Org(access.org.id), Some(keys)).await?,
    ))
}

/// The key audit digests are signed with.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPublicKey {
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// Hex SHA-256 of the raw public key, as in every digest's `key_id`.
    pub key_id: String,
    /// The public key, SPKI PEM.
    pub public_key_pem: String,
}

/// The public key that checks the audit log's signed digests (pin it to verify exports).
#[utoipa::path(get, path = "/api/v1/audit/public-key", responses((status = 200, body = AuditPublicKey)))]
pub async fn public_key(State(state): State<AppState>) -> axum::Json<AuditPublicKey> {
    let keys = state.sessions.key_pair();
    axum::Json(AuditPublicKey {
        algorithm: "Ed25519",
        key_id: digest::key_id(&keys.signing.verifying_key()),
        public_key_pem: keys.public_pem.clone(),
    })
}
