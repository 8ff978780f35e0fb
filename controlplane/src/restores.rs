//! Restores: a new cluster made from another cluster's backups as of a moment (point-in-time
//! recovery). The source keeps running untouched; the new cluster archives to its own store, so
//! its history after the restore point never mixes with the source's.

use koru_dataplane_api::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::backups;
use crate::clusters::{self, Cluster, CreateCluster};
use crate::error::{Error, Result};
use crate::operations::Operation;
use crate::orgs::Organization;
use crate::provisioner::RestoreSource;
use crate::state::AppState;
use crate::tiers::TierName;

/// `POST /api/v1/orgs/{org}/clusters/{id}/restore`: the new cluster and the point to restore to.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct RestoreCluster {
    /// Name of the new cluster (the rules of cluster names apply).
    pub name: String,
    /// Restore the writes committed at or before this moment (RFC 3339). Without it, everything
    /// archived (or the end of `backup_id`, when given).
    #[serde(default)]
    pub target_time: Option<String>,
    /// The base backup to start from; the source's whole archive when absent.
    #[serde(default)]
    pub backup_id: Option<String>,
    /// Tier of the new cluster; the source's when absent.
    #[serde(default)]
    pub tier: Option<TierName>,
    /// Region label of the new cluster; the source's when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// Replicas of the new cluster; the source's when absent.
    #[serde(default)]
    pub replicas: Option<u32>,
}

/// Checks a restore of `source` and starts the operation creating the new cluster from it.
///
/// When the source is Running, its backups are looked at first, so that a restore that cannot
/// work (no backups yet, a target before the oldest one, an unknown backup id) is refused at once
/// instead of failing later as an operation.
pub async fn start(
    state: &AppState,
    org: &Organization,
    source: &Cluster,
    req: &RestoreCluster,
    idempotency_key: Option<&str>,
) -> Result<(Cluster, Operation)> {
    let target_time = req.target_time.as_deref().map(parse_target).transpose()?;
    if let Some(id) = &req.backup_id
        && (id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        return Err(Error::BadRequest(format!(
            "backup_id {id:?} is not a backup id"
        )));
    }
    if source.phase == "Running" {
        let listed = backups::list(state, source).await?;
        check_against(&listed, req.backup_id.as_deref(), target_time, &source.name)?;
    }
    let create = CreateCluster {
        name: req.name.clone(),
        tier: Some(req.tier.unwrap_or(source.tier)),
        region: Some(req.region.clone().unwrap_or_else(|| source.region.clone())),
        regions: None,
        replicas: Some(req.replicas.unwrap_or(source.replicas)),
        // A restored copy of a guarded cluster is guarded the same way from its first moment.
        allowed_cidrs: Some(source.allowed_cidrs.clone()),
    };
    let restore = RestoreSource {
        cluster_id: source.id.clone(),
        backup_id: req.backup_id.clone(),
        target_time: target_time.map(|t| rfc3339::format_micros(t.timestamp_micros())),
    };
    clusters::create(state, org, &create, Some(restore), idempotency_key).await
}

/// Parses a target time: RFC 3339, and not in the future (that would be a restore to "now" that
/// silently drops whatever is written between the request and the restore).
fn parse_target(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let t = rfc3339::parse(text).map_err(|e| {
        Error::BadRequest(format!(
            "target_time {text:?} is not an RFC 3339 time such as 2026-11-26T10:00:00Z: {e}"
        ))
    })?;
    if t > chrono::Utc::now() {
        return Err(Error::BadRequest(format!(
            "target_time {text} is in the future; leave it out to restore everything archived"
        )));
    }
    Ok(t)
}

/// Refuses a restore the source's backups cannot serve.
fn check_against(
    listed: &backups::BackupList,
    backup_id: Option<&str>,
    target: Option<chrono::DateTime<chrono::Utc>>,
    source: &str,
) -> Result<()> {
    if let Some(id) = backup_id
        && !listed.backups.iter().any(|b| b.id == id)
    {
        return Err(Error::BadRequest(format!(
            "cluster {source} has no backup {id:?}; list them with GET …/clusters/{source}/backups"
        )));
    }
    let Some(target) = target else {
        return Ok(());
    };
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| rfc3339::parse(t).ok());
    let (Some(earliest), Some(latest)) =
        (parse(&listed.window.earliest), parse(&listed.window.latest))
    else {
        return Err(Error::Conflict(format!(
            "cluster {source} has nothing archived yet; its writes reach the archive within a minute, \
             or at once with a backup (POST …/clusters/{source}/backups)"
        )));
    };
    if target < earliest {
        return Err(Error::BadRequest(format!(
            "target_time {} is before cluster {source}'s recoverable window, which starts at {}",
            target.to_rfc3339(),
            earliest.to_rfc3339()
        )));
    }
    if target > latest {
        return Err(Error::Conflict(format!(
            "cluster {source}'s archive reaches {} so far, before target_time {}; retry within a \
             minute, or take a backup (POST …/clusters/{source}/backups), which archives everything first",
            latest.to_rfc3339(),
            target.to_rfc3339()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backups::{Backup, BackupList, RecoveryWindow};

    fn listed() -> BackupList {
        BackupList {
            backups: vec![Backup {
                id: "b1".into(),
                created: "2026-11-26T02:00:00Z".into(),
                first_lsn: 1,
                last_lsn: 9,
                first_time: Some("2026-11-26T01:00:00Z".into()),
                last_time: Some("2026-11-26T02:00:00Z".into()),
            }],
            window: RecoveryWindow {
                earliest: Some("2026-11-26T01:00:00Z".into()),
                latest: Some("2026-11-26T02:00:00Z".into()),
            },
            verification: None,
        }
    }

    fn at(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        Some(parse_target(t).unwrap())
    }

    #[test]
    fn targets_must_be_rfc3339_and_not_in_the_future() {
        assert!(parse_target("2026-11-26T01:30:00+01:00").is_ok());
        let e = parse_target("yesterday").unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
        let e = parse_target("2999-01-01T00:00:00Z").unwrap_err();
        assert!(e.to_string().contains("in the future"), "{e}");
    }

    #[test]
    fn restores_the_backups_cannot_serve_are_refused_with_the_reason() {
        let ok = check_against(&listed(), Some("b1"), at("2026-11-26T01:30:00Z"), "orders");
        assert!(ok.is_ok());
        let e = check_against(&listed(), None, at("2026-11-26T03:00:00Z"), "orders").unwrap_err();
        assert!(
            matches!(e, Error::Conflict(ref m) if m.contains("reaches")),
            "{e}"
        );
        let e = check_against(&listed(), Some("nope"), None, "orders").unwrap_err();
        assert!(matches!(e, Error::BadRequest(ref m) if m.contains("no backup \"nope\"")));
        let e = check_against(&listed(), None, at("2026-11-26T00:59:59Z"), "orders").unwrap_err();
        assert!(
            matches!(e, Error::BadRequest(ref m) if m.contains("before")),
            "{e}"
        );
        let empty = BackupList {
            backups: Vec::new(),
            window: RecoveryWindow {
                earliest: None,
                latest: None,
            },
            verification: None,
        };
        let e = check_against(&empty, None, at("2026-11-26T01:30:00Z"), "orders").unwrap_err();
        assert!(
            matches!(e, Error::Conflict(ref m) if m.contains("nothing archived")),
            "{e}"
        );
        assert!(check_against(&empty, None, None, "orders").is_ok());
    }
}
