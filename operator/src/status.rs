//! What a cluster's status should say, and which events its change is worth: plain functions from
//! what was observed to a new status, kept apart from the API calls so every transition is
//! unit-tested.

use crate::admin::{ArchivedSpan, Listing};
use crate::crd::{Condition, KoruCluster, KoruClusterStatus, RecoveryStatus};
use crate::desired::HTTP_PORT;

/// Condition type: a majority of replicas serve.
pub const READY: &str = "Ready";
/// Condition type: the cluster is moving towards its spec (creating, scaling, upgrading, resizing).
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something is wrong that needs attention (replicas down, a blocked resize).
pub const DEGRADED: &str = "Degraded";

/// What the controller saw of a cluster's StatefulSet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatefulSetState {
    /// Pods that exist.
    pub replicas: i32,
    /// Pods passing readiness.
    pub ready: i32,
    /// Pods on the newest template.
    pub updated: i32,
    /// Whether the StatefulSet controller has seen the newest spec and finished rolling it out.
    pub rolled_out: bool,
}

/// Everything observed in one reconcile that the status depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The StatefulSet, when it exists.
    pub statefulset: Option<StatefulSetState>,
    /// Why a requested storage growth cannot happen, when it cannot.
    pub storage_blocked: Option<String>,
    /// A storage growth in progress (volumes being resized, StatefulSet being replaced).
    pub storage_growing: bool,
}

/// A Kubernetes Event the controller should publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Warning rather than Normal.
    pub warning: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// Sentence for humans.
    pub note: String,
}

/// The smallest number of replicas that still forms a majority.
pub fn quorum(replicas: i32) -> i32 {
    replicas / 2 + 1
}

/// The status a cluster should have given what was observed; `now` (RFC 3339) stamps the
/// conditions whose value changes.
pub fn next_status(kc: &KoruCluster, observed: &Observed, now: &str) -> KoruClusterStatus {
    let old = kc.status.clone().unwrap_or_default();
    let spec = &kc.spec;
    let want = spec.replicas;
    let generation = kc.metadata.generation;
    let sts = observed.statefulset.clone().unwrap_or_default();
    let exists = observed.statefulset.is_some();
    let ready = sts.ready;
    let settled = exists && sts.rolled_out && sts.replicas == want;
    let current_version = if settled {
        Some(spec.version.clone())
    } else {
        old.current_version.clone()
    };
    let upgrading = !settled
        && old
            .current_version
            .as_ref()
            .is_some_and(|v| v != &spec.version);
    // Scaling lasts until the new pods are ready too, so fresh pods do not read as lost ones.
    // Only a cluster that once settled scales; before that it is still being created.
    let scaling = exists
        && !upgrading
        && old.current_version.is_some()
        && (sts.replicas != want || old.phase.as_deref() == Some("Scaling") && ready < want);
    let was_up = old
        .conditions
        .iter()
        .any(|c| (c.type_ == READY || c.type_ == DEGRADED) && c.status == "True");

    let (phase, progressing) = if !exists {
        (
            "Pending",
            Some(("Creating", "creating the cluster's objects".to_string())),
        )
    } else if observed.storage_growing {
        (
            "Resizing",
            Some((
                "StorageGrowing",
                format!("growing volumes to {}", spec.storage.size),
            )),
        )
    } else if upgrading {
        let from = old.current_version.clone().unwrap_or_default();
        (
            "Upgrading",
            Some((
                "Upgrading",
                format!(
                    "rolling from {from} to {}: {} of {want} pods updated",
                    spec.version, sts.updated
                ),
            )),
        )
    } else if scaling {
        (
            "Scaling",
            Some((
                "Scaling",
                format!("scaling from {} to {want} replicas", sts.replicas),
            )),
        )
    } else if settled && ready >= want {
        ("Running", None)
    } else if was_up {
        ("Degraded", None)
    } else {
        (
            "Provisioning",
            Some((
                "Creating",
                format!("waiting for pods: {ready} of {want} ready"),
            )),
        )
    };

    let mut conditions = old.conditions.clone();
    let serving = exists && ready >= quorum(want);
    set(
        &mut conditions,
        READY,
        serving,
        if serving {
            "QuorumReady"
        } else {
            "QuorumUnavailable"
        },
        format!(
            "{ready} of {want} replicas ready, {} needed to serve",
            quorum(want)
        ),
        generation,
        now,
    );
    let (reason, message) = progressing
        .clone()
        .unwrap_or(("Stable", "the cluster matches its spec".to_string()));
    set(
        &mut conditions,
        PROGRESSING,
        progressing.is_some(),
        reason,
        message,
        generation,
        now,
    );
    let (degraded, reason, message) = if let Some(why) = &observed.storage_blocked {
        (true, "StorageGrowthBlocked", why.clone())
    } else if exists && was_up && ready < want && !upgrading && !scaling {
        (
            true,
            "ReplicasUnavailable",
            format!("{} of {want} replicas not ready", want - ready),
        )
    } else {
        (false, "AsExpected", "nothing needs attention".to_string())
    };
    set(
        &mut conditions,
        DEGRADED,
        degraded,
        reason,
        message,
        generation,
        now,
    );

    KoruClusterStatus {
        phase: Some(phase.to_string()),
        ready_replicas: ready,
        endpoint: match (&kc.metadata.name, &kc.metadata.namespace) {
            (Some(name), Some(ns)) => Some(format!("http://{name}.{ns}.svc:{HTTP_PORT}")),
            _ => old.endpoint.clone(),
        },
        current_version,
        observed_generation: generation,
        conditions,
        // Refreshed from the data plane by the controller; gone with `spec.backup`.
        backup: spec.backup.as_ref().and(old.backup),
    }
}

