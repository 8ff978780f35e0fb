//! The storage-ceiling warning: a cluster whose storage cannot grow any further (the operator's
//! `StorageAtCeiling` condition on Kubernetes; stored bytes at 80 % of the tier's storage with the
//! local provisioner, which has no volume to grow) is shown in a banner on its organization's
//! dashboard pages, and each change of that state appends one audit event.
//!
//! The state lives in `clusters.storage_at_ceiling_since`; it is changed with a conditional
//! update, so however many control planes sample the cluster, one transition is one event.

use sqlx::AnyPool;

use crate::audit::chain::Record;
use crate::db::{new_id, now_ms};
use crate::error::Result;
use crate::provisioner::kubernetes::desired;

/// The condition type the operator sets on a KoruCluster whose storage autoscaling has reached
/// the tier's ceiling (status `True`).
pub const CONDITION: &str = desired::STORAGE_AT_CEILING;

/// The share of the tier's storage at which a local cluster counts as at its ceiling (it cannot
/// grow: its data plane refuses writes past the tier's stored bytes).
pub const LOCAL_CEILING_FRACTION: f64 = 0.8;

/// The audit action of a cluster reaching its storage ceiling.
pub const ACTION_REACHED: &str = "cluster storage-at-ceiling";
/// The audit action of a cluster back below its storage ceiling.
pub const ACTION_LEFT: &str = "cluster storage-below-ceiling";
/// The actor of those events: the control plane itself.
pub const ACTOR: &str = "system:storage";

/// Whether a local cluster storing `stored_bytes` of `max_storage_bytes` is at its ceiling.
pub fn local_at_ceiling(stored_bytes: i64, max_storage_bytes: u64) -> bool {
    max_storage_bytes > 0
        && stored_bytes as f64 >= LOCAL_CEILING_FRACTION * max_storage_bytes as f64
}

/// What a new observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It reached the ceiling (an event was appended).
    Reached,
    /// It is below the ceiling again (an event was appended).
    Left,
    /// Nothing changed.
    Unchanged,
}

/// Records whether cluster `cluster_id` of `org_id` is at its storage ceiling now, appending an
/// audit event when that changed.
pub async fn observe(
    db: &AnyPool,
    org_id: &str,
    cluster_id: &str,
    at_ceiling: bool,
) -> Result<Transition> {
    let now = now_ms();
    // Only the update that flips the column reports a change: concurrent samplers agree.
    let changed = if at_ceiling {
        sqlx::query(
            "UPDATE clusters SET storage_at_ceiling_since = $1 WHERE id = $2 AND storage_at_ceiling_since IS NULL",
        )
        .bind(now)
        .bind(cluster_id)
        .execute(db)
        .await?
    } else {
        sqlx::query(
            "UPDATE clusters SET storage_at_ceiling_since = NULL WHERE id = $1 AND storage_at_ceiling_since IS NOT NULL",
        )
        .bind(cluster_id)
        .execute(db)
        .await?
    };
    if changed.rows_affected() == 0 {
        return Ok(Transition::Unchanged);
    }
    let (transition, action) = if at_ceiling {
        (Transition::Reached, ACTION_REACHED)
    } else {
        (Transition::Left, ACTION_LEFT)
    };
    let record = Record {
        id: new_id(),
        time: now,
        actor: Some(ACTOR.into()),
        org_id: Some(org_id.to_string()),
        source_ip: None,
        action: action.into(),
        target: format!("/api/v1/orgs/{org_id}/clusters/{cluster_id}"),
        outcome: "success".into(),
        request_id: new_id(),
    };
    crate::audit::store::append(db, &record).await?;
    if at_ceiling {
        tracing::warn!(cluster = %cluster_id, org = %org_id, "the cluster's storage is at its tier's ceiling");
    }
    Ok(transition)
}

/// The names of an organization's clusters at their storage ceiling, for the dashboard banner.
pub async fn of_org(db: &AnyPool, org_id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT name FROM clusters WHERE org_id = $1 AND storage_at_ceiling_since IS NOT NULL ORDER BY name",
    )
    .bind(org_id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok(sqlx::Row::try_get(r, "name")?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_cluster_is_at_its_ceiling_from_80_percent() {
        assert!(!local_at_ceiling(799, 1000));
        assert!(local_at_ceiling(800, 1000));
        assert!(local_at_ceiling(1200, 1000));
        assert!(!local_at_ceiling(0, 0), "no limit, no ceiling");
    }
}
