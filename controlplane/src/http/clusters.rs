//! Clusters of an organization, their data-plane tokens, and operations.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::LateJson;
use super::principal::{OrgAccess, Principal};
use crate::auth::Role;
use crate::clusters::{self, Cluster, CreateCluster, UpdateCluster};
use crate::data_tokens::store::DataTokenInfo;
use crate::data_tokens::{self, DataToken, DataTokenRequest};
use crate::error::{Error, Result};
use crate::operations::{self, Operation};
use crate::pagination::Page;
use crate::state::AppState;

/// A cluster with the operation changing it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterWithOperation {
    /// The cluster.
    pub cluster: Cluster,
    /// The operation started.
    pub operation: Operation,
}

/// The organization's clusters.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/clusters", params(("org" = String, Path), crate::pagination::PageQuery),
    responses((status = 200, body = Page<Cluster>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    access: OrgAccess,
    super::Query(query): super::Query<crate::pagination::PageQuery>,
) -> Result<axum::Json<Page<Cluster>>> {
    let (limit, after) = query.parse()?;
    let items = clusters::page(&state.db, &access.org.id, &after, limit)
        .await?
        .into_iter()
        .map(|c| present(&state, &access, c))
        .collect();
    Ok(axum::Json(Page::from_fetched(items, limit, |c| {
        (c.created_at, c.id.clone())
    })))
}

/// Creates a cluster (member). Asynchronous: follow the operation. An `Idempotency-Key` header
/// makes a retried request return the first one's result instead of creating twice.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/clusters", params(("org" = String, Path),
    ("Idempotency-Key" = Option<String>, Header)), request_body = CreateCluster,
    responses((status = 202, body = ClusterWithOperation), (status = 402), (status = 403), (status = 409)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    access: OrgAccess,
    headers: HeaderMap,
    body: LateJson<CreateCluster>,
) -> Result<impl IntoResponse> {
    access.require(Role::Member)?;
    let req = body.parse()?;
    let key = idempotency_key(&headers)?;
    if let Some(done) = replay(&state, &access, key, &req.name).await? {
        return Ok((StatusCode::OK, axum::Json(done)));
    }
    let (cluster, operation) = clusters::create(&state, &access.org, &req, None, key).await?;
    let cluster = present(&state, &access, cluster);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ClusterWithOperation { cluster, operation }),
    ))
}

/// Creates a new cluster from a cluster's backups as of `target_time` (member; point-in-time
/// recovery). Asynchronous: follow the operation (kind `restore`). The source is left untouched;
/// `Idempotency-Key` is honoured as for creates.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/clusters/{id}/restore", params(("org" = String, Path), ("id" = String, Path),
    ("Idempotency-Key" = Option<String>, Header)), request_body = crate::restores::RestoreCluster,
    responses((status = 202, body = ClusterWithOperation), (status = 400), (status = 402), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn restore(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: LateJson<crate::restores::RestoreCluster>,
) -> Result<impl IntoResponse> {
    access.require(Role::Member)?;
    let source = clusters::get(&state.db, &access.org.id, &id).await?;
    let req = body.parse()?;
    let key = idempotency_key(&headers)?;
    if let Some(done) = replay(&state, &access, key, &req.name).await? {
        return Ok((StatusCode::OK, axum::Json(done)));
    }
    let (cluster, operation) =
        crate::restores::start(&state, &access.org, &source, &req, key).await?;
    let cluster = present(&state, &access, cluster);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ClusterWithOperation { cluster, operation }),
    ))
}

/// The `Idempotency-Key` header, checked.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>> {
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map_err(|_| Error::BadRequest("Idempotency-Key must be text".into()))
        })
        .transpose()?;
    if let Some(key) = key
        && (key.is_empty() || key.len() > 200)
    {
        return Err(Error::BadRequest(
            "Idempotency-Key must have 1 to 200 characters".into(),
        ));
    }
    Ok(key)
}

