//! The sharded cluster as plain data: CPU per write split into a per-write and a per-entry part,
//! the key space cut into ranges, where each shard's replicas and leader sit, and the CPU bound
//! on writes per second that follows. No I/O; `sim.rs` runs it through time.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// CPU microseconds one member spends, split so batching can be modelled: a Raft entry costs
/// `*_entry_us` whatever it carries (wake-ups, context switches, one log append and one message
/// per peer) plus `*_write_us` per write in it (HTTP, parsing, the store's apply).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// Leader CPU per write in an entry.
    pub leader_write_us: f64,
    /// Leader CPU per entry.
    pub leader_entry_us: f64,
    /// Follower CPU per write in an entry.
    pub follower_write_us: f64,
    /// Follower CPU per entry.
    pub follower_entry_us: f64,
}

impl Costs {
    /// Splits measured CPU per replicated write (taken at `measured_batch` writes per entry) into
    /// parts: the leader pays the single node's cost per write (it serves the HTTP request and
    /// applies the write as a single node does), the follower `follower_apply_us` per write; the
    /// rest of each figure is per entry, so it shrinks as entries grow.
    pub fn calibrate(
        leader_us: f64,
        follower_us: f64,
        single_us: f64,
        follower_apply_us: f64,
        measured_batch: f64,
    ) -> Costs {
        let leader_write_us = single_us.min(leader_us);
        let follower_write_us = follower_apply_us.min(follower_us);
        Costs {
            leader_write_us,
            leader_entry_us: (leader_us - leader_write_us) * measured_batch,
            follower_write_us,
            follower_entry_us: (follower_us - follower_write_us) * measured_batch,
        }
    }
}

/// Where the per-entry cost is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Batching {
    /// Each shard is its own Raft group with its own log, threads and connections (what a
    /// group is today): one entry per shard per round.
    Shard,
    /// The groups of a member share one log append and one message per peer per round
    /// (TiKV's raft-engine and batch system, CockroachDB's one WAL per store): one entry per
    /// member per round, whatever the number of shards it serves.
    Member,
}

/// What the model needs besides the layout.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// CPU per write and per entry.
    pub costs: Costs,
    /// Where the per-entry cost is paid.
    pub batching: Batching,
    /// Cores of each member.
    pub cores: f64,
    /// Cores one group's leader can keep busy (its commit and apply path is serial).
    pub group_cores: f64,
    /// One replication round: a leader proposes everything queued, sends it, and commits once a
    /// majority has fsynced it (round trip plus fsync); one entry is in flight per group.
    pub round_us: f64,
    /// Replicas per shard.
    pub replicas: usize,
}

impl Params {
    /// Members of a group that must hold an entry before it commits.
    pub fn quorum(&self) -> usize {
        self.replicas / 2 + 1
    }

    /// Rounds per second.
    pub fn rounds_per_sec(&self) -> f64 {
        1e6 / self.round_us
    }
}

/// Popularity of every key, laid out in key order: a key's rank in popularity is unrelated to
/// its place in the order (a random permutation), as with hashed ids or user names.
#[derive(Debug, Clone)]
pub struct Keyspace {
    /// `prefix[i]` = share of all writes going to keys `0..i` (so `prefix[keys] == 1`).
    prefix: Vec<f64>,
}

impl Keyspace {
    /// `keys` keys with Zipf(θ) popularity (θ = 0 is uniform), shuffled with `seed`.
    pub fn zipf(keys: usize, theta: f64, seed: u64) -> Keyspace {
        let mut weights: Vec<f64> = (1..=keys).map(|r| (r as f64).powf(-theta)).collect();
        let mut rng = StdRng::seed_from_u64(seed);
        for i in (1..weights.len()).rev() {
            let j = rng.random_range(0..=i);
            weights.swap(i, j);
        }
        let total: f64 = weights.iter().sum();
        let mut prefix = Vec::with_capacity(keys + 1);
        let mut sum = 0.0;
        prefix.push(0.0);
        for w in weights {
            sum += w / total;
            prefix.push(sum);
        }
        Keyspace { prefix }
    }

