//! The product's tiers and their limits: one table, used for quota checks, passed down to the data
//! plane as a cluster's limits, served at `GET /api/v1/tiers`, and copied into the README.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};

/// A tier's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TierName {
    /// Free: one small cluster to try the product.
    Free,
    /// Pro: production clusters.
    Pro,
    /// Enterprise: custom limits and SSO.
    Enterprise,
}

impl TierName {
    /// The tier's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TierName::Free => "free",
            TierName::Pro => "pro",
            TierName::Enterprise => "enterprise",
        }
    }

    /// Parses a stored or requested tier name.
    pub fn parse(name: &str) -> Option<TierName> {
        match name {
            "free" => Some(TierName::Free),
            "pro" => Some(TierName::Pro),
            "enterprise" => Some(TierName::Enterprise),
            _ => None,
        }
    }
}

/// The limits of a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Tier {
    /// The tier.
    pub name: TierName,
    /// Storage quota of one cluster, bytes (enforced by the data plane).
    pub max_storage_bytes: u64,
    /// Operations per second of one cluster (enforced by the data plane).
    pub max_ops_per_sec: u64,
    /// Clusters an organization may have.
    pub max_clusters: u32,
    /// Replicas one cluster may have.
    pub max_replicas: u32,
    /// Regions one cluster may span (a global database); 1: single-region clusters only.
    pub max_regions: u32,
    /// Days backups are kept.
    pub backup_retention_days: u32,
    /// Whether SAML single sign-on is available.
    pub sso: bool,
    /// The largest request body the gateway lets through, bytes (below the data plane's own
    /// body limit, [`DATAPLANE_BODY_LIMIT`], so the tier's limit is the one clients meet).
    pub max_request_bytes: u64,
    /// Seconds without requests after which a cluster is suspended (scaled to zero); `None`:
    /// never. The control plane's `--suspend-after` may override it per tier.
    pub suspend_after_idle_secs: Option<u64>,
}

const GB: u64 = 1_000_000_000;
const MIB: u64 = 1024 * 1024;

/// The data plane's request body limit with its default `--max-value-bytes` (four times 1 MiB,
/// at least 64 MiB, plus 1 MiB of slack: `koru_dataplane::http::max_batch_bytes`). Every tier's
/// `max_request_bytes` stays below it.
pub const DATAPLANE_BODY_LIMIT: u64 = 65 * MIB;

/// Every tier, in upgrade order. Enterprise limits are defaults an operator admin may raise per
/// organization.
pub const TIERS: [Tier; 3] = [
    Tier {
        name: TierName::Free,
        max_storage_bytes: GB,
        max_ops_per_sec: 100,
        max_clusters: 1,
        max_replicas: 1,
        max_regions: 1,
        backup_retention_days: 1,
        sso: false,
        max_request_bytes: MIB,
        suspend_after_idle_secs: Some(5 * 60),
    },
    Tier {
        name: TierName::Pro,
        max_storage_bytes: 100 * GB,
        max_ops_per_sec: 10_000,
        max_clusters: 10,
        max_replicas: 5,
        max_regions: 3,
        backup_retention_days: 7,
        sso: false,
        max_request_bytes: 8 * MIB,
        suspend_after_idle_secs: None,
    },
    Tier {
        name: TierName::Enterprise,
        max_storage_bytes: 1_000 * GB,
        max_ops_per_sec: 100_000,
        max_clusters: 100,
        max_replicas: 7,
        max_regions: 5,
        backup_retention_days: 30,
        sso: true,
        max_request_bytes: 32 * MIB,
        suspend_after_idle_secs: None,
    },
];

/// The limits of `name`.
pub fn tier(name: TierName) -> Tier {
    match name {
        TierName::Free => TIERS[0],
        TierName::Pro => TIERS[1],
        TierName::Enterprise => TIERS[2],
    }
}

