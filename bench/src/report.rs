//! Result records (one JSON file per measurement) and the final table of targets with PASS/FAIL.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::BenchError;
use crate::histogram::Histogram;

/// One throughput measurement: what the `http` and `embedded` subcommands print with `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// What was measured, e.g. `http put`.
    pub name: String,
    /// Requests (or store write calls) completed per second.
    pub requests_per_sec: f64,
    /// Versions written per second (requests times batch size; 0 for reads).
    pub versions_per_sec: f64,
    /// Median latency of one request, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: f64,
    /// Worst latency, microseconds.
    pub max_us: f64,
    /// Requests counted.
    pub requests: u64,
    /// Requests that failed or got a non-2xx answer.
    pub errors: u64,
    /// Length of the measured window, seconds.
    pub elapsed_secs: f64,
    /// CPU this tool's process used, in percent of one core: the load generator alone for `http`
    /// (it shares the machine with the server), the store and its writers for `embedded`.
    pub process_cpu_percent: f64,
    /// CPU microseconds each `--cpu-pid` process used during the measured window, in the order
    /// given (utime + stime from `/proc/<pid>/stat`; `http` runs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_cpu_us: Vec<u64>,
    /// How the store's commit thread grouped the writes (embedded runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitStats>,
}

/// The commit thread's own counters over a run, from the store's metrics.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CommitStats {
    /// Group commits (one log append each).
    pub groups: u64,
    /// Write calls per group commit, on average.
    pub mean_group_size: f64,
    /// Fsyncs of the log.
    pub fsyncs: u64,
    /// Mean duration of one fsync, microseconds.
    pub mean_fsync_us: f64,
}

impl Figures {
    /// Builds the record from a merged latency histogram.
    pub fn new(name: String, hist: &Histogram, versions: u64, errors: u64, elapsed: f64) -> Self {
        let us = |nanos: u64| nanos as f64 / 1000.0;
        let secs = elapsed.max(1e-9);
        Figures {
            name,
            requests_per_sec: hist.count() as f64 / secs,
            versions_per_sec: versions as f64 / secs,
            p50_us: us(hist.quantile(0.5)),
            p99_us: us(hist.quantile(0.99)),
            p999_us: us(hist.quantile(0.999)),
            max_us: us(hist.max()),
            requests: hist.count(),
            errors,
            elapsed_secs: elapsed,
            process_cpu_percent: 0.0,
            server_cpu_us: Vec::new(),
            commit: None,
        }
    }

    /// The one human-readable line.
    pub fn human(&self) -> String {
        let commit = self.commit.map_or_else(String::new, |c| {
            format!(
                "; {} group commits of {:.1} writes on average, {} fsyncs of {:.0} µs on average",
                c.groups, c.mean_group_size, c.fsyncs, c.mean_fsync_us
            )
        });
        format!(
            "{}: {:.0} req/s, {:.0} versions/s, latency p50 {:.3} ms p99 {:.3} ms p99.9 {:.3} ms max {:.3} ms, \
             {} requests, {} errors in {:.1} s (this process: {:.0}% of a core){commit}",
            self.name,
            self.requests_per_sec,
            self.versions_per_sec,
            self.p50_us / 1000.0,
            self.p99_us / 1000.0,
            self.p999_us / 1000.0,
            self.max_us / 1000.0,
            self.requests,
            self.errors,
            self.elapsed_secs,
            self.process_cpu_percent,
        )
    }
}

/// Prints a result: the human line on stderr, and the JSON record on stdout when asked for, so a
/// script can redirect stdout into a results file and still show progress.
pub fn emit<T: Serialize>(human: &str, record: &T, json: bool) -> Result<(), BenchError> {
    eprintln!("{human}");
    if json {
        let text = serde_json::to_string(record).map_err(|source| BenchError::Json {
            context: "encoding the result".into(),
            source,
        })?;
        println!("{text}");
    }
    Ok(())
}

/// CPU time this process has used (user plus system), in seconds, from `/proc/self/stat`.
pub fn process_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_cpu_micros(&stat))
        .map_or(0.0, |us| us as f64 / 1e6)
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times: Linux reports them in USER_HZ, which
/// is 100 on every architecture it supports.
const USER_HZ: u64 = 100;

