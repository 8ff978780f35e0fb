//! What a cluster's status should say, and which events its change is worth: plain functions from
//! what was observed to a new status, kept apart from the API calls so every transition is
//! unit-tested.

mod backups;
mod regions;

pub use backups::{DRILL_FAILED_EVENT, apply_backup_report, recovery};
pub use regions::{
    CREDENTIALS_INVALID, CREDENTIALS_INVALID_EVENT, LINK_FAILING_EVENT, LINKS_RECOVERED_EVENT,
    apply_regions_report, credentials_invalid, regions_status,
};

use crate::desired::HTTP_PORT;
use koru_crd::{Condition, KoruCluster, KoruClusterStatus, ResourcesStatus, StorageStatus};

pub use koru_crd::conditions::{
    BACKUP_VERIFIED, DEGRADED, PROGRESSING, READY, REGIONS_HEALTHY, STORAGE_AT_CEILING,
};

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
    /// With storage autoscaling, a new `status.storage` (None: keep the old one).
    pub storage: Option<StorageStatus>,
    /// With storage autoscaling, whether the volumes are full at their ceiling, and why (None:
    /// not looked at in this reconcile, the condition stays as it was).
    pub at_ceiling: Option<(bool, String)>,
    /// With compute autoscaling, a new `status.resources` (None: keep the old one).
    pub resources: Option<ResourcesStatus>,
}

/// The phases of a suspended cluster and of one waking up.
const SUSPENDED_PHASES: [&str; 3] = ["Suspending", "Suspended", "Resuming"];

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

    let resuming = !spec.suspended
        && old
            .phase
            .as_deref()
            .is_some_and(|p| SUSPENDED_PHASES.contains(&p))
        && !(settled && ready >= want);
    // Suspended: scaled to zero on purpose, so not ready is not degraded.
    let suspension = spec.suspended.then(|| {
        if exists && sts.replicas > 0 {
            (
                "Suspending",
                Some((
                    "Suspending",
                    format!("stopping the pods ({} left); volumes kept", sts.replicas),
                )),
            )
        } else {
            ("Suspended", None)
        }
    });
    let (phase, progressing) = if let Some(suspension) = suspension {
        suspension
    } else if !exists {
        (
            "Pending",
            Some(("Creating", "creating the cluster's objects".to_string())),
        )
    } else if observed.storage_growing {
        (
            "Resizing",
            Some((
                "StorageGrowing",
                format!(
                    "growing volumes to {}",
                    crate::autoscale::compute::memory_quantity(crate::autoscale::storage_size(
                        kc,
                        observed.storage.as_ref().and_then(|s| s.size.as_deref())
                    ))
                ),
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
    } else if resuming {
        (
            "Resuming",
            Some((
                "Resuming",
                format!("waking from suspension: {ready} of {want} pods ready"),
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
    let serving = exists && ready >= quorum(want) && !spec.suspended;
    set(
        &mut conditions,
        READY,
        serving,
        if spec.suspended {
            "Suspended"
        } else if serving {
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
    let (reason, message) = progressing.clone().unwrap_or(if spec.suspended {
        (
            "Suspended",
            "scaled to zero on purpose: no pods, volumes kept".to_string(),
        )
    } else {
        ("Stable", "the cluster matches its spec".to_string())
    });
    set(
        &mut conditions,
        PROGRESSING,
        progressing.is_some(),
        reason,
        message,
        generation,
        now,
    );
    let (degraded, reason, message) = if spec.suspended {
        (
            false,
            "Suspended",
            "suspended: no pods by design".to_string(),
        )
    } else if let Some(why) = &observed.storage_blocked {
        (true, "StorageGrowthBlocked", why.clone())
    } else if exists && was_up && ready < want && !upgrading && !scaling && !resuming {
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
    backups::expect_drills(&mut conditions, spec, generation, now);
    regions::expect_regions(&mut conditions, spec, generation, now);
    if spec.storage.autoscale.is_none() {
        conditions.retain(|c| c.type_ != STORAGE_AT_CEILING);
    } else if let Some((at_ceiling, why)) = &observed.at_ceiling {
        set(
            &mut conditions,
            STORAGE_AT_CEILING,
            *at_ceiling,
            if *at_ceiling {
                "AtMaxSize"
            } else {
                "RoomToGrow"
            },
            why.clone(),
            generation,
            now,
        );
    }

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
        // Refreshed from the data plane by the controller.
        replication: old.replication,
        // The grown size stays even if autoscaling is turned off: the volumes keep it.
        storage: observed.storage.clone().or(old.storage),
        resources: spec
            .resources
            .as_ref()
            .and_then(|r| r.autoscale.as_ref())
            .and(observed.resources.clone().or(old.resources)),
        // Refreshed from the data plane by the controller; gone with `spec.region`.
        regions: spec.region.as_ref().and(old.regions),
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

/// Sets condition `type_` True or False, moving its transition time only when its value flips.
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
    set_status(conditions, type_, status, reason, message, generation, now);
}

/// Sets condition `type_` to `status` (True, False or Unknown), moving its transition time only
/// when the status changes.
fn set_status(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &str,
) {
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

/// The condition `type_` of a status, if it has one.
fn condition<'a>(status: &'a KoruClusterStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// The events worth publishing for a status change: one for a new phase, and a warning when the
/// backups' last restore drill turns out failed (once, on the transition).
pub fn notices(old: &KoruClusterStatus, new: &KoruClusterStatus) -> Vec<Notice> {
    let mut notices: Vec<Notice> = phase_notice(old, new).into_iter().collect();
    notices.extend(backups::drill_notice(old, new));
    notices.extend(ceiling_notice(old, new));
    notices.extend(regions::link_notice(old, new));
    notices
}

/// A warning when the volumes reach their ceiling full (once, on the transition).
fn ceiling_notice(old: &KoruClusterStatus, new: &KoruClusterStatus) -> Option<Notice> {
    let at = |s: &KoruClusterStatus| {
        condition(s, STORAGE_AT_CEILING).is_some_and(|c| c.status == "True")
    };
    (at(new) && !at(old)).then(|| Notice {
        warning: true,
        reason: "StorageAtCeiling",
        note: condition(new, STORAGE_AT_CEILING)
            .map(|c| c.message.clone())
            .unwrap_or_default(),
    })
}

/// The event for a change of phase, if it is worth one.
fn phase_notice(old: &KoruClusterStatus, new: &KoruClusterStatus) -> Option<Notice> {
    let phase = |s: &KoruClusterStatus| s.phase.clone().unwrap_or_default();
    let (before, after) = (phase(old), phase(new));
    if before == after {
        return None;
    }
    let message = |type_: &str| {
        condition(new, type_)
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
            note: message(DEGRADED),
        },
        "Upgrading" => Notice {
            warning: false,
            reason: "UpgradeStarted",
            note: message(PROGRESSING),
        },
        "Scaling" => Notice {
            warning: false,
            reason: "ScalingStarted",
            note: message(PROGRESSING),
        },
        "Resizing" => Notice {
            warning: false,
            reason: "StorageGrowthStarted",
            note: message(PROGRESSING),
        },
        "Suspended" => Notice {
            warning: false,
            reason: "ClusterSuspended",
            note: "scaled to zero: no pods, volumes kept".into(),
        },
        "Resuming" => Notice {
            warning: false,
            reason: "ClusterResuming",
            note: message(PROGRESSING),
        },
        "Paused" => Notice {
            warning: false,
            reason: "ReconcilePaused",
            note: "spec.paused is set: the operator leaves this cluster's objects alone".into(),
        },
        _ => return None,
    };
    Some(notice)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod region_tests;
