//! Rate limits of the unauthenticated `/saml/{org}/login`, which writes an AuthnRequest row per
//! call: per client address and per organization, with maps pruned so they stay bounded.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// SSO logins started per client address per minute.
pub const LOGINS_PER_IP_PER_MINUTE: u32 = 20;
/// SSO logins started per organization per minute (its outstanding requests stay below this
/// times the request lifetime).
pub const LOGINS_PER_ORG_PER_MINUTE: u32 = 120;
/// Keys a map holds before it is pruned of keys that are back to a full quota.
pub const MAX_KEYS: usize = 10_000;

/// The limits of SSO login starts.
pub struct SamlLoginLimiter {
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    by_org: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for SamlLoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlLoginLimiter")
            .field("ips", &self.by_ip.len())
            .field("orgs", &self.by_org.len())
            .finish()
    }
}

/// The key of a client address: IPv6 clients by their /64, which one host usually holds whole.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

fn take<K: Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), u64> {
    if limiter.len() >= MAX_KEYS {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
    limiter.check_key(key).map_err(|n| {
        n.wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1)
    })
}

impl SamlLoginLimiter {
    /// The default limits.
    pub fn new() -> SamlLoginLimiter {
        SamlLoginLimiter::with_limits(LOGINS_PER_IP_PER_MINUTE, LOGINS_PER_ORG_PER_MINUTE)
    }

    /// Limits of `per_ip` and `per_org` a minute (at least 1).
    pub fn with_limits(per_ip: u32, per_org: u32) -> SamlLoginLimiter {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        SamlLoginLimiter {
            by_ip: RateLimiter::keyed(per_minute(per_ip)),
            by_org: RateLimiter::keyed(per_minute(per_org)),
        }
    }

    /// Takes one login start of organization `org_id` from `ip`, or says how many seconds to wait.
    pub fn check(&self, org_id: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        if let Some(ip) = ip {
            take(&self.by_ip, &ip_key(ip))?;
        }
        take(&self.by_org, &org_id.to_string())
    }

    /// How many keys the maps hold (addresses, organizations).
    pub fn len(&self) -> (usize, usize) {
        (self.by_ip.len(), self.by_org.len())
    }

    /// Whether both maps are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

impl Default for SamlLoginLimiter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_organizations_are_limited_apart() {
        let l = SamlLoginLimiter::with_limits(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check("o1", Some(a)).is_ok());
        assert!(l.check("o1", Some(a)).is_ok());
        assert!(l.check("o1", Some(a)).is_err(), "third from one address");
        assert!(l.check("o1", Some(b)).is_ok(), "another address");
        assert!(l.check("o1", Some(b)).is_err(), "the organization's quota");
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        assert!(
            l.check("o1", Some(c)).is_err(),
            "the organization's quota, from anywhere"
        );
        assert!(l.check("o2", Some(c)).is_ok(), "another organization");
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let l = SamlLoginLimiter::with_limits(1, 100);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(l.check("o", Some(a)).is_ok());
        assert!(l.check("o", Some(b)).is_err(), "same /64");
    }

    #[test]
    fn the_address_map_is_pruned_when_full() {
        let l = SamlLoginLimiter::with_limits(1000, 1_000_000);
        for i in 0..MAX_KEYS as u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(l.check("o", Some(ip)).is_ok());
        }
        assert_eq!(l.len().0, MAX_KEYS);
        // One use of 1000 a minute is given back after 60 ms: then every key is as good as new.
        std::thread::sleep(std::time::Duration::from_millis(150));
        assert!(l.check("o", Some("192.0.2.9".parse().unwrap())).is_ok());
        assert!(l.len().0 < 10, "pruned: {:?}", l.len());
    }
}