/// CPU time process `pid` has used so far (user plus system, every thread, exited ones
/// included), in microseconds, from `/proc/<pid>/stat`; None once it is gone. The kernel
/// counts in clock ticks, so the figure moves in steps of 10 ms.
pub fn pid_cpu_micros(pid: u32) -> Option<u64> {
    stat_cpu_micros(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime of a `/proc/<pid>/stat` line, in microseconds.
fn stat_cpu_micros(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces, so fields are counted after its closing paren.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the paren.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some((ticks(11)? + ticks(12)?) * (1_000_000 / USER_HZ))
}

/// How a target row is judged.
#[derive(Clone, Copy)]
enum Goal {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be below this.
    Below(f64),
    /// Reported only.
    Info,
}

/// One row of the final table.
struct Row {
    target: &'static str,
    /// The judged value, None when a measurement is missing.
    value: Option<f64>,
    /// How the value is shown, e.g. `0.83x` or `612,000 versions/s`.
    shown: String,
    /// The figures the value came from.
    detail: String,
    goal: Goal,
    goal_text: &'static str,
    /// Whether a missing value means the measurement was skipped on purpose rather than failed.
    optional: bool,
}

/// The result files of one run, read as loose JSON so hand-made records (Redis, wrk) fit too.
struct Results<'a> {
    dir: &'a Path,
}

impl Results<'_> {
    /// A field of a measurement; a file holding several rounds (one JSON line each) gives the
    /// time-weighted mean for rates and the plain mean for everything else.
    fn field(&self, file: &str, field: &str) -> Option<f64> {
        let text = std::fs::read_to_string(self.dir.join(format!("{file}.json"))).ok()?;
        combine(&text, field)
    }
}

/// Combines one field over the JSON lines of a result file (see [`Results::field`]).
fn combine(text: &str, field: &str) -> Option<f64> {
    let rounds: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let values: Vec<(f64, f64)> = rounds
        .iter()
        .filter_map(|r| {
            let v = r.get(field)?;
            // Flags (the restart's `cold`) count as 1 or 0.
            let v = v.as_f64().or_else(|| v.as_bool().map(f64::from))?;
            let weight = r.get("elapsed_secs").and_then(Value::as_f64).unwrap_or(1.0);
            Some((v, weight))
        })
        .collect();
    if values.is_empty() {
        return None;
    }
    if field.ends_with("_per_sec") {
        let time: f64 = values.iter().map(|(_, w)| w).sum();
        if time > 0.0 {
            return Some(values.iter().map(|(v, w)| v * w).sum::<f64>() / time);
        }
    }
    Some(values.iter().map(|(v, _)| v).sum::<f64>() / values.len() as f64)
}

/// Formats a number with thousands separators.
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A target judged on `num / den` of one field of two measurements.
struct Ratio {
    target: &'static str,
    num: &'static str,
    den: &'static str,
    field: &'static str,
    unit: &'static str,
    goal: Goal,
    goal_text: &'static str,
    /// Whether the row may be skipped (kdelta, cross-checks); see [`Row::optional`].
    optional: bool,
    /// Append both measurements' p99 latency to the detail.
    p99: bool,
}

/// Shorthand for the table below.
const fn ratio(
    target: &'static str,
    (num, den): (&'static str, &'static str),
    field: &'static str,
    goal: Goal,
    goal_text: &'static str,
) -> Ratio {
    let unit = if field.as_bytes()[0] == b'r' {
        "req/s"
    } else {
        "versions/s"
    };
    Ratio {
        target,
        num,
        den,
        field,
        unit,
        goal,
        goal_text,
        optional: matches!(goal, Goal::Info),
        p99: false,
    }
}

const RPS: &str = "requests_per_sec";
const VPS: &str = "versions_per_sec";

