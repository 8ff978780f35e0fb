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

/// Rate limits on password logins, by account and by client address.
pub struct LoginLimiter {
    by_email: DefaultKeyedRateLimiter<String>,
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginLimiter {
    /// The default limits.
    pub fn new() -> LoginLimiter {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            by_email: RateLimiter::keyed(per_minute(LOGINS_PER_EMAIL_PER_MINUTE)),
            by_ip: RateLimiter::keyed(per_minute(LOGINS_PER_IP_PER_MINUTE)),
        }
    }

    /// Takes one attempt for `email` from `ip`, or says how many seconds to wait.
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        use governor::clock::{Clock, DefaultClock};
        let wait = |n: governor::NotUntil<_>| {
            n.wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        };
        if let Some(ip) = ip {
            self.by_ip.check_key(&ip).map_err(wait)?;
        }
        self.by_email
            .check_key(&email.trim().to_lowercase())
            .map_err(wait)
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// What SAML single sign-on needs besides the database: where domain TXT lookups go, and the
/// limits of unauthenticated login starts.
#[derive(Debug, Default)]
pub struct SsoState {
    /// The resolver of domain verification.
    pub dns: crate::sso::domains::DnsConfig,
    /// Rate limits of `/saml/{org}/login`.
    pub login_limiter: crate::sso::limiter::SamlLoginLimiter,
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
}
