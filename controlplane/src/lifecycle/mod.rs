//! Scale to zero: clusters idle longer than their tier allows are suspended (no process, no
//! pods, data kept), and woken by the first request through the gateway or by a user.
//!
//! What a cluster should be is the `suspended` column; flipping it and recording the operation
//! that carries it out happen in one transaction, and the flip is conditional (`WHERE suspended
//! = <old>`), so of concurrent wakes (several gateway replicas, several control planes) exactly
//! one starts the `resume` operation and the others join it. The operation runs through the
//! usual runner: it applies the spec (with `suspended`) and waits for the phase `Suspended` or
//! `Running`.
//!
//! Activity is what the gateway reports (requests per cluster) and, for clients that reach a
//! data plane directly, the usage sampler's request-count deltas without the control plane's
//! own probes (see [`crate::usage`]).

pub mod policy;
pub mod slo;

use std::time::Duration;

use koru_gateway_api::RouteState;
use sqlx::{Any, Row, Transaction};

use crate::clusters::Cluster;
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::operations::{self, Operation, OperationKind};
use crate::orgs::Organization;
use crate::state::AppState;

pub use policy::{SuspendAfter, SuspendPolicy};

/// How often the idle check runs (and old gateway reports are pruned).
pub const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a wake keeps retrying while another operation holds the cluster.
const WAKE_RETRY_FOR: Duration = Duration::from_secs(60);

/// Records activity on a cluster at `now` (ms).
pub(crate) async fn mark_active(
    tx: &mut Transaction<'_, Any>,
    cluster_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE clusters SET last_active_at = $1 WHERE id = $2 AND (last_active_at IS NULL OR last_active_at < $1)",
    )
    .bind(now)
    .bind(cluster_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Flips what `cluster` should be to `suspended` and starts the operation that makes it so.
/// `Ok(None)` when it already was (another caller flipped it first); 423 while another
/// operation runs on it (the flip is undone with the transaction).
async fn change(
    state: &AppState,
    org: &Organization,
    cluster: &Cluster,
    suspended: bool,
) -> Result<Option<Operation>> {
    let mut tx = state.db.begin().await?;
    let flipped = sqlx::query(
        "UPDATE clusters SET suspended = $1, updated_at = $2 WHERE id = $3 AND suspended = $4",
    )
    .bind(i64::from(suspended))
    .bind(now_ms())
    .bind(&cluster.id)
    .bind(i64::from(!suspended))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if flipped == 0 {
        return Ok(None);
    }
    let kind = if suspended {
        OperationKind::Suspend
    } else {
        OperationKind::Resume
    };
    let op = operations::start(&mut tx, &org.id, &cluster.id, kind, None).await?;
    tx.commit().await?;
    crate::clusters::carry_out(state, org, &op);
    tracing::info!(cluster = %cluster.id, operation = %op.id, kind = kind.as_str(), "started");
    Ok(Some(op))
}

/// Suspends a cluster now (`POST …/suspend`): 409 when it is already suspended.
pub async fn suspend(
    state: &AppState,
    org: &Organization,
    id: &str,
) -> Result<(Cluster, Operation)> {
    let c = crate::clusters::get(&state.db, &org.id, id).await?;
    if c.phase == "Deleting" {
        return Err(Error::Conflict("the cluster is being deleted".into()));
    }
    let op = change(state, org, &c, true)
        .await?
        .ok_or_else(|| Error::Conflict("the cluster is already suspended".into()))?;
    Ok((crate::clusters::get(&state.db, &org.id, &c.id).await?, op))
}

/// Resumes a suspended cluster (`POST …/resume`): 409 when it is not suspended.
pub async fn resume(
    state: &AppState,
    org: &Organization,
    id: &str,
) -> Result<(Cluster, Operation)> {
    let c = crate::clusters::get(&state.db, &org.id, id).await?;
    let op = change(state, org, &c, false)
        .await?
        .ok_or_else(|| Error::Conflict("the cluster is not suspended".into()))?;
    Ok((crate::clusters::get(&state.db, &org.id, &c.id).await?, op))
}

/// The gateway's wake: starts (or joins) the resume of cluster `id` and says where it stands.
/// While another operation holds the cluster (a suspend still stopping it), the resume is started
/// as soon as that one ends.
pub async fn wake(state: &AppState, id: &str) -> Result<RouteState> {
    let c = crate::clusters::by_id(&state.db, id).await?;
    let org = crate::orgs::find(&state.db, &c.org_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no cluster {id:?}")))?;
    if !c.suspended {
        let running = operations::running_on(&state.db, &c.id).await?;
        if running.is_none() && c.phase == "Suspended" {
            // A resume that ended without bringing the cluster back (a control plane stopped
            // mid-way, a failed start): try again rather than hold requests for nothing.
            let mut tx = state.db.begin().await?;
            match operations::start(&mut tx, &org.id, &c.id, OperationKind::Resume, None).await {
                Ok(op) => {
                    tx.commit().await?;
                    crate::clusters::carry_out(state, &org, &op);
                }
                Err(Error::Locked(_)) => {}
                Err(e) => return Err(e),
            }
            return Ok(RouteState::Waking);
        }
        let resuming = running.is_some_and(|op| op.kind == OperationKind::Resume);
        return Ok(crate::gateway::routes::route_state(
            false, &c.phase, resuming,
        ));
    }
    match change(state, &org, &c, false).await {
        Ok(_) => Ok(RouteState::Waking),
        Err(Error::Locked(_)) => {
            let (state, c) = (state.clone(), c.clone());
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + WAKE_RETRY_FOR;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    match change(&state, &org, &c, false).await {
                        Err(Error::Locked(_)) => continue,
                        Err(e) => {
                            tracing::warn!(cluster = %c.id, error = %e, "cannot wake the cluster");
                            return;
                        }
                        Ok(_) => return,
                    }
                }
                tracing::warn!(cluster = %c.id, "gave up waking the cluster: another operation kept it busy");
            });
            Ok(RouteState::Waking)
        }
        Err(e) => Err(e),
    }
}