/// The ratio targets, in table order; the absolute targets are built in [`rows`].
const RATIOS: [Ratio; 8] = [
    ratio(
        "HTTP PUT vs bare axum ceiling",
        ("dataplane_put", "ceiling_put"),
        RPS,
        Goal::AtLeast(0.7),
        ">= 0.70x",
    ),
    ratio(
        "HTTP PUT vs Redis SET",
        ("dataplane_put", "redis_set"),
        RPS,
        Goal::AtLeast(0.5),
        ">= 0.50x",
    ),
    ratio(
        "HTTP GET vs Redis GET",
        ("dataplane_get", "redis_get"),
        RPS,
        Goal::AtLeast(0.5),
        ">= 0.50x",
    ),
    ratio(
        "HTTP GET vs bare axum ceiling",
        ("dataplane_get", "ceiling_get"),
        RPS,
        Goal::Info,
        "report",
    ),
    ratio(
        "wrk cross-check: PUT vs ceiling",
        ("wrk_dataplane_put", "wrk_ceiling_put"),
        RPS,
        Goal::Info,
        "report",
    ),
    ratio(
        "HTTP batch vs Redis SET -P 16",
        ("dataplane_batch", "redis_set_pipelined"),
        VPS,
        Goal::Info,
        "report",
    ),
    ratio(
        "HTTP PUT vs koru-delta 3.0.1",
        ("dataplane_put", "kdelta_put"),
        RPS,
        Goal::Info,
        "report",
    ),
    ratio(
        "HTTP GET vs koru-delta 3.0.1",
        ("dataplane_get", "kdelta_get"),
        RPS,
        Goal::Info,
        "report",
    ),
];

/// Durability targets: fsync always over interval, same load. The judged one is the embedded
/// batched load (100 puts per write) with 32 writers; single puts are reported too, though with
/// one write in flight per writer their rate is capped at 32 / fsync latency whatever the store does.
const FSYNC_RATIOS: [Ratio; 3] = [
    Ratio {
        p99: true,
        optional: false,
        ..ratio(
            "fsync always/interval, 32 writers x 100",
            ("embedded_always_b100", "embedded_interval_b100"),
            VPS,
            Goal::AtLeast(0.5),
            ">= 0.50x",
        )
    },
    Ratio {
        p99: true,
        ..ratio(
            "fsync always/interval, 32 writers x 1",
            ("embedded_always", "embedded_interval"),
            VPS,
            Goal::Info,
            "report",
        )
    },
    Ratio {
        p99: true,
        ..ratio(
            "fsync always/interval, HTTP PUT x 32",
            ("dataplane_put_always", "dataplane_put"),
            VPS,
            Goal::Info,
            "report",
        )
    },
];

/// Milliseconds of a latency field, or `n/a`.
fn ms(r: &Results<'_>, file: &str, field: &str) -> String {
    r.field(file, field)
        .map_or_else(|| "n/a".into(), |v| format!("{:.2}", v / 1000.0))
}

/// Evaluates a ratio target.
fn ratio_row(r: &Results<'_>, spec: &Ratio) -> Row {
    let (a, b) = (r.field(spec.num, spec.field), r.field(spec.den, spec.field));
    let value = match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), thousands);
    let mut detail = format!("{} / {} {}", show(a), show(b), spec.unit);
    if spec.p99 {
        let _ = write!(
            detail,
            "; p99 {} / {} ms",
            ms(r, spec.num, "p99_us"),
            ms(r, spec.den, "p99_us")
        );
    }
    Row {
        target: spec.target,
        value,
        shown: value.map_or_else(|| "n/a".into(), |v| format!("{v:.2}x")),
        detail,
        goal: spec.goal,
        goal_text: spec.goal_text,
        optional: spec.optional,
    }
}