/// What a cluster's backups (`GET /admin/backups`: its base backups, oldest first, and the span
/// of its archived log) and its archive lag make recoverable: from the earliest of the first
/// write of the oldest base backup holding data and the archive's first write, to the latest of
/// the newest one's last write and the archive's (which usually reaches further, segments being
/// archived as they are sealed). The control plane reports the same window. And the recovery
/// point: the archive lag rounded up.
pub fn recovery(listing: &Listing, archive_lag_seconds: Option<f64>) -> RecoveryStatus {
    let backups = &listing.backups;
    let archive: Option<&ArchivedSpan> = listing.archive.as_ref();
    // Times compare as instants; one that does not parse loses to one that does.
    let instant = |t: &String| t.parse::<k8s_openapi::jiff::Timestamp>().ok();
    let first = [
        backups.iter().find_map(|b| b.first_time.clone()),
        archive.map(|a| a.first_time.clone()),
    ];
    let last = [
        backups.iter().rev().find_map(|b| b.last_time.clone()),
        archive.map(|a| a.last_time.clone()),
    ];
    RecoveryStatus {
        first_recoverable_time: first
            .into_iter()
            .flatten()
            .min_by_key(|t| (instant(t).is_none(), instant(t))),
        last_recoverable_time: last.into_iter().flatten().max_by_key(instant),
        last_backup_id: backups.last().map(|b| b.id.clone()),
        // Rounded up: a write waiting 0.2 s is at risk, not "0 s behind".
        recovery_point_seconds: archive_lag_seconds
            .filter(|lag| lag.is_finite() && *lag >= 0.0)
            .map(|lag| lag.ceil() as i64),
    }
}

/// Whether a cluster serves: its Ready condition (a majority of replicas ready) is True.
pub fn serving(status: Option<&KoruClusterStatus>) -> bool {
    status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == READY && c.status == "True")
    })
}

/// Sets condition `type_`, moving its transition time only when its value flips.
fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    value: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &str,
) {
    let status = if value { "True" } else { "False" };
    let transitioned = |old: Option<&Condition>| match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.to_string(),
    };
    let new = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: transitioned(conditions.iter().find(|c| c.type_ == type_)),
        observed_generation: generation,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