/// The result of the earlier request that used `key`, if any; a different cluster name under
/// the same key is a conflict.
async fn replay(
    state: &AppState,
    access: &OrgAccess,
    key: Option<&str>,
    name: &str,
) -> Result<Option<ClusterWithOperation>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let Some(op) = operations::by_idempotency_key(&state.db, &access.org.id, key).await? else {
        return Ok(None);
    };
    let cluster = clusters::get(&state.db, &access.org.id, &op.cluster_id).await?;
    if cluster.name != name {
        return Err(Error::Conflict(
            "this Idempotency-Key was used for a different request".into(),
        ));
    }
    Ok(Some(ClusterWithOperation {
        cluster,
        operation: op,
    }))
}

/// How to reach a cluster, with a short-lived read token to try it at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Connection {
    /// The data plane's URL.
    pub endpoint: String,
    /// A read-scope data-plane token valid for 15 minutes; issue longer or wider ones with
    /// `POST …/data-tokens`.
    pub data_token: DataToken,
    /// A curl command reading a key.
    pub curl: String,
    /// The same read with the published `kdelta` CLI, which takes the token as the password of
    /// its `--url` (the data plane accepts Basic auth carrying a token).
    pub kdelta: String,
}

/// A cluster with its connection details (once it has an endpoint).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterDetail {
    /// The cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
    /// How to connect, when the cluster has an endpoint.
    pub connection: Option<Connection>,
}

/// A cluster by id or name, with connection details and a short-lived read token.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/clusters/{id}", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ClusterDetail), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<axum::Json<ClusterDetail>> {
    let mut cluster = present(
        &state,
        &access,
        clusters::get(&state.db, &access.org.id, &id).await?,
    );
    // A global database's streams as its regions report them now (the list shows the stored).
    crate::regions::refresh_links(&state, &mut cluster).await;
    let connection = match &cluster.endpoint {
        Some(endpoint) => {
            let request = DataTokenRequest {
                scope: koru_dataplane_api::auth::Scope::Read,
                ttl_secs: Some(15 * 60),
            };
            let data_token = data_tokens::store::issue(
                &state,
                &cluster,
                &principal.actor(),
                &principal.author(&state.db).await?,
                access.role,
                &request,
            )
            .await?;
            Some(Connection {
                curl: format!(
                    "curl -H \"Authorization: Bearer $KORU_TOKEN\" {endpoint}/api/v1/<namespace>/<key>"
                ),
                kdelta: format!(
                    "kdelta --url \"{}\" get <namespace>/<key>",
                    endpoint.replacen("://", "://token:$KORU_TOKEN@", 1)
                ),
                endpoint: endpoint.clone(),
                data_token,
            })
        }
        None => None,
    };
    Ok(axum::Json(ClusterDetail {
        cluster,
        connection,
    }))
}

/// Changes a cluster's tier or replicas (member). Asynchronous.
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/clusters/{id}", params(("org" = String, Path), ("id" = String, Path)),
    request_body = UpdateCluster, responses((status = 202, body = ClusterWithOperation), (status = 402), (status = 403), (status = 423)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
    body: LateJson<UpdateCluster>,
) -> Result<impl IntoResponse> {
    access.require(Role::Member)?;
    // Another tenant's cluster is "not found" whatever the body says.
    clusters::get(&state.db, &access.org.id, &id).await?;
    let req = body.parse()?;
    let (cluster, operation) = clusters::update(&state, &access.org, &id, &req).await?;
    let cluster = present(&state, &access, cluster);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ClusterWithOperation { cluster, operation }),
    ))
}

/// Deletes a cluster and its data (admin). Asynchronous.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/clusters/{id}", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 202, body = Operation), (status = 403), (status = 423)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<impl IntoResponse> {
    access.require(Role::Admin)?;
    let operation = clusters::delete(&state, &access.org, &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(operation)))
}

/// Issues a data-plane token for the cluster, with a scope the caller's role allows.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/clusters/{id}/data-tokens", params(("org" = String, Path), ("id" = String, Path)),
    request_body = DataTokenRequest, responses((status = 201, body = DataToken), (status = 403)), security(("bearer" = [])))]
