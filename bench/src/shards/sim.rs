//! A deterministic discrete-time simulation of a sharded cluster, one step per replication round:
//! writes arrive at each shard in proportion to its share, each group's leader proposes
//! everything queued as one entry (one entry in flight, as the data plane's `batch_writes`
//! does), members share out their cores (entries first, then writes in proportion), a write
//! commits once its leader and every live follower had the CPU for it (the leader paces itself
//! to its slowest live follower, as CockroachDB's proposal quota pool does, so no replica falls
//! behind for good), and writes waiting longer than the client's timeout are dropped. Members can
//! be lost at a moment: their replicas no longer hold anything up, the shards they led have no
//! leader for the failover time and then a surviving replica leads, and a shard left below a
//! quorum stops.

use std::collections::VecDeque;

use super::model::{Batching, Layout, Params};

/// One simulated run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Writes per second offered to the whole cluster (open loop: clients do not slow down).
    pub offered: f64,
    /// Simulated seconds.
    pub secs: f64,
    /// Members lost, and when (seconds from the start).
    pub failure: Option<(f64, Vec<usize>)>,
    /// Seconds from a leader's loss to the first write its shard commits again.
    pub failover_secs: f64,
    /// A write waiting longer than this is given up by its client (counted as dropped).
    pub timeout_secs: f64,
    /// Length of the windows the served rate is measured over, seconds.
    pub window_secs: f64,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Writes offered over the run.
    pub offered: f64,
    /// Writes committed.
    pub served: f64,
    /// Writes whose client gave up.
    pub dropped: f64,
    /// Writes still waiting at the end.
    pub queued: f64,
    /// Writes committed in each window.
    pub windows: Vec<f64>,
    /// Length of a window, seconds (a whole number of rounds).
    pub window_secs: f64,
    /// Longest time from arrival to commit of a committed write, seconds.
    pub max_wait_secs: f64,
    /// Mean time from arrival to commit, seconds.
    pub mean_wait_secs: f64,
    /// Shards whose leader was lost.
    pub leaderless: usize,
    /// Shards left without a quorum (unavailable until the lost members return).
    pub no_quorum: usize,
}

impl Outcome {
    /// Committed writes per second over the last `secs` of the run.
    pub fn tail_rate(&self, secs: f64) -> f64 {
        let n = ((secs / self.window_secs).round() as usize).clamp(1, self.windows.len().max(1));
        let tail = &self.windows[self.windows.len().saturating_sub(n)..];
        tail.iter().sum::<f64>() / (tail.len() as f64 * self.window_secs)
    }

    /// The lowest committed rate of a window from `from_secs` on, over the offered rate.
    pub fn worst_window(&self, from_secs: f64, offered: f64) -> f64 {
        let first = (from_secs / self.window_secs).floor() as usize;
        let worst = self
            .windows
            .iter()
            .skip(first)
            .fold(f64::INFINITY, |a, &b| a.min(b));
        worst / (offered * self.window_secs)
    }
}

/// A shard's state during the run.
struct Group {
    share: f64,
    replicas: Vec<usize>,
    leader: Option<usize>,
    /// First round in which the (new) leader commits.
    ready_round: u64,
    /// Waiting writes: (round of arrival, count), oldest first; counts are fractional (fluid).
    queue: VecDeque<(u64, f64)>,
    queued: f64,
}

