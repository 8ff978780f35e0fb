//! KoruBackup: an on-demand base backup, taken through the cluster's data plane.
//!
//! A backup waits `Pending` until its cluster serves (its Ready condition is True), then is
//! `Running` (with `startedAt`) while the operator calls `POST /admin/backups` with the cluster's
//! admin token, and ends `Completed` (backup id, LSNs and times) or `Failed` (the reason), with a
//! BackupCompleted or BackupFailed event. Transient failures (the data plane unreachable, 5xx,
//! 408, 429) are retried with a growing pause until the deadline (`--backup-deadline-secs`,
//! counted from `startedAt`, or from creation while it waits for its cluster); a refusal (other
//! 4xx) fails at once. What to do is decided by pure functions of the backup, its cluster and the
//! time ([`next_step`], [`after_call`]); [`run`] only carries it out.
//!
//! An operator restarted during a call calls again, so the data plane may hold one more base
//! backup than asked for, which costs a manifest and is harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::admin::{self, AdminClient, CallError, TakenBackup};
use crate::status::{Notice, serving};
use koru_crd::{KoruBackup, KoruBackupStatus, KoruCluster};

/// Default `--backup-deadline-secs`: how long a backup may keep retrying.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
/// Phase of a backup waiting for its cluster.
pub const PENDING: &str = "Pending";
/// Phase of a backup being taken (or retried).
pub const RUNNING: &str = "Running";
/// Phase of a backup taken.
pub const COMPLETED: &str = "Completed";
/// Phase of a backup that cannot be taken.
pub const FAILED: &str = "Failed";
/// How often a Pending backup looks at its cluster again.
const WAIT_FOR_CLUSTER: Duration = Duration::from_secs(5);
/// First pause after a transient failure; it doubles with each further one.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Why a backup reconcile failed (it is retried after a pause).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The API server refused a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What to do with a backup now.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing: it is finished.
    Done,
    /// Write this status, then look again after the pause.
    Wait(KoruBackupStatus, Duration),
    /// Write this (Running) status, then call the data plane at this endpoint.
    Call(KoruBackupStatus, String),
    /// Write this final status.
    Finish(KoruBackupStatus),
}

/// What a backup should do, given its cluster (None when it does not exist) and the time.
pub fn next_step(
    backup: &KoruBackup,
    cluster: Option<&KoruCluster>,
    now: Timestamp,
    deadline: Duration,
) -> Step {
    let old = backup.status.clone().unwrap_or_default();
    if matches!(old.phase.as_deref(), Some(COMPLETED | FAILED)) {
        return Step::Done;
    }
    let name = &backup.spec.cluster;
    let kc = match cluster {
        None => {
            return Step::Finish(failed(
                old,
                format!("KoruCluster {name} does not exist in this namespace"),
                now,
            ));
        }
        Some(kc) if kc.spec.backup.is_none() => {
            return Step::Finish(failed(
                old,
                format!("KoruCluster {name} has no spec.backup destination to write backups to"),
                now,
            ));
        }
        Some(kc) => kc,
    };
    let running = old.phase.as_deref() == Some(RUNNING);
    // Running backups count from their start, waiting ones from their creation.
    let since = if running {
        old.started_at.as_deref().and_then(|t| t.parse().ok())
    } else {
        backup.metadata.creation_timestamp.as_ref().map(|t| t.0)
    };
    if since.is_some_and(|s| past(s, deadline, now)) {
        let why = match &old.message {
            Some(m) if running => format!("gave up after {} s: {m}", deadline.as_secs()),
            _ => format!(
                "KoruCluster {name} did not become ready within {} s",
                deadline.as_secs()
            ),
        };
        return Step::Finish(failed(old, why, now));
    }
    let Some(endpoint) = admin::endpoint(kc).filter(|_| serving(kc.status.as_ref())) else {
        let phase = kc
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| PENDING.into());
        let waiting = KoruBackupStatus {
            phase: Some(if running { RUNNING } else { PENDING }.into()),
            message: Some(format!(
                "waiting for KoruCluster {name} to be ready (it is {phase})"
            )),
            ..old
        };
        return Step::Wait(waiting, WAIT_FOR_CLUSTER);
    };
    let message = match &old.message {
        Some(m) if running => m.clone(),
        _ => format!("taking a base backup through {endpoint}"),
    };
    Step::Call(
        KoruBackupStatus {
            phase: Some(RUNNING.into()),
            started_at: old.started_at.clone().or_else(|| Some(stamp(now))),
            message: Some(message),
            ..old
        },
        endpoint,
    )
}

