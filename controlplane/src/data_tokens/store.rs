//! Issued data-plane tokens in the database: issuing records each token by its id, so it can be
//! listed and revoked until it expires; each cluster's signed revocation list is read from here.

use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::revocations::RevokedToken;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use super::{DataToken, DataTokenRequest};
use crate::auth::Role;
use crate::clusters::Cluster;
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::state::AppState;

/// An issued data-plane token, without the token itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataTokenInfo {
    /// The token's id (its `jti`).
    pub id: String,
    /// Whom it was issued to (`user:<id>`, `token:<id>`, or `controlplane`).
    pub subject: String,
    /// The granted scope.
    #[schema(value_type = String)]
    pub scope: Scope,
    /// Issue time, seconds since the epoch.
    pub issued_at: u64,
    /// Expiry, seconds since the epoch.
    pub expires_at: u64,
    /// When it was revoked, seconds since the epoch; the cluster refuses it within seconds.
    pub revoked_at: Option<u64>,
}

fn secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

fn now_secs() -> u64 {
    secs(now_ms())
}

fn info(row: &AnyRow) -> Result<DataTokenInfo> {
    let scope: String = row.try_get("scope")?;
    Ok(DataTokenInfo {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        scope: serde_json::from_value(serde_json::Value::String(scope.clone()))
            .map_err(|_| Error::Internal(format!("unknown scope {scope:?} in data_tokens")))?,
        issued_at: secs(row.try_get("issued_at")?),
        expires_at: secs(row.try_get("expires_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(secs),
    })
}

/// Signs a data-plane token for `cluster` with the cluster's key and records it.
///
/// `holder` is who may list and revoke it (the audit log's actor, `user:<id>` or `token:<id>`);
/// `author` is its `sub`, which the data plane records as the author of every write made with
/// it, so it names a person: their email, or `token:<name>` for an API token (see
/// [`crate::http::principal::Principal::author`]).
pub async fn issue(
    state: &AppState,
    cluster: &Cluster,
    holder: &str,
    author: &str,
    role: Role,
    req: &DataTokenRequest,
) -> Result<DataToken> {
    let key =
        crate::cluster_keys::signing_key(&state.db, &state.dataplane_key, &cluster.id).await?;
    let now = now_secs();
    let token = super::issue(&key, &cluster.id, author, role, req, now)?;
    let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    // Rows of expired tokens serve nothing: a revoked token is refused anyway once expired.
    sqlx::query("DELETE FROM data_tokens WHERE expires_at < $1")
        .bind(now_ms())
        .execute(&state.db)
        .await?;
    sqlx::query(
        "INSERT INTO data_tokens (id, cluster_id, subject, scope, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token.id)
    .bind(&cluster.id)
    .bind(holder)
    .bind(token.scope.to_string())
    .bind(ms(now))
    .bind(ms(token.expires_at))
    .execute(&state.db)
    .await?;
    Ok(token)
}

/// The unexpired tokens of `cluster_id`, newest first; only `subject`'s when given.
pub async fn list(
    db: &AnyPool,
    cluster_id: &str,
    subject: Option<&str>,
) -> Result<Vec<DataTokenInfo>> {
    let rows = sqlx::query(
        "SELECT id, subject, scope, issued_at, expires_at, revoked_at FROM data_tokens \
         WHERE cluster_id = $1 AND expires_at >= $2 ORDER BY issued_at DESC, id",
    )
    .bind(cluster_id)
    .bind(now_ms())
    .fetch_all(db)
    .await?;
    let all = rows.iter().map(info).collect::<Result<Vec<_>>>()?;
    Ok(all
        .into_iter()
        .filter(|t| subject.is_none_or(|s| t.subject == s))
        .collect())
}

/// Revokes the unexpired token `id` of `cluster_id` (again is a no-op); only `subject`'s when
/// given. Not found when there is no such token for the caller to see.
pub async fn revoke(
    db: &AnyPool,
    cluster_id: &str,
    id: &str,
    subject: Option<&str>,
    actor: &str,
) -> Result<DataTokenInfo> {
    let not_found = || Error::NotFound(format!("no unexpired data token {id:?} of this cluster"));
    let visible = list(db, cluster_id, subject).await?;
    if !visible.iter().any(|t| t.id == id) {
        return Err(not_found());
    }
    sqlx::query(
        "UPDATE data_tokens SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND cluster_id = $4 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(actor)
    .bind(id)
    .bind(cluster_id)
    .execute(db)
    .await?;
    list(db, cluster_id, subject)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(not_found)
}

/// The ids of every cluster's revoked, unexpired tokens, by cluster id (the gateway's route
/// table).
pub async fn revoked_by_cluster(
    db: &AnyPool,
) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let rows = sqlx::query(
        "SELECT cluster_id, id FROM data_tokens WHERE revoked_at IS NOT NULL AND expires_at >= $1 ORDER BY id",
    )
    .bind(now_ms())
    .fetch_all(db)
    .await?;
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for r in rows {
        out.entry(r.try_get("cluster_id")?)
            .or_default()
            .push(r.try_get("id")?);
    }
    Ok(out)
}

/// The signed list of the cluster's revoked, unexpired tokens (what its data plane polls).
/// Not found for an unknown cluster.
pub async fn revocation_list(state: &AppState, cluster_id: &str) -> Result<String> {
    let known = sqlx::query("SELECT id FROM clusters WHERE id = $1")
        .bind(cluster_id)
        .fetch_optional(&state.db)
        .await?;
    if known.is_none() {
        return Err(Error::NotFound(format!("no cluster {cluster_id:?}")));
    }
    let rows = sqlx::query(
        "SELECT id, expires_at FROM data_tokens WHERE cluster_id = $1 AND revoked_at IS NOT NULL AND expires_at >= $2 ORDER BY id",
    )
    .bind(cluster_id)
    .bind(now_ms())
    .fetch_all(&state.db)
    .await?;
    let revoked = rows
        .iter()
        .map(|row| {
            Ok(RevokedToken {
                jti: row.try_get("id")?,
                exp: secs(row.try_get("expires_at")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let key = crate::cluster_keys::signing_key(&state.db, &state.dataplane_key, cluster_id).await?;
    super::revocation_list(&key, cluster_id, revoked, now_secs())
}
