//! How a cluster's ops/s is split between the live gateway replicas: a pure function of each
//! replica's recent demand, so every control-plane replica computes the same shares from the
//! same reports.
//!
//! Each live replica gets a floor (an equal part of [`FLOOR`]), so one that saw no traffic lately
//! can still serve the first requests that reach it; the rest is split in proportion to demand
//! (requests served plus requests throttled: what each replica wanted). With no demand anywhere
//! the split is equal. Shares are rounded down, so they never sum above 1 and the replicas
//! together never let through more than the tier's ops/s.

use std::collections::BTreeMap;

/// The part of a cluster's ops/s split equally between the live replicas whatever their demand.
pub const FLOOR: f64 = 0.2;

/// Shares are multiples of this (rounded down), so float noise never pushes their sum over 1.
const GRAIN: f64 = 1e-6;

/// Each live replica's share (0..=1) of a cluster's ops/s, given the demand each replica reported
/// over the last seconds (`demand` may name replicas that are no longer live; they get nothing).
pub fn shares(live: &[String], demand: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    let n = live.len();
    if n == 0 {
        return BTreeMap::new();
    }
    let wanted = |g: &String| demand.get(g).copied().unwrap_or(0);
    let total: u64 = live.iter().map(wanted).sum();
    live.iter()
        .map(|g| {
            let exact = if total == 0 {
                1.0 / n as f64
            } else {
                FLOOR / n as f64 + (1.0 - FLOOR) * wanted(g) as f64 / total as f64
            };
            let share = ((exact - GRAIN / 10.0) / GRAIN).floor() * GRAIN;
            (g.clone(), share.clamp(0.0, 1.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn demand(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(g, d)| (g.to_string(), *d)).collect()
    }

    fn sum(s: &BTreeMap<String, f64>) -> f64 {
        s.values().sum()
    }

    #[test]
    fn one_replica_gets_nearly_everything() {
        let s = shares(&ids(&["a"]), &demand(&[]));
        assert!(s["a"] > 0.999_99 && s["a"] <= 1.0, "{s:?}");
        let s = shares(&ids(&["a"]), &demand(&[("a", 500)]));
        assert!(s["a"] > 0.999_99 && s["a"] <= 1.0, "{s:?}");
    }

    #[test]
    fn idle_replicas_split_equally() {
        let s = shares(&ids(&["a", "b", "c", "d"]), &demand(&[]));
        for v in s.values() {
            assert!((v - 0.25).abs() < 1e-5, "{s:?}");
        }
        assert!(sum(&s) <= 1.0);
    }

    #[test]
    fn demand_takes_the_rest_and_an_idle_replica_keeps_its_floor() {
        let s = shares(&ids(&["busy", "idle"]), &demand(&[("busy", 900)]));
        assert!((s["idle"] - FLOOR / 2.0).abs() < 1e-5, "{s:?}");
        assert!(
            (s["busy"] - (FLOOR / 2.0 + 1.0 - FLOOR)).abs() < 1e-5,
            "{s:?}"
        );
        assert!(sum(&s) <= 1.0);
        let s = shares(&ids(&["a", "b"]), &demand(&[("a", 300), ("b", 100)]));
        assert!(s["a"] > s["b"] && s["b"] > FLOOR / 2.0, "{s:?}");
    }

    #[test]
    fn replicas_no_longer_live_get_nothing_and_shares_never_exceed_one() {
        let s = shares(&ids(&["a"]), &demand(&[("gone", 1_000_000), ("a", 1)]));
        assert_eq!(s.len(), 1);
        assert!(s["a"] > 0.999_99, "{s:?}");
        assert!(shares(&[], &demand(&[("a", 1)])).is_empty());
        // Awkward counts and demands: the sum stays at or under 1.
        for n in 1..=13 {
            let live: Vec<String> = (0..n).map(|i| format!("g{i}")).collect();
            let d: BTreeMap<String, u64> = live
                .iter()
                .enumerate()
                .map(|(i, g)| (g.clone(), (i as u64 * 7919) % 13))
                .collect();
            let s = shares(&live, &d);
            assert!(sum(&s) <= 1.0, "{n}: {}", sum(&s));
            assert!(sum(&s) > 0.999, "{n}: {}", sum(&s));
            assert!(s.values().all(|v| *v >= FLOOR / n as f64 - 1e-5), "{s:?}");
        }
    }
}
