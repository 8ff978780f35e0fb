//! Staff administration: what only the people running KoruDelta Cloud may do to an
//! organization (its tier, custom enterprise limits, suspension, verified email domains), each change appended to the
//! audit log as `staff:<name>`, in the global chain and the organization's own.
//!
//! There is no staff API: these run from `koru-controlplane admin ...` ([`cli`]) with the
//! database's credentials, so no web credential can reach them.
//!
//! # Suspension
//! A suspended organization's members get 403 `organization_suspended` for every API and
//! dashboard request on it (outsiders still get 404); its API tokens stop working; no cluster
//! is created or changed and no data-plane token is issued. Running clusters are left running,
//! and data-plane tokens issued before the suspension keep working until they expire (at most
//! their scope's lifetime): suspension stops the tenant from managing anything, it does not
//! destroy or cut off their data. To stop a cluster, delete it after the suspension.

pub mod cli;

use serde::Serialize;
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::audit::Record;
use crate::audit::middleware::outcome;
use crate::db::{new_id, now_ms};
use crate::error::{Error, Result};
use crate::orgs::{self, ORG_COLUMNS, Organization};
use crate::tiers::{CustomLimits, TierName};

/// An organization as staff see it: everything, with its member and cluster counts.
#[derive(Debug, Clone, Serialize)]
pub struct OrgSummary {
    /// The organization.
    #[serde(flatten)]
    pub organization: Organization,
    /// How many members it has.
    pub members: i64,
    /// How many clusters it has.
    pub clusters: i64,
}

/// Who acts: `staff:<name>`, with a name of 1 to 64 letters, digits and `._@-`.
pub fn staff_actor(name: &str) -> Result<String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(format!("staff:{name}"))
    } else {
        Err(Error::BadRequest(format!(
            "staff name {name:?} must be 1 to 64 letters, digits and ._@-"
        )))
    }
}

/// Every organization, oldest first.
pub async fn list_orgs(db: &AnyPool) -> Result<Vec<OrgSummary>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ORG_COLUMNS}, \
         (SELECT COUNT(*) FROM memberships m WHERE m.org_id = o.id) AS member_count, \
         (SELECT COUNT(*) FROM clusters c WHERE c.org_id = o.id) AS cluster_count \
         FROM organizations o ORDER BY o.created_at, o.id"
    )))
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrgSummary {
                organization: orgs::organization(r)?,
                members: r.try_get("member_count")?,
                clusters: r.try_get("cluster_count")?,
            })
        })
        .collect()
}

/// A staff change: what it is called in the audit log and what it does.
#[derive(Debug, Clone)]
pub enum Change {
    /// Moves the organization to a tier (enterprise included); its clusters must fit.
    SetTier(TierName),
    /// Replaces its custom enterprise limits (an empty set clears them).
    SetLimits(CustomLimits),
    /// Suspends it, for this reason.
    Suspend(String),
    /// Lifts a suspension.
    Unsuspend,
}

impl Change {
    /// The audit action: `admin <subcommand>`.
    pub fn action(&self) -> &'static str {
        match self {
            Change::SetTier(_) => "admin set-tier",
            Change::SetLimits(_) => "admin set-limits",
            Change::Suspend(_) => "admin suspend",
            Change::Unsuspend => "admin unsuspend",
        }
    }

    /// The audit target: the organization and the values set (never secrets).
    fn target(&self, org_id: &str) -> String {
        let detail = match self {
            Change::SetTier(tier) => format!("tier={}", tier.as_str()),
            Change::SetLimits(limits) => {
                serde_json::to_string(limits).unwrap_or_else(|_| "limits".into())
            }
            Change::Suspend(reason) => format!("reason={reason:?}"),
            Change::Unsuspend => "unsuspended".into(),
        };
        format!("organizations/{org_id} {detail}")
    }
}

/// Applies `change` to the organization `org_ref` (id or slug) as `actor`, and appends the
/// audit event, a refused change included (`failure:<status>`; one naming no organization goes
/// to the global chain only). Returns the organization after.
pub async fn apply(
    db: &AnyPool,
    actor: &str,
    org_ref: &str,
    change: &Change,
) -> Result<Organization> {
    let org = orgs::find(db, org_ref).await?;
    let result = match &org {
        Some(org) => run(db, org, change).await,
        None => Err(Error::NotFound(format!("no organization {org_ref:?}"))),
    };
    let status = match &result {
        Ok(_) => axum::http::StatusCode::OK,
        Err(e) => e.status_and_code().0,
    };
    let record = Record {
        id: new_id(),
        time: now_ms(),
        actor: Some(actor.to_string()),
        org_id: org.as_ref().map(|o| o.id.clone()),
        source_ip: None,
        action: change.action().to_string(),
        target: change.target(org.as_ref().map_or(org_ref, |o| o.id.as_str())),
        outcome: outcome(status),
        request_id: new_id(),
    };
    crate::audit::store::append(db, &record).await?;
    result
}

