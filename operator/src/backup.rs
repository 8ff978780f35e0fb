//! KoruBackup checks: a backup of a cluster that does not exist, or that has no backup
//! destination, fails at once with a reason; a valid one waits as `Pending` for the data plane's
//! backup API, which runs it (issue 5).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::crd::{KoruBackup, KoruBackupStatus, KoruCluster};

/// Why a backup check failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The API server refused a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// The status a backup should have, given its cluster (None when it does not exist).
pub fn check(backup: &KoruBackup, cluster: Option<&KoruCluster>) -> KoruBackupStatus {
    let old = backup.status.clone().unwrap_or_default();
    if matches!(old.phase.as_deref(), Some("Completed" | "Failed")) {
        return old;
    }
    let name = &backup.spec.cluster;
    let error = match cluster {
        None => Some(format!(
            "KoruCluster {name} does not exist in this namespace"
        )),
        Some(kc) if kc.spec.backup.is_none() => Some(format!(
            "KoruCluster {name} has no spec.backup destination to write backups to"
        )),
        Some(_) => None,
    };
    KoruBackupStatus {
        phase: Some(if error.is_some() { "Failed" } else { "Pending" }.into()),
        error,
        ..old
    }
}

/// Runs the KoruBackup checks over `backups` until `shutdown` resolves.
pub async fn run(
    client: Client,
    backups: Api<KoruBackup>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(backups, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "backup check failed");
            }
        })
        .await;
}

async fn reconcile(backup: Arc<KoruBackup>, client: Arc<Client>) -> Result<Action, BackupError> {
    let ns = backup.namespace().unwrap_or_default();
    let clusters = Api::<KoruCluster>::namespaced((*client).clone(), &ns);
    let cluster = clusters.get_opt(&backup.spec.cluster).await?;
    let status = check(&backup, cluster.as_ref());
    if backup.status.as_ref() != Some(&status) {
        let api = Api::<KoruBackup>::namespaced((*client).clone(), &ns);
        let patch = serde_json::json!({ "status": status });
        api.patch_status(
            &backup.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    // A Pending backup is looked at again, in case its cluster has gone meanwhile.
    Ok(Action::requeue(Duration::from_secs(60)))
}

fn error_policy(_b: Arc<KoruBackup>, error: &BackupError, _c: Arc<Client>) -> Action {
    tracing::warn!(%error, "will retry the backup check");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BackupSettings, KoruBackupSpec, KoruClusterSpec, Storage};

    fn cluster(backup: bool) -> KoruCluster {
        KoruCluster::new(
            "orders",
            KoruClusterSpec {
                version: "0.1.0".into(),
                image: None,
                replicas: 1,
                resources: None,
                storage: Storage {
                    size: "1Gi".into(),
                    storage_class_name: None,
                    reclaim_policy: None,
                },
                durability: None,
                limits: None,
                auth: None,
                backup: backup.then(|| BackupSettings {
                    destination: "s3://b/orders".into(),
                    credentials_secret: None,
                    schedule: None,
                    retention_days: None,
                }),
                bootstrap: None,
                paused: false,
            },
        )
    }

    fn backup() -> KoruBackup {
        KoruBackup::new(
            "b1",
            KoruBackupSpec {
                cluster: "orders".into(),
            },
        )
    }

    #[test]
    fn a_backup_of_a_missing_or_unconfigured_cluster_fails_with_the_reason() {
        let missing = check(&backup(), None);
        assert_eq!(missing.phase.as_deref(), Some("Failed"));
        assert!(missing.error.unwrap().contains("does not exist"));
        let unconfigured = check(&backup(), Some(&cluster(false)));
        assert_eq!(unconfigured.phase.as_deref(), Some("Failed"));
        assert!(unconfigured.error.unwrap().contains("no spec.backup"));
    }

    #[test]
    fn a_valid_backup_waits_and_a_finished_one_is_left_alone() {
        let pending = check(&backup(), Some(&cluster(true)));
        assert_eq!(
            (pending.phase.as_deref(), pending.error),
            (Some("Pending"), None)
        );
        let mut done = backup();
        done.status = Some(KoruBackupStatus {
            phase: Some("Failed".into()),
            error: Some("earlier".into()),
            ..KoruBackupStatus::default()
        });
        assert_eq!(check(&done, Some(&cluster(true))), done.status.unwrap());
    }
}
