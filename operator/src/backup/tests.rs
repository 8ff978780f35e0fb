//! Unit tests of the KoruBackup decisions.

use super::*;
use koru_crd::{
    ADMIN_ENDPOINT_ANNOTATION, BackupSettings, Condition, KoruBackupSpec, KoruClusterSpec,
    KoruClusterStatus, Storage,
};

const DEADLINE: Duration = Duration::from_secs(600);

fn at(t: &str) -> Timestamp {
    t.parse().unwrap()
}

fn cluster(backup: bool, ready: bool) -> KoruCluster {
    let mut kc = KoruCluster::new(
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
                autoscale: None,
            },
            durability: None,
            limits: None,
            auth: None,
            backup: backup.then(|| BackupSettings {
                destination: "s3://b/orders".into(),
                credentials_secret: None,
                schedule: None,
                retention_days: None,
                archive_timeout: None,
                verify_schedule: None,
            }),
            bootstrap: None,
            paused: false,
            suspended: false,
            region: None,
        },
    );
    kc.metadata.namespace = Some("team-a".into());
    kc.status = Some(KoruClusterStatus {
        phase: Some(if ready { "Running" } else { "Provisioning" }.into()),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: "QuorumReady".into(),
            ..Condition::default()
        }],
        ..KoruClusterStatus::default()
    });
    kc
}

fn backup(status: Option<KoruBackupStatus>) -> KoruBackup {
    let mut b = KoruBackup::new(
        "b1",
        KoruBackupSpec {
            cluster: "orders".into(),
        },
    );
    b.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(
        "2026-11-26T05:00:00Z",
    )));
    b.status = status;
    b
}

fn running(started: &str, attempts: i32, message: &str) -> KoruBackupStatus {
    KoruBackupStatus {
        phase: Some(RUNNING.into()),
        started_at: Some(started.into()),
        attempts: (attempts > 0).then_some(attempts),
        message: Some(message.into()),
        ..KoruBackupStatus::default()
    }
}

fn taken() -> TakenBackup {
    TakenBackup {
        id: "20261126T050001Z-000000000003".into(),
        first_lsn: 1,
        last_lsn: 3,
        first_time: Some("2026-11-26T04:59:00.000001Z".into()),
        last_time: Some("2026-11-26T05:00:00.000003Z".into()),
    }
}

#[test]
fn a_backup_of_a_missing_or_unconfigured_cluster_fails_with_the_reason() {
    let now = at("2026-11-26T05:00:01Z");
    let Step::Finish(missing) = next_step(&backup(None), None, now, DEADLINE) else {
        panic!("a missing cluster fails the backup");
    };
    assert_eq!(missing.phase.as_deref(), Some(FAILED));
    assert!(missing.error.unwrap().contains("does not exist"));
    assert_eq!(missing.finished_at.as_deref(), Some("2026-11-26T05:00:01Z"));
    let step = next_step(&backup(None), Some(&cluster(false, true)), now, DEADLINE);
    let Step::Finish(unconfigured) = step else {
        panic!("{step:?}");
    };
    assert!(unconfigured.error.unwrap().contains("no spec.backup"));
}

#[test]
fn a_backup_waits_for_its_cluster_then_runs_against_its_endpoint() {
    let now = at("2026-11-26T05:00:01Z");
    let step = next_step(&backup(None), Some(&cluster(true, false)), now, DEADLINE);
    let Step::Wait(pending, pause) = step else {
        panic!("{step:?}");
    };
    assert_eq!(pending.phase.as_deref(), Some(PENDING));
    assert_eq!(
        pending.message.as_deref(),
        Some("waiting for KoruCluster orders to be ready (it is Provisioning)")
    );
    assert_eq!(
        (pending.started_at.as_deref(), pause),
        (None, WAIT_FOR_CLUSTER)
    );

    let mut kc = cluster(true, true);
    let step = next_step(&backup(Some(pending.clone())), Some(&kc), now, DEADLINE);
    assert_eq!(
        step,
        Step::Call(
            KoruBackupStatus {
                phase: Some(RUNNING.into()),
                started_at: Some("2026-11-26T05:00:01Z".into()),
                message: Some("taking a base backup through http://orders.team-a.svc:7878".into()),
                ..KoruBackupStatus::default()
            },
            "http://orders.team-a.svc:7878".into()
        )
    );
    kc.annotations_mut().insert(
        ADMIN_ENDPOINT_ANNOTATION.into(),
        "http://127.0.0.1:4242".into(),
    );
    let step = next_step(&backup(Some(pending)), Some(&kc), now, DEADLINE);
    assert!(
        matches!(&step, Step::Call(_, endpoint) if endpoint == "http://127.0.0.1:4242"),
        "{step:?}"
    );
}

#[test]
fn a_cluster_that_never_gets_ready_fails_the_waiting_backup_at_the_deadline() {
    let pending = next_step(
        &backup(None),
        Some(&cluster(true, false)),
        at("2026-11-26T05:09:59Z"),
        DEADLINE,
    );
    assert!(matches!(pending, Step::Wait(..)), "{pending:?}");
    let step = next_step(
        &backup(None),
        Some(&cluster(true, false)),
        at("2026-11-26T05:10:00Z"),
        DEADLINE,
    );
    let Step::Finish(failed) = step else {
        panic!("{step:?}");
    };
    assert_eq!(
        failed.error.as_deref(),
        Some("KoruCluster orders did not become ready within 600 s")
    );
}