    /// Number of keys.
    pub fn keys(&self) -> usize {
        self.prefix.len() - 1
    }

    /// Share of writes to keys `start..end`.
    pub fn share(&self, start: usize, end: usize) -> f64 {
        self.prefix[end] - self.prefix[start]
    }

    /// Share of the most written key.
    pub fn hottest_key(&self) -> f64 {
        self.prefix
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(0.0, f64::max)
    }

    /// `count` ranges of equal key counts: splits by size, blind to load.
    pub fn even_ranges(&self, count: usize) -> Vec<(usize, usize)> {
        let keys = self.keys();
        (0..count)
            .map(|i| (i * keys / count, (i + 1) * keys / count))
            .filter(|(a, b)| a < b)
            .collect()
    }

    /// Load-based splits: the hottest range of more than one key is cut where its load halves,
    /// until there are `count` ranges. A single hot key is never split (it is one Raft group's).
    pub fn load_split(&self, mut ranges: Vec<(usize, usize)>, count: usize) -> Vec<(usize, usize)> {
        while ranges.len() < count {
            let hottest = ranges
                .iter()
                .enumerate()
                .filter(|(_, (a, b))| b - a > 1)
                .max_by(|x, y| {
                    self.share(x.1.0, x.1.1)
                        .total_cmp(&self.share(y.1.0, y.1.1))
                });
            let Some((i, &(a, b))) = hottest else { break };
            let half = self.prefix[a] + self.share(a, b) / 2.0;
            let cut = self.prefix[a..=b]
                .partition_point(|&p| p < half)
                .clamp(1, b - a - 1)
                + a;
            ranges[i] = (a, cut);
            ranges.insert(i + 1, (cut, b));
        }
        ranges
    }
}

/// One shard: a range of keys and its replicas; `replicas[0]` is not special, `leader` is.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    /// Share of all writes that go to this shard.
    pub share: f64,
    /// Members holding a replica, each in a different zone while zones allow.
    pub replicas: Vec<usize>,
    /// The member leading the group.
    pub leader: usize,
}

/// Members, zones and shards.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Members in the cluster.
    pub members: usize,
    /// Failure domains; member `m` is in zone `m % zones`.
    pub zones: usize,
    /// The shards.
    pub shards: Vec<Shard>,
}

impl Layout {
    /// Places shards of the given shares, one replica per zone while zones allow. `balanced` =
    /// false is blind to load (what a balancer counting replicas does): leaders round robin,
    /// followers on the members of other zones holding fewest replicas. true places the hottest
    /// first, each leader on the member with the least leader load and the followers on the
    /// least loaded members of other zones (what a load-aware balancer converges to).
    pub fn place(
        shares: &[f64],
        members: usize,
        zones: usize,
        replicas: usize,
        balanced: bool,
    ) -> Layout {
        let zones = zones.clamp(1, members);
        let mut order: Vec<usize> = (0..shares.len()).collect();
        if balanced {
            order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]));
        }
        let mut leader_load = vec![0.0; members];
        let mut load = vec![0.0; members];
        let mut count = vec![0.0; members];
        let mut placed = vec![None; shares.len()];
        for (n, &s) in order.iter().enumerate() {
            let leader = if balanced {
                argmin(&leader_load, |_| true).unwrap_or(0)
            } else {
                n % members
            };
            let mut chosen = vec![leader];
            while chosen.len() < replicas.min(members) {
                let zone_free = |m: usize| !chosen.iter().any(|&c| c % zones == m % zones);
                let fits =
                    |m: usize| !chosen.contains(&m) && (zone_free(m) || chosen.len() >= zones);
                let next = argmin(if balanced { &load } else { &count }, fits);
                let Some(m) = next else { break };
                chosen.push(m);
            }
            leader_load[leader] += shares[s];
            for &m in &chosen {
                load[m] += shares[s];
                count[m] += 1.0;
            }
            placed[s] = Some(Shard {
                share: shares[s],
                replicas: chosen,
                leader,
            });
        }
        Layout {
            members,
            zones,
            shards: placed.into_iter().flatten().collect(),
        }
    }

    /// Leaders on each member.
    pub fn leaders_per_member(&self) -> Vec<usize> {
        let mut n = vec![0; self.members];
        for s in &self.shards {
            n[s.leader] += 1;
        }
        n
    }

    /// Members of zone `z`.
    pub fn zone_members(&self, z: usize) -> Vec<usize> {
        (0..self.members).filter(|m| m % self.zones == z).collect()
    }
}

