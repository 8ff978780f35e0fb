//! The recoverable window in a KoruCluster's status (`status.backup`) and its last restore drill
//! (the `BackupVerified` condition): read from the cluster's data plane at most about once a
//! refresh interval (`--backup-status-interval-secs`, a minute by default) while it serves, and
//! the window right after a KoruBackup of it completes. A data plane that does not answer leaves
//! the status as it was and never fails a reconcile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::admin::{self, AdminClient, Listing};
use crate::status::recovery;
use koru_crd::KoruCluster;

/// Default of how often a cluster with backups is reconciled, and so how often its window and
/// last drill are read.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// When each cluster's window was last read, so reconciles woken by other changes (pods,
/// Services) do not ask its data plane again.
pub struct Checks {
    /// The shortest gap between two reads of one cluster: a little under the refresh interval,
    /// so the periodic reconcile always finds it due.
    gap: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Checks {
    /// Reads for clusters reconciled every `every`.
    pub fn new(every: Duration) -> Checks {
        Checks {
            gap: every.saturating_mul(5) / 6,
            last: Mutex::default(),
        }
    }

    /// Whether cluster `key` is due for a read; if so, records that it is read now.
    pub fn due(&self, key: &str) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match last.get(key) {
            Some(at) if now.saturating_duration_since(*at) < self.gap => false,
            _ => {
                last.insert(key.to_string(), now);
                true
            }
        }
    }
}

/// What one read of a cluster's data plane found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Its base backups, archived span and last restore drill.
    pub listing: Listing,
    /// Seconds of writes not yet archived, when it reports them.
    pub archive_lag_seconds: Option<f64>,
}

/// What the cluster's data plane reports now: its base backups, archived span, last restore
/// drill and archive lag. None when it cannot be asked (no admin token yet) or does not answer.
pub async fn read(client: &Client, admin: &AdminClient, kc: &KoruCluster) -> Option<Report> {
    let ns = kc.namespace()?;
    let name = kc.name_any();
    let endpoint = admin::endpoint(kc)?;
    let token = match admin::token(client, &ns, &name).await {
        Ok(Some(token)) => token,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the admin token");
            return None;
        }
    };
    let listing = match admin.list_backups(&endpoint, &token).await {
        Ok(listing) => listing,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the recoverable window; keeping the last one");
            return None;
        }
    };
    let lag = admin.archive_lag(&endpoint).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the archive lag");
        None
    });
    Some(Report {
        listing,
        archive_lag_seconds: lag,
    })
}

/// Reads the window and writes it into the cluster's status at once (after a backup, so the
/// status shows it without waiting for the next periodic read).
pub async fn refresh_now(client: &Client, admin: &AdminClient, kc: &KoruCluster) {
    let Some(report) = read(client, admin, kc).await else {
        return;
    };
    let previous = kc.status.as_ref().and_then(|s| s.backup.as_ref());
    let window = recovery(&report.listing, report.archive_lag_seconds, previous);
    let api = Api::<KoruCluster>::namespaced(client.clone(), &kc.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": { "backup": window } });
    if let Err(e) = api
        .patch_status(
            &kc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!(cluster = %kc.name_any(), error = %e, "cannot write the recoverable window");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_read_once_per_gap() {
        let checks = Checks::new(DEFAULT_REFRESH);
        assert_eq!(checks.gap, Duration::from_secs(50));
        assert!(checks.due("ns/a"));
        assert!(!checks.due("ns/a"), "asked again at once");
        assert!(checks.due("ns/b"), "each cluster on its own");
        checks
            .last
            .lock()
            .unwrap()
            .insert("ns/a".into(), Instant::now() - checks.gap);
        assert!(checks.due("ns/a"));
    }
}
