//! The human table of `koru-bench raft`: each figure beside its goal, PASS or FAIL.

use std::fmt::Write as _;

use super::cpu::{CpuFigure, CpuSplit};
use super::{
    BATCH_RATIO_GOAL, CPU_RATIO_GOAL, FAILOVER_GOAL_SECS, PUT_RATIO_GOAL, RaftArgs, RaftFigures,
};
use crate::report::thousands;

/// The human table.
pub(super) fn table(f: &RaftFigures, args: &RaftArgs) -> String {
    let judge = |pass: bool| String::from(if pass { "PASS" } else { "FAIL" });
    let rate = |v: f64, p99_us: f64| format!("{} ({:.2})", thousands(v), p99_us / 1000.0);
    let errors: u64 = f.loads.iter().map(|l| l.errors).sum();
    let skipped = (f.failover_runs == 0).then(|| String::from("SKIP"));
    let rows: [[String; 6]; 9] = [
        [
            "measurement",
            "single node",
            "3 members",
            "ratio",
            "goal",
            "result",
        ]
        .map(String::from),
        [
            "PUT, always, req/s (p99 ms)".into(),
            rate(f.single_put_per_sec, f.single_put_p99_us),
            rate(f.raft_put_per_sec, f.raft_put_p99_us),
            format!("{:.2}x", f.put_ratio),
            format!(">= {PUT_RATIO_GOAL:.2}x"),
            judge(f.put_ratio >= PUT_RATIO_GOAL),
        ],
        [
            format!("batch of {}, always, versions/s", f.batch_size),
            rate(f.single_batch_versions_per_sec, f.single_batch_p99_us),
            rate(f.raft_batch_versions_per_sec, f.raft_batch_p99_us),
            format!("{:.2}x", f.batch_ratio),
            format!(">= {BATCH_RATIO_GOAL:.2}x"),
            judge(f.batch_ratio >= BATCH_RATIO_GOAL),
        ],
        [
            "PUT, interval=100, req/s (p99 ms)".into(),
            rate(f.interval_single_put_per_sec, f.interval_single_put_p99_us),
            rate(f.interval_raft_put_per_sec, f.interval_raft_put_p99_us),
            format!("{:.2}x", f.interval_put_ratio),
            "report".into(),
            "INFO".into(),
        ],
        [
            format!("batch of {}, interval=100, versions/s", f.batch_size),
            rate(
                f.interval_single_batch_versions_per_sec,
                f.interval_single_batch_p99_us,
            ),
            rate(
                f.interval_raft_batch_versions_per_sec,
                f.interval_raft_batch_p99_us,
            ),
            format!("{:.2}x", f.interval_batch_ratio),
            "report".into(),
            "INFO".into(),
        ],
        [
            format!("failover, median of {} (min / max)", f.failover_runs),
            "-".into(),
            format!(
                "{:.3} s ({:.3} / {:.3})",
                f.failover_p50_secs, f.failover_min_secs, f.failover_max_secs
            ),
            String::new(),
            "< 5 s".into(),
            skipped
                .clone()
                .unwrap_or_else(|| judge(f.failover_p50_secs < FAILOVER_GOAL_SECS)),
        ],
        [
            "restart + catch-up, median (max)".into(),
            "-".into(),
            format!("{:.2} s ({:.2})", f.rejoin_p50_secs, f.rejoin_max_secs),
            String::new(),
            String::new(),
            String::new(),
        ],
        [
            format!("hand-over, median of {} (max)", f.handover_runs),
            "-".into(),
            format!("{:.3} s ({:.3})", f.handover_p50_secs, f.handover_max_secs),
            String::new(),
            "report".into(),
            skipped.clone().unwrap_or_else(|| "INFO".into()),
        ],
        [
            "  longest write meanwhile, median (max)".into(),
            "-".into(),
            format!(
                "{:.3} s ({:.3})",
                f.handover_longest_write_p50_secs, f.handover_longest_write_max_secs
            ),
            String::new(),
            "no error".into(),
            skipped
                .clone()
                .unwrap_or_else(|| judge(f.handover_failed == 0)),
        ],
    ];
    let mut out = format!(
        "\nreplication: {} members vs 1 node; the first two rows with every acknowledged write \
         fsynced (--fsync always: the node's log, the members' Raft logs), the next two with the \
         default --fsync interval=100; {} connections, {} s per throughput figure; loopback, all \
         processes on this machine\n",
        f.members, f.connections, args.secs
    );
    for [name, single, raft, ratio, goal, result] in &rows {
        let _ = writeln!(
            out,
            "{name:<38} {single:>18} {raft:>24} {ratio:>6} {goal:>9} {result:>6}"
        );
    }
    out.push_str(&cpu_table(f));
    let _ = writeln!(
        out,
        "load errors: {errors}; steady writes during the failover and hand-over runs: {} \
         acknowledged, {} failed in failovers, {} in hand-overs",
        thousands(f.steady_writes as f64),
        thousands(f.steady_failed as f64),
        thousands(f.handover_failed as f64)
    );
    out
}

/// The CPU per acknowledged write of every load pair, per process and for the whole cluster,
/// each ratio judged against [`CPU_RATIO_GOAL`].
fn cpu_table(f: &RaftFigures) -> String {
    let mut out = String::from(
        "CPU per acknowledged write, microseconds (utime + stime of each server process from \
         /proc/<pid>/stat over the measured window, divided by the writes acknowledged in it; \
         the load generator not counted)\n",
    );
    let followers = f.cpu.first().map_or(2, |c| c.follower_ids.len());
    let _ = writeln!(
        out,
        "{:<40} {:>8} {:>8} {:>17} {:>9} {:>14} {:>8} {:>6}",
        "load",
        "single",
        "leader",
        format!("{followers} followers"),
        "cluster",
        "cluster/single",
        "goal",
        "result"
    );
    for c in &f.cpu {
        let name = load_name(c);
        let row = |what: &str, s: &CpuSplit, judged: bool| {
            let followers: Vec<String> = s.followers_us.iter().map(|v| format!("{v:.1}")).collect();
            let (goal, result) = if judged {
                (
                    format!("<= {CPU_RATIO_GOAL:.1}x"),
                    if c.cluster_ratio <= CPU_RATIO_GOAL {
                        "PASS"
                    } else {
                        "FAIL"
                    },
                )
            } else {
                (String::new(), "")
            };
            format!(
                "{:<40} {:>8.1} {:>8.1} {:>17} {:>9.1} {:>14} {goal:>8} {result:>6}\n",
                format!("{name}{what}"),
                s.single_us,
                s.leader_us,
                followers.join(" / "),
                s.cluster_us,
                format!("{:.2}x", c.cluster_ratio),
            )
        };
        if c.load.ends_with("batch") {
            out.push_str(&row(", per batch", &c.per_request, false));
            out.push_str(&row(", per entry", &c.per_write, true));
        } else {
            out.push_str(&row("", &c.per_write, true));
        }
    }
    out
}

/// A load's name in the CPU table, e.g. `PUT, always` or `batch of 100, interval=100`.
fn load_name(c: &CpuFigure) -> String {
    let fsync = if c.load.starts_with("interval") {
        "interval=100"
    } else {
        "always"
    };
    if c.load.ends_with("batch") {
        format!("batch of {}, {fsync}", c.writes_per_request)
    } else {
        format!("PUT, {fsync}")
    }
}
