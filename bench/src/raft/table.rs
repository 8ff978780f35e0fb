//! The human table of `koru-bench raft`: each figure beside its goal, PASS or FAIL.

use std::fmt::Write as _;

use super::{FAILOVER_GOAL_SECS, PUT_RATIO_GOAL, RaftArgs, RaftFigures};
use crate::report::thousands;

/// The human table.
pub(super) fn table(f: &RaftFigures, args: &RaftArgs) -> String {
    let judge = |pass: bool| String::from(if pass { "PASS" } else { "FAIL" });
    let rate = |v: f64, p99_us: f64| format!("{} ({:.2})", thousands(v), p99_us / 1000.0);
    let errors: u64 = f.loads.iter().map(|l| l.errors).sum();
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
            ">= 0.30x".into(),
            judge(f.put_ratio >= PUT_RATIO_GOAL),
        ],
        [
            format!("batch of {}, always, versions/s", f.batch_size),
            rate(f.single_batch_versions_per_sec, f.single_batch_p99_us),
            rate(f.raft_batch_versions_per_sec, f.raft_batch_p99_us),
            format!("{:.2}x", f.batch_ratio),
            "report".into(),
            "INFO".into(),
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
            judge(f.failover_p50_secs < FAILOVER_GOAL_SECS),
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
            "INFO".into(),
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
            judge(f.handover_failed == 0),
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
