//! Pure checks of configuration values, run at plan time so a bad value fails before anything
//! is created, with a message naming the rule.
//!
//! The cluster rules repeat the control plane's (`koru_controlplane::clusters::check_*`) because
//! `terraform plan` must catch them without calling the API; a test compares both on the same
//! inputs so they cannot drift apart. Tier limits are not repeated: they come from
//! `GET /api/v1/tiers` (see [`find_tier`]).

use std::time::Duration;

use crate::client::Tier;

/// Roles an API token may carry, lowest first.
pub const ROLES: [&str; 4] = ["viewer", "member", "admin", "owner"];

/// Replica counts a cluster may have: odd, so a Raft group always has a majority.
pub const REPLICAS: [i64; 4] = [1, 3, 5, 7];

/// Checks a cluster name: it names Kubernetes objects and DNS records.
pub fn check_cluster_name(name: &str) -> Result<(), String> {
    let ok = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cluster name {name:?} must be 1 to 40 lower-case letters, digits and dashes, starting with a letter and not ending with a dash"
        ))
    }
}

/// The most CIDRs a cluster's allow list may hold (the control plane's `MAX_ALLOWED_CIDRS`).
pub const MAX_ALLOWED_CIDRS: usize = 100;

/// Checks an allow list: at most [`MAX_ALLOWED_CIDRS`] distinct CIDRs, each written the way the
/// control plane stores it (an address with its prefix length, no bits past it, IPv6 in its
/// canonical lower-case form), so the state Terraform reads back is exactly the configuration.
pub fn check_allowed_cidrs(cidrs: &[String]) -> Result<(), String> {
    if cidrs.len() > MAX_ALLOWED_CIDRS {
        return Err(format!(
            "allowed_cidrs may hold at most {MAX_ALLOWED_CIDRS} entries, not {}",
            cidrs.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for cidr in cidrs {
        let canonical = match cidr.trim().parse::<ipnet::IpNet>() {
            Ok(net) => net.trunc().to_string(),
            Err(_) => match cidr.trim().parse::<std::net::IpAddr>() {
                Ok(addr) => ipnet::IpNet::from(addr).to_string(),
                Err(_) => {
                    return Err(format!(
                        "allowed_cidrs entry {cidr:?} is not an IPv4 or IPv6 CIDR such as 203.0.113.0/24 or 2001:db8::/32"
                    ));
                }
            },
        };
        if &canonical != cidr {
            return Err(format!(
                "allowed_cidrs entry {cidr:?} must be written as {canonical:?}"
            ));
        }
        if !seen.insert(canonical) {
            return Err(format!("allowed_cidrs lists {cidr:?} more than once"));
        }
    }
    Ok(())
}

/// Checks a region label.
pub fn check_region(region: &str) -> Result<(), String> {
    if (1..=32).contains(&region.len())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        Ok(())
    } else {
        Err(format!(
            "region {region:?} must be 1 to 32 lower-case letters, digits and dashes"
        ))
    }
}

/// Checks a replica count against the counts any tier allows.
pub fn check_replicas(replicas: i64) -> Result<(), String> {
    if REPLICAS.contains(&replicas) {
        Ok(())
    } else {
        Err(format!("replicas must be 1, 3, 5 or 7, not {replicas}"))
    }
}

/// Finds `name` among the tiers the API serves.
pub fn find_tier<'t>(name: &str, tiers: &'t [Tier]) -> Result<&'t Tier, String> {
    tiers.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
        format!(
            "tier {name:?} does not exist; the tiers are {}",
            names.join(", ")
        )
    })
}

/// Checks a replica count against a tier's limit.
pub fn check_replicas_in_tier(replicas: i64, tier: &Tier) -> Result<(), String> {
    if replicas > i64::from(tier.max_replicas) {
        Err(format!(
            "the {} tier allows at most {} replica(s) per cluster; {replicas} requested",
            tier.name, tier.max_replicas
        ))
    } else {
        Ok(())
    }
}

/// Checks an API token's name (the API trims it).
pub fn check_token_name(name: &str) -> Result<(), String> {
    let chars = name.trim().chars().count();
    if (1..=100).contains(&chars) && name.trim() == name {
        Ok(())
    } else {
        Err(format!(
            "token name {name:?} must have 1 to 100 characters, without leading or trailing spaces"
        ))
    }
}

/// Checks an API token's role.
pub fn check_role(role: &str) -> Result<(), String> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(format!(
            "role {role:?} does not exist; the roles are {}",
            ROLES.join(", ")
        ))
    }
}

/// Checks an API token's lifetime in days.
pub fn check_expires_in_days(days: i64) -> Result<(), String> {
    if (1..=3650).contains(&days) {
        Ok(())
    } else {
        Err(format!("expires_in_days must be 1 to 3650, not {days}"))
    }
}

/// Parses a duration the way Terraform's `timeouts` blocks write them: a sequence of numbers
/// with the units `h`, `m` and `s` (`"90s"`, `"10m"`, `"1h30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like \"30s\", \"10m\" or \"1h30m\"");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || text.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// A storage size as people read it: `1GB`, `100GB`, `500MB` (decimal units, as the tier table).
pub fn storage_label(bytes: u64) -> String {
    const GB: u64 = 1_000_000_000;
    const MB: u64 = 1_000_000;
    if bytes >= GB && bytes.is_multiple_of(GB) {
        format!("{}GB", bytes / GB)
    } else if bytes >= MB && bytes.is_multiple_of(MB) {
        format!("{}MB", bytes / MB)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<Tier> {
        let tier = |name: &str, max_replicas| Tier {
            name: name.into(),
            max_storage_bytes: 1_000_000_000,
            max_ops_per_sec: 100,
            max_clusters: 1,
            max_replicas,
            backup_retention_days: 1,
            sso: false,
        };
        vec![tier("free", 1), tier("pro", 5)]
    }

    #[test]
    fn tiers_are_looked_up_and_bound_replicas() {
        let tiers = tiers();
        let pro = find_tier("pro", &tiers).unwrap();
        assert_eq!(pro.max_replicas, 5);
        assert!(check_replicas_in_tier(5, pro).is_ok());
        let e = find_tier("gold", &tiers).unwrap_err();
        assert!(
            e.contains("\"gold\" does not exist") && e.contains("free, pro"),
            "{e}"
        );
        let e = check_replicas_in_tier(3, find_tier("free", &tiers).unwrap()).unwrap_err();
        assert!(e.contains("at most 1 replica(s)"), "{e}");
    }

    #[test]
    fn token_names_roles_and_lifetimes_are_checked() {
        assert!(check_token_name("ci").is_ok());
        assert!(check_token_name(&"a".repeat(100)).is_ok());
        for bad in ["", " ", " ci", &"a".repeat(101)] {
            assert!(check_token_name(bad).is_err(), "{bad:?}");
        }
        assert!(ROLES.iter().all(|r| check_role(r).is_ok()));
        assert!(
            check_role("root")
                .unwrap_err()
                .contains("viewer, member, admin, owner")
        );
        assert!(check_expires_in_days(1).is_ok() && check_expires_in_days(3650).is_ok());
        assert!(check_expires_in_days(0).is_err() && check_expires_in_days(3651).is_err());
    }

    #[test]
    fn durations_parse_like_terraform_timeouts() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "-1m",
            "0s",
            "1.5h",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn storage_reads_in_decimal_units() {
        assert_eq!(storage_label(1_000_000_000), "1GB");
        assert_eq!(storage_label(1_000_000_000_000), "1000GB");
        assert_eq!(storage_label(500_000_000), "500MB");
        assert_eq!(storage_label(1234), "1234B");
    }
}
