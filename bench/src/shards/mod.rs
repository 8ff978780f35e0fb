//! `koru-bench shards`: a model of a sharded KoruDelta (dataplane/SHARDING.md) at several member
//! counts, from the measured CPU per replicated write. It starts no server: it computes the CPU
//! bound of each layout and runs a deterministic round-by-round simulation (`sim.rs`) of steady
//! load, the loss of one member and of one zone, and hot keys, and prints Markdown tables.

mod model;
mod sim;

use clap::Args;

use crate::error::BenchError;
use model::{Batching, Bound, Costs, Keyspace, Layout, Params, cpu_bound};
use sim::{Outcome, Scenario};

/// Seconds of steady load simulated before a failure.
const WARM_SECS: f64 = 1.0;
/// Seconds simulated after the failover ends (backlog drained, new steady state).
const AFTER_SECS: f64 = 3.0;
/// Windows the served rate is measured over.
const WINDOW_SECS: f64 = 0.1;

/// Arguments of `koru-bench shards`; the cost defaults are the `--fsync interval=100` figures of
/// BENCHMARKS.md's "Replication" (CPU per acknowledged PUT, 16 connections, about 8 writes per
/// Raft entry).
#[derive(Debug, Clone, Args)]
pub struct ShardsArgs {
    /// Member counts to model.
    #[arg(long, value_delimiter = ',', default_value = "8,32,128")]
    pub members: Vec<usize>,
    /// Shards per member (each member leads this many when balanced): shards = members × this.
    #[arg(long, default_value_t = 4)]
    pub leaders_per_member: usize,
    /// Replicas of each shard (a Raft group); a write commits on a majority.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Failure domains (zones) the members are spread over, round robin.
    #[arg(long, default_value_t = 3)]
    pub zones: usize,
    /// Cores of each member.
    #[arg(long, default_value_t = 8.0)]
    pub cores: f64,
    /// Cores one group's leader can keep busy (its commit and apply path is one thread each;
    /// HTTP workers are many). An assumption, not measured.
    #[arg(long, default_value_t = 4.0)]
    pub group_cores: f64,
    /// Leader CPU per replicated write, µs (measured: 78 with interval, 95 with always).
    #[arg(long, default_value_t = 78.0)]
    pub leader_us: f64,
    /// Each follower's CPU per replicated write, µs (measured: 37 / 50).
    #[arg(long, default_value_t = 37.0)]
    pub follower_us: f64,
    /// Single node CPU per write, µs (measured: 22 / 36): what a leader pays per write whatever
    /// the batching.
    #[arg(long, default_value_t = 22.0)]
    pub single_us: f64,
    /// Of the follower's cost, what is paid per write (its store's apply), µs; the rest is per
    /// entry. An estimate (the commit thread's share of a single node's CPU).
    #[arg(long, default_value_t = 4.0)]
    pub follower_apply_us: f64,
    /// Writes per Raft entry at which the costs above were measured.
    #[arg(long, default_value_t = 8.0)]
    pub measured_batch: f64,
    /// Scale the leader's and followers' replication overhead so the whole cluster's CPU per
    /// write is this multiple of `--single-us` (issue 22's goal is 2.5); off when absent.
    #[arg(long)]
    pub scale_to_ratio: Option<f64>,
    /// Where the per-entry cost is paid: per shard (separate groups, as today) or once per
    /// member for all its groups (shared log and transport).
    #[arg(long, value_enum, default_value = "shard")]
    pub batching: Batching,
    /// Round trip between members, µs (within one region, across zones).
    #[arg(long, default_value_t = 1000.0)]
    pub rtt_us: f64,
    /// One fdatasync of the Raft log, µs (measured 130–180).
    #[arg(long, default_value_t = 150.0)]
    pub fsync_us: f64,
    /// Seconds from a leader's loss to its shard's next commit (measured median 1.8).
    #[arg(long, default_value_t = 1.8)]
    pub failover_secs: f64,
    /// Seconds writes wait while a leader hands over (measured median 1.1); reported.
    #[arg(long, default_value_t = 1.1)]
    pub handover_secs: f64,
    /// A client gives up on a write after this many seconds (counted as dropped).
    #[arg(long, default_value_t = 5.0)]
    pub timeout_secs: f64,
    /// The target, writes per second (roadmap v3.0: 1,000,000 clustered).
    #[arg(long, default_value_t = 1_000_000.0)]
    pub target: f64,
    /// Load of the failure runs, as a fraction of the layout's CPU bound (at most the target).
    #[arg(long, default_value_t = 0.7)]
    pub utilization: f64,
    /// Writes in flight from all clients together, for the latency bound (Little's law).
    #[arg(long, default_value_t = 4096.0)]
    pub clients: f64,
    /// Zipf θ of key popularity for the hot-key table (0 = uniform; YCSB uses 0.99).
    #[arg(long, value_delimiter = ',', default_value = "0.99")]
    pub theta: Vec<f64>,
    /// Keys in the key space.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: usize,
    /// Size of one shard replica with its history, GiB (a move copies all of it).
    #[arg(long, default_value_t = 32.0)]
    pub replica_gib: f64,
    /// Rate one member receives a replica snapshot at, MiB/s (one at a time per receiver).
    #[arg(long, default_value_t = 100.0)]
    pub snapshot_mib_s: f64,
    /// Seed of the key order (which keys are hot and where they fall).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the model and prints its tables.
pub fn run(args: ShardsArgs) -> Result<(), BenchError> {
    check(&args)?;
    let p = params(&args);
    let c = p.costs;
    println!(
        "costs per write at {} writes/entry: leader {:.1} µs, follower {:.1} µs, cluster {:.1} µs = {:.2}× single ({:.0} µs); \
         split: leader {:.1} µs/write + {:.0} µs/entry, follower {:.1} µs/write + {:.0} µs/entry; \
         round {:.0} µs (rtt + fsync); {} cores/member, {} replicas, {} zones, batching per {:?}\n",
        args.measured_batch,
        c.leader_write_us + c.leader_entry_us / args.measured_batch,
        c.follower_write_us + c.follower_entry_us / args.measured_batch,
        cluster_us(&p, args.measured_batch),
        cluster_us(&p, args.measured_batch) / args.single_us,
        args.single_us,
        c.leader_write_us,
        c.leader_entry_us,
        c.follower_write_us,
        c.follower_entry_us,
        p.round_us,
        args.cores,
        args.replicas,
        args.zones,
        args.batching,
    );
    let uniform = Keyspace::zipf(args.keys, 0.0, args.seed);
    let layouts: Vec<(usize, Layout)> = args
        .members
        .iter()
        .map(|&m| (m, layout(&uniform, m, &args, false)))
        .collect();
    throughput_table(&args, &p, &layouts);
    failure_table(&args, &p, &layouts, false);
    failure_table(&args, &p, &layouts, true);
    for &theta in &args.theta {
        skew_table(&args, &p, theta);
    }
    Ok(())
}

fn check(args: &ShardsArgs) -> Result<(), BenchError> {
    let bad = |m: &str| Err(BenchError::Usage(m.to_owned()));
    if args.members.iter().any(|&m| m < args.replicas) || args.replicas == 0 {
        return bad(
            "every --members count must be at least --replicas (and --replicas at least 1)",
        );
    }
    if args.leaders_per_member == 0 || args.zones == 0 || args.keys < 2 {
        return bad("--leaders-per-member, --zones must be at least 1 and --keys at least 2");
    }
    let positive = [
        args.cores,
        args.group_cores,
        args.single_us,
        args.measured_batch,
        args.rtt_us + args.fsync_us,
    ];
    if positive.iter().any(|&x| !x.is_finite() || x <= 0.0) || args.leader_us < args.single_us {
        return bad(
            "cores, costs, batch and round must be positive, and --leader-us at least --single-us",
        );
    }
    if !(args.utilization > 0.0 && args.utilization <= 1.0) || args.follower_us < 0.0 {
        return bad("--utilization must be in (0, 1] and --follower-us not negative");
    }
    if args.keys < args.members.iter().max().copied().unwrap_or(0) * args.leaders_per_member * 2 {
        return bad("--keys must be at least twice the number of shards");
    }
    Ok(())
}

fn params(args: &ShardsArgs) -> Params {
    let (mut leader, mut follower) = (args.leader_us, args.follower_us);
    if let Some(ratio) = args.scale_to_ratio {
        let extra = leader - args.single_us + (args.replicas as f64 - 1.0) * follower;
        let wanted = ratio * args.single_us - args.single_us;
        let k = if extra > 0.0 {
            (wanted / extra).max(0.0)
        } else {
            1.0
        };
        leader = args.single_us + (leader - args.single_us) * k;
        follower *= k;
    }
    Params {
        costs: Costs::calibrate(
            leader,
            follower,
            args.single_us,
            args.follower_apply_us,
            args.measured_batch,
        ),
        batching: args.batching,
        cores: args.cores,
        group_cores: args.group_cores,
        round_us: args.rtt_us + args.fsync_us,
        replicas: args.replicas,
    }
}

/// Whole-cluster CPU per write at `batch` writes per entry.
fn cluster_us(p: &Params, batch: f64) -> f64 {
    let c = p.costs;
    c.leader_write_us
        + c.leader_entry_us / batch
        + (p.replicas as f64 - 1.0) * (c.follower_write_us + c.follower_entry_us / batch)
}

/// Shards over `members`: even ranges placed by count, or half as many even ranges split by load
/// up to the same count and placed by load (what load-based splitting and balancing reach).
fn layout(ks: &Keyspace, members: usize, args: &ShardsArgs, by_load: bool) -> Layout {
    let shards = members * args.leaders_per_member;
    let ranges = if by_load {
        ks.load_split(ks.even_ranges(shards / 2), shards)
    } else {
        ks.even_ranges(shards)
    };
    let shares: Vec<f64> = ranges.iter().map(|&(a, b)| ks.share(a, b)).collect();
    Layout::place(&shares, members, args.zones, args.replicas, by_load)
}

fn scenario(args: &ShardsArgs, offered: f64, failure: Option<(f64, Vec<usize>)>) -> Scenario {
    Scenario {
        offered,
        secs: WARM_SECS + args.failover_secs + AFTER_SECS,
        failure,
        failover_secs: args.failover_secs,
        timeout_secs: args.timeout_secs,
        window_secs: WINDOW_SECS,
    }
}

fn throughput_table(args: &ShardsArgs, p: &Params, layouts: &[(usize, Layout)]) {
    println!(
        "Throughput, uniform keys; simulated {} s at the target ({} writes/s):\n",
        WARM_SECS + args.failover_secs + AFTER_SECS,
        thousands(args.target)
    );
    println!(
        "| members | shards | leaders per member | writes per entry at the bound | cluster CPU µs per write | CPU bound, writes/s | bound / target | ceiling with unbounded entries | simulated at the target: committed/s (not committed) | mean commit wait | latency bound ({} in flight) |",
        thousands(args.clients)
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (m, layout) in layouts {
        let b = cpu_bound(layout, p, &vec![true; *m]);
        let s = scenario(args, args.target, None);
        let o = sim::run(layout, p, &s);
        let light = sim::run(
            layout,
            p,
            &scenario(
                args,
                args.target.min(args.utilization * b.writes_per_sec),
                None,
            ),
        );
        let lpm = layout.leaders_per_member();
        // No bound: entries alone overrun the cores at the shortest round (rounds would stretch).
        let (wait, latency_bound) = if light.served > 0.0 {
            (
                format!("{:.2} ms", light.mean_wait_secs * 1e3),
                thousands(args.clients / light.mean_wait_secs),
            )
        } else {
            ("—".to_owned(), "—".to_owned())
        };
        println!(
            "| {m} | {} | {} | {:.1} | {:.0} | {} | {:.2}× | {} | {} ({:.1}%) | {wait} | {latency_bound} |",
            layout.shards.len(),
            lpm.iter().max().copied().unwrap_or(0),
            b.writes_per_entry,
            b.cpu_us_per_write,
            thousands(b.writes_per_sec),
            b.writes_per_sec / args.target,
            thousands(b.per_write_ceiling),
            thousands(o.tail_rate(1.0)),
            100.0 * (o.dropped + o.queued) / o.offered,
        );
    }
    println!();
}

/// The member leading most shards (lowest id on ties), or every member of zone 0.
fn victims(layout: &Layout, zone: bool) -> Vec<usize> {
    if zone {
        return layout.zone_members(0);
    }
    let lpm = layout.leaders_per_member();
    (0..layout.members)
        .max_by_key(|&m| (lpm[m], usize::MAX - m))
        .into_iter()
        .collect()
}

fn failure_table(args: &ShardsArgs, p: &Params, layouts: &[(usize, Layout)], zone: bool) {
    let what = if zone {
        "One zone lost (every member of zone 0)"
    } else {
        "One member lost (the one leading most shards)"
    };
    println!(
        "{what} at t = {WARM_SECS} s, load = min(target, {} × CPU bound); leaders back after {} s:\n",
        args.utilization, args.failover_secs
    );
    println!(
        "| members | load, writes/s | members lost | shards losing their leader | longest write wait | worst 100 ms, committed / offered | backlog at the end | given up | CPU bound after, writes/s | replicas to copy (GiB) | receivers | re-replication time |"
    );
    println!(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (m, layout) in layouts {
        let b = cpu_bound(layout, p, &vec![true; *m]);
        let load = args.target.min(args.utilization * b.writes_per_sec);
        let lost = victims(layout, zone);
        let o: Outcome = sim::run(
            layout,
            p,
            &scenario(args, load, Some((WARM_SECS, lost.clone()))),
        );
        let mut alive = vec![true; *m];
        lost.iter().for_each(|&v| alive[v] = false);
        let after: Bound = cpu_bound(&survivors(layout, &alive), p, &alive);
        let copies = layout
            .shards
            .iter()
            .flat_map(|s| &s.replicas)
            .filter(|&&r| !alive[r])
            .count();
        let (receivers, time) = re_replication(args, layout, &alive, copies);
        println!(
            "| {m} | {} | {} | {} of {} ({:.1}%) | {:.2} s | {:.0}% | {:.2} s of load | {:.2}% | {} ({:.2}× target) | {} ({}) | {} | {} |",
            thousands(load),
            lost.len(),
            o.leaderless,
            layout.shards.len(),
            100.0 * o.leaderless as f64 / layout.shards.len() as f64,
            o.max_wait_secs,
            100.0 * o.worst_window(WARM_SECS, load),
            o.queued / load,
            100.0 * o.dropped / o.offered,
            thousands(after.writes_per_sec),
            after.writes_per_sec / args.target,
            copies,
            thousands(copies as f64 * args.replica_gib),
            receivers,
            time,
        );
    }
    println!(
        "\n(a planned leader move instead of a loss: writes to that shard wait about {} s, none fails)\n",
        args.handover_secs
    );
}

/// The layout after the failover: each shard led by a surviving replica on the member that
/// leads fewest so far (as `sim::fail` chooses).
fn survivors(layout: &Layout, alive: &[bool]) -> Layout {
    let mut out = layout.clone();
    let mut leaders = vec![0usize; layout.members];
    for s in out.shards.iter().filter(|s| alive[s.leader]) {
        leaders[s.leader] += 1;
    }
    for s in out.shards.iter_mut() {
        s.replicas.retain(|&r| alive[r]);
        if !alive[s.leader]
            && let Some(n) = s.replicas.iter().copied().min_by_key(|&r| (leaders[r], r))
        {
            leaders[n] += 1;
            s.leader = n;
        }
    }
    out
}

/// Who can take the lost replicas (zone rules kept: a shard keeps one replica per zone, so a
/// replacement goes to the lost member's zone) and how long copying takes, receivers working in
/// parallel, one snapshot at a time each.
fn re_replication(
    args: &ShardsArgs,
    layout: &Layout,
    alive: &[bool],
    copies: usize,
) -> (usize, String) {
    let zone_bound = layout.zones >= args.replicas;
    let lost_zones: Vec<usize> = (0..layout.members)
        .filter(|&m| !alive[m])
        .map(|m| m % layout.zones)
        .collect();
    let receivers = (0..layout.members)
        .filter(|&m| alive[m] && (!zone_bound || lost_zones.contains(&(m % layout.zones))))
        .count();
    if copies == 0 {
        return (receivers, "—".to_owned());
    }
    if receivers == 0 {
        return (
            0,
            format!(
                "none: stays at {} replicas until the zone returns",
                args.replicas - 1
            ),
        );
    }
    let per_receiver = copies.div_ceil(receivers) as f64;
    let secs = per_receiver * args.replica_gib * 1024.0 / args.snapshot_mib_s;
    (receivers, format!("{:.0} min", secs / 60.0))
}

fn skew_table(args: &ShardsArgs, p: &Params, theta: f64) {
    let ks = Keyspace::zipf(args.keys, theta, args.seed);
    println!(
        "Hot keys: Zipf θ = {theta} over {} keys (the hottest key takes {:.2}% of writes); simulated at the target:\n",
        thousands(args.keys as f64),
        100.0 * ks.hottest_key()
    );
    println!(
        "| members | shards | ranges | hottest shard's share | CPU bound, writes/s | bound set by | committed/s at the target (not committed) |"
    );
    println!("| ---: | ---: | --- | ---: | ---: | --- | ---: |");
    for &m in &args.members {
        for by_load in [false, true] {
            let layout = layout(&ks, m, args, by_load);
            let b = cpu_bound(&layout, p, &vec![true; m]);
            let o = sim::run(&layout, p, &scenario(args, args.target, None));
            let hottest = layout.shards.iter().map(|s| s.share).fold(0.0, f64::max);
            println!(
                "| {m} | {} | {} | {:.2}% | {} | {} | {} ({:.1}%) |",
                layout.shards.len(),
                if by_load {
                    "split by load, placed by load"
                } else {
                    "even by size, placed by count"
                },
                100.0 * hottest,
                thousands(b.writes_per_sec),
                if b.group_limited {
                    "the hot shard's group"
                } else {
                    "a member's cores"
                },
                thousands(o.tail_rate(1.0)),
                100.0 * (o.dropped + o.queued) / o.offered,
            );
        }
    }
    println!();
}

/// 1234567.8 → "1,234,568".
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "∞".to_owned();
    }
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ShardsArgs,
    }

