//! Unit tests of the status decisions.

use super::*;
use crate::admin::{ArchivedSpan, Drill, Listing};
use koru_crd::{BackupSettings, KoruClusterSpec, RecoveryStatus, Storage};

pub(super) fn cluster(
    replicas: i32,
    version: &str,
    status: Option<KoruClusterStatus>,
) -> KoruCluster {
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
                autoscale: None,
            },
            durability: None,
            limits: None,
            auth: None,
            backup: None,
            bootstrap: None,
            paused: false,
            suspended: false,
            region: None,
        },
    );
    kc.metadata.generation = Some(4);
    kc.status = status;
    kc
}

pub(super) fn sts(replicas: i32, ready: i32, updated: i32, rolled_out: bool) -> Observed {
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
    observed.storage_blocked = Some("storage class slow does not allow volume expansion".into());
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
        created: "2026-11-26T00:00:00Z".into(),
        first_lsn: 1,
        last_lsn: 2,
        first_time: first.map(Into::into),
        last_time: last.map(Into::into),
        segments: 1,
    }
}

#[test]
fn the_window_runs_from_the_oldest_backups_first_write_to_the_newests_last() {
    assert_eq!(
        recovery(&Listing::default(), None, None),
        RecoveryStatus::default()
    );
    let mut listing = Listing {
        archive: None,
        verification: None,
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
        recovery(backups, Some(0.2), None),
        RecoveryStatus {
            first_recoverable_time: Some("2026-11-26T01:00:00Z".into()),
            last_recoverable_time: Some("2026-11-26T03:00:00Z".into()),
            last_backup_id: Some("later-empty".into()),
            recovery_point_seconds: Some(1),
            last_verified_time: None,
        }
    );
    assert_eq!(
        recovery(backups, Some(0.0), None).recovery_point_seconds,
        Some(0)
    );
    assert_eq!(
        recovery(backups, Some(f64::NAN), None).recovery_point_seconds,
        None
    );

    // The archived log reaches past the newest base backup.
    listing.archive = Some(ArchivedSpan {
        first_lsn: 1,
        last_lsn: 9,
        first_time: "2026-11-26T01:00:00Z".into(),
        last_time: "2026-11-26T03:30:00.5Z".into(),
        segments: 2,
    });
    let window = recovery(&listing, None, None);
    assert_eq!(
        (
            window.first_recoverable_time.as_deref(),
            window.last_recoverable_time.as_deref()
        ),
        (Some("2026-11-26T01:00:00Z"), Some("2026-11-26T03:30:00.5Z"))
    );
    // An archive alone, before any base backup.
    listing.backups.clear();
    let window = recovery(&listing, None, None);
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
    kc.spec.backup = Some(backups(None));
    assert_eq!(
        next_status(&kc, &sts(1, 1, 1, true), "t2").backup,
        Some(window)
    );
}

fn backups(verify_schedule: Option<&str>) -> BackupSettings {
    BackupSettings {
        destination: "file:///b".into(),
        credentials_secret: None,
        schedule: None,
        retention_days: None,
        archive_timeout: None,
        verify_schedule: verify_schedule.map(Into::into),
    }
}

fn drill(ok: bool, at: &str) -> Drill {
    Drill {
        at: at.into(),
        backup_id: Some("b7".into()),
        ok,
        message: if ok {
            "base backup b7 restored, opened and checked".into()
        } else {
            "restoring base backup b7: segment 00000003.wal is damaged".into()
        },
        last_lsn: 42,
        versions: 40,
        seconds: 1.25,
    }
}

/// The status after one reconcile of `kc` (running) in which the data plane reported `drill`
/// as its last one (None: not asked or unreachable, or no drill reported).
fn reconciled(kc: &KoruCluster, report: Option<Option<Drill>>, now: &str) -> KoruClusterStatus {
    let mut status = next_status(kc, &sts(1, 1, 1, true), now);
    if let Some(verification) = report {
        let listing = Listing {
            verification,
            ..Listing::default()
        };
        apply_backup_report(&mut status, &listing, Some(0.0), Some(4), now);
    }
    status
}

