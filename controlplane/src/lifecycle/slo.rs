//! Per-cluster service level objectives, from the per-minute totals the gateway reports:
//! availability (requests not answered 5xx) and latency (requests answered within
//! [`koru_gateway_api::SLOW_REQUEST_MS`]), over the last 24 hours and 30 days, against targets.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Result;

/// Availability target: at most 0.1 % of requests answered 5xx.
pub const AVAILABILITY_TARGET: f64 = 0.999;
/// Latency target: at least 99 % of requests answered within the threshold.
pub const LATENCY_TARGET: f64 = 0.99;

const DAY_MS: i64 = 24 * 3_600_000;

/// One SLO window's figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SloWindow {
    /// `24h` or `30d`.
    pub window: String,
    /// Requests the gateway answered for the cluster in the window.
    pub requests: u64,
    /// Of those, answered with a 5xx status.
    pub server_errors: u64,
    /// Of those, slower than the latency threshold.
    pub slow_requests: u64,
    /// 1 − server_errors / requests; absent without requests.
    pub availability: Option<f64>,
    /// 1 − slow_requests / requests; absent without requests.
    pub latency: Option<f64>,
    /// Whether availability meets its target (true without requests: nothing failed).
    pub availability_met: bool,
    /// Whether latency meets its target (true without requests).
    pub latency_met: bool,
    /// Share of the availability error budget left (1: untouched, 0 or less: spent).
    pub error_budget_remaining: Option<f64>,
}

/// A cluster's SLOs.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ClusterSlo {
    /// The cluster.
    pub cluster_id: String,
    /// The availability target (0.999).
    pub availability_target: f64,
    /// The latency target (0.99).
    pub latency_target: f64,
    /// A request slower than this many milliseconds counts against the latency SLO.
    pub latency_threshold_ms: u64,
    /// The last 24 hours, then the last 30 days.
    pub windows: Vec<SloWindow>,
}

/// The figures of `name` from per-minute totals `(minute start ms, requests, 5xx, slow)` at or
/// after `since` (ms).
pub fn window(name: &str, minutes: &[(i64, u64, u64, u64)], since: i64) -> SloWindow {
    let (mut requests, mut errors, mut slow) = (0u64, 0u64, 0u64);
    for &(_, r, e, s) in minutes.iter().filter(|m| m.0 >= since) {
        requests = requests.saturating_add(r);
        errors = errors.saturating_add(e.min(r));
        slow = slow.saturating_add(s.min(r));
    }
    let ratio = |bad: u64| (requests > 0).then(|| 1.0 - bad as f64 / requests as f64);
    let availability = ratio(errors);
    let latency = ratio(slow);
    let allowed = (1.0 - AVAILABILITY_TARGET) * requests as f64;
    SloWindow {
        window: name.to_string(),
        requests,
        server_errors: errors,
        slow_requests: slow,
        availability,
        latency,
        availability_met: availability.is_none_or(|a| a >= AVAILABILITY_TARGET),
        latency_met: latency.is_none_or(|l| l >= LATENCY_TARGET),
        error_budget_remaining: (requests > 0).then(|| 1.0 - errors as f64 / allowed),
    }
}

/// The SLOs of `cluster_id` at `now` (ms).
pub async fn of_cluster(db: &sqlx::AnyPool, cluster_id: &str, now: i64) -> Result<ClusterSlo> {
    let minutes = crate::gateway::reports::minutes(db, cluster_id, now - 30 * DAY_MS).await?;
    Ok(ClusterSlo {
        cluster_id: cluster_id.to_string(),
        availability_target: AVAILABILITY_TARGET,
        latency_target: LATENCY_TARGET,
        latency_threshold_ms: koru_gateway_api::SLOW_REQUEST_MS,
        windows: vec![
            window("24h", &minutes, now - DAY_MS),
            window("30d", &minutes, now - 30 * DAY_MS),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_minutes_in_the_window() {
        let now = 40 * DAY_MS;
        let minutes = [
            (now - 10 * DAY_MS, 1_000_000, 5_000, 0), // old: only in 30 days
            (now - 60_000, 10_000, 5, 200),
            (now, 10_000, 5, 0),
        ];
        let day = window("24h", &minutes, now - DAY_MS);
        assert_eq!(
            (day.requests, day.server_errors, day.slow_requests),
            (20_000, 10, 200)
        );
        assert_eq!(day.availability, Some(1.0 - 10.0 / 20_000.0));
        assert!(day.availability_met && day.latency_met);
        assert!((day.error_budget_remaining.unwrap() - 0.5).abs() < 1e-9);
        let month = window("30d", &minutes, now - 30 * DAY_MS);
        assert_eq!(month.requests, 1_020_000);
        assert!(!month.availability_met, "{month:?}");
        assert!(month.error_budget_remaining.unwrap() < 0.0);
    }

    #[test]
    fn no_requests_means_nothing_failed() {
        let w = window("24h", &[], 0);
        assert_eq!((w.availability, w.latency), (None, None));
        assert!(w.availability_met && w.latency_met);
        assert_eq!(w.error_budget_remaining, None);
        // A report claiming more errors than requests cannot push availability below 0.
        let w = window("24h", &[(0, 10, 50, 50)], 0);
        assert_eq!((w.availability, w.latency), (Some(0.0), Some(0.0)));
    }
}
