//! What every request shares: the database, the signing keys, the provisioner, the limiters.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sqlx::AnyPool;

use crate::auth::keys::KeyPair;
use crate::auth::session::Sessions;
use crate::provisioner::Provisioner;

/// Login attempts allowed per email address per minute.
pub const LOGINS_PER_EMAIL_PER_MINUTE: u32 = 5;
/// Login attempts allowed per client address per minute.
pub const LOGINS_PER_IP_PER_MINUTE: u32 = 30;

/// The most per-email limiter entries kept: emails are hashed into this many buckets, so the
/// map cannot grow with the number of distinct addresses an attacker tries. Two addresses that
/// share a bucket share a limit, which is rare at this size and fails closed, never open.
pub const MAX_TRACKED_EMAILS: usize = 65_536;
/// Checks between two sweeps that drop entries whose limit has fully recovered.
const CHECKS_PER_SWEEP: u64 = 4_096;

/// Rate limits on password logins, by account and by client address.
pub struct LoginLimiter {
    by_email: DefaultKeyedRateLimiter<u64>,
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Keys the email hash per process, so nobody can aim addresses at a victim's bucket.
    hasher: std::hash::RandomState,
    buckets: u64,
    checks: std::sync::atomic::AtomicU64,
}

impl LoginLimiter {
    /// The default limits.
    pub fn new() -> LoginLimiter {
        LoginLimiter::with_email_buckets(MAX_TRACKED_EMAILS)
    }

    /// The default limits, with at most `buckets` per-email entries (at least one).
    pub fn with_email_buckets(buckets: usize) -> LoginLimiter {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            by_email: RateLimiter::keyed(per_minute(LOGINS_PER_EMAIL_PER_MINUTE)),
            by_ip: RateLimiter::keyed(per_minute(LOGINS_PER_IP_PER_MINUTE)),
            hasher: std::hash::RandomState::new(),
            buckets: u64::try_from(buckets.max(1)).unwrap_or(u64::MAX),
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many per-email entries the limiter holds now.
    pub fn tracked_emails(&self) -> usize {
        self.by_email.len()
    }

    /// Takes one attempt for `email` from `ip`, or says how many seconds to wait.
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        use std::hash::BuildHasher;

        use governor::clock::{Clock, DefaultClock};
        let wait = |n: governor::NotUntil<_>| {
            n.wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        };
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks % CHECKS_PER_SWEEP == CHECKS_PER_SWEEP - 1 {
            self.by_email.retain_recent();
            self.by_ip.retain_recent();
        }
        if let Some(ip) = ip {
            self.by_ip.check_key(&ip).map_err(wait)?;
        }
        let bucket = self.hasher.hash_one(email.trim().to_lowercase()) % self.buckets;
        self.by_email.check_key(&bucket).map_err(wait)
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// What SAML single sign-on needs besides the database: where domain TXT lookups go, the
/// limits of unauthenticated login starts, and those of the device flow that signs SSO users in
/// on a terminal.
#[derive(Debug, Default)]
pub struct SsoState {
    /// The resolver of domain verification.
    pub dns: crate::sso::domains::DnsConfig,
    /// Rate limits of `/saml/{org}/login`.
    pub login_limiter: crate::sso::limiter::SamlLoginLimiter,
    /// Rate limits of device authorization (user-code guessing, code requests).
    pub device_limiter: crate::device::DeviceLimiter,
}

/// The state behind every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: AnyPool,
    /// Session token issuing and checking.
    pub sessions: Sessions,
    /// The key data-plane tokens are signed with (its public half goes to every cluster).
    pub dataplane_key: KeyPair,
    /// The provisioner clusters are made with.
    pub provisioner: Arc<Provisioner>,
    /// Password login limits.
    pub login_limiter: Arc<LoginLimiter>,
    /// The URL users reach the control plane at (SAML, links).
    pub public_url: String,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// SAML single sign-on's resolver and limits.
    pub sso: Arc<SsoState>,
    /// The gateway in front of the clusters: its secret and how users reach clusters.
    pub gateway: Arc<crate::gateway::GatewayConfig>,
    /// How long each tier's clusters may stay idle before they are suspended.
    pub suspend_policy: Arc<crate::lifecycle::SuspendPolicy>,
}