fn verified(status: &KoruClusterStatus) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == BACKUP_VERIFIED)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[test]
fn backup_verified_follows_the_last_drill_and_warns_once_when_it_fails() {
    // No backups: no condition, however the status was left.
    let mut kc = cluster(1, "1.0", None);
    assert_eq!(verified(&reconciled(&kc, None, "t1")), None);

    // Backups without a drill schedule: no condition until a drill is seen.
    kc.spec.backup = Some(backups(None));
    let quiet = reconciled(&kc, Some(None), "t1");
    assert_eq!(verified(&quiet), None);
    assert_eq!(quiet.backup.as_ref().unwrap().last_verified_time, None);

    // Scheduled drills, none run yet: Unknown, even before the data plane is asked.
    kc.spec.backup = Some(backups(Some("0 4 * * *")));
    let waiting = reconciled(&kc, None, "t1");
    assert_eq!(
        verified(&waiting),
        Some((
            "Unknown".into(),
            "NoDrillYet".into(),
            "no restore drill has run yet; verifySchedule runs one at 0 4 * * * (UTC)".into()
        ))
    );
    kc.status = Some(waiting.clone());
    assert_eq!(
        reconciled(&kc, Some(None), "t2").conditions,
        waiting.conditions,
        "nothing new"
    );

    // A drill passes.
    let passed = reconciled(&kc, Some(Some(drill(true, "2026-11-26T04:00:01Z"))), "t3");
    assert_eq!(
        verified(&passed),
        Some((
            "True".into(),
            "DrillPassed".into(),
            "restore drill at 2026-11-26T04:00:01Z: base backup b7 restored and checked, \
             LSN 42, 40 versions, in 1.2 s"
                .into()
        ))
    );
    assert_eq!(
        passed
            .backup
            .as_ref()
            .unwrap()
            .last_verified_time
            .as_deref(),
        Some("2026-11-26T04:00:01Z")
    );
    assert!(
        notices(&waiting, &passed).is_empty(),
        "a pass is no warning"
    );

    // The next one fails: False with the drill's message, one warning, and the last passing
    // drill's time kept.
    kc.status = Some(passed.clone());
    let failed = reconciled(&kc, Some(Some(drill(false, "2026-11-27T04:00:02Z"))), "t4");
    let condition = failed
        .conditions
        .iter()
        .find(|c| c.type_ == BACKUP_VERIFIED)
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "DrillFailed")
    );
    assert_eq!(
        condition.message,
        "restore drill at 2026-11-27T04:00:02Z failed: restoring base backup b7: \
         segment 00000003.wal is damaged"
    );
    assert_eq!(condition.last_transition_time, "t4");
    assert_eq!(
        failed
            .backup
            .as_ref()
            .unwrap()
            .last_verified_time
            .as_deref(),
        Some("2026-11-26T04:00:01Z")
    );
    assert_eq!(
        notices(&passed, &failed),
        vec![Notice {
            warning: true,
            reason: "BackupVerificationFailed",
            note: condition.message.clone(),
        }]
    );

    // Failing again, or a data plane restarted without a drill since: no new warning, and the
    // last known outcome stays.
    kc.status = Some(failed.clone());
    let again = reconciled(&kc, Some(Some(drill(false, "2026-11-28T04:00:00Z"))), "t5");
    assert!(notices(&failed, &again).is_empty());
    assert_eq!(
        again
            .conditions
            .iter()
            .find(|c| c.type_ == BACKUP_VERIFIED)
            .unwrap()
            .last_transition_time,
        "t4",
        "still False since t4"
    );
    let restarted = reconciled(&kc, Some(None), "t5");
    assert_eq!(verified(&restarted), verified(&failed));
    assert!(notices(&failed, &restarted).is_empty());

    // Dropping the schedule keeps a seen outcome; dropping backups drops the condition.
    kc.spec.backup = Some(backups(None));
    assert_eq!(verified(&reconciled(&kc, None, "t6")), verified(&failed));
    kc.spec.backup = None;
    assert_eq!(verified(&reconciled(&kc, None, "t6")), None);
}

#[test]
fn the_no_drill_placeholder_goes_with_the_schedule() {
    let mut kc = cluster(1, "1.0", None);
    kc.spec.backup = Some(backups(Some("@daily")));
    kc.status = Some(reconciled(&kc, None, "t1"));
    assert_eq!(
        verified(kc.status.as_ref().unwrap()).map(|v| v.1),
        Some("NoDrillYet".into())
    );
    kc.spec.backup = Some(backups(None));
    assert_eq!(verified(&reconciled(&kc, None, "t2")), None);
    // Failing at once (nothing to restore yet) warns too.
    kc.spec.backup = Some(backups(Some("@daily")));
    let before = reconciled(&kc, None, "t1");
    kc.status = Some(before.clone());
    let mut nothing = drill(false, "t2");
    nothing.backup_id = None;
    nothing.message = "there is no base backup to restore yet".into();
    let after = reconciled(&kc, Some(Some(nothing)), "t2");
    assert_eq!(
        notices(&before, &after)[0].reason,
        "BackupVerificationFailed"
    );
}