pub async fn data_token(
    State(state): State<AppState>,
    principal: Principal,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
    body: LateJson<DataTokenRequest>,
) -> Result<impl IntoResponse> {
    let cluster = clusters::get(&state.db, &access.org.id, &id).await?;
    let req = body.parse()?;
    let author = principal.author(&state.db).await?;
    let token = data_tokens::store::issue(
        &state,
        &cluster,
        &principal.actor(),
        &author,
        access.role,
        &req,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(token)))
}

/// Whose data tokens the caller may see and revoke: an admin everyone's, others their own.
fn token_owner(access: &OrgAccess, principal: &Principal) -> Option<String> {
    (access.role < Role::Admin).then(|| principal.actor())
}

/// The cluster's unexpired data-plane tokens (admins see all, others their own), newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/clusters/{id}/data-tokens", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Vec<DataTokenInfo>), (status = 404)), security(("bearer" = [])))]
pub async fn list_data_tokens(
    State(state): State<AppState>,
    principal: Principal,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<axum::Json<Vec<DataTokenInfo>>> {
    let cluster = clusters::get(&state.db, &access.org.id, &id).await?;
    let owner = token_owner(&access, &principal);
    Ok(axum::Json(
        data_tokens::store::list(&state.db, &cluster.id, owner.as_deref()).await?,
    ))
}

/// Revokes a data-plane token (an admin any, others their own): the cluster refuses it within
/// its poll interval (seconds).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/clusters/{id}/data-tokens/{token}",
    params(("org" = String, Path), ("id" = String, Path), ("token" = String, Path)),
    responses((status = 200, body = DataTokenInfo), (status = 404)), security(("bearer" = [])))]
pub async fn revoke_data_token(
    State(state): State<AppState>,
    principal: Principal,
    access: OrgAccess,
    Path((_org, id, token)): Path<(String, String, String)>,
) -> Result<axum::Json<DataTokenInfo>> {
    let cluster = clusters::get(&state.db, &access.org.id, &id).await?;
    let owner = token_owner(&access, &principal);
    let revoked = data_tokens::store::revoke(
        &state.db,
        &cluster.id,
        &token,
        owner.as_deref(),
        &principal.actor(),
    )
    .await?;
    Ok(axum::Json(revoked))
}

/// The cluster's revoked-token list, signed with its token key (`application/jwt`), which its data
/// plane polls. Public: it holds only token ids, and the data plane needs no credential for it.
#[utoipa::path(get, path = "/api/v1/clusters/{id}/revocations", params(("id" = String, Path)),
    responses((status = 200, body = String, content_type = "application/jwt"), (status = 404)))]
pub async fn revocations(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let list = data_tokens::store::revocation_list(&state, &id).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/jwt"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        list,
    ))
}

/// Takes a base backup of a Running cluster now (member); 201 with its summary.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/clusters/{id}/backups", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 201, body = crate::backups::Backup), (status = 403), (status = 404), (status = 409), (status = 503)),
    security(("bearer" = [])))]
pub async fn create_backup(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<impl IntoResponse> {
    access.require(Role::Member)?;
    let cluster = clusters::get(&state.db, &access.org.id, &id).await?;
    let backup = crate::backups::take(&state, &cluster).await?;
    Ok((StatusCode::CREATED, axum::Json(backup)))
}

/// Runs a restore drill on a Running cluster now (member): its newest base backup is restored into
/// a scratch directory beside it and checked; 200 with the outcome, a failed drill included.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/clusters/{id}/backups/verify", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = crate::backups::Verification), (status = 403), (status = 404), (status = 409), (status = 503)),
    security(("bearer" = [])))]
pub async fn verify_backup(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<axum::Json<crate::backups::Verification>> {
    access.require(Role::Member)?;
    let cluster = clusters::get(&state.db, &access.org.id, &id).await?;
    Ok(axum::Json(crate::backups::verify(&state, &cluster).await?))
}

/// A Running cluster's base backups, oldest first, and the window they make recoverable.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/clusters/{id}/backups", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = crate::backups::BackupList), (status = 404), (status = 409), (status = 503)),
    security(("bearer" = [])))]