/// The member index minimising `value` among those `ok` accepts (lowest index on ties).
fn argmin(value: &[f64], ok: impl Fn(usize) -> bool) -> Option<usize> {
    (0..value.len())
        .filter(|&m| ok(m))
        .min_by(|&a, &b| value[a].total_cmp(&value[b]))
}

/// The CPU bound of a layout and what sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// Writes per second (of the whole mix, in its proportions) at which the first member or
    /// group saturates.
    pub writes_per_sec: f64,
    /// True when one group's serial path, not a member's cores, sets the bound (a hot shard).
    pub group_limited: bool,
    /// Mean writes per entry at the bound (rate of a shard × round).
    pub writes_per_entry: f64,
    /// Whole-cluster CPU per write at the bound, µs.
    pub cpu_us_per_write: f64,
    /// The bound if rounds could stretch without limit (latency traded for ever larger entries):
    /// only the per-write CPU counts.
    pub per_write_ceiling: f64,
}

/// The writes per second at which the first member (or one group's leader path) runs out of CPU
/// when every shard has writes queued in every round. Member `m`'s CPU per second is
/// `fixed_m + X · variable_m`: entries are proposed once a round per shard (or per member with
/// [`Batching::Member`]) whatever they carry, writes are paid one by one; followers beyond the
/// quorum pay too (they apply everything, only later). `alive[m]` false: member gone, its
/// replicas no longer cost anything.
pub fn cpu_bound(layout: &Layout, p: &Params, alive: &[bool]) -> Bound {
    let rounds = p.rounds_per_sec();
    let c = p.costs;
    let mut fixed = vec![0.0; layout.members];
    let mut variable = vec![0.0; layout.members];
    let mut leads = vec![false; layout.members];
    let mut follows = vec![false; layout.members];
    let mut group_limit = f64::INFINITY;
    for s in layout.shards.iter().filter(|s| alive[s.leader]) {
        variable[s.leader] += s.share * c.leader_write_us;
        leads[s.leader] = true;
        if p.batching == Batching::Shard {
            fixed[s.leader] += c.leader_entry_us * rounds;
        }
        for &f in s.replicas.iter().filter(|&&f| f != s.leader && alive[f]) {
            variable[f] += s.share * c.follower_write_us;
            follows[f] = true;
            if p.batching == Batching::Shard {
                fixed[f] += c.follower_entry_us * rounds;
            }
        }
        let group_cpu = p.group_cores * 1e6 - c.leader_entry_us * rounds;
        if s.share > 0.0 {
            group_limit = group_limit.min(group_cpu.max(0.0) / (c.leader_write_us * s.share));
        }
    }
    if p.batching == Batching::Member {
        for m in 0..layout.members {
            fixed[m] += rounds
                * (f64::from(u8::from(leads[m])) * c.leader_entry_us
                    + f64::from(u8::from(follows[m])) * c.follower_entry_us);
        }
    }
    let member_limit = (0..layout.members)
        .filter(|&m| alive[m] && variable[m] > 0.0)
        .map(|m| (p.cores * 1e6 - fixed[m]).max(0.0) / variable[m])
        .fold(f64::INFINITY, f64::min);
    let ceiling = (0..layout.members)
        .filter(|&m| alive[m] && variable[m] > 0.0)
        .map(|m| p.cores * 1e6 / variable[m])
        .fold(f64::INFINITY, f64::min);
    let x = member_limit.min(group_limit);
    let active = layout
        .shards
        .iter()
        .filter(|s| alive[s.leader])
        .count()
        .max(1);
    let total_cpu: f64 = (0..layout.members)
        .filter(|&m| alive[m])
        .map(|m| fixed[m] + x * variable[m])
        .sum();
    Bound {
        writes_per_sec: x,
        group_limited: group_limit < member_limit,
        writes_per_entry: x / active as f64 / rounds,
        per_write_ceiling: ceiling,
        cpu_us_per_write: if x > 0.0 {
            total_cpu / x
        } else {
            f64::INFINITY
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(batching: Batching) -> Params {
        Params {
            costs: Costs::calibrate(78.0, 37.0, 22.0, 4.0, 8.0),
            batching,
            cores: 8.0,
            group_cores: 4.0,
            round_us: 1150.0,
            replicas: 3,
        }
    }

    #[test]
    fn calibration_gives_back_the_measured_costs_at_the_measured_batch() {
        let c = Costs::calibrate(78.0, 37.0, 22.0, 4.0, 8.0);
        assert!((c.leader_write_us + c.leader_entry_us / 8.0 - 78.0).abs() < 1e-9);
        assert!((c.follower_write_us + c.follower_entry_us / 8.0 - 37.0).abs() < 1e-9);
    }

    #[test]
    fn uniform_keys_give_equal_shares_and_one_leader_per_shard_in_every_zone() {
        let ks = Keyspace::zipf(3_200, 0.0, 1);
        let shares: Vec<f64> = ks
            .even_ranges(32)
            .iter()
            .map(|&(a, b)| ks.share(a, b))
            .collect();
        assert!(shares.iter().all(|s| (s - 1.0 / 32.0).abs() < 1e-9));
        let layout = Layout::place(&shares, 8, 3, 3, false);
        assert_eq!(layout.leaders_per_member(), vec![4; 8]);
        for s in &layout.shards {
            let mut zones: Vec<usize> = s.replicas.iter().map(|m| m % 3).collect();
            zones.sort_unstable();
            assert_eq!(zones, vec![0, 1, 2], "{s:?}");
        }
    }

    #[test]
    fn with_even_zones_and_free_entries_the_bound_is_cores_over_cpu_per_write() {
        let mut p = params(Batching::Shard);
        p.costs = Costs {
            leader_write_us: 78.0,
            leader_entry_us: 0.0,
            follower_write_us: 37.0,
            follower_entry_us: 0.0,
        };
        let ks = Keyspace::zipf(3_600, 0.0, 1);
        let shares: Vec<f64> = ks
            .even_ranges(36)
            .iter()
            .map(|&(a, b)| ks.share(a, b))
            .collect();
        let layout = Layout::place(&shares, 9, 3, 3, false);
        let b = cpu_bound(&layout, &p, &[true; 9]);
        let expected = 9.0 * 8.0 * 1e6 / (78.0 + 2.0 * 37.0);
        assert!((b.writes_per_sec / expected - 1.0).abs() < 1e-9, "{b:?}");
    }

    #[test]
    fn member_batching_pays_entries_once_per_member() {
        let ks = Keyspace::zipf(1000, 0.0, 1);
        let shares: Vec<f64> = ks
            .even_ranges(64)
            .iter()
            .map(|&(a, b)| ks.share(a, b))
            .collect();
        let layout = Layout::place(&shares, 8, 3, 3, false);
        let shard = cpu_bound(&layout, &params(Batching::Shard), &[true; 8]);
        let member = cpu_bound(&layout, &params(Batching::Member), &[true; 8]);
        assert!(
            member.writes_per_sec > shard.writes_per_sec,
            "{shard:?} {member:?}"
        );
    }

    #[test]
    fn load_splits_isolate_the_hot_keys_but_never_split_one() {
        let ks = Keyspace::zipf(100_000, 0.99, 7);
        let even = ks.even_ranges(64);
        let split = ks.load_split(ks.even_ranges(32), 64);
        let hottest =
            |r: &[(usize, usize)]| r.iter().map(|&(a, b)| ks.share(a, b)).fold(0.0, f64::max);
        assert_eq!(split.len(), 64);
        assert!(hottest(&split) <= hottest(&even) + 1e-12);
        assert!(hottest(&split) >= ks.hottest_key() - 1e-12);
        let covered: usize = split.iter().map(|(a, b)| b - a).sum();
        assert_eq!(covered, 100_000);
    }
}