/// A row judging one absolute figure.
fn absolute_row(
    target: &'static str,
    value: Option<f64>,
    shown: String,
    detail: String,
    (goal, goal_text): (Goal, &'static str),
) -> Row {
    Row {
        target,
        value,
        shown,
        detail,
        goal,
        goal_text,
        optional: false,
    }
}

/// Builds every row of the table from the result files in `dir`.
fn rows(r: &Results<'_>) -> Vec<Row> {
    let per_sec =
        |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{}/s", thousands(v)));
    let mut rows: Vec<Row> = RATIOS[..5].iter().map(|spec| ratio_row(r, spec)).collect();
    let batch = r.field("dataplane_batch", VPS);
    rows.push(absolute_row(
        "HTTP batch of 1000, versions/s",
        batch,
        per_sec(batch),
        format!("p99 {} ms per batch", ms(r, "dataplane_batch", "p99_us")),
        (Goal::AtLeast(500_000.0), ">= 500,000/s"),
    ));
    rows.push(ratio_row(r, &RATIOS[5]));
    let embedded = r.field("embedded_batch_interval", VPS);
    rows.push(absolute_row(
        "embedded puts, batches of 100",
        embedded,
        per_sec(embedded),
        format!(
            "--fsync interval, p99 {} ms",
            ms(r, "embedded_batch_interval", "p99_us")
        ),
        (Goal::AtLeast(1_000_000.0), ">= 1,000,000/s"),
    ));
    rows.extend(FSYNC_RATIOS.iter().map(|spec| ratio_row(r, spec)));
    let open = r.field("restart", "open_secs");
    let per = |f: &str| {
        r.field("restart", f)
            .map_or_else(|| "n/a".into(), |v| format!("{v:.0}"))
    };
    let versions = r
        .field("restart", "versions")
        .map_or_else(|| "n/a".into(), thousands);
    rows.push(absolute_row(
        "restart (Store::open), 10M versions",
        open,
        open.map_or_else(|| "n/a".into(), |v| format!("{v:.2} s")),
        format!(
            "{versions} versions, {} page cache; {} B/version, {} B/key RSS",
            if r.field("restart", "cold").is_some_and(|c| c > 0.0) {
                "cold"
            } else {
                "warm"
            },
            per("bytes_per_version"),
            per("bytes_per_key")
        ),
        (Goal::Below(10.0), "< 10 s"),
    ));
    let b = |field: &str| r.field("backup", field);
    let archive = b("archive_mb_per_sec");
    rows.push(absolute_row(
        "archive throughput (file store)",
        archive,
        archive.map_or_else(|| "n/a".into(), |v| format!("{v:.0} MB/s")),
        format!(
            "{} MB of log archived and sealed by a base backup",
            b("log_bytes").map_or_else(|| "n/a".into(), |v| format!("{:.0}", v / 1e6))
        ),
        (Goal::AtLeast(100.0), ">= 100 MB/s"),
    ));
    let restore = b("restore_versions_per_sec");
    rows.push(absolute_row(
        "restore, versions/s replayed",
        restore,
        per_sec(restore),
        format!(
            "{} MB/s downloaded and verified",
            b("restore_mb_per_sec").map_or_else(|| "n/a".into(), |v| format!("{v:.0}"))
        ),
        (Goal::AtLeast(500_000.0), ">= 500,000/s"),
    ));
    let rpo = b("rpo_max_secs");
    rows.push(absolute_row(
        "recovery point, max (1 s timeout)",
        rpo,
        rpo.map_or_else(|| "n/a".into(), |v| format!("{v:.2} s")),
        format!(
            "median {} s under steady writes, --archive-timeout {} s",
            b("rpo_p50_secs").map_or_else(|| "n/a".into(), |v| format!("{v:.2}")),
            b("archive_timeout_secs").map_or_else(|| "n/a".into(), |v| format!("{v:.1}"))
        ),
        (Goal::Below(2.0), "< 2 s"),
    ));
    let raft = |field: &str| r.field("raft", field);
    let failover = raft("failover_p50_secs");
    rows.push(absolute_row(
        "failover, median (3 members)",
        failover,
        failover.map_or_else(|| "n/a".into(), |v| format!("{v:.2} s")),
        format!(
            "leader SIGKILLed -> first acknowledged write; max {} s",
            raft("failover_max_secs").map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
        ),
        (Goal::Below(5.0), "< 5 s"),
    ));
    let x = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}x"));
    let put_ratio = raft("put_ratio");
    rows.push(absolute_row(
        "3 members / 1 node, PUT",
        put_ratio,
        x(put_ratio),
        "both fsync every write".into(),
        (Goal::AtLeast(0.35), ">= 0.35x"),
    ));
    let batch_ratio = raft("batch_ratio");
    rows.push(absolute_row(
        "3 members / 1 node, batch of 100",
        batch_ratio,
        x(batch_ratio),
        "versions/s; both fsync every write".into(),
        (Goal::AtLeast(0.5), ">= 0.50x"),
    ));
    // The worst of the four: PUTs and batch entries, `always` and `interval=100`.
    let cpu = [
        "put_cpu_ratio",
        "batch_cpu_ratio",
        "interval_put_cpu_ratio",
        "interval_batch_cpu_ratio",
    ]
    .map(raft);
    let worst = cpu
        .iter()
        .copied()
        .collect::<Option<Vec<f64>>>()
        .and_then(|v| v.into_iter().reduce(f64::max));
    rows.push(absolute_row(
        "cluster CPU per write / 1 node",
        worst,
        x(worst),
        format!(
            "worst of PUT {} / batch entry {} (always), PUT {} / batch entry {} (interval)",
            x(cpu[0]),
            x(cpu[1]),
            x(cpu[2]),
            x(cpu[3])
        ),
        (Goal::Below(2.5), "<= 2.5x"),
    ));
    let gateway = |field: &str| r.field("gateway", field);
    let through = gateway("put_ratio")
        .zip(gateway("get_ratio"))
        .map(|(p, g)| p.min(g));
    let shown =
        |v: Option<f64>, unit: &str| v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}{unit}"));
    rows.push(absolute_row(
        "through the gateway / direct",
        through,
        shown(through, "x"),
        format!(
            "PUT {}, GET {}; added p99 PUT {} ms, GET {} ms",
            shown(gateway("put_ratio"), "x"),
            shown(gateway("get_ratio"), "x"),
            shown(gateway("put_added_p99_us").map(|v| v / 1000.0), ""),
            shown(gateway("get_added_p99_us").map(|v| v / 1000.0), ""),
        ),
        (Goal::AtLeast(0.70), ">= 0.70x"),
    ));
    rows.extend(region_rows(r));
    rows.extend(RATIOS[6..].iter().map(|spec| ratio_row(r, spec)));
    rows
}