/// What a Running backup becomes after a call to the data plane answered `outcome`.
pub fn after_call(
    running: &KoruBackupStatus,
    outcome: Result<TakenBackup, CallError>,
    now: Timestamp,
    deadline: Duration,
) -> Step {
    let attempts = running.attempts.unwrap_or(0).saturating_add(1);
    let old = KoruBackupStatus {
        attempts: Some(attempts),
        ..running.clone()
    };
    match outcome {
        Ok(taken) => Step::Finish(KoruBackupStatus {
            phase: Some(COMPLETED.into()),
            finished_at: Some(stamp(now)),
            message: Some(format!(
                "base backup {} covers LSN {} to {}",
                taken.id, taken.first_lsn, taken.last_lsn
            )),
            backup_id: Some(taken.id),
            first_lsn: Some(i64::try_from(taken.first_lsn).unwrap_or(i64::MAX)),
            last_lsn: Some(i64::try_from(taken.last_lsn).unwrap_or(i64::MAX)),
            first_time: taken.first_time,
            last_time: taken.last_time,
            error: None,
            ..old
        }),
        Err(CallError::Permanent(why)) => Step::Finish(failed(old, why, now)),
        Err(CallError::Transient(why)) => {
            let started = old.started_at.as_deref().and_then(|t| t.parse().ok());
            if started.is_none_or(|s| past(s, deadline, now)) {
                let why = format!(
                    "gave up after {} s and {attempts} attempts: {why}",
                    deadline.as_secs()
                );
                return Step::Finish(failed(old, why, now));
            }
            let pause = retry_delay(attempts);
            Step::Wait(
                KoruBackupStatus {
                    message: Some(format!(
                        "attempt {attempts} failed, retrying in {} s: {why}",
                        pause.as_secs()
                    )),
                    ..old
                },
                pause,
            )
        }
    }
}

/// The pause after `attempts` attempts failed in a row: 1 s doubling up to 30 s.
pub fn retry_delay(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    RETRY_FIRST
        .saturating_mul(2u32.pow(doublings))
        .min(RETRY_MAX)
}

/// The event a status change is worth: the backup completing or failing.
pub fn notice(old: Option<&KoruBackupStatus>, new: &KoruBackupStatus) -> Option<Notice> {
    let before = old.and_then(|s| s.phase.as_deref());
    if before == new.phase.as_deref() {
        return None;
    }
    match new.phase.as_deref() {
        Some(COMPLETED) => Some(Notice {
            warning: false,
            reason: "BackupCompleted",
            note: match (&new.first_time, &new.last_time) {
                (Some(first), Some(last)) => format!(
                    "base backup {} covers {first} to {last}",
                    new.backup_id.clone().unwrap_or_default()
                ),
                _ => format!(
                    "base backup {} of an empty log",
                    new.backup_id.clone().unwrap_or_default()
                ),
            },
        }),
        Some(FAILED) => Some(Notice {
            warning: true,
            reason: "BackupFailed",
            note: new.error.clone().unwrap_or_default(),
        }),
        _ => None,
    }
}

fn failed(old: KoruBackupStatus, error: String, now: Timestamp) -> KoruBackupStatus {
    KoruBackupStatus {
        phase: Some(FAILED.into()),
        finished_at: Some(stamp(now)),
        error: Some(error),
        message: None,
        ..old
    }
}

/// Whether `deadline` has passed since `since`.
fn past(since: Timestamp, deadline: Duration, now: Timestamp) -> bool {
    let elapsed = now.as_second().saturating_sub(since.as_second());
    elapsed >= i64::try_from(deadline.as_secs()).unwrap_or(i64::MAX)
}

/// A time as Kubernetes writes it in statuses.
fn stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What backup reconciles share.
pub struct Context {
    client: Client,
    admin: AdminClient,
    recorder: Recorder,
    deadline: Duration,
    /// When each Running backup (`namespace/name`) may be tried again: a status write wakes the
    /// controller at once, and this keeps that from cutting the pause short.
    retry_at: Mutex<HashMap<String, Instant>>,
}

/// Runs the KoruBackup controller over `backups` until `shutdown` resolves.
pub async fn run(
    client: Client,
    backups: Api<KoruBackup>,
    admin: AdminClient,
    recorder: Recorder,
    deadline: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let context = Arc::new(Context {
        client,
        admin,
        recorder,
        deadline,
        retry_at: Mutex::default(),
    });
    Controller::new(backups, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "backup reconcile failed");
            }
        })
        .await;
}