#[test]
fn a_successful_call_completes_the_backup_with_its_range() {
    let started = running("2026-11-26T05:00:01Z", 0, "taking a base backup");
    let step = after_call(&started, Ok(taken()), at("2026-11-26T05:00:02Z"), DEADLINE);
    let Step::Finish(done) = step else {
        panic!("{step:?}");
    };
    assert_eq!(
        done,
        KoruBackupStatus {
            phase: Some(COMPLETED.into()),
            started_at: Some("2026-11-26T05:00:01Z".into()),
            finished_at: Some("2026-11-26T05:00:02Z".into()),
            backup_id: Some("20261126T050001Z-000000000003".into()),
            error: None,
            message: Some("base backup 20261126T050001Z-000000000003 covers LSN 1 to 3".into()),
            attempts: Some(1),
            first_lsn: Some(1),
            last_lsn: Some(3),
            first_time: Some("2026-11-26T04:59:00.000001Z".into()),
            last_time: Some("2026-11-26T05:00:00.000003Z".into()),
        }
    );
    assert_eq!(
        next_step(
            &backup(Some(done)),
            None,
            at("2026-11-26T06:00:00Z"),
            DEADLINE
        ),
        Step::Done,
        "a finished backup is left alone, even without its cluster"
    );
}

#[test]
fn transient_failures_are_retried_with_backoff_until_the_deadline() {
    let started = running("2026-11-26T05:00:00Z", 2, "attempt 2 failed");
    let refused = CallError::Transient(
        "the data plane at http://x cannot be reached: Connection refused".into(),
    );
    let step = after_call(
        &started,
        Err(refused.clone()),
        at("2026-11-26T05:00:10Z"),
        DEADLINE,
    );
    let Step::Wait(retrying, pause) = step else {
        panic!("{step:?}");
    };
    assert_eq!(pause, Duration::from_secs(4));
    assert_eq!(retrying.phase.as_deref(), Some(RUNNING));
    assert_eq!(retrying.attempts, Some(3));
    assert_eq!(
        retrying.message.as_deref(),
        Some(
            "attempt 3 failed, retrying in 4 s: the data plane at http://x cannot be reached: Connection refused"
        )
    );
    // The next look keeps the message and calls again.
    let step = next_step(
        &backup(Some(retrying.clone())),
        Some(&cluster(true, true)),
        at("2026-11-26T05:00:14Z"),
        DEADLINE,
    );
    assert!(
        matches!(&step, Step::Call(s, _) if s == &retrying),
        "{step:?}"
    );

    let step = after_call(
        &retrying,
        Err(refused),
        at("2026-11-26T05:10:00Z"),
        DEADLINE,
    );
    let Step::Finish(failed) = step else {
        panic!("{step:?}");
    };
    assert_eq!(failed.phase.as_deref(), Some(FAILED));
    assert_eq!(
        failed.error.as_deref(),
        Some(
            "gave up after 600 s and 4 attempts: the data plane at http://x cannot be reached: Connection refused"
        )
    );
    assert_eq!(failed.message, None);
    // Found past its deadline without a call (the operator was down): fails with the last error.
    let step = next_step(
        &backup(Some(retrying)),
        Some(&cluster(true, true)),
        at("2026-11-26T05:10:00Z"),
        DEADLINE,
    );
    assert!(
        matches!(&step, Step::Finish(s) if s.error.as_deref().is_some_and(|e| e.starts_with("gave up after 600 s: attempt 3 failed"))),
        "{step:?}"
    );
}

#[test]
fn a_refusal_fails_at_once() {
    let started = running("2026-11-26T05:00:00Z", 0, "taking a base backup");
    let refusal = crate::admin::classify(
        409,
        r#"{"error":{"code":"backups_not_configured","message":"archiving is not configured"}}"#,
    );
    let step = after_call(&started, Err(refusal), at("2026-11-26T05:00:01Z"), DEADLINE);
    let Step::Finish(failed) = step else {
        panic!("{step:?}");
    };
    assert_eq!(
        failed.error.as_deref(),
        Some("the data plane answered 409 (backups_not_configured): archiving is not configured")
    );
    assert_eq!(failed.attempts, Some(1));
}

#[test]
fn retries_back_off_from_one_second_to_thirty() {
    let pauses: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
    assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(retry_delay(i32::MAX), RETRY_MAX);
    assert_eq!(retry_delay(0), RETRY_FIRST);
}

#[test]
fn completing_and_failing_are_worth_an_event() {
    let started = running("2026-11-26T05:00:00Z", 0, "x");
    let Step::Finish(done) =
        after_call(&started, Ok(taken()), at("2026-11-26T05:00:01Z"), DEADLINE)
    else {
        panic!("completes");
    };
    let n = notice(Some(&started), &done).unwrap();
    assert_eq!((n.warning, n.reason), (false, "BackupCompleted"));
    assert_eq!(
        n.note,
        "base backup 20261126T050001Z-000000000003 covers 2026-11-26T04:59:00.000001Z to 2026-11-26T05:00:00.000003Z"
    );
    assert_eq!(notice(Some(&done), &done), None, "once");
    let failed = failed(
        started.clone(),
        "refused".into(),
        at("2026-11-26T05:00:01Z"),
    );
    let n = notice(Some(&started), &failed).unwrap();
    assert_eq!(
        (n.warning, n.reason, n.note.as_str()),
        (true, "BackupFailed", "refused")
    );
    assert_eq!(notice(None, &started), None, "starting is not an event");
}
