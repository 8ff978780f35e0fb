//! The HTTP API: KoruDelta API v1 routes plus our extensions, built by [`app`] so tests need no socket.

mod batch;
mod blocking;
pub mod cors;
mod crdt;
pub mod error;
mod indexes;
mod json;
mod kv;
pub mod media;
pub mod meta;
mod ops;
mod query;
mod raft;
mod region;
mod rewind;
mod snapshot;
mod views;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tracing::Instrument;

use crate::auth::{AdminToken, Scope, Verifier};
use crate::backup::ArchiveStatus;
use crate::error::StoreError;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::raft::Replica;
use crate::rewind::{GuardedWrite, RewindError};
use crate::store::{Committed, Store, StoreConfig, VersionId, WriteMeta, WriteOp};
pub use error::ApiError;
pub use raft::peer_app;

/// Everything a handler needs, behind one reference count: axum clones the state for every
/// middleware layer and handler of every request, so a clone must cost one atomic increment, not
/// one per field. Fields are read through `Deref` (`state.store`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every clone of an [`AppState`] shares.
#[derive(Clone)]
pub struct Shared {
    /// The store.
    pub store: Store,
    /// The process metrics.
    pub metrics: Arc<Metrics>,
    /// Token checks, when auth is on.
    pub verifier: Option<Arc<Verifier>>,
    /// The static admin token of `--admin-token-file`, when set.
    pub admin_token: Option<Arc<AdminToken>>,
    /// The member credential the peer listener takes (`--peer-token-file`, else the admin
    /// token), when set.
    pub member_token: Option<Arc<AdminToken>>,
    /// The operations-per-second limit, when set.
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// Continuous archiving, when `--backup-store` is set.
    pub archive: Option<Arc<ArchiveStatus>>,
    /// This member's replication, when the server is part of a cluster (`--peers`).
    pub replica: Option<Arc<Replica>>,
    /// This region and its peers (`--region`; `local` with no peers by default).
    pub region: Arc<crate::region::RegionConfig>,
    /// The region streams' live state (see [`AppState::with_regions`]).
    pub regions: Arc<crate::region::links::Regions>,
}