/// Limits staff set for one enterprise organization (`koru-controlplane admin set-limits`); each
/// one given replaces the enterprise tier's, the others keep the tier's value. They apply only
/// while the organization is on the enterprise plan, to its enterprise clusters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CustomLimits {
    /// Storage quota of one cluster, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_storage_bytes: Option<u64>,
    /// Operations per second of one cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ops_per_sec: Option<u64>,
    /// Clusters the organization may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clusters: Option<u32>,
    /// Replicas one cluster may have (1, 3, 5 or 7 are what a cluster may ask for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    /// Days backups are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_retention_days: Option<u32>,
}

impl CustomLimits {
    /// Whether no limit is overridden.
    pub fn is_empty(&self) -> bool {
        *self == CustomLimits::default()
    }
}

/// The limits that hold for a cluster of `cluster_tier` (or, for the organization-wide cluster
/// count, `cluster_tier` = the plan) in an organization on `plan` with `custom` limits: the
/// tier's, with the custom ones replacing them for enterprise clusters of an enterprise
/// organization.
pub fn effective(plan: TierName, cluster_tier: TierName, custom: &CustomLimits) -> Tier {
    let mut t = tier(cluster_tier);
    if plan == TierName::Enterprise && cluster_tier == TierName::Enterprise {
        t.max_storage_bytes = custom.max_storage_bytes.unwrap_or(t.max_storage_bytes);
        t.max_ops_per_sec = custom.max_ops_per_sec.unwrap_or(t.max_ops_per_sec);
        t.max_clusters = custom.max_clusters.unwrap_or(t.max_clusters);
        t.max_replicas = custom.max_replicas.unwrap_or(t.max_replicas);
        t.backup_retention_days = custom
            .backup_retention_days
            .unwrap_or(t.backup_retention_days);
    }
    t
}

/// Why a requested cluster does not fit its tier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The organization has as many clusters as its tier allows.
    #[error(
        "the {tier} tier allows {max} cluster(s) per organization, and this organization has {have}"
    )]
    Clusters {
        /// Tier name.
        tier: &'static str,
        /// The limit.
        max: u32,
        /// Clusters already there.
        have: u32,
    },
    /// Too many replicas for the tier.
    #[error("the {tier} tier allows at most {max} replica(s) per cluster; {asked} requested")]
    Replicas {
        /// Tier name.
        tier: &'static str,
        /// The limit.
        max: u32,
        /// What was asked.
        asked: u32,
    },
}

/// Checks a cluster of `replicas` against `tier`, given the organization's `existing` clusters
/// (not counting the one being changed).
pub fn check_cluster(tier: &Tier, existing: u32, replicas: u32) -> Result<(), QuotaError> {
    if existing >= tier.max_clusters {
        return Err(QuotaError::Clusters {
            tier: tier.name.as_str(),
            max: tier.max_clusters,
            have: existing,
        });
    }
    if replicas > tier.max_replicas {
        return Err(QuotaError::Replicas {
            tier: tier.name.as_str(),
            max: tier.max_replicas,
            asked: replicas,
        });
    }
    Ok(())
}

/// Checks the regions a global database asks for against its tier: more than one region needs a
/// tier that allows them (402, like any tier refusal), and at most the tier's number.
pub fn check_regions(tier: &Tier, regions: usize) -> Result<()> {
    if regions <= 1 {
        return Ok(());
    }
    if tier.max_regions <= 1 {
        return Err(Error::PaymentRequired(format!(
            "a database in several regions needs the pro or enterprise tier; this cluster is {}",
            tier.name.as_str()
        )));
    }
    if regions > tier.max_regions as usize {
        return Err(Error::QuotaExceeded(format!(
            "the {} tier allows at most {} region(s) per cluster; {regions} requested",
            tier.name.as_str(),
            tier.max_regions
        )));
    }
    Ok(())
}

