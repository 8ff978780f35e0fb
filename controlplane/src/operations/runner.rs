//! The background task that carries out an operation: it drives the provisioner until the cluster
//! is Running (or gone), records what the provisioner reports on the cluster's row, and records
//! the operation's end.
//!
//! It knows no cluster rules: its caller ([`crate::clusters`]) hands it the provisioner's view of
//! the cluster as a future, which the task awaits first, so building that view (the cluster's
//! token key included) is part of the operation and its failure fails the operation. The
//! dependency runs one way: clusters → runner → provisioner.

use std::future::Future;
use std::time::Duration;

use sqlx::AnyPool;

use super::{Operation, OperationKind, finish};
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::provisioner::ClusterSpec;
use crate::state::AppState;

/// How long an operation may wait for its cluster to become ready.
pub const READY_TIMEOUT_SECS: u64 = 180;

/// Carries out `op` in the background on the cluster `spec` resolves to.
pub fn spawn<F>(state: AppState, op: Operation, spec: F)
where
    F: Future<Output = Result<ClusterSpec>> + Send + 'static,
{
    tokio::spawn(async move {
        let result = run(&state, &op, spec).await;
        let error = result.as_ref().err().map(ToString::to_string);
        if let Some(e) = &error {
            tracing::warn!(operation = %op.id, cluster = %op.cluster_id, error = %e, "operation failed");
            if op.kind != OperationKind::Delete {
                let _ = set_state(&state.db, &op.cluster_id, "Failed", None, Some(e)).await;
            }
        }
        let labels = crate::metrics::OperationLabels {
            kind: op.kind.as_str().to_string(),
            result: if error.is_some() {
                "failed"
            } else {
                "succeeded"
            }
            .to_string(),
        };
        state.metrics.operations.get_or_create(&labels).inc();
        if let Err(e) = finish(&state.db, &op.id, error.as_deref()).await {
            tracing::error!(operation = %op.id, error = %e, "cannot record the end of an operation");
        }
    });
}

async fn run(
    state: &AppState,
    op: &Operation,
    spec: impl Future<Output = Result<ClusterSpec>>,
) -> Result<()> {
    let spec = spec.await?;
    let provisioning = |e: crate::provisioner::ProvisionError| Error::Internal(e.to_string());
    match op.kind {
        OperationKind::Delete => {
            state
                .provisioner
                .delete(&spec)
                .await
                .map_err(provisioning)?;
            forget(&state.db, &spec.id).await
        }
        OperationKind::Create
        | OperationKind::Restore
        | OperationKind::Update
        | OperationKind::Suspend
        | OperationKind::Resume => {
            state.provisioner.apply(&spec).await.map_err(provisioning)?;
            let target = spec.target_phase();
            // A wake holds a client's request: look often, so it is answered as soon as it can be.
            let poll = if op.kind == OperationKind::Resume {
                Duration::from_millis(50)
            } else {
                Duration::from_millis(500)
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(READY_TIMEOUT_SECS);
            loop {
                let seen = state.provisioner.state(&spec).await.map_err(provisioning)?;
                set_state(
                    &state.db,
                    &spec.id,
                    &seen.phase,
                    seen.endpoint.as_deref(),
                    seen.message.as_deref(),
                )
                .await?;
                crate::regions::record(&state.db, &spec.id, &seen.regions).await?;
                if seen.phase == target {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Internal(format!(
                        "the cluster was not {} after {} s: {}",
                        target.to_lowercase(),
                        READY_TIMEOUT_SECS,
                        seen.message.unwrap_or(seen.phase)
                    )));
                }
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// Records what the provisioner reports on the cluster's row.
async fn set_state(
    db: &AnyPool,
    id: &str,
    phase: &str,
    endpoint: Option<&str>,
    message: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE clusters SET phase = $1, endpoint = $2, message = $3, updated_at = $4 WHERE id = $5")
        .bind(phase)
        .bind(endpoint)
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Removes a cluster's record once it is deprovisioned.
async fn forget(db: &AnyPool, id: &str) -> Result<()> {
    crate::regions::forget(db, id).await?;
    sqlx::query("DELETE FROM clusters WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