    fn args(extra: &[&str]) -> ShardsArgs {
        let mut argv = vec!["x"];
        argv.extend_from_slice(extra);
        Wrap::parse_from(argv).args
    }

    #[test]
    fn scaling_to_a_ratio_gives_that_ratio_at_the_measured_batch() {
        let a = args(&["--scale-to-ratio", "2.5"]);
        let p = params(&a);
        assert!((cluster_us(&p, 8.0) / 22.0 - 2.5).abs() < 1e-9);
        let today = params(&args(&[]));
        assert!((cluster_us(&today, 8.0) - 152.0).abs() < 1e-9);
    }

    #[test]
    fn re_replication_stays_in_the_lost_members_zone() {
        let a = args(&[]);
        let ks = Keyspace::zipf(1000, 0.0, 1);
        let l = layout(&ks, 8, &a, false);
        let mut alive = vec![true; 8];
        alive[0] = false;
        let (receivers, _) = re_replication(&a, &l, &alive, 12);
        assert_eq!(receivers, 2, "members 3 and 6 share zone 0 with member 0");
        let zone = l.zone_members(0);
        zone.iter().for_each(|&m| alive[m] = false);
        assert_eq!(re_replication(&a, &l, &alive, 12).0, 0);
    }

    #[test]
    fn survivors_keep_a_leader_for_every_shard_with_a_quorum() {
        let a = args(&[]);
        let ks = Keyspace::zipf(1000, 0.0, 1);
        let l = layout(&ks, 8, &a, false);
        let mut alive = vec![true; 8];
        alive[2] = false;
        let s = survivors(&l, &alive);
        for (before, after) in l.shards.iter().zip(&s.shards) {
            assert!(alive[after.leader], "{after:?}");
            let lost = usize::from(before.replicas.contains(&2));
            assert_eq!(after.replicas.len(), 3 - lost, "{before:?} {after:?}");
        }
    }

    #[test]
    fn the_whole_model_runs_on_small_inputs() {
        let a = args(&["--members", "3,6", "--keys", "2000", "--theta", "0.9"]);
        assert!(run(a).is_ok());
    }

    #[test]
    fn impossible_layouts_are_usage_errors() {
        let few = args(&["--members", "2"]);
        assert!(matches!(run(few), Err(BenchError::Usage(_))));
        let load = args(&["--utilization", "1.5"]);
        assert!(matches!(run(load), Err(BenchError::Usage(_))));
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