impl AppState {
    /// State for a store, with an optional verifier and ops/s limit.
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        verifier: Option<Verifier>,
        max_ops_per_sec: Option<u32>,
    ) -> Self {
        let limiter = max_ops_per_sec
            .and_then(NonZeroU32::new)
            .map(|n| Arc::new(RateLimiter::direct(Quota::per_second(n))));
        let region = Arc::new(crate::region::RegionConfig {
            name: crate::region::DEFAULT_REGION.to_owned(),
            peers: Vec::new(),
            token_file: None,
        });
        AppState(Arc::new(Shared {
            regions: Arc::new(crate::region::links::Regions::new(
                Arc::clone(&region),
                None,
            )),
            region,
            store,
            metrics,
            verifier: verifier.map(Arc::new),
            admin_token: None,
            member_token: None,
            limiter,
            archive: None,
            replica: None,
        }))
    }

    /// The fields, to change in a builder (copied first if another clone shares them).
    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// The same state in region `config`, presenting and accepting `token` between regions.
    pub fn with_regions(
        mut self,
        config: crate::region::RegionConfig,
        token: Option<String>,
    ) -> Self {
        let config = Arc::new(config);
        let shared = self.shared_mut();
        shared.regions = Arc::new(crate::region::links::Regions::new(
            Arc::clone(&config),
            token,
        ));
        shared.region = config;
        self
    }

    /// The same state as a member of a replicated cluster.
    pub fn with_replica(mut self, replica: Arc<Replica>) -> Self {
        self.shared_mut().replica = Some(replica);
        self
    }

    /// Writes `ops` as one record by `meta`'s author: through Raft on a replicated member,
    /// else to the store.
    pub async fn write(&self, ops: Vec<WriteOp>, meta: WriteMeta) -> Result<Committed, ApiError> {
        let Some(replica) = &self.replica else {
            return Ok(self.store.write_with(ops, meta).await?);
        };
        self.check_replicated(&ops)?;
        Ok(replica.write(ops, meta).await?)
    }

    /// Writes `op` only if `expected` is still the latest version of its key (a delete counts):
    /// a compare-and-set, 412 `version_mismatch` otherwise. The check is made again where the
    /// write is ordered (the commit thread, or every member as it applies the entry), so
    /// nothing written in between slips past it.
    pub async fn write_if_latest(
        &self,
        op: WriteOp,
        expected: VersionId,
        meta: WriteMeta,
    ) -> Result<Committed, ApiError> {
        if let Some(replica) = &self.replica {
            // This member must hold at least what the client read the version from.
            replica.read_barrier(None).await?;
        }
        let mismatch = |latest| ApiError::from(crate::db::DbError::mismatch(&op, expected, latest));
        let guard = self
            .store
            .guard_if_latest(&op, expected)
            .map_err(mismatch)?;
        let written = match &self.replica {
            None => {
                self.store
                    .write_guarded_with(vec![op.clone()], guard, meta)
                    .await
            }
            Some(replica) => {
                self.check_replicated(std::slice::from_ref(&op))?;
                match replica.write_guarded(vec![op.clone()], guard, meta).await {
                    Ok(committed) => Ok(committed),
                    Err(RewindError::Store(e)) => Err(e),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        match written {
            Err(StoreError::Conflict { .. }) => {
                Err(mismatch(self.store.latest_version(&op.namespace, &op.key)))
            }
            other => Ok(other?),
        }
    }

    /// The typed checks of a replicated write, run here where their errors keep their codes
    /// (members check again as they apply it).
    fn check_replicated(&self, ops: &[WriteOp]) -> Result<(), ApiError> {
        self.store.validate(ops)?;
        if let Some(limit) = self.store.config().max_stored_bytes {
            let used = self.store.stored_bytes();
            if used >= limit {
                return Err(StoreError::QuotaExceeded { used, limit }.into());
            }
        }
        Ok(())
    }

    /// The same state with archiving (base backups, archive metrics and readiness detail).
    pub fn with_archive(mut self, archive: Arc<ArchiveStatus>) -> Self {
        self.shared_mut().archive = Some(archive);
        self
    }

    /// The same state with a static admin token (admin scope for whoever presents it).
    pub fn with_admin_token(mut self, token: AdminToken) -> Self {
        self.shared_mut().admin_token = Some(Arc::new(token));
        self
    }

    /// The same state with the member credential (see [`raft::peer_app`]).
    pub fn with_member_token(mut self, token: AdminToken) -> Self {
        self.shared_mut().member_token = Some(Arc::new(token));
        self
    }

    /// Takes `n` operations from the rate limit, or says when to retry.
    pub fn take_ops(&self, n: usize) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let Some(n) = NonZeroU32::new(n.min(u32::MAX as usize) as u32) else {
            return Ok(());
        };
        let refused = |message: String, wait: u64| {
            self.metrics.rate_limited.inc();
            let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
            e.retry_after = Some(wait.max(1));
            e
        };
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                Err(refused(
                    "operations-per-second limit reached; retry later".into(),
                    wait.as_secs_f64().ceil() as u64,
                ))
            }
            Err(_) => Err(refused(
                format!("a request of {n} operations is larger than the per-second limit"),
                1,
            )),
        }
    }
}

/// Headroom over the largest batch for JSON syntax around the values.
const BODY_LIMIT_SLACK: usize = 1024 * 1024;

/// Most bytes of values one batch request can carry (the body limit less the JSON around them);
/// a rewind's record is held to the same size.
pub fn max_batch_bytes(config: &StoreConfig) -> usize {
    config
        .max_value_bytes
        .saturating_mul(4)
        .max(64 * 1024 * 1024)
}

