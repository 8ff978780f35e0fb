//! The human table of `koru-bench regions`: each figure beside its goal (PASS or FAIL where the
//! issue sets one, INFO otherwise); a part not run shows `-`.

use std::fmt::Write as _;

use super::{RegionsArgs, RegionsFigures, SOURCE_RATIO_GOAL};
use crate::report::thousands;

/// The human table.
pub(super) fn table(f: &RegionsFigures, args: &RegionsArgs) -> String {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let ms = |v: Option<f64>| or_dash(v.map(|v| format!("{v:.1} ms")));
    let per_sec = |v: Option<f64>| or_dash(v.map(|v| format!("{}/s", thousands(v))));
    let times = |v: Option<f64>| or_dash(v.map(|v| format!("{v:.2}x")));
    let judge = |v: Option<f64>, min: f64| match v {
        Some(v) if v >= min => "PASS",
        Some(_) => "FAIL",
        None => "-",
    };
    let info = |v: Option<f64>| if v.is_some() { "INFO" } else { "-" };
    let rows: Vec<[String; 4]> = vec![
        [
            format!("lag p50, {} ms link, {} writes/s", f.delay_ms, f.rate),
            ms(f.lag_p50_ms),
            "report".into(),
            info(f.lag_p50_ms).into(),
        ],
        [
            format!("lag p99 (max {})", ms(f.lag_max_ms)),
            ms(f.lag_p99_ms),
            "report".into(),
            info(f.lag_p99_ms).into(),
        ],
        [
            format!(
                "catch-up after {} s cut, {} behind",
                or_dash(f.partition_secs.map(|s| s.to_string())),
                or_dash(f.catchup_backlog.map(|b| thousands(b as f64)))
            ),
            or_dash(
                f.catchup_versions_per_sec
                    .map(|v| format!("{} v/s", thousands(v))),
            ),
            "report".into(),
            info(f.catchup_versions_per_sec).into(),
        ],
        [
            "  heal -> first page / caught up".into(),
            or_dash(
                f.catchup_reconnect_secs
                    .zip(f.catchup_total_secs)
                    .map(|(r, t)| format!("{r:.2} / {t:.2} s")),
            ),
            String::new(),
            String::new(),
        ],
        [
            format!(
                "PUT, one region (p99 {})",
                ms(f.put_p99_us.map(|v| v / 1000.0))
            ),
            per_sec(f.put_per_sec),
            String::new(),
            String::new(),
        ],
        [
            format!(
                "PATCH increment (p99 {})",
                ms(f.patch_p99_us.map(|v| v / 1000.0))
            ),
            per_sec(f.patch_per_sec),
            String::new(),
            String::new(),
        ],
        [
            "CRDT PATCH / PUT".into(),
            times(f.patch_ratio),
            "report".into(),
            info(f.patch_ratio).into(),
        ],
        [
            "source PUT, nobody streaming".into(),
            per_sec(f.source_alone_put_per_sec),
            String::new(),
            String::new(),
        ],
        [
            "source PUT, 2 peers streaming".into(),
            per_sec(f.source_peers_put_per_sec),
            String::new(),
            String::new(),
        ],
        [
            "  peers streaming / nobody".into(),
            times(f.source_peers_ratio),
            format!(">= {SOURCE_RATIO_GOAL:.2}x"),
            judge(f.source_peers_ratio, SOURCE_RATIO_GOAL).into(),
        ],
        [
            "  2 feed readers / nobody".into(),
            times(f.source_readers_ratio),
            "report".into(),
            info(f.source_readers_ratio).into(),
        ],
    ];
    let mut out = format!(
        "\nregions: single-node regions on loopback, the a->b link delayed {} ms each way by a \
         proxy in this process; lag and catch-up under {} writes/s on a; throughput figures {} \
         connections, {} s x {} rounds; every process shares this machine's cores, so the \
         figures are indicative\n",
        f.delay_ms, f.rate, args.connections, args.secs, args.rounds
    );
    for [name, value, goal, result] in &rows {
        let _ = writeln!(out, "{name:<44} {value:>18} {goal:>9} {result:>6}");
    }
    let errors: u64 = f.loads.iter().map(|l| l.errors).sum();
    let _ = writeln!(
        out,
        "load errors: {errors}; steady writes failed in the lag window: {}; peers held a's last \
         LSN at most {} after a load",
        or_dash(f.lag_write_errors.map(|e| e.to_string())),
        or_dash(f.source_peers_settle_max_secs.map(|s| format!("{s:.2} s")))
    );
    out
}