/// Whether an organization on `plan` may run clusters of `tier`.
pub fn check_tier(plan: TierName, tier: TierName) -> Result<()> {
    let rank = |t: TierName| match t {
        TierName::Free => 0,
        TierName::Pro => 1,
        TierName::Enterprise => 2,
    };
    if rank(tier) <= rank(plan) {
        Ok(())
    } else {
        Err(Error::PaymentRequired(format!(
            "a {} cluster needs the {} plan; this organization is on {}",
            tier.as_str(),
            tier.as_str(),
            plan.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_limits_are_the_product_plan() {
        let free = tier(TierName::Free);
        assert_eq!((free.max_storage_bytes, free.max_ops_per_sec), (GB, 100));
        let pro = tier(TierName::Pro);
        assert_eq!(
            (pro.max_storage_bytes, pro.max_ops_per_sec),
            (100 * GB, 10_000)
        );
        assert!(tier(TierName::Enterprise).sso && !pro.sso && !free.sso);
        for t in TIERS {
            assert_eq!(TierName::parse(t.name.as_str()), Some(t.name));
            assert!(t.max_request_bytes < DATAPLANE_BODY_LIMIT, "{:?}", t.name);
        }
        assert_eq!(free.max_request_bytes, MIB);
        assert_eq!(free.suspend_after_idle_secs, Some(300));
        assert_eq!(pro.suspend_after_idle_secs, None);
    }

    #[test]
    fn each_limit_is_named_when_hit() {
        let free = tier(TierName::Free);
        let e = check_cluster(&free, 1, 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the free tier allows 1 cluster(s) per organization, and this organization has 1"
        );
        let e = check_cluster(&free, 0, 3).unwrap_err();
        assert!(e.to_string().contains("at most 1 replica(s)"));
        assert_eq!(check_cluster(&tier(TierName::Pro), 3, 3), Ok(()));
    }

    #[test]
    fn custom_limits_replace_the_enterprise_tier_only() {
        let custom = CustomLimits {
            max_clusters: Some(250),
            max_storage_bytes: Some(5_000 * GB),
            ..CustomLimits::default()
        };
        let t = effective(TierName::Enterprise, TierName::Enterprise, &custom);
        assert_eq!((t.max_clusters, t.max_storage_bytes), (250, 5_000 * GB));
        assert_eq!(
            t.max_ops_per_sec,
            tier(TierName::Enterprise).max_ops_per_sec
        );
        // A pro cluster of an enterprise organization, or a former enterprise organization,
        // keeps the table's limits.
        assert_eq!(
            effective(TierName::Enterprise, TierName::Pro, &custom),
            tier(TierName::Pro)
        );
        assert_eq!(
            effective(TierName::Pro, TierName::Enterprise, &custom),
            tier(TierName::Enterprise)
        );
        assert!(CustomLimits::default().is_empty() && !custom.is_empty());
    }

    #[test]
    fn every_tier_reports_both_limits_at_its_edge() {
        for t in TIERS {
            assert_eq!(
                check_cluster(&t, t.max_clusters - 1, t.max_replicas),
                Ok(()),
                "{:?}",
                t.name
            );
            let e = check_cluster(&t, t.max_clusters, 1).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("allows {} cluster(s)", t.max_clusters))
            );
            let e = check_cluster(&t, 0, t.max_replicas + 1).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("at most {} replica(s)", t.max_replicas))
            );
        }
    }

    #[test]
    fn several_regions_need_pro_or_enterprise_within_the_limit() {
        assert!(check_regions(&tier(TierName::Free), 1).is_ok());
        let e = check_regions(&tier(TierName::Free), 2).unwrap_err();
        assert!(matches!(e, Error::PaymentRequired(_)), "{e}");
        assert!(check_regions(&tier(TierName::Pro), 3).is_ok());
        let e = check_regions(&tier(TierName::Pro), 4).unwrap_err();
        assert!(matches!(e, Error::QuotaExceeded(_)), "{e}");
        assert!(e.to_string().contains("at most 3 region(s)"), "{e}");
        assert!(check_regions(&tier(TierName::Enterprise), 5).is_ok());
    }

    #[test]
    fn a_plan_runs_clusters_of_its_tier_and_below() {
        assert!(check_tier(TierName::Pro, TierName::Free).is_ok());
        let e = check_tier(TierName::Free, TierName::Pro).unwrap_err();
        assert!(matches!(e, Error::PaymentRequired(_)));
        assert!(e.to_string().contains("needs the pro plan"));
    }
}
