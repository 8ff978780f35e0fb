//! Backups of a cluster: taken and listed through its data plane's `/admin/backups`, with an
//! admin-scope data-plane token the control plane signs for itself, and the recoverable window
//! they span.

use std::time::Duration;

use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::backup::{ListedBackup, Manifest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::clusters::Cluster;
use crate::data_tokens::{self, DataTokenRequest};
use crate::error::{Error, Result};
use crate::state::AppState;

/// The subject of the tokens the control plane signs for its own calls to data planes.
pub const SUBJECT: &str = "controlplane";

/// Lifetime of those tokens: one call each.
const TOKEN_TTL_SECS: u64 = 300;

/// How long a call to a data plane may take: a base backup waits up to 120 s for the archive.
const CALL_TIMEOUT: Duration = Duration::from_secs(150);

/// One base backup of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Backup {
    /// Backup id.
    pub id: String,
    /// When it was taken (RFC 3339).
    pub created: String,
    /// First LSN covered (0 for an empty log).
    pub first_lsn: u64,
    /// Last LSN covered.
    pub last_lsn: u64,
    /// Commit time of the first record covered (RFC 3339); none for an empty log.
    #[serde(default)]
    pub first_time: Option<String>,
    /// Commit time of the last record covered (RFC 3339); none for an empty log.
    #[serde(default)]
    pub last_time: Option<String>,
}

/// The span of time a cluster can be restored to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecoveryWindow {
    /// The earliest restorable moment (RFC 3339); none without backups holding data.
    pub earliest: Option<String>,
    /// The latest restorable moment (RFC 3339); none without backups holding data.
    pub latest: Option<String>,
}

/// `GET /api/v1/orgs/{org}/clusters/{id}/backups`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackupList {
    /// The cluster's base backups, oldest first.
    pub backups: Vec<Backup>,
    /// The window they make recoverable.
    pub window: RecoveryWindow,
    /// The data plane's last restore drill since it started, if any.
    pub verification: Option<Verification>,
}

/// A restore drill: the newest base backup restored into a scratch directory and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// When it finished (RFC 3339).
    pub at: String,
    /// The base backup restored.
    pub backup_id: Option<String>,
    /// Whether the restored copy opened and matched its manifest.
    pub ok: bool,
    /// What was checked, or what went wrong.
    pub message: String,
}

/// The span of the archived log, as the data plane lists it.
pub use koru_dataplane_api::backup::ArchivedSpan as Archived;

impl From<ListedBackup> for Backup {
    fn from(b: ListedBackup) -> Backup {
        Backup {
            id: b.id,
            created: b.created,
            first_lsn: b.first_lsn,
            last_lsn: b.last_lsn,
            first_time: b.first_time,
            last_time: b.last_time,
        }
    }
}

impl From<koru_dataplane_api::backup::Verification> for Verification {
    fn from(v: koru_dataplane_api::backup::Verification) -> Verification {
        Verification {
            at: v.at,
            backup_id: v.backup_id,
            ok: v.ok,
            message: v.message,
        }
    }
}

/// A manifest's summary, with its commit times as RFC 3339 (as the data plane lists them).
pub fn summary(m: &Manifest) -> Backup {
    m.listed().into()
}

/// The recoverable window of `backups` (oldest first) and the archived log: from the first commit
/// time any of them holds to the latest commit time either reaches. The archive usually reaches
/// further than the newest base backup, since segments are archived as they are sealed.
pub fn window(backups: &[Backup], archive: Option<&Archived>) -> RecoveryWindow {
    let earliest = [
        backups.iter().find_map(|b| b.first_time.clone()),
        archive.map(|a| a.first_time.clone()),
    ];
    let latest = [
        backups.iter().rev().find_map(|b| b.last_time.clone()),
        archive.map(|a| a.last_time.clone()),
    ];
    let instant = |t: &String| koru_dataplane_api::rfc3339::parse_micros(t).ok();
    RecoveryWindow {
        earliest: earliest.into_iter().flatten().min_by_key(instant),
        latest: latest.into_iter().flatten().max_by_key(instant),
    }
}

/// Takes a base backup of `cluster` now.
pub async fn take(state: &AppState, cluster: &Cluster) -> Result<Backup> {
    let response = call(state, cluster, reqwest::Method::POST, "/admin/backups").await?;
    let manifest: Manifest = response.json().await.map_err(|e| {
        Error::Internal(format!(
            "cluster {}: reading a backup manifest: {e}",
            cluster.id
        ))
    })?;
    Ok(summary(&manifest))
}

/// Runs a restore drill on `cluster` now: its newest base backup restored beside it and checked.
pub async fn verify(state: &AppState, cluster: &Cluster) -> Result<Verification> {
    let response = call(
        state,
        cluster,
        reqwest::Method::POST,
        "/admin/backups/verify",
    )
    .await?;
    response.json().await.map_err(|e| {
        Error::Internal(format!(
            "cluster {}: reading a restore drill's outcome: {e}",
            cluster.id
        ))
    })
}