/// Suspends every running cluster idle for longer than its tier allows at `now` (ms); returns
/// their ids. Each suspension is audited with the actor `controlplane`.
pub async fn suspend_idle_once(
    state: &AppState,
    policy: &SuspendPolicy,
    now: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id, tier, last_active_at, updated_at FROM clusters WHERE suspended = 0 AND phase = 'Running'",
    )
    .fetch_all(&state.db)
    .await?;
    let mut suspended = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        let Some(tier) = crate::tiers::TierName::parse(&row.try_get::<String, _>("tier")?) else {
            continue;
        };
        if !policy::is_idle(
            now,
            row.try_get("last_active_at")?,
            row.try_get("updated_at")?,
            policy.after(tier),
        ) {
            continue;
        }
        let c = crate::clusters::by_id(&state.db, &id).await?;
        let Some(org) = crate::orgs::find(&state.db, &c.org_id).await? else {
            continue;
        };
        match change(state, &org, &c, true).await {
            Ok(Some(op)) => {
                audit_idle_suspend(state, &org, &c, &op).await;
                suspended.push(id);
            }
            // Someone else suspended it, or another operation runs: look again next time.
            Ok(None) | Err(Error::Locked(_)) => {}
            Err(e) => tracing::warn!(cluster = %id, error = %e, "cannot suspend the idle cluster"),
        }
    }
    Ok(suspended)
}

/// Appends the control plane's own suspension of an idle cluster to the audit log.
async fn audit_idle_suspend(state: &AppState, org: &Organization, c: &Cluster, op: &Operation) {
    let record = crate::audit::Record {
        id: crate::db::new_id(),
        time: now_ms(),
        actor: Some("controlplane".into()),
        org_id: Some(org.id.clone()),
        source_ip: None,
        action: "suspend idle cluster".into(),
        target: format!("/api/v1/orgs/{}/clusters/{}", org.id, c.id),
        outcome: "success".into(),
        request_id: op.id.clone(),
    };
    if let Err(e) = crate::audit::store::append(&state.db, &record).await {
        tracing::error!(cluster = %c.id, error = %e, "cannot audit the suspension of an idle cluster");
    }
}

/// Runs the idle check (when `suspend_idle`) and prunes old gateway reports every
/// [`IDLE_CHECK_INTERVAL`], forever.
pub fn spawn_idle_check(state: AppState, suspend_idle: bool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(IDLE_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = now_ms();
            if suspend_idle {
                match suspend_idle_once(&state, &state.suspend_policy, now).await {
                    Ok(ids) if !ids.is_empty() => {
                        tracing::info!(clusters = ?ids, "suspended idle clusters")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "the idle check failed"),
                }
            }
            if let Err(e) = crate::gateway::reports::prune(&state.db, now).await {
                tracing::warn!(error = %e, "cannot prune gateway reports");
            }
        }
    });
}
