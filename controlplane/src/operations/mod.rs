//! Asynchronous operations on clusters: their records, readable at `GET /api/v1/operations/{id}`.
//! They are recorded first and carried out by a background task, the [`runner`].
//!
//! Each step is idempotent (the provisioner's `apply` and `delete` are), so an operation left
//! running by a stopped control plane is simply run again at start-up.

pub mod runner;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};
use utoipa::ToSchema;

use crate::db::{new_id, now_ms};
use crate::error::{Error, Result};

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    /// Provision a new cluster.
    Create,
    /// Provision a new cluster from another cluster's backups.
    Restore,
    /// Apply a changed tier or replica count.
    Update,
    /// Deprovision a cluster.
    Delete,
    /// Scale a cluster to zero, keeping its data (idle, or asked for).
    Suspend,
    /// Bring a suspended cluster back (a request through the gateway, or asked for).
    Resume,
}

impl OperationKind {
    /// Its name, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Create => "create",
            OperationKind::Restore => "restore",
            OperationKind::Update => "update",
            OperationKind::Delete => "delete",
            OperationKind::Suspend => "suspend",
            OperationKind::Resume => "resume",
        }
    }

    fn parse(s: &str) -> Option<OperationKind> {
        match s {
            "create" => Some(OperationKind::Create),
            "restore" => Some(OperationKind::Restore),
            "update" => Some(OperationKind::Update),
            "delete" => Some(OperationKind::Delete),
            "suspend" => Some(OperationKind::Suspend),
            "resume" => Some(OperationKind::Resume),
            _ => None,
        }
    }
}

/// An operation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Operation {
    /// Operation id.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// The cluster it acts on.
    pub cluster_id: String,
    /// What it does.
    pub kind: OperationKind,
    /// running, succeeded or failed.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Start, ms since the epoch.
    pub created_at: i64,
    /// End, ms since the epoch.
    pub finished_at: Option<i64>,
}

fn operation(row: &AnyRow) -> Result<Operation> {
    let kind: String = row.try_get("kind")?;
    Ok(Operation {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        cluster_id: row.try_get("cluster_id")?,
        kind: OperationKind::parse(&kind)
            .ok_or_else(|| Error::Internal(format!("unknown operation kind {kind:?}")))?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Records a running operation on a cluster, unless one is already running there (423 with its id).
pub async fn start(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    cluster_id: &str,
    kind: OperationKind,
    idempotency_key: Option<&str>,
) -> Result<Operation> {
    let running =
        sqlx::query("SELECT id FROM operations WHERE cluster_id = $1 AND status = 'running'")
            .bind(cluster_id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(row) = running {
        return Err(Error::Locked(row.try_get("id")?));
    }
    let op = Operation {
        id: new_id(),
        org_id: org_id.to_string(),
        cluster_id: cluster_id.to_string(),
        kind,
        status: "running".into(),
        error: None,
        created_at: now_ms(),
        finished_at: None,
    };
    sqlx::query(
        "INSERT INTO operations (id, org_id, cluster_id, kind, status, idempotency_key, created_at) \
         VALUES ($1, $2, $3, $4, 'running', $5, $6)",
    )
    .bind(&op.id)
    .bind(org_id)
    .bind(cluster_id)
    .bind(kind.as_str())
    .bind(idempotency_key)
    .bind(op.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::unique(e, "this Idempotency-Key was already used for another request"))?;
    Ok(op)
}

/// An operation by id.
pub async fn get(db: &AnyPool, id: &str) -> Result<Operation> {
    let row = sqlx::query(
        "SELECT id, org_id, cluster_id, kind, status, error, created_at, finished_at FROM operations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::NotFound(format!("no operation {id:?}")))?;
    operation(&row)
}

/// The operation running on a cluster, if any (there is at most one: see [`start`]).
pub async fn running_on(db: &AnyPool, cluster_id: &str) -> Result<Option<Operation>> {
    let row = sqlx::query(
        "SELECT id, org_id, cluster_id, kind, status, error, created_at, finished_at FROM operations \
         WHERE cluster_id = $1 AND status = 'running'",
    )
    .bind(cluster_id)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(operation).transpose()
}

/// The operation an organization started with an `Idempotency-Key`, if any.
pub async fn by_idempotency_key(
    db: &AnyPool,
    org_id: &str,
    key: &str,
) -> Result<Option<Operation>> {
    let row = sqlx::query(
        "SELECT id, org_id, cluster_id, kind, status, error, created_at, finished_at FROM operations \
         WHERE org_id = $1 AND idempotency_key = $2",
    )
    .bind(org_id)
    .bind(key)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(operation).transpose()
}

/// The operations still running, as a stopped control plane may have left them.
pub async fn running(db: &AnyPool) -> Result<Vec<Operation>> {
    let rows = sqlx::query(
        "SELECT id, org_id, cluster_id, kind, status, error, created_at, finished_at FROM operations WHERE status = 'running'",
    )
    .fetch_all(db)
    .await?;
    rows.iter().map(operation).collect()
}

/// Records the end of an operation: succeeded, or failed with `error`.
pub async fn finish(db: &AnyPool, id: &str, error: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE operations SET status = $1, error = $2, finished_at = $3 WHERE id = $4")
        .bind(if error.is_some() {
            "failed"
        } else {
            "succeeded"
        })
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
