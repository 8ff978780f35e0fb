//! When clusters are suspended for idleness: the tiers' `suspend_after_idle_secs`, overridable per
//! tier from the command line (`--suspend-after free=5m`, `--suspend-after pro=off`), and the
//! pure decision whether a cluster has been idle long enough.

use std::time::Duration;

use crate::tiers::{self, TierName};

/// How long each tier's clusters may stay idle before they are suspended (`None`: never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendPolicy {
    by_tier: [Option<Duration>; 3],
}

fn index(tier: TierName) -> usize {
    match tier {
        TierName::Free => 0,
        TierName::Pro => 1,
        TierName::Enterprise => 2,
    }
}

impl Default for SuspendPolicy {
    /// The tier table's values.
    fn default() -> Self {
        let after = |t: TierName| {
            tiers::tier(t)
                .suspend_after_idle_secs
                .map(Duration::from_secs)
        };
        SuspendPolicy {
            by_tier: [
                after(TierName::Free),
                after(TierName::Pro),
                after(TierName::Enterprise),
            ],
        }
    }
}

impl SuspendPolicy {
    /// The tier table's values with `overrides` replacing some tiers'.
    pub fn with_overrides(overrides: &[SuspendAfter]) -> Self {
        let mut policy = SuspendPolicy::default();
        for o in overrides {
            policy.by_tier[index(o.tier)] = o.after;
        }
        policy
    }

    /// How long a cluster of `tier` may stay idle (`None`: never suspended).
    pub fn after(&self, tier: TierName) -> Option<Duration> {
        self.by_tier[index(tier)]
    }
}

/// One `--suspend-after TIER=DURATION|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuspendAfter {
    /// The tier.
    pub tier: TierName,
    /// Its idle time before suspension; `None` (`off`): never.
    pub after: Option<Duration>,
}

/// Parses `TIER=DURATION|off`, DURATION a whole number of `s`, `m` or `h` (`30s`, `5m`, `2h`).
pub fn parse_suspend_after(s: &str) -> Result<SuspendAfter, String> {
    let (tier, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not TIER=DURATION (e.g. free=5m, pro=off)"))?;
    let tier = TierName::parse(tier.trim())
        .ok_or_else(|| format!("unknown tier {tier:?}: free, pro or enterprise"))?;
    let value = value.trim();
    if value == "off" {
        return Ok(SuspendAfter { tier, after: None });
    }
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (n, unit) = value.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{value:?} is not a duration such as 30s, 5m, 2h or off"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => {
            return Err(format!(
                "{value:?} is not a duration such as 30s, 5m, 2h or off"
            ));
        }
    };
    if secs == 0 {
        return Err("a cluster must be idle for at least 1 s before it is suspended".into());
    }
    Ok(SuspendAfter {
        tier,
        after: Some(Duration::from_secs(secs)),
    })
}

/// Whether a cluster idle since `max(last_active_ms, changed_ms)` should be suspended at `now_ms`
/// under `after`. The cluster's last change (its wake, or its creation) counts as activity, so a
/// cluster just woken or created gets a whole idle period.
pub fn is_idle(
    now_ms: i64,
    last_active_ms: Option<i64>,
    changed_ms: i64,
    after: Option<Duration>,
) -> bool {
    let Some(after) = after else {
        return false;
    };
    let since = last_active_ms.unwrap_or(i64::MIN).max(changed_ms);
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(since) >= after_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_clusters_sleep_after_five_minutes_and_paid_ones_never() {
        let p = SuspendPolicy::default();
        assert_eq!(p.after(TierName::Free), Some(Duration::from_secs(300)));
        assert_eq!(p.after(TierName::Pro), None);
        assert_eq!(p.after(TierName::Enterprise), None);
    }

    #[test]
    fn overrides_parse_and_replace_one_tier() {
        let o = parse_suspend_after("free=3s").unwrap();
        assert_eq!(o.after, Some(Duration::from_secs(3)));
        let p = SuspendPolicy::with_overrides(&[o, parse_suspend_after("pro=2h").unwrap()]);
        assert_eq!(p.after(TierName::Free), Some(Duration::from_secs(3)));
        assert_eq!(p.after(TierName::Pro), Some(Duration::from_secs(7200)));
        assert_eq!(p.after(TierName::Enterprise), None);
        let off = parse_suspend_after("free=off").unwrap();
        assert_eq!(
            SuspendPolicy::with_overrides(&[off]).after(TierName::Free),
            None
        );
        assert_eq!(
            parse_suspend_after("enterprise=5m").unwrap().after,
            Some(Duration::from_secs(300))
        );
        for bad in [
            "free", "gold=5m", "free=5", "free=5d", "free=m", "free=0s", "free=-1m",
        ] {
            assert!(parse_suspend_after(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idleness_counts_from_the_later_of_activity_and_change() {
        let five = Some(Duration::from_secs(5));
        assert!(!is_idle(10_000, None, 6_000, five));
        assert!(is_idle(11_000, None, 6_000, five));
        assert!(
            !is_idle(11_000, Some(7_000), 6_000, five),
            "a request at 7 s keeps it up"
        );
        assert!(is_idle(12_000, Some(7_000), 6_000, five));
        assert!(
            !is_idle(12_000, Some(1_000), 9_000, five),
            "a wake at 9 s counts"
        );
        assert!(!is_idle(i64::MAX, None, 0, None), "off: never");
    }
}