async fn reconcile(backup: Arc<KoruBackup>, ctx: Arc<Context>) -> Result<Action, BackupError> {
    let ns = backup.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", backup.name_any());
    let wait = ctx
        .retry_at
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
        .map(|at| at.saturating_duration_since(Instant::now()))
        .filter(|d| !d.is_zero());
    if let Some(wait) = wait {
        return Ok(Action::requeue(wait));
    }
    let clusters = Api::<KoruCluster>::namespaced(ctx.client.clone(), &ns);
    let cluster = clusters.get_opt(&backup.spec.cluster).await?;
    let step = next_step(&backup, cluster.as_ref(), Timestamp::now(), ctx.deadline);
    // Decisions on the cached object are written only if it is still the newest version (a
    // stale cache gets 409 and a retry), so they never undo a newer status.
    let cached = backup.resource_version();
    let (running, endpoint) = match step {
        Step::Done => {
            forget(&ctx, &key);
            return Ok(Action::await_change());
        }
        Step::Finish(status) => {
            write(&ctx, &backup, status, cached.as_deref()).await?;
            forget(&ctx, &key);
            return Ok(Action::await_change());
        }
        Step::Wait(status, pause) => {
            write(&ctx, &backup, status, cached.as_deref()).await?;
            return Ok(Action::requeue(pause));
        }
        Step::Call(status, endpoint) => (status, endpoint),
    };
    // The cache may also lag this operator's own last write (a reconcile woken by the Running
    // write runs when the call that made it ends): a call is made only on the newest version, so
    // a finished backup is never taken again.
    let api = Api::<KoruBackup>::namespaced(ctx.client.clone(), &ns);
    let current = api.get(&backup.name_any()).await?;
    if current.resource_version() != cached {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let current = write(&ctx, &current, running.clone(), cached.as_deref())
        .await?
        .unwrap_or(current);
    let outcome = match admin::token(&ctx.client, &ns, &backup.spec.cluster).await? {
        Some(token) => ctx.admin.take_backup(&endpoint, &token).await,
        None => Err(CallError::Transient(format!(
            "the admin token Secret {} does not exist yet",
            crate::desired::admin_secret_name(&backup.spec.cluster)
        ))),
    };
    if let Err(e) = &outcome {
        tracing::warn!(backup = %key, error = %e, "a base backup attempt failed");
    }
    // What the call did is the truth, written whatever else changed on the object meanwhile.
    match after_call(&running, outcome, Timestamp::now(), ctx.deadline) {
        Step::Wait(status, pause) => {
            ctx.retry_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(key, Instant::now() + pause);
            write(&ctx, &current, status, None).await?;
            Ok(Action::requeue(pause))
        }
        Step::Finish(status) => {
            forget(&ctx, &key);
            let completed = status.phase.as_deref() == Some(COMPLETED);
            write(&ctx, &current, status, None).await?;
            if completed && let Some(kc) = &cluster {
                crate::recovery::refresh_now(&ctx.client, &ctx.admin, kc).await;
            }
            Ok(Action::await_change())
        }
        Step::Done | Step::Call(..) => Ok(Action::await_change()),
    }
}

fn forget(ctx: &Context, key: &str) {
    ctx.retry_at
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(key);
}

/// Writes `status` when it differs from the backup's, only over `resource_version` when given,
/// and publishes the event the change is worth; returns the backup as written.
async fn write(
    ctx: &Context,
    backup: &KoruBackup,
    status: KoruBackupStatus,
    resource_version: Option<&str>,
) -> Result<Option<KoruBackup>, kube::Error> {
    let old = backup.status.clone().unwrap_or_default();
    if old == status {
        return Ok(None);
    }
    let api =
        Api::<KoruBackup>::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default());
    let mut patch = serde_json::json!({ "status": status });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    let written = api
        .patch_status(
            &backup.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    if let Some(notice) = notice(Some(&old), &status) {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.into(),
            note: Some(notice.note),
            action: "Backup".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &backup.object_ref(&())).await {
            tracing::warn!(backup = %backup.name_any(), error = %e, "cannot publish an event");
        }
    }
    Ok(Some(written))
}

fn error_policy(_b: Arc<KoruBackup>, error: &BackupError, _c: Arc<Context>) -> Action {
    tracing::warn!(%error, "will retry the backup");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests;