/// The base backups of `cluster` and the window they make recoverable.
pub async fn list(state: &AppState, cluster: &Cluster) -> Result<BackupList> {
    let response = call(state, cluster, reqwest::Method::GET, "/admin/backups").await?;
    let listed: koru_dataplane_api::backup::BackupList = response.json().await.map_err(|e| {
        Error::Internal(format!(
            "cluster {}: reading the backup list: {e}",
            cluster.id
        ))
    })?;
    let backups: Vec<Backup> = listed.backups.into_iter().map(Backup::from).collect();
    let window = window(&backups, listed.archive.as_ref());
    Ok(BackupList {
        backups,
        window,
        verification: listed.verification.map(Verification::from),
    })
}

/// Calls `path` (one of the `/admin/backups` routes) on the cluster's data plane; a non-success
/// answer becomes an error.
async fn call(
    state: &AppState,
    cluster: &Cluster,
    method: reqwest::Method,
    path: &str,
) -> Result<reqwest::Response> {
    if cluster.suspended || cluster.phase == "Suspended" {
        return Err(Error::Conflict(format!(
            "cluster {} is suspended (scaled to zero): nothing has been written since it suspended, \
             so its recovery point is unchanged; resume it (POST …/clusters/{}/resume, or any \
             request through the gateway) to take a backup, list its backups or run a drill",
            cluster.name, cluster.id
        )));
    }
    let endpoint = match (&cluster.endpoint, cluster.phase.as_str()) {
        (Some(endpoint), "Running") => endpoint,
        _ => {
            return Err(Error::Conflict(format!(
                "cluster {} is {}; backups need it Running",
                cluster.name, cluster.phase
            )));
        }
    };
    let token = data_tokens::store::issue(
        state,
        cluster,
        SUBJECT,
        SUBJECT,
        Role::Owner,
        &DataTokenRequest {
            scope: Scope::Admin,
            ttl_secs: Some(TOKEN_TTL_SECS),
        },
    )
    .await?;
    let client = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .map_err(|e| Error::Internal(format!("building the data-plane client: {e}")))?;
    let response = client
        .request(method, format!("{endpoint}{path}"))
        .bearer_auth(&token.token)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(cluster = %cluster.id, error = %e, "cannot reach the data plane for backups");
            Error::Unavailable(format!("cluster {} cannot be reached; retry shortly", cluster.name))
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    tracing::warn!(cluster = %cluster.id, %status, body, "the data plane refused a backup call");
    Err(match status.as_u16() {
        409 => Error::Conflict(format!(
            "cluster {} does not archive backups yet; it starts doing so after its next restart",
            cluster.name
        )),
        503 => Error::Unavailable(format!(
            "cluster {}'s backup store is unavailable or behind; retry shortly",
            cluster.name
        )),
        _ => Error::Internal(format!(
            "cluster {}: /admin/backups answered {status}: {body}",
            cluster.id
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, first: Option<&str>, last: Option<&str>) -> Backup {
        Backup {
            id: id.into(),
            created: "2026-11-26T00:00:00Z".into(),
            first_lsn: 1,
            last_lsn: 2,
            first_time: first.map(Into::into),
            last_time: last.map(Into::into),
        }
    }

    #[test]
    fn the_window_runs_from_the_first_commit_to_the_newest_backups_last() {
        assert_eq!(
            window(&[], None),
            RecoveryWindow {
                earliest: None,
                latest: None
            }
        );
        let backups = [
            backup("empty", None, None),
            backup(
                "b1",
                Some("2026-11-26T01:00:00Z"),
                Some("2026-11-26T02:00:00Z"),
            ),
            backup(
                "b2",
                Some("2026-11-26T01:00:00Z"),
                Some("2026-11-26T03:00:00Z"),
            ),
            backup("later-empty", None, None),
        ];
        assert_eq!(
            window(&backups, None),
            RecoveryWindow {
                earliest: Some("2026-11-26T01:00:00Z".into()),
                latest: Some("2026-11-26T03:00:00Z".into()),
            }
        );
        let archive = Archived {
            first_lsn: 1,
            last_lsn: 9,
            first_time: "2026-11-26T01:00:00Z".into(),
            last_time: "2026-11-26T04:00:00Z".into(),
            segments: 2,
        };
        assert_eq!(
            window(&backups, Some(&archive)).latest.as_deref(),
            Some("2026-11-26T04:00:00Z")
        );
        assert_eq!(
            window(&[], Some(&archive)).earliest.as_deref(),
            Some("2026-11-26T01:00:00Z")
        );
    }

    #[test]
    fn manifests_are_summarised_as_the_data_plane_lists_them() {
        let m = Manifest::new("b1".into(), "2026-11-26T00:00:00Z".into(), Vec::new());
        let s = summary(&m);
        assert_eq!((s.first_time, s.last_time), (None, None));
        assert_eq!(
            koru_dataplane_api::rfc3339::format_commit_micros(1_000_000).as_deref(),
            Some("1970-01-01T00:00:01.000000Z")
        );
    }
}