/// The multi-region rows (`koru-bench regions`): the lag, catch-up and CRDT figures are
/// reported; the source's throughput with two peers streaming is judged.
fn region_rows(r: &Results<'_>) -> Vec<Row> {
    let g = |field: &str| r.field("regions", field);
    let shown = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "n/a".into(), f);
    let info = |target, value: Option<f64>, text: String, detail: String| Row {
        optional: true,
        ..absolute_row(target, value, text, detail, (Goal::Info, "report"))
    };
    let lag = g("lag_p99_ms");
    let catch_up = g("catchup_versions_per_sec");
    let patch = g("patch_ratio");
    let source = g("source_peers_ratio");
    vec![
        info(
            "region lag p99, delayed link",
            lag,
            shown(lag, &|v| format!("{v:.0} ms")),
            format!(
                "p50 {} ms; {} ms one-way delay, {} writes/s",
                shown(g("lag_p50_ms"), &|v| format!("{v:.0}")),
                shown(g("delay_ms"), &|v| format!("{v:.0}")),
                shown(g("rate"), &|v| format!("{v:.0}")),
            ),
        ),
        info(
            "region catch-up after a partition",
            catch_up,
            shown(catch_up, &|v| format!("{}/s", thousands(v))),
            format!(
                "versions/s; {} behind after {} s cut, caught up {} s after the heal",
                shown(g("catchup_backlog"), &thousands),
                shown(g("partition_secs"), &|v| format!("{v:.0}")),
                shown(g("catchup_total_secs"), &|v| format!("{v:.1}")),
            ),
        ),
        info(
            "CRDT PATCH increment / PUT",
            patch,
            shown(patch, &|v| format!("{v:.2}x")),
            format!(
                "{} / {} req/s, one region",
                shown(g("patch_per_sec"), &thousands),
                shown(g("put_per_sec"), &thousands)
            ),
        ),
        absolute_row(
            "source PUT, 2 regions streaming / none",
            source,
            shown(source, &|v| format!("{v:.2}x")),
            format!(
                "{} / {} req/s; 2 bare feed readers {}",
                shown(g("source_peers_put_per_sec"), &thousands),
                shown(g("source_alone_put_per_sec"), &thousands),
                shown(g("source_readers_ratio"), &|v| format!("{v:.2}x")),
            ),
            (Goal::AtLeast(0.9), ">= 0.90x"),
        ),
    ]
}

