//! Scheduled base backups and retention: a background task that takes a base backup at every tick
//! of a cron schedule and then deletes what the retention window no longer needs.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use prometheus_client::encoding::EncodeLabelSet;

use super::layout::{self, Manifest, RetentionPlan};
use super::{ArchiveStatus, BackupError, BackupStore, base};

/// A validated `--backup-schedule`: a standard five-field cron expression (minute, hour, day of
/// month, month, day of week; or an alias such as `@daily`), evaluated in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    cron: Cron,
    text: String,
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(s).map_err(|e| {
            format!(
                "{s:?} is not a five-field cron expression (minute hour day-of-month month \
                 day-of-week, e.g. \"0 3 * * *\"): {e}"
            )
        })?;
        // A pattern that never fires (e.g. 30 February) would leave backups silently off.
        cron.find_next_occurrence(&chrono::Utc::now(), false)
            .map_err(|e| format!("{s:?} never fires: {e}"))?;
        Ok(Schedule {
            cron,
            text: s.trim().to_string(),
        })
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Schedule {
    /// The first tick strictly after `after`, or None when the pattern has no more.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// Label of `koru_base_backups_total`: `ok` or `error`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackupResultLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Ids of the deleted base backups.
    pub backups: Vec<String>,
    /// Sequence numbers of the deleted segments.
    pub segments: Vec<u64>,
}

/// Takes a base backup, counts it in `koru_base_backups_total{result}`, and with a retention
/// window then prunes the store. A failed retention pass is logged and does not fail the backup:
/// the next pass redoes it.
pub async fn backup_and_prune(
    status: &ArchiveStatus,
    wait: Duration,
    retention: Option<Duration>,
) -> Result<Manifest, BackupError> {
    let result = base::create(status, wait).await;
    let label = if result.is_ok() { "ok" } else { "error" };
    status
        .metrics
        .base_backups
        .get_or_create(&BackupResultLabels { result: label })
        .inc();
    let manifest = result?;
    if let Some(window) = retention
        && let Err(e) = prune(&status.store, window).await
    {
        tracing::warn!(error = %e, "backup retention failed; retrying after the next backup");
    }
    Ok(manifest)
}

/// Deletes the base backups and segments that no restore point inside `window` (back from now)
/// needs; see [`layout::plan_retention`] for the rule.
pub async fn prune(backup: &BackupStore, window: Duration) -> Result<RetentionReport, BackupError> {
    let window_micros = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
    let horizon = chrono::Utc::now()
        .timestamp_micros()
        .saturating_sub(window_micros);
    let backups = base::list(backup).await?;
    let segments = base::read_sidecars(backup).await?;
    let RetentionPlan {
        backups: gone_backups,
        segments: gone_segments,
    } = layout::plan_retention(&backups, &segments, horizon);
    // Manifests first: a manifest never names a segment that is already gone.
    for id in &gone_backups {
        backup.delete(&layout::manifest_key(id)).await?;
    }
    // The sidecar before the bytes: a `.wal` without a sidecar is ignored by restores.
    for &seq in &gone_segments {
        backup.delete(&layout::sidecar_key(seq)).await?;
        backup.delete(&layout::segment_key(seq)).await?;
    }
    if !gone_backups.is_empty() || !gone_segments.is_empty() {
        tracing::info!(
            backups = gone_backups.len(),
            segments = gone_segments.len(),
            window_secs = window.as_secs(),
            "retention deleted expired base backups and segments"
        );
    }
    Ok(RetentionReport {
        backups: gone_backups,
        segments: gone_segments,
    })
}

/// Starts the background task that takes a base backup at every tick of `schedule` (and applies
/// `retention` after each). It runs beside the request path: a backup seals the active segment
/// and waits on the archiver, never on writers. A failed backup is logged and counted; the next
/// tick tries again.
pub fn start(status: Arc<ArchiveStatus>, schedule: Schedule, retention: Option<Duration>) {
    tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now();
            let Some(next) = schedule.next_after(now) else {
                tracing::warn!(%schedule, "backup schedule has no further ticks; scheduled backups stop");
                return;
            };
            let sleep = (next - now).to_std().unwrap_or(Duration::ZERO);
            tokio::time::sleep(sleep).await;
            if !status.uploads() {
                // A follower of a replicated cluster: the leader takes the cluster's backups.
                continue;
            }
            match backup_and_prune(&status, base::DEFAULT_BACKUP_WAIT, retention).await {
                Ok(m) => tracing::info!(id = %m.id, "scheduled base backup taken"),
                Err(e) => {
                    tracing::error!(error = %e, "scheduled base backup failed; retrying at the next tick");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_five_field_cron() {
        let s: Schedule = "0 3 * * *".parse().unwrap();
        let after = chrono::DateTime::parse_from_rfc3339("2026-01-01T05:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            s.next_after(after).unwrap().to_rfc3339(),
            "2026-01-02T03:00:00+00:00"
        );
        let every: Schedule = "*/5 * * * *".parse().unwrap();
        assert_eq!(
            every.next_after(after).unwrap().to_rfc3339(),
            "2026-01-01T05:05:00+00:00"
        );
        assert!("@daily".parse::<Schedule>().is_ok());
        for bad in ["* * * * * *", "0 3 * *", "61 * * * *", "every day", ""] {
            let e = bad.parse::<Schedule>().unwrap_err();
            assert!(e.contains("five-field cron"), "{bad:?}: {e}");
        }
        assert!(
            "0 0 30 2 *"
                .parse::<Schedule>()
                .unwrap_err()
                .contains("never fires")
        );
    }
}