/// Builds the router with every route and middleware.
pub fn app(state: AppState) -> Router {
    let body_limit = max_batch_bytes(state.store.config()).saturating_add(BODY_LIMIT_SLACK);
    let api = Router::new()
        .route("/api/v1/status", get(kv::status))
        .route("/api/v1/namespaces", get(kv::namespaces))
        .route("/api/v1/batch", post(batch::write))
        .route("/api/v1/batch/get", post(batch::get))
        .route("/api/v1/changes", get(batch::changes))
        .route("/api/v1/snapshot", get(snapshot::snapshot))
        .route("/api/v1/views", get(views::list).post(views::create))
        .route(
            "/api/v1/views/{name}",
            get(views::query).delete(views::delete),
        )
        .route("/api/v1/views/{name}/refresh", post(views::refresh))
        .route("/api/v1/{namespace}/keys", get(kv::keys))
        .route("/api/v1/{namespace}/query", post(query::query_namespace))
        .route(
            "/api/v1/{namespace}/indexes",
            get(indexes::list).post(indexes::create),
        )
        .route(
            "/api/v1/{namespace}/indexes/{name}",
            axum::routing::delete(indexes::drop),
        )
        .route(
            "/api/v1/{namespace}/by/{index}/{value}",
            get(indexes::lookup),
        )
        .route(
            "/api/v1/{namespace}/{key}",
            get(kv::get)
                .put(kv::put)
                .patch(crdt::patch)
                .delete(kv::delete),
        )
        .route("/api/v1/{namespace}/{key}/history", get(kv::history))
        .route(
            "/api/v1/{namespace}/{key}/conflicts",
            get(region::list_conflicts),
        )
        .route("/admin/v1/regions", get(region::status))
        .route(
            "/admin/v1/namespaces/{namespace}/policy",
            get(region::get_policy).put(region::put_policy),
        )
        .route("/api/v1/{namespace}/{key}/at/{timestamp}", get(kv::get_at))
        .route(
            "/admin/backups",
            get(ops::list_backups).post(ops::create_backup),
        )
        .route("/admin/backups/verify", post(ops::verify_backup))
        .route("/admin/rewind", post(rewind::rewind))
        .route_layer(middleware::from_fn_with_state(state.clone(), region::layer))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard_json));
    // The import streams its body (NDJSON, any length), so it checks its own media type.
    let import = Router::new()
        .route("/admin/v1/import", post(snapshot::import))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    // The member routes (`/raft/*`) are on the peer listener only: see `raft::peer_app`.
    Router::new()
        .merge(api)
        .merge(import)
        .merge(raft::operator_routes(state.clone()))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Authenticates, authorizes and rate-limits API requests.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match admit(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(refused) => refused,
    }
}

/// [`guard`], then refuses a body not declared JSON (as [`media::require_json`] does): one
/// layer instead of two, as every layer costs each request a service clone and a boxed future.
async fn guard_json(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request = match admit(&state, request).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    if let Err(e) = media::check_request(&request) {
        return e.into_response();
    }
    next.run(request).await
}