/// Prints every measurement and the table of targets; returns whether every target passed.
pub fn table(dir: &Path) -> Result<bool, BenchError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(BenchError::io(format!("reading {}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let r = Results { dir };
    println!();
    println!(
        "{:<28} {:>12} {:>14} {:>9} {:>9} {:>10} {:>7}",
        "measurement", "req/s", "versions/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    );
    for path in &files {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if ["restart", "backup", "raft", "gateway", "regions"].contains(&name) {
            continue;
        }
        let f = |field: &str| r.field(name, field);
        let ms =
            |field: &str| f(field).map_or_else(|| "-".into(), |v| format!("{:.3}", v / 1000.0));
        let count = |field: &str| f(field).map_or_else(|| "-".into(), thousands);
        println!(
            "{:<28} {:>12} {:>14} {:>9} {:>9} {:>10} {:>7}",
            name,
            count("requests_per_sec"),
            count("versions_per_sec"),
            ms("p50_us"),
            ms("p99_us"),
            ms("p999_us"),
            count("errors"),
        );
    }
    if let Some(open) = r.field("restart", "open_secs") {
        let f = |field: &str| r.field("restart", field).unwrap_or(0.0);
        println!(
            "restart: {} versions / {} keys opened in {open:.2} s; RSS {:.0} MiB -> {:.0} MiB \
             (peak {:.0} MiB): {:.1} B/version, {:.1} B/key",
            thousands(f("versions")),
            thousands(f("keys")),
            f("rss_before_bytes") / 1048576.0,
            f("rss_after_bytes") / 1048576.0,
            f("peak_rss_bytes") / 1048576.0,
            f("bytes_per_version"),
            f("bytes_per_key"),
        );
    }
    println!();
    println!(
        "{:<40} {:>12} {:>14} {:>6}  from",
        "target", "measured", "goal", "result"
    );
    let mut all = true;
    for row in rows(&r) {
        let result = match (&row.goal, row.value) {
            (_, None) if row.optional => "SKIP",
            (Goal::Info, Some(_)) => "INFO",
            (Goal::AtLeast(min), Some(v)) if v >= *min => "PASS",
            (Goal::Below(max), Some(v)) if v < *max => "PASS",
            _ => "FAIL",
        };
        all &= result != "FAIL";
        println!(
            "{:<40} {:>12} {:>14} {:>6}  {}",
            row.target, row.shown, row.goal_text, result, row.detail
        );
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name_in_microseconds() {
        // A command name with spaces and a parenthesis; utime 250, stime 50 ticks.
        let stat = "42 (tokio (rt) 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(stat_cpu_micros(stat), Some(3_000_000));
        assert_eq!(stat_cpu_micros("42 (x) S 1"), None);
        let me = pid_cpu_micros(std::process::id());
        assert!(me.is_some(), "this process's own stat is readable");
        assert_eq!(pid_cpu_micros(u32::MAX), None);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(-1000.0), "-1,000");
    }

    #[test]
    fn rounds_combine_rates_by_time_and_latencies_by_mean() {
        let text = "{\"requests_per_sec\": 100.0, \"elapsed_secs\": 1.0, \"p99_us\": 10.0}\n\
                    {\"requests_per_sec\": 400.0, \"elapsed_secs\": 3.0, \"p99_us\": 30.0}\n";
        assert_eq!(combine(text, "requests_per_sec"), Some(325.0));
        assert_eq!(combine(text, "p99_us"), Some(20.0));
        assert_eq!(combine(text, "missing"), None);
    }

    #[test]
    fn table_judges_ratios_and_marks_missing_optional_rows_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            std::fs::write(dir.path().join(format!("{name}.json")), body).unwrap()
        };
        write("ceiling_put", r#"{"requests_per_sec": 100.0}"#);
        write("dataplane_put", r#"{"requests_per_sec": 80.0}"#);
        let r = Results { dir: dir.path() };
        let rows = rows(&r);
        assert!(matches!(rows[0].value, Some(v) if (v - 0.8).abs() < 1e-9));
        let kdelta = rows.last().unwrap();
        assert!(kdelta.optional && kdelta.value.is_none());
        assert!(
            !table(dir.path()).unwrap(),
            "missing measurements must fail"
        );
    }

    #[test]
    fn region_rows_report_lag_and_judge_the_source_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let r = Results { dir: dir.path() };
        let missing = region_rows(&r);
        assert!(
            missing[..3]
                .iter()
                .all(|row| row.optional && row.value.is_none())
        );
        assert!(
            !missing[3].optional,
            "the judged row must fail when missing"
        );
        // One record per line, as the benchmark appends it.
        std::fs::write(
            dir.path().join("regions.json"),
            concat!(
                r#"{"lag_p99_ms": 180.4, "lag_p50_ms": 120.0, "delay_ms": 50, "rate": 500, "#,
                r#""catchup_versions_per_sec": null, "source_peers_ratio": 0.95}"#
            ),
        )
        .unwrap();
        let rows = region_rows(&r);
        assert!(matches!(rows[0].value, Some(v) if (v - 180.4).abs() < 1e-9));
        assert_eq!(rows[0].shown, "180 ms");
        assert!(rows[1].value.is_none());
        assert!(matches!(rows[3].goal, Goal::AtLeast(g) if rows[3].value.unwrap() >= g));
    }
}