pub async fn list_backups(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<axum::Json<crate::backups::BackupList>> {
    let cluster = clusters::get(&state.db, &access.org.id, &id).await?;
    Ok(axum::Json(crate::backups::list(&state, &cluster).await?))
}

/// Suspends (scales to zero) a cluster now (member): its data is kept, and the first request
/// through the gateway, or `POST …/resume`, wakes it. Asynchronous: follow the operation (kind
/// `suspend`). 409 when it is already suspended.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/clusters/{id}/suspend", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 202, body = ClusterWithOperation), (status = 403), (status = 404), (status = 409), (status = 423)),
    security(("bearer" = [])))]
pub async fn suspend(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<impl IntoResponse> {
    access.require(Role::Member)?;
    let (cluster, operation) = crate::lifecycle::suspend(&state, &access.org, &id).await?;
    let cluster = present(&state, &access, cluster);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ClusterWithOperation { cluster, operation }),
    ))
}

/// Resumes a suspended cluster (member). Asynchronous: follow the operation (kind `resume`).
/// 409 when it is not suspended.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/clusters/{id}/resume", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 202, body = ClusterWithOperation), (status = 403), (status = 404), (status = 409), (status = 423)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<impl IntoResponse> {
    access.require(Role::Member)?;
    let (cluster, operation) = crate::lifecycle::resume(&state, &access.org, &id).await?;
    let cluster = present(&state, &access, cluster);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ClusterWithOperation { cluster, operation }),
    ))
}

/// The cluster's availability and latency SLOs over 24 hours and 30 days, from the requests the
/// gateway answered for it.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/clusters/{id}/slo", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = crate::lifecycle::slo::ClusterSlo), (status = 404)), security(("bearer" = [])))]
pub async fn slo(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<axum::Json<crate::lifecycle::slo::ClusterSlo>> {
    let cluster = clusters::get(&state.db, &access.org.id, &id).await?;
    Ok(axum::Json(
        crate::lifecycle::slo::of_cluster(&state.db, &cluster.id, crate::db::now_ms()).await?,
    ))
}

/// The cluster as users see it: its endpoint is the gateway's when one is in front.
pub fn present(state: &AppState, access: &OrgAccess, mut cluster: Cluster) -> Cluster {
    cluster.endpoint = state.gateway.routing.endpoint(
        &access.org.slug,
        &cluster.name,
        cluster.endpoint.as_deref(),
    );
    cluster
}

/// An operation of an organization the caller belongs to.
#[utoipa::path(get, path = "/api/v1/operations/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Operation), (status = 404)), security(("bearer" = [])))]
pub async fn operation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<Operation>> {
    let op = operations::get(&state.db, &id).await?;
    // Someone else's operation is "not found", like any other tenant's object.
    OrgAccess::resolve(&state, &principal, &op.org_id)
        .await
        .map_err(|e| match e {
            // A member of a suspended organization learns why, as on its other paths.
            Error::Suspended(_) => e,
            _ => Error::NotFound(format!("no operation {id:?}")),
        })?;
    Ok(axum::Json(op))
}

/// The window of a usage query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct UsageQuery {
    /// Start, ms since the epoch; the last 24 hours when absent.
    #[serde(default)]
    pub since: Option<i64>,
}

/// Usage of every cluster of the organization against its tier's limits.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/usage", params(("org" = String, Path), UsageQuery),
    responses((status = 200, body = Vec<crate::usage::ClusterUsage>)), security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    access: OrgAccess,
    super::Query(query): super::Query<UsageQuery>,
) -> Result<axum::Json<Vec<crate::usage::ClusterUsage>>> {
    let since = query
        .since
        .unwrap_or_else(|| crate::db::now_ms() - 24 * 3600 * 1000);
    Ok(axum::Json(
        crate::usage::of_org(&state.db, &access.org.id, since).await?,
    ))
}