/// The checks of [`guard`]: the request to pass on, or the answer refusing it.
async fn admit(state: &AppState, mut request: Request) -> Result<Request, Response> {
    // Whom a token let in (None with auth off): the author of the request's writes.
    let mut grant = None;
    if state.verifier.is_none() {
        request.extensions_mut().insert(crate::region::Privileged);
    } else {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let need = required_scope(request.method(), route);
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        // The region token opens the routes peers call, and nothing else.
        let peer_route = route.is_some_and(|r| REGION_TOKEN_ROUTES.contains(&r));
        let region_token = peer_route && state.regions.accepts(header);
        if region_token {
            request.extensions_mut().insert(crate::region::Privileged);
            grant = Some(crate::auth::Grant::AdminToken);
        } else {
            match crate::auth::authorize(
                state.verifier.as_deref(),
                state.admin_token.as_deref(),
                header,
                need,
            ) {
                Ok(g @ crate::auth::Grant::Token(_)) => grant = Some(g),
                Ok(g) => {
                    request.extensions_mut().insert(crate::region::Privileged);
                    grant = Some(g);
                }
                Err(e) => return Err(ApiError::from(e).into_response()),
            }
        }
    }
    match meta::Author::of(grant.as_ref(), request.headers()) {
        Ok(author) => {
            request.extensions_mut().insert(author);
        }
        Err(e) => return Err(e.into_response()),
    }
    if let Err(e) = state.take_ops(1) {
        return Err(e.into_response());
    }
    if let Some(replica) = &state.replica
        && is_api_write(&request)
        && let Some(leader) = replica.redirect_target().await
    {
        return Err(redirect_to_leader(&leader, &request));
    }
    if let Some(replica) = &state.replica
        && is_api_read(&request)
    {
        // Linearizable by default; `X-Koru-Max-Staleness-Ms` lets a member answer from what it
        // heard from the leader at most that long ago, without asking it.
        let staleness = request
            .headers()
            .get(MAX_STALENESS_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(std::time::Duration::from_millis);
        if let Err(e) = replica.read_barrier(staleness).await {
            return Err(ApiError::from(e).into_response());
        }
    }
    Ok(request)
}

/// The routes other regions call with the region token.
const REGION_TOKEN_ROUTES: [&str; 2] = ["/api/v1/changes", "/api/v1/snapshot"];

/// The header bounding how stale a read a replicated member may serve, in milliseconds.
pub const MAX_STALENESS_HEADER: &str = "x-koru-max-staleness-ms";

/// A 307 to the same path on the leader (`--follower-writes redirect`), with an error body for
/// clients that do not follow redirects.
fn redirect_to_leader(leader: &str, request: &Request) -> Response {
    let target = format!(
        "http://{leader}{}",
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let mut response = ApiError::new(
        StatusCode::TEMPORARY_REDIRECT,
        "not_leader",
        format!("this member does not lead; send writes to {target}"),
    )
    .into_response();
    if let Ok(location) = axum::http::HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Whether a request writes through the data API.
fn is_api_write(request: &Request) -> bool {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    route.is_some_and(|r| r.starts_with("/api/v1/"))
        && required_scope(request.method(), route) == Scope::Write
}

/// Whether a request reads the data API (and so waits for the read barrier on a member).
fn is_api_read(request: &Request) -> bool {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    route.is_some_and(|r| r.starts_with("/api/v1/"))
        && required_scope(request.method(), route) == Scope::Read
}

/// The scope a route needs: `/admin/…` needs `admin`, reads need `read` (queries are reads though
/// they POST), all else `write`.
pub fn required_scope(method: &Method, route: Option<&str>) -> Scope {
    if route.is_some_and(|r| r.starts_with("/admin/")) {
        return Scope::Admin;
    }
    let read_posts = ["/api/v1/{namespace}/query", "/api/v1/batch/get"];
    if method == Method::GET
        || method == Method::HEAD
        || route.is_some_and(|r| read_posts.contains(&r))
    {
        Scope::Read
    } else {
        Scope::Write
    }
}

/// Counts and times every request by its route pattern.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    // A span only for a request that carries a trace context (the gateway passes the client's on,
    // or its own): one trace then spans gateway → data plane, and untraced requests pay nothing.
    let response = if request.headers().contains_key("traceparent") {
        let span = tracing::info_span!("request", http.method = %method, http.route = %route);
        koru_telemetry::context::join(&span, request.headers());
        next.run(request).instrument(span).await
    } else {
        next.run(request).await
    };
    let status = response.status().as_u16();
    let labels = RouteLabels { route, method };
    state
        .metrics
        .request_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    // The same strings label the count: no second copy of them per request.
    let RouteLabels { route, method } = labels;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status,
        })
        .inc();
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see dataplane/API.md")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