/// Runs `scenario` on `layout`. Everything is a pure function of its inputs: the same inputs give
/// the same outcome.
pub fn run(layout: &Layout, p: &Params, scenario: &Scenario) -> Outcome {
    let round_secs = p.round_us / 1e6;
    let window_rounds = ((scenario.window_secs / round_secs).round() as u64).max(1);
    // Whole windows only, so every window's rate is comparable.
    let rounds = (scenario.secs / round_secs / window_rounds as f64).ceil() as u64 * window_rounds;
    let timeout_rounds = (scenario.timeout_secs / round_secs).floor() as u64;
    let failover_rounds = (scenario.failover_secs / round_secs).ceil() as u64;
    let fail_round = scenario
        .failure
        .as_ref()
        .map(|(at, _)| (at / round_secs).round() as u64);
    let budget = p.cores * p.round_us;
    let group_cap =
        ((p.group_cores * p.round_us - p.costs.leader_entry_us) / p.costs.leader_write_us).max(0.0);

    let mut groups: Vec<Group> = layout
        .shards
        .iter()
        .map(|s| Group {
            share: s.share,
            replicas: s.replicas.clone(),
            leader: Some(s.leader),
            ready_round: 0,
            queue: VecDeque::new(),
            queued: 0.0,
        })
        .collect();
    let mut alive = vec![true; layout.members];
    let mut out = Outcome {
        windows: vec![0.0; (rounds / window_rounds) as usize],
        window_secs: window_rounds as f64 * round_secs,
        ..Outcome::default()
    };
    let mut wait_sum = 0.0;
    let mut fixed = vec![0.0; layout.members];
    let mut variable = vec![0.0; layout.members];
    let mut grant = vec![1.0; layout.members];

    for r in 0..rounds {
        if Some(r) == fail_round
            && let Some((_, lost)) = &scenario.failure
        {
            fail(
                &mut groups,
                &mut alive,
                lost,
                layout.members,
                r + failover_rounds,
                p.quorum(),
                &mut out,
            );
        }
        fixed.iter_mut().for_each(|x| *x = 0.0);
        variable.iter_mut().for_each(|x| *x = 0.0);
        let mut leads = vec![false; layout.members];
        let mut follows = vec![false; layout.members];
        for g in &mut groups {
            let arriving = scenario.offered * g.share * round_secs;
            g.queue.push_back((r, arriving));
            g.queued += arriving;
            out.offered += arriving;
            while let Some(&(at, n)) = g.queue.front() {
                if r - at <= timeout_rounds {
                    break;
                }
                g.queue.pop_front();
                g.queued -= n;
                out.dropped += n;
            }
            let Some(leader) = g.leader.filter(|_| r >= g.ready_round && g.queued > 0.0) else {
                continue;
            };
            variable[leader] += g.queued * p.costs.leader_write_us;
            leads[leader] = true;
            if p.batching == Batching::Shard {
                fixed[leader] += p.costs.leader_entry_us;
            }
            for &f in g.replicas.iter().filter(|&&f| f != leader) {
                variable[f] += g.queued * p.costs.follower_write_us;
                follows[f] = true;
                if p.batching == Batching::Shard {
                    fixed[f] += p.costs.follower_entry_us;
                }
            }
        }
        for m in 0..layout.members {
            if p.batching == Batching::Member {
                fixed[m] += f64::from(u8::from(leads[m])) * p.costs.leader_entry_us
                    + f64::from(u8::from(follows[m])) * p.costs.follower_entry_us;
            }
            grant[m] = if variable[m] > 0.0 {
                ((budget - fixed[m]) / variable[m]).clamp(0.0, 1.0)
            } else {
                1.0
            };
        }
        let window = (r / window_rounds) as usize;
        for g in &mut groups {
            if g.leader.is_none() || r < g.ready_round || g.queued <= 0.0 {
                continue;
            }
            let slowest = g.replicas.iter().map(|&m| grant[m]).fold(1.0, f64::min);
            let mut serve = (g.queued * slowest).min(group_cap);
            out.served += serve;
            out.windows[window] += serve;
            while serve > 0.0 {
                let Some(front) = g.queue.front_mut() else {
                    break;
                };
                let take = front.1.min(serve);
                // Arrivals spread over their round, so half a round of waiting for the proposal.
                let wait = ((r - front.0) as f64 + 1.5) * round_secs;
                wait_sum += take * wait;
                if take > 0.0 {
                    out.max_wait_secs = out.max_wait_secs.max(wait);
                }
                front.1 -= take;
                serve -= take;
                g.queued -= take;
                if front.1 <= 1e-12 {
                    g.queue.pop_front();
                }
            }
        }
    }
    out.queued = groups.iter().map(|g| g.queued).sum();
    out.mean_wait_secs = if out.served > 0.0 {
        wait_sum / out.served
    } else {
        0.0
    };
    out
}

