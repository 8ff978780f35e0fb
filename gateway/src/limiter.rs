//! This replica's share of a cluster's operations per second: a token bucket (governor) at
//! `max_ops_per_sec * ops_share`, rebuilt when the control plane moves the share.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::RwLock;

/// A share that moved by less than this fraction keeps its bucket (a new bucket starts full).
const REBUILD_THRESHOLD: f64 = 0.05;
/// How long a replica with no share tells clients to wait.
const NO_SHARE_WAIT: Duration = Duration::from_secs(1);

/// The bucket of one cluster on this replica.
#[derive(Default)]
pub struct RateShare {
    current: RwLock<Limit>,
}

/// What the bucket currently enforces.
#[derive(Default, Clone)]
enum Limit {
    /// No limit (`max_ops_per_sec` 0).
    #[default]
    Unlimited,
    /// No share at all: everything waits for the next sync.
    Nothing,
    /// `rate` operations per second.
    Bucket {
        rate: f64,
        limiter: Arc<DefaultDirectRateLimiter>,
    },
}

/// The rate this replica may spend: the tier's limit times its share (clamped to 0..=1); None
/// when the tier sets no limit.
pub fn replica_rate(max_ops_per_sec: u64, ops_share: f64) -> Option<f64> {
    if max_ops_per_sec == 0 {
        return None;
    }
    let share = if ops_share.is_finite() {
        ops_share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Some(max_ops_per_sec as f64 * share)
}

impl RateShare {
    /// Sets the rate from the route's limit and this replica's share.
    pub fn set(&self, max_ops_per_sec: u64, ops_share: f64) {
        let next = match replica_rate(max_ops_per_sec, ops_share) {
            None => Limit::Unlimited,
            Some(rate) if rate < 0.01 => Limit::Nothing,
            Some(rate) => {
                if let Limit::Bucket { rate: old, .. } = &*self.current.read()
                    && (rate - old).abs() <= old * REBUILD_THRESHOLD
                {
                    return;
                }
                // A burst of one second's worth, at least one request.
                let burst = NonZeroU32::new(rate.ceil().min(u32::MAX as f64) as u32)
                    .unwrap_or(NonZeroU32::MIN);
                let limiter = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
                    .map(|q| Arc::new(RateLimiter::direct(q.allow_burst(burst))));
                match limiter {
                    Some(limiter) => Limit::Bucket { rate, limiter },
                    None => Limit::Unlimited,
                }
            }
        };
        *self.current.write() = next;
    }

    /// Takes one operation from the bucket, or says how long until one is available.
    pub fn check(&self) -> Result<(), Duration> {
        match &*self.current.read() {
            Limit::Unlimited => Ok(()),
            Limit::Nothing => Err(NO_SHARE_WAIT),
            Limit::Bucket { limiter, .. } => limiter
                .check()
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_tiers_limit_times_the_share() {
        assert_eq!(replica_rate(100, 0.25), Some(25.0));
        assert_eq!(
            replica_rate(100, 3.0),
            Some(100.0),
            "a share above 1 is clamped"
        );
        assert_eq!(replica_rate(100, f64::NAN), Some(0.0));
        assert_eq!(replica_rate(0, 0.5), None, "no limit");
    }

    #[test]
    fn the_bucket_refuses_past_its_burst_and_no_share_refuses_all() {
        let share = RateShare::default();
        assert!(share.check().is_ok());
        share.set(10, 0.5);
        let passed = (0..20).filter(|_| share.check().is_ok()).count();
        assert_eq!(passed, 5, "a burst of one second at 5 ops/s");
        let wait = share.check().expect_err("spent");
        assert!(wait <= Duration::from_millis(200), "{wait:?}");
        share.set(10, 0.0);
        assert_eq!(share.check(), Err(NO_SHARE_WAIT));
        share.set(0, 0.0);
        assert!(share.check().is_ok());
    }
}