async fn run(db: &AnyPool, org: &Organization, change: &Change) -> Result<Organization> {
    match change {
        Change::SetTier(tier) => orgs::change_tier(db, &org.id, *tier).await,
        Change::SetLimits(limits) => set_limits(db, org, limits).await,
        Change::Suspend(reason) => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 200 {
                return Err(Error::BadRequest(
                    "a suspension needs a reason of 1 to 200 characters".into(),
                ));
            }
            sqlx::query(
                "UPDATE organizations SET suspended_at = $1, suspended_reason = $2 WHERE id = $3",
            )
            .bind(now_ms())
            .bind(reason)
            .bind(&org.id)
            .execute(db)
            .await?;
            reread(db, &org.id).await
        }
        Change::Unsuspend => {
            if org.suspension.is_none() {
                return Err(Error::Conflict(format!(
                    "organization {} is not suspended",
                    org.slug
                )));
            }
            sqlx::query(
                "UPDATE organizations SET suspended_at = NULL, suspended_reason = NULL WHERE id = $1",
            )
            .bind(&org.id)
            .execute(db)
            .await?;
            reread(db, &org.id).await
        }
    }
}

async fn reread(db: &AnyPool, org_id: &str) -> Result<Organization> {
    orgs::find(db, org_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no organization {org_id:?}")))
}

/// Checks custom limits: replicas a cluster may ask for are 1 to 7, and every value fits the
/// database's signed 64-bit columns.
pub fn check_limits(limits: &CustomLimits) -> Result<()> {
    if limits.max_replicas.is_some_and(|r| !(1..=7).contains(&r)) {
        return Err(Error::BadRequest("max replicas must be 1 to 7".into()));
    }
    let too_big = |v: Option<u64>| v.is_some_and(|v| i64::try_from(v).is_err());
    if too_big(limits.max_storage_bytes) || too_big(limits.max_ops_per_sec) {
        return Err(Error::BadRequest("a limit is larger than 2^63 - 1".into()));
    }
    Ok(())
}

/// Custom limits are for enterprise organizations, and may not go below the clusters the
/// organization already has (lower the count first, as for a downgrade).
async fn set_limits(
    db: &AnyPool,
    org: &Organization,
    limits: &CustomLimits,
) -> Result<Organization> {
    check_limits(limits)?;
    let mut tx = db.begin().await?;
    let org = orgs::lock(&mut tx, &org.id).await?;
    if org.tier != TierName::Enterprise && !limits.is_empty() {
        return Err(Error::PaymentRequired(format!(
            "custom limits are for enterprise organizations; {} is on {} (admin set-tier first)",
            org.slug,
            org.tier.as_str()
        )));
    }
    let clusters = crate::clusters::list_in(&mut tx, &org.id).await?;
    if let Some(max) = limits.max_clusters
        && clusters.len() > max as usize
    {
        return Err(Error::QuotaExceeded(format!(
            "{} has {} clusters, more than {max}; delete clusters first",
            org.slug,
            clusters.len()
        )));
    }
    let wide = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
    sqlx::query(
        "UPDATE organizations SET limit_max_storage_bytes = $1, limit_max_ops_per_sec = $2, \
         limit_max_clusters = $3, limit_max_replicas = $4, limit_backup_retention_days = $5 WHERE id = $6",
    )
    .bind(wide(limits.max_storage_bytes))
    .bind(wide(limits.max_ops_per_sec))
    .bind(limits.max_clusters.map(i64::from))
    .bind(limits.max_replicas.map(i64::from))
    .bind(limits.backup_retention_days.map(i64::from))
    .bind(&org.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    reread(db, &org.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_names_and_limits_are_checked() {
        assert_eq!(staff_actor("ada.l@ops").unwrap(), "staff:ada.l@ops");
        for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
            assert!(
                matches!(staff_actor(bad), Err(Error::BadRequest(_))),
                "{bad}"
            );
        }
        let bad = CustomLimits {
            max_replicas: Some(9),
            ..CustomLimits::default()
        };
        assert!(check_limits(&bad).is_err());
        let huge = CustomLimits {
            max_storage_bytes: Some(u64::MAX),
            ..CustomLimits::default()
        };
        assert!(check_limits(&huge).is_err());
        assert!(check_limits(&CustomLimits::default()).is_ok());
    }
}
