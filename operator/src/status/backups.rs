//! The backup parts of a cluster's status, from what its data plane reports: the recoverable
//! window (`status.backup`) and the `BackupVerified` condition, with the warning event of a
//! failed restore drill.

use super::{BACKUP_VERIFIED, Notice, condition, set_status};
use crate::admin::{ArchivedSpan, Drill, Listing};
use koru_crd::{Condition, KoruClusterSpec, KoruClusterStatus, RecoveryStatus};

/// Reason of the Warning event published when the last restore drill turns out failed.
pub const DRILL_FAILED_EVENT: &str = "BackupVerificationFailed";
/// BackupVerified reason: the last drill restored the newest base backup and it checked out.
const DRILL_PASSED: &str = "DrillPassed";
/// BackupVerified reason: the last drill failed (a damaged or missing object, no base backup).
const DRILL_FAILED: &str = "DrillFailed";
/// BackupVerified reason: drills are scheduled but none has been seen yet.
const NO_DRILL_YET: &str = "NoDrillYet";

/// What a cluster's backups (`GET /admin/backups`: its base backups, oldest first, and the span
/// of its archived log) and its archive lag make recoverable: from the earliest of the first
/// write of the oldest base backup holding data and the archive's first write, to the latest of
/// the newest one's last write and the archive's (which usually reaches further, segments being
/// archived as they are sealed). The control plane reports the same window. And the recovery
/// point: the archive lag rounded up. `lastVerifiedTime` is the last drill's time when it
/// passed, else the one in `previous` (the data plane remembers only its last drill, and none
/// across a restart).
pub fn recovery(
    listing: &Listing,
    archive_lag_seconds: Option<f64>,
    previous: Option<&RecoveryStatus>,
) -> RecoveryStatus {
    let backups = &listing.backups;
    let archive: Option<&ArchivedSpan> = listing.archive.as_ref();
    // Times compare as instants; one that does not parse loses to one that does.
    let instant = |t: &String| koru_dataplane_api::rfc3339::parse_micros(t).ok();
    let first = [
        backups.iter().find_map(|b| b.first_time.clone()),
        archive.map(|a| a.first_time.clone()),
    ];
    let last = [
        backups.iter().rev().find_map(|b| b.last_time.clone()),
        archive.map(|a| a.last_time.clone()),
    ];
    let passed = listing
        .verification
        .as_ref()
        .filter(|d| d.ok)
        .map(|d| d.at.clone());
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
        last_verified_time: passed.or_else(|| previous.and_then(|p| p.last_verified_time.clone())),
    }
}

/// Writes what one read of the cluster's data plane found into its status: the window and
/// recovery point, and the BackupVerified condition from the last restore drill. When the data
/// plane reports no drill (none since it started), the condition stays as it was: the last
/// drill seen is still the last one known.
pub fn apply_backup_report(
    status: &mut KoruClusterStatus,
    listing: &Listing,
    archive_lag_seconds: Option<f64>,
    generation: Option<i64>,
    now: &str,
) {
    status.backup = Some(recovery(
        listing,
        archive_lag_seconds,
        status.backup.as_ref(),
    ));
    if let Some(drill) = &listing.verification {
        let (value, reason, message) = drill_condition(drill);
        set_status(
            &mut status.conditions,
            BACKUP_VERIFIED,
            value,
            reason,
            message,
            generation,
            now,
        );
    }
}

/// The BackupVerified status, reason and message a drill gives.
fn drill_condition(drill: &Drill) -> (&'static str, &'static str, String) {
    if drill.ok {
        let id = drill.backup_id.as_deref().unwrap_or("(none)");
        let message = format!(
            "restore drill at {}: base backup {id} restored and checked, LSN {}, {} versions, in {:.1} s",
            drill.at, drill.last_lsn, drill.versions, drill.seconds
        );
        ("True", DRILL_PASSED, message)
    } else {
        let message = format!("restore drill at {} failed: {}", drill.at, drill.message);
        ("False", DRILL_FAILED, message)
    }
}

/// Keeps the BackupVerified condition in line with the spec before the data plane is asked:
/// gone without `spec.backup`; Unknown (`NoDrillYet`) while drills are scheduled and none has
/// been seen; that placeholder dropped when the schedule is. A drill's outcome, once seen, stays
/// until the next one (or until backups are turned off).
pub(super) fn expect_drills(
    conditions: &mut Vec<Condition>,
    spec: &KoruClusterSpec,
    generation: Option<i64>,
    now: &str,
) {
    let placeholder = |c: &Condition| c.type_ == BACKUP_VERIFIED && c.reason == NO_DRILL_YET;
    let Some(backup) = &spec.backup else {
        conditions.retain(|c| c.type_ != BACKUP_VERIFIED);
        return;
    };
    let seen = conditions
        .iter()
        .any(|c| c.type_ == BACKUP_VERIFIED && !placeholder(c));
    match backup.verify_schedule.as_deref() {
        Some(schedule) if !seen => set_status(
            conditions,
            BACKUP_VERIFIED,
            "Unknown",
            NO_DRILL_YET,
            format!(
                "no restore drill has run yet; verifySchedule runs one at {} (UTC)",
                schedule.trim()
            ),
            generation,
            now,
        ),
        Some(_) => {}
        None => conditions.retain(|c| !placeholder(c)),
    }
}

/// A Warning event when the last restore drill turns out failed: on the transition to False
/// only, so a drill failing again does not repeat it.
pub(super) fn drill_notice(old: &KoruClusterStatus, new: &KoruClusterStatus) -> Option<Notice> {
    fn failed(s: &KoruClusterStatus) -> Option<&Condition> {
        condition(s, BACKUP_VERIFIED).filter(|c| c.status == "False")
    }
    match (failed(old), failed(new)) {
        (None, Some(c)) => Some(Notice {
            warning: true,
            reason: DRILL_FAILED_EVENT,
            note: c.message.clone(),
        }),
        _ => None,
    }
}
