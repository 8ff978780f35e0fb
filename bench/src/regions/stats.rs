//! The pure arithmetic of the regions benchmark: percentiles of lag samples, the catch-up rate
//! from watermark readings, a write's LSN from its session token, the mean of rounds.

use koru_dataplane::region::session;

/// The nearest-rank percentile `q` (0..=1) of ascending samples; None when there are none.
pub(super) fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank, 1-based: the smallest sample with at least q of the samples at or below it.
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The LSN a write was acknowledged at in `region`, from its `X-Koru-Session` answer.
pub(super) fn session_lsn(header: &str, region: &str) -> Option<u64> {
    session::parse(header)?.get(region).copied()
}

/// The mean of some figures; 0 when there are none.
pub(super) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// `a / b`, or 0 when `b` is not positive.
pub(super) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The reader's watermark seen at moments after the link healed: `(seconds since the heal,
/// applied LSN)`, in order.
pub(super) type Readings = [(f64, u64)];

/// How a reader caught up after a partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CatchUp {
    /// Records the reader was behind at the heal (the source's last LSN then, minus the
    /// reader's watermark).
    pub(super) backlog: u64,
    /// Seconds from the heal to the first page applied (the stream noticing the link is back).
    pub(super) reconnect_secs: f64,
    /// Seconds from the heal to the watermark reaching the target.
    pub(super) total_secs: f64,
    /// Records applied per second between the first page and the target.
    pub(super) versions_per_sec: f64,
}

/// The catch-up from the watermark `before` the heal to `target` (the source's last LSN at the
/// heal), given the readings after it; None if the target was never reached or nothing moved.
pub(super) fn catch_up(before: u64, target: u64, readings: &Readings) -> Option<CatchUp> {
    let &(first_secs, first_lsn) = readings.iter().find(|(_, lsn)| *lsn > before)?;
    let &(done_secs, _) = readings.iter().find(|(_, lsn)| *lsn >= target)?;
    // Pages after the first one, over the time they took; the first page's own records count
    // in the backlog but not in the rate, since its start is unknown.
    let rest = target.saturating_sub(first_lsn) as f64;
    let span = done_secs - first_secs;
    let versions_per_sec = if span > 0.0 {
        rest / span
    } else {
        // Everything came in one page: the best bound is the backlog over the whole wait.
        target.saturating_sub(before) as f64 / done_secs.max(1e-9)
    };
    Some(CatchUp {
        backlog: target.saturating_sub(before),
        reconnect_secs: first_secs,
        total_secs: done_secs,
        versions_per_sec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), Some(50.0));
        assert_eq!(percentile(&samples, 0.99), Some(99.0));
        assert_eq!(percentile(&samples, 1.0), Some(100.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), Some(2.0));
    }

    #[test]
    fn a_writes_lsn_is_its_regions_entry_in_the_session_token() {
        assert_eq!(session_lsn("a:42", "a"), Some(42));
        assert_eq!(session_lsn("b:7,a:42", "a"), Some(42));
        assert_eq!(session_lsn("b:7", "a"), None);
        assert_eq!(session_lsn("not a token", "a"), None);
        assert_eq!(session_lsn("a:x", "a"), None);
    }

    #[test]
    fn catch_up_rates_the_pages_after_the_first() {
        // Behind by 1000 at the heal; the first page (to 600) lands after 2 s, the rest by 2.5 s.
        let readings = [(0.5, 100), (2.0, 600), (2.2, 900), (2.5, 1100), (3.0, 1200)];
        let c = catch_up(100, 1100, &readings).unwrap();
        assert_eq!(c.backlog, 1000);
        assert_eq!(c.reconnect_secs, 2.0);
        assert_eq!(c.total_secs, 2.5);
        assert!((c.versions_per_sec - 1000.0).abs() < 1e-9, "{c:?}");
        // One page carried everything.
        let c = catch_up(100, 300, &[(1.0, 300)]).unwrap();
        assert!((c.versions_per_sec - 200.0).abs() < 1e-9);
        // Never reached, or never moved.
        assert_eq!(catch_up(100, 2000, &readings), None);
        assert_eq!(catch_up(1200, 1300, &readings), None);
    }

    #[test]
    fn ratios_and_means_of_nothing_are_zero() {
        assert_eq!(ratio(1.0, 0.0), 0.0);
        assert_eq!(ratio(9.0, 10.0), 0.9);
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(mean(&[1.0, 3.0]), 2.0);
    }
}