/// The events worth publishing for a status change.
pub fn notices(old: &KoruClusterStatus, new: &KoruClusterStatus) -> Vec<Notice> {
    let phase = |s: &KoruClusterStatus| s.phase.clone().unwrap_or_default();
    let (before, after) = (phase(old), phase(new));
    if before == after {
        return Vec::new();
    }
    let condition = |type_: &str| {
        new.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.message.clone())
            .unwrap_or_default()
    };
    let notice = match after.as_str() {
        "Running" => Notice {
            warning: false,
            reason: "ClusterReady",
            note: format!(
                "all {} replicas ready on version {}",
                new.ready_replicas,
                new.current_version.clone().unwrap_or_default()
            ),
        },
        "Degraded" => Notice {
            warning: true,
            reason: "ReplicasUnavailable",
            note: condition(DEGRADED),
        },
        "Upgrading" => Notice {
            warning: false,
            reason: "UpgradeStarted",
            note: condition(PROGRESSING),
        },
        "Scaling" => Notice {
            warning: false,
            reason: "ScalingStarted",
            note: condition(PROGRESSING),
        },
        "Resizing" => Notice {
            warning: false,
            reason: "StorageGrowthStarted",
            note: condition(PROGRESSING),
        },
        "Paused" => Notice {
            warning: false,
            reason: "ReconcilePaused",
            note: "spec.paused is set: the operator leaves this cluster's objects alone".into(),
        },
        _ => return Vec::new(),
    };
    vec![notice]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{KoruClusterSpec, Storage};

    fn cluster(replicas: i32, version: &str, status: Option<KoruClusterStatus>) -> KoruCluster {
        let mut kc = KoruCluster::new(
            "orders",
            KoruClusterSpec {
                version: version.into(),
                image: None,
                replicas,
                resources: None,
                storage: Storage {
                    size: "10Gi".into(),
                    storage_class_name: None,
                    reclaim_policy: None,
                },
                durability: None,
                limits: None,
                auth: None,
                backup: None,
                bootstrap: None,
                paused: false,
            },
        );
        kc.metadata.generation = Some(4);
        kc.status = status;
        kc
    }

    fn sts(replicas: i32, ready: i32, updated: i32, rolled_out: bool) -> Observed {
        Observed {
            statefulset: Some(StatefulSetState {
                replicas,
                ready,
                updated,
                rolled_out,
            }),
            ..Observed::default()
        }
    }

    fn condition<'a>(s: &'a KoruClusterStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_new_cluster_goes_from_pending_through_provisioning_to_running() {
        let kc = cluster(3, "1.0", None);
        let pending = next_status(&kc, &Observed::default(), "t1");
        assert_eq!(pending.phase.as_deref(), Some("Pending"));
        assert_eq!(condition(&pending, PROGRESSING).reason, "Creating");
        assert_eq!(condition(&pending, READY).status, "False");

        let kc = cluster(3, "1.0", Some(pending));
        let fresh = next_status(&kc, &sts(0, 0, 0, false), "t2");
        assert_eq!(fresh.phase.as_deref(), Some("Provisioning"), "not Scaling");
        let kc = cluster(3, "1.0", Some(fresh));
        let provisioning = next_status(&kc, &sts(3, 1, 3, true), "t2");
        assert_eq!(provisioning.phase.as_deref(), Some("Provisioning"));
        assert_eq!(
            condition(&provisioning, READY).last_transition_time,
            "t1",
            "Ready stayed False, so its transition time stays"
        );

        let kc = cluster(3, "1.0", Some(provisioning));
        let running = next_status(&kc, &sts(3, 3, 3, true), "t3");
        assert_eq!(running.phase.as_deref(), Some("Running"));
        assert_eq!(running.current_version.as_deref(), Some("1.0"));
        assert_eq!(running.observed_generation, Some(4));
        let ready = condition(&running, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "QuorumReady")
        );
        assert_eq!(ready.last_transition_time, "t3");
        assert_eq!(condition(&running, PROGRESSING).status, "False");
        assert_eq!(condition(&running, DEGRADED).status, "False");
    }

    #[test]
    fn losing_a_minority_is_degraded_but_still_ready() {
        let kc = cluster(3, "1.0", None);
        let running = next_status(&kc, &sts(3, 3, 3, true), "t1");
        let kc = cluster(3, "1.0", Some(running.clone()));
        let degraded = next_status(&kc, &sts(3, 2, 3, true), "t2");
        assert_eq!(degraded.phase.as_deref(), Some("Degraded"));
        assert_eq!(condition(&degraded, READY).status, "True");
        let d = condition(&degraded, DEGRADED);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "ReplicasUnavailable")
        );
        assert_eq!(
            notices(&running, &degraded),
            vec![Notice {
                warning: true,
                reason: "ReplicasUnavailable",
                note: "1 of 3 replicas not ready".into()
            }]
        );
        let kc = cluster(3, "1.0", Some(degraded));
        let lost = next_status(&kc, &sts(3, 1, 3, true), "t3");
        assert_eq!(condition(&lost, READY).status, "False", "no majority");
    }

    #[test]
    fn an_upgrade_reports_progress_and_keeps_the_old_version_until_done() {
        let running = next_status(&cluster(3, "1.0", None), &sts(3, 3, 3, true), "t1");
        let kc = cluster(3, "1.1", Some(running.clone()));
        let upgrading = next_status(&kc, &sts(3, 2, 1, false), "t2");
        assert_eq!(upgrading.phase.as_deref(), Some("Upgrading"));
        assert_eq!(upgrading.current_version.as_deref(), Some("1.0"));
        assert_eq!(
            condition(&upgrading, PROGRESSING).message,
            "rolling from 1.0 to 1.1: 1 of 3 pods updated"
        );
        assert_eq!(condition(&upgrading, DEGRADED).status, "False");
        assert_eq!(notices(&running, &upgrading)[0].reason, "UpgradeStarted");
        let kc = cluster(3, "1.1", Some(upgrading));
        let done = next_status(&kc, &sts(3, 3, 3, true), "t3");
        assert_eq!(done.phase.as_deref(), Some("Running"));
        assert_eq!(done.current_version.as_deref(), Some("1.1"));
    }

    #[test]
    fn scaling_is_progress_not_degradation() {
        let running = next_status(&cluster(3, "1.0", None), &sts(3, 3, 3, true), "t1");
        let kc = cluster(5, "1.0", Some(running));
        let scaling = next_status(&kc, &sts(3, 3, 3, true), "t2");
        assert_eq!(scaling.phase.as_deref(), Some("Scaling"));
        assert_eq!(
            condition(&scaling, PROGRESSING).message,
            "scaling from 3 to 5 replicas"
        );
        assert_eq!(condition(&scaling, DEGRADED).status, "False");
        let kc = cluster(5, "1.0", Some(scaling));
        let new_pods = next_status(&kc, &sts(5, 3, 5, true), "t3");
        assert_eq!(
            new_pods.phase.as_deref(),
            Some("Scaling"),
            "new pods that are not ready yet are still scaling"
        );
        let kc = cluster(5, "1.0", Some(new_pods));
        let done = next_status(&kc, &sts(5, 5, 5, true), "t4");
        assert_eq!(done.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn a_blocked_resize_is_degraded_with_the_reason() {
        let running = next_status(&cluster(1, "1.0", None), &sts(1, 1, 1, true), "t1");
        let kc = cluster(1, "1.0", Some(running));
        let mut observed = sts(1, 1, 1, true);
        observed.storage_blocked =
            Some("storage class slow does not allow volume expansion".into());
        let s = next_status(&kc, &observed, "t2");
        let d = condition(&s, DEGRADED);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "StorageGrowthBlocked")
        );
        assert!(d.message.contains("slow"));
    }

    fn listed(id: &str, first: Option<&str>, last: Option<&str>) -> crate::admin::ListedBackup {
        crate::admin::ListedBackup {
            id: id.into(),
            first_lsn: 1,
            last_lsn: 2,
            first_time: first.map(Into::into),
            last_time: last.map(Into::into),
        }
    }

    #[test]
    fn the_window_runs_from_the_oldest_backups_first_write_to_the_newests_last() {
        assert_eq!(
            recovery(&Listing::default(), None),
            RecoveryStatus::default()
        );
        let mut listing = Listing {
            archive: None,
            backups: vec![
                listed("empty", None, None),
                listed(
                    "b1",
                    Some("2026-11-26T01:00:00Z"),
                    Some("2026-11-26T02:00:00Z"),
                ),
                listed(
                    "b2",
                    Some("2026-11-26T01:00:00Z"),
                    Some("2026-11-26T03:00:00Z"),
                ),
                listed("later-empty", None, None),
            ],
        };
        let backups = &listing;
        assert_eq!(
            recovery(backups, Some(0.2)),
            RecoveryStatus {
                first_recoverable_time: Some("2026-11-26T01:00:00Z".into()),
                last_recoverable_time: Some("2026-11-26T03:00:00Z".into()),
                last_backup_id: Some("later-empty".into()),
                recovery_point_seconds: Some(1),
            }
        );
        assert_eq!(recovery(backups, Some(0.0)).recovery_point_seconds, Some(0));
        assert_eq!(
            recovery(backups, Some(f64::NAN)).recovery_point_seconds,
            None
        );

        // The archived log reaches past the newest base backup.
        listing.archive = Some(ArchivedSpan {
            first_time: "2026-11-26T01:00:00Z".into(),
            last_time: "2026-11-26T03:30:00.5Z".into(),
        });
        let window = recovery(&listing, None);
        assert_eq!(
            (
                window.first_recoverable_time.as_deref(),
                window.last_recoverable_time.as_deref()
            ),
            (Some("2026-11-26T01:00:00Z"), Some("2026-11-26T03:30:00.5Z"))
        );
        // An archive alone, before any base backup.
        listing.backups.clear();
        let window = recovery(&listing, None);
        assert_eq!(
            window.first_recoverable_time.as_deref(),
            Some("2026-11-26T01:00:00Z")
        );
        assert_eq!(window.last_backup_id, None);
    }

    #[test]
    fn the_recovery_status_is_kept_between_refreshes_and_dropped_with_spec_backup() {
        let window = RecoveryStatus {
            last_backup_id: Some("b1".into()),
            ..RecoveryStatus::default()
        };
        let running = next_status(&cluster(1, "1.0", None), &sts(1, 1, 1, true), "t1");
        assert!(serving(Some(&running)));
        assert!(!serving(None));
        let mut kc = cluster(
            1,
            "1.0",
            Some(KoruClusterStatus {
                backup: Some(window.clone()),
                ..running
            }),
        );
        assert_eq!(next_status(&kc, &sts(1, 1, 1, true), "t2").backup, None);
        kc.spec.backup = Some(crate::crd::BackupSettings {
            destination: "file:///b".into(),
            credentials_secret: None,
            schedule: None,
            retention_days: None,
        });
        assert_eq!(
            next_status(&kc, &sts(1, 1, 1, true), "t2").backup,
            Some(window)
        );
    }

    #[test]
    fn an_unchanged_cluster_gets_an_identical_status() {
        let running = next_status(&cluster(3, "1.0", None), &sts(3, 3, 3, true), "t1");
        let kc = cluster(3, "1.0", Some(running.clone()));
        assert_eq!(next_status(&kc, &sts(3, 3, 3, true), "t9"), running);
        assert!(notices(&running, &running).is_empty());
    }
}