#[test]
fn an_unchanged_cluster_gets_an_identical_status() {
    let running = next_status(&cluster(3, "1.0", None), &sts(3, 3, 3, true), "t1");
    let kc = cluster(3, "1.0", Some(running.clone()));
    assert_eq!(next_status(&kc, &sts(3, 3, 3, true), "t9"), running);
    assert!(notices(&running, &running).is_empty());
}

#[test]
fn a_suspended_cluster_is_suspended_not_degraded_and_resumes_to_running() {
    let running = next_status(&cluster(3, "1.0", None), &sts(3, 3, 3, true), "t1");
    let mut kc = cluster(3, "1.0", Some(running));
    kc.spec.suspended = true;
    let suspending = next_status(&kc, &sts(3, 1, 3, true), "t2");
    assert_eq!(suspending.phase.as_deref(), Some("Suspending"));
    let mut kc = cluster(3, "1.0", Some(suspending));
    kc.spec.suspended = true;
    let suspended = next_status(&kc, &sts(0, 0, 0, true), "t3");
    assert_eq!(suspended.phase.as_deref(), Some("Suspended"));
    assert_eq!(condition(&suspended, READY).reason, "Suspended");
    assert_eq!(condition(&suspended, DEGRADED).status, "False");
    assert_eq!(condition(&suspended, PROGRESSING).status, "False");
    let events: Vec<_> = notices(kc.status.as_ref().unwrap(), &suspended)
        .into_iter()
        .map(|n| (n.reason, n.warning))
        .collect();
    assert_eq!(events, [("ClusterSuspended", false)]);
    // Nothing changes while it stays suspended: no write, no event.
    let mut kc = cluster(3, "1.0", Some(suspended.clone()));
    kc.spec.suspended = true;
    assert_eq!(next_status(&kc, &sts(0, 0, 0, true), "t4"), suspended);

    let kc = cluster(3, "1.0", Some(suspended));
    let resuming = next_status(&kc, &sts(3, 1, 3, false), "t5");
    assert_eq!(resuming.phase.as_deref(), Some("Resuming"));
    assert_eq!(
        condition(&resuming, DEGRADED).status,
        "False",
        "waking is no fault"
    );
    let kc = cluster(3, "1.0", Some(resuming.clone()));
    let back = next_status(&kc, &sts(3, 3, 3, true), "t6");
    assert_eq!(back.phase.as_deref(), Some("Running"));
    assert_eq!(notices(&resuming, &back)[0].reason, "ClusterReady");
}

#[test]
fn storage_at_its_ceiling_warns_once() {
    let mut kc = cluster(1, "1.0", None);
    kc.spec.storage.autoscale = Some(koru_crd::StorageAutoscale {
        threshold_percent: Some(80),
        max_size: "20Gi".into(),
    });
    let mut observed = sts(1, 1, 1, true);
    observed.at_ceiling = Some((false, "room".into()));
    let fine = next_status(&kc, &observed, "t1");
    assert_eq!(condition(&fine, STORAGE_AT_CEILING).status, "False");
    observed.at_ceiling = Some((true, "full at 20Gi".into()));
    kc.status = Some(fine.clone());
    let full = next_status(&kc, &observed, "t2");
    assert_eq!(condition(&full, STORAGE_AT_CEILING).reason, "AtMaxSize");
    let warnings: Vec<_> = notices(&fine, &full)
        .into_iter()
        .filter(|n| n.warning)
        .map(|n| n.reason)
        .collect();
    assert_eq!(warnings, ["StorageAtCeiling"]);
    kc.status = Some(full.clone());
    let again = next_status(&kc, &observed, "t3");
    assert!(notices(&full, &again).is_empty(), "once per transition");
    // Not looked at in a reconcile: the condition stays.
    let kept = next_status(&kc, &sts(1, 1, 1, true), "t4");
    assert_eq!(condition(&kept, STORAGE_AT_CEILING).status, "True");
    kc.spec.storage.autoscale = None;
    let off = next_status(&kc, &sts(1, 1, 1, true), "t5");
    assert!(off.conditions.iter().all(|c| c.type_ != STORAGE_AT_CEILING));
}