/// Takes the lost members out: their replicas go, the shards they led wait `ready_round` for a
/// new leader (the surviving replica on the member leading fewest shards), and shards left below
/// a quorum stop.
fn fail(
    groups: &mut [Group],
    alive: &mut [bool],
    lost: &[usize],
    members: usize,
    ready_round: u64,
    quorum: usize,
    out: &mut Outcome,
) {
    for &m in lost {
        alive[m] = false;
    }
    let mut leaders = vec![0usize; members];
    for g in groups.iter() {
        if let Some(l) = g.leader.filter(|&l| alive[l]) {
            leaders[l] += 1;
        }
    }
    for g in groups.iter_mut() {
        g.replicas.retain(|&m| alive[m]);
        let lost_leader = g.leader.is_some_and(|l| !alive[l]);
        if g.replicas.len() < quorum {
            out.no_quorum += 1;
            out.leaderless += usize::from(lost_leader);
            g.leader = None;
            continue;
        }
        if lost_leader {
            out.leaderless += 1;
            let next = g.replicas.iter().copied().min_by_key(|&m| (leaders[m], m));
            if let Some(n) = next {
                leaders[n] += 1;
            }
            g.leader = next;
            g.ready_round = ready_round;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Costs, Keyspace, cpu_bound};
    use super::*;

    fn setup(members: usize, theta: f64) -> (Layout, Params) {
        let ks = Keyspace::zipf(20_000, theta, 42);
        let shares: Vec<f64> = ks
            .even_ranges(members * 4)
            .iter()
            .map(|&(a, b)| ks.share(a, b))
            .collect();
        let p = Params {
            costs: Costs::calibrate(78.0, 37.0, 22.0, 4.0, 8.0),
            batching: Batching::Shard,
            cores: 8.0,
            group_cores: 4.0,
            round_us: 1150.0,
            replicas: 3,
        };
        (Layout::place(&shares, members, 3, 3, false), p)
    }

    fn scenario(offered: f64, failure: Option<(f64, Vec<usize>)>) -> Scenario {
        Scenario {
            offered,
            secs: 4.0,
            failure,
            failover_secs: 1.8,
            timeout_secs: 1.0,
            window_secs: 0.1,
        }
    }

    fn conserved(o: &Outcome) {
        let sum = o.served + o.dropped + o.queued;
        assert!(
            (sum - o.offered).abs() <= 1e-6 * o.offered,
            "{} + {} + {} != {}",
            o.served,
            o.dropped,
            o.queued,
            o.offered
        );
    }

    #[test]
    fn below_the_bound_everything_offered_is_served() {
        let (layout, p) = setup(8, 0.0);
        let bound = cpu_bound(&layout, &p, &[true; 8]).writes_per_sec;
        let o = run(&layout, &p, &scenario(0.8 * bound, None));
        conserved(&o);
        assert_eq!(o.dropped, 0.0);
        assert!(o.queued < 0.8 * bound * 0.01, "{o:?}");
        assert!(o.max_wait_secs < 0.01, "{o:?}");
    }

    #[test]
    fn overloaded_with_uniform_keys_the_throughput_is_the_analytical_bound() {
        for members in [8, 32] {
            let (layout, p) = setup(members, 0.0);
            let bound = cpu_bound(&layout, &p, &vec![true; members]).writes_per_sec;
            let s = scenario(2.0 * bound, None);
            let o = run(&layout, &p, &s);
            conserved(&o);
            assert!(o.dropped > 0.0);
            let rate = o.tail_rate(1.0);
            assert!(
                (rate / bound - 1.0).abs() < 0.03,
                "{members}: {rate} vs {bound}"
            );
        }
    }

    #[test]
    fn a_lost_member_stops_its_leaders_shards_for_the_failover_time() {
        let (layout, p) = setup(8, 0.0);
        let bound = cpu_bound(&layout, &p, &[true; 8]).writes_per_sec;
        let s = Scenario {
            timeout_secs: 5.0,
            ..scenario(0.5 * bound, Some((1.0, vec![0])))
        };
        let o = run(&layout, &p, &s);
        conserved(&o);
        assert_eq!(o.leaderless, layout.leaders_per_member()[0]);
        assert_eq!(o.no_quorum, 0);
        assert!(
            (o.max_wait_secs - 1.8).abs() < 0.01,
            "{:?}",
            o.max_wait_secs
        );
        let lost_share = o.leaderless as f64 / layout.shards.len() as f64;
        let worst = o.worst_window(1.0, s.offered);
        assert!(
            (worst - (1.0 - lost_share)).abs() < 0.02,
            "{worst} vs {}",
            1.0 - lost_share
        );
        assert_eq!(o.dropped, 0.0);
    }

    #[test]
    fn the_same_inputs_give_the_same_outcome() {
        let (layout, p) = setup(8, 0.99);
        let s = scenario(300_000.0, Some((1.0, vec![3])));
        let a = run(&layout, &p, &s);
        let b = run(&layout, &p, &s);
        conserved(&a);
        assert_eq!(a.windows, b.windows);
        assert_eq!(a.served, b.served);
    }
}
