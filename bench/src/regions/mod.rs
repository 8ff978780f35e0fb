//! Multi-region: replication lag over a delayed link under a steady write load, catch-up speed
//! after a partition, CRDT operation throughput against plain PUTs, and what the replication
//! streams cost the source region's write throughput. Every region is a real `koru-dataplane`
//! child process on loopback (a single node each); the link between two regions is a delaying,
//! cuttable TCP proxy in this process; throughput loads are `koru-bench http` child processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use koru_testkit::Process;
use serde::Serialize;

use crate::error::BenchError;
use crate::raft::cluster::{self, free_port, start_server};
use crate::report::{self, Figures};

mod lag;
mod proxy;
mod source;
mod stats;
mod table;

use proxy::LinkProxy;
use stats::{mean, percentile, ratio};

/// How long a reader may take to catch up with a source before the run fails.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);
/// Target: the source's PUT throughput with two peers streaming, over alone.
const SOURCE_RATIO_GOAL: f64 = 0.9;

/// The parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// Replication lag under the steady load over the delayed link.
    Lag,
    /// Catch-up after cutting the link for `--partition-secs`.
    Partition,
    /// CRDT PATCH increments against plain PUTs on one region.
    Crdt,
    /// The source's PUT throughput alone, with two peers streaming, with two feed readers.
    Source,
}

/// Arguments of `koru-bench regions`.
#[derive(Debug, Clone, Args)]
pub struct RegionsArgs {
    /// Scratch directory for the servers' data and logs; must be absent or empty. A new
    /// directory under the system's temporary directory when not given. Removed after a
    /// successful run, kept (with the server logs) after a failed one.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The `koru-dataplane` binary; the one beside this executable when not given.
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Measured seconds per figure: the lag window and each throughput load (after 1 s of
    /// warm-up).
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// How long the link is cut while the source takes writes.
    #[arg(long, default_value_t = 60)]
    pub partition_secs: u64,
    /// Writes per second of the steady load on the source (lag and partition).
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// One-way delay of the link between the two regions, in each direction, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub delay_ms: u64,
    /// Rounds of the throughput figures, interleaved so other load on the machine hits both
    /// sides of a ratio alike.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Concurrent keep-alive connections of the throughput loads.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Run only these parts (comma-separated); all when not given.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Phase>,
    /// Also print the result as one JSON line on stdout (the table then goes to stderr).
    #[arg(long)]
    pub json: bool,
}

impl RegionsArgs {
    fn runs(&self, phase: Phase) -> bool {
        self.only.is_empty() || self.only.contains(&phase)
    }
}

/// What `koru-bench regions` reports; a part not run leaves its fields null.
#[derive(Debug, Default, Serialize)]
pub struct RegionsFigures {
    /// One-way delay of the link, each direction, milliseconds.
    pub delay_ms: u64,
    /// Writes per second of the steady load.
    pub rate: u32,
    /// Lag samples (writes acknowledged in the window).
    pub lag_samples: Option<u64>,
    /// Median time from a's acknowledgement to b's watermark covering the write, ms.
    pub lag_p50_ms: Option<f64>,
    /// 99th percentile of that, ms.
    pub lag_p99_ms: Option<f64>,
    /// Longest of that, ms.
    pub lag_max_ms: Option<f64>,
    /// Steady-load writes that failed during the lag window.
    pub lag_write_errors: Option<u64>,
    /// Seconds the link was cut.
    pub partition_secs: Option<u64>,
    /// Records b was behind at the heal.
    pub catchup_backlog: Option<u64>,
    /// Seconds from the heal to b's first page (the stream's back-off noticing the link).
    pub catchup_reconnect_secs: Option<f64>,
    /// Seconds from the heal to b holding a's last LSN at the heal.
    pub catchup_total_secs: Option<f64>,
    /// Versions per second b applied while catching up (after its first page).
    pub catchup_versions_per_sec: Option<f64>,
    /// Single PUTs per second on one region (mean of the rounds).
    pub put_per_sec: Option<f64>,
    /// PATCH increments per second on one region, same load.
    pub patch_per_sec: Option<f64>,
    /// `patch_per_sec / put_per_sec`.
    pub patch_ratio: Option<f64>,
    /// p99 of a PUT, microseconds.
    pub put_p99_us: Option<f64>,
    /// p99 of a PATCH, microseconds.
    pub patch_p99_us: Option<f64>,
    /// The source's PUTs per second with nobody streaming from it.
    pub source_alone_put_per_sec: Option<f64>,
    /// The same with peers b and c streaming from it.
    pub source_peers_put_per_sec: Option<f64>,
    /// `source_peers_put_per_sec / source_alone_put_per_sec`.
    pub source_peers_ratio: Option<f64>,
    /// The same with two feed readers making the streams' requests and applying nothing.
    pub source_readers_put_per_sec: Option<f64>,
    /// `source_readers_put_per_sec / source_alone_put_per_sec`.
    pub source_readers_ratio: Option<f64>,
    /// Longest time after a peers load until both peers held a's last LSN, seconds.
    pub source_peers_settle_max_secs: Option<f64>,
    /// Every throughput load in full.
    pub loads: Vec<Figures>,
}

/// Checks ranges clap cannot.
fn validate(args: &RegionsArgs) -> Result<(), BenchError> {
    let bad = |m: &str| Err(BenchError::Usage(m.into()));
    if !(1..=3600).contains(&args.secs) {
        return bad("--secs must be between 1 and 3600");
    }
    if !(1..=3600).contains(&args.partition_secs) {
        return bad("--partition-secs must be between 1 and 3600");
    }
    if !(1..=20_000).contains(&args.rate) {
        return bad("--rate must be between 1 and 20000 writes per second");
    }
    if args.delay_ms > 10_000 {
        return bad("--delay-ms must be at most 10000");
    }
    if !(1..=100).contains(&args.rounds) {
        return bad("--rounds must be between 1 and 100");
    }
    if !(1..=1024).contains(&args.connections) {
        return bad("--connections must be between 1 and 1024");
    }
    Ok(())
}

/// The server binary (see [`cluster::server_binary`]).
fn server_binary(args: &RegionsArgs) -> Result<PathBuf, BenchError> {
    cluster::server_binary(args.server.as_deref())
}

/// The scratch directory (see [`cluster::work_dir`]).
fn work_dir(args: &RegionsArgs) -> Result<PathBuf, BenchError> {
    cluster::work_dir(args.work_dir.as_deref(), "regions")
}

/// Starts region `name` on `port` with its data in `dir`, streaming from `peers`
/// (`(name, URL)`).
async fn start_region(
    binary: &Path,
    dir: &Path,
    name: &str,
    port: u16,
    peers: &[(&str, &str)],
) -> Result<Process, BenchError> {
    let mut extra = vec!["--region".to_string(), name.to_string()];
    for (peer, url) in peers {
        extra.push("--region-peer".into());
        extra.push(format!("{peer}={url}"));
    }
    start_server(binary, dir, port, &extra).await
}

/// An HTTP client keeping connections, as a region stream's does.
fn client() -> Result<reqwest::Client, BenchError> {
    // reqwest is built with rustls but no provider; plain http still wants one named.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| BenchError::Target(format!("building the HTTP client: {e}")))
}

/// Lag and partition on one pair: a, and b streaming from a through the delaying proxy.
async fn pair(
    args: &RegionsArgs,
    binary: &Path,
    work: &Path,
    http: &reqwest::Client,
    f: &mut RegionsFigures,
) -> Result<(), BenchError> {
    let port_a = free_port()?;
    let a = format!("http://127.0.0.1:{port_a}");
    let _a = start_region(binary, &work.join("a"), "a", port_a, &[]).await?;
    let target: SocketAddr = ([127, 0, 0, 1], port_a).into();
    let link = LinkProxy::start(target, Duration::from_millis(args.delay_ms)).await?;
    let port_b = free_port()?;
    let b = format!("http://127.0.0.1:{port_b}");
    let via = format!("http://{}", link.addr);
    let _b = start_region(binary, &work.join("b"), "b", port_b, &[("a", via.as_str())]).await?;
    if args.runs(Phase::Lag) {
        eprintln!(
            "lag: {} writes/s on a, b streaming over a {} ms link, {} s",
            args.rate, args.delay_ms, args.secs
        );
        let run = lag::lag(http, &a, &b, args.rate, args.secs).await?;
        let ms = |q: f64| percentile(&run.samples, q).map(|s| s * 1000.0);
        f.lag_samples = Some(run.samples.len() as u64);
        f.lag_p50_ms = ms(0.5);
        f.lag_p99_ms = ms(0.99);
        f.lag_max_ms = ms(1.0);
        f.lag_write_errors = Some(run.failed);
        eprintln!(
            "  {} writes acknowledged ({} failed); lag p50 {:.1} ms, p99 {:.1} ms",
            run.ok,
            run.failed,
            f.lag_p50_ms.unwrap_or(0.0),
            f.lag_p99_ms.unwrap_or(0.0)
        );
    }
    if args.runs(Phase::Partition) {
        eprintln!(
            "partition: the link cut for {} s while a takes {} writes/s",
            args.partition_secs, args.rate
        );
        let run = lag::partition(
            http,
            (&a, &b),
            args.rate,
            args.partition_secs,
            || link.cut(),
            || link.heal(),
        )
        .await?;
        let c = run.catch_up;
        eprintln!(
            "  {} writes acknowledged ({} failed) while cut; b was {} records behind, applied its \
             first page {:.2} s after the heal and caught up after {:.2} s: {:.0} versions/s",
            run.ok, run.failed, c.backlog, c.reconnect_secs, c.total_secs, c.versions_per_sec
        );
        f.partition_secs = Some(args.partition_secs);
        f.catchup_backlog = Some(c.backlog);
        f.catchup_reconnect_secs = Some(c.reconnect_secs);
        f.catchup_total_secs = Some(c.total_secs);
        f.catchup_versions_per_sec = Some(c.versions_per_sec);
    }
    Ok(())
}

/// The mean of one field over some loads.
fn mean_of(loads: &[Figures], field: fn(&Figures) -> f64) -> f64 {
    mean(&loads.iter().map(field).collect::<Vec<_>>())
}

/// Every part asked for, as one record.
async fn measure(
    args: &RegionsArgs,
    binary: &Path,
    work: &Path,
) -> Result<RegionsFigures, BenchError> {
    let http = client()?;
    let mut f = RegionsFigures {
        delay_ms: args.delay_ms,
        rate: args.rate,
        ..RegionsFigures::default()
    };
    if args.runs(Phase::Lag) || args.runs(Phase::Partition) {
        pair(args, binary, work, &http, &mut f).await?;
    }
    let rps = |l: &Figures| l.requests_per_sec;
    let p99 = |l: &Figures| l.p99_us;
    if args.runs(Phase::Crdt) {
        let (puts, patches) = source::crdt(args, binary, work).await?;
        f.put_per_sec = Some(mean_of(&puts, rps));
        f.put_p99_us = Some(mean_of(&puts, p99));
        if let Some(patches) = patches {
            f.patch_per_sec = Some(mean_of(&patches, rps));
            f.patch_p99_us = Some(mean_of(&patches, p99));
            f.patch_ratio = Some(ratio(mean_of(&patches, rps), mean_of(&puts, rps)));
            f.loads.extend(patches);
        }
        f.loads.extend(puts);
    }
    if args.runs(Phase::Source) {
        let runs = source::source(args, binary, work, &http).await?;
        let (alone, peers, readers) = (
            mean_of(&runs.alone, rps),
            mean_of(&runs.peers, rps),
            mean_of(&runs.readers, rps),
        );
        f.source_alone_put_per_sec = Some(alone);
        f.source_peers_put_per_sec = Some(peers);
        f.source_peers_ratio = Some(ratio(peers, alone));
        f.source_readers_put_per_sec = Some(readers);
        f.source_readers_ratio = Some(ratio(readers, alone));
        f.source_peers_settle_max_secs = runs.peers_settle_secs.iter().copied().reduce(f64::max);
        f.loads.extend(runs.alone);
        f.loads.extend(runs.peers);
        f.loads.extend(runs.readers);
    }
    Ok(f)
}

/// Runs `koru-bench regions`.
pub fn run(args: RegionsArgs) -> Result<(), BenchError> {
    validate(&args)?;
    let binary = server_binary(&args)?;
    let work = work_dir(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    let result = runtime.block_on(async {
        tokio::select! {
            r = measure(&args, &binary, &work) => r,
            e = cluster::interrupted() => Err(e),
        }
    });
    // Every server and proxy is stopped by now: their guards dropped with the measuring future.
    drop(runtime);
    let figures = match result {
        Ok(figures) => figures,
        Err(e) => {
            eprintln!(
                "koru-bench regions: the servers' data and logs are kept in {}",
                work.display()
            );
            return Err(e);
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    let human = table::table(&figures, &args);
    if args.json {
        report::emit(&human, &figures, true)
    } else {
        print!("{human}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RegionsArgs,
    }

    fn args(extra: &[&str]) -> RegionsArgs {
        Cli::try_parse_from(std::iter::once("regions").chain(extra.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn defaults_are_valid_and_bad_ranges_are_usage_errors() {
        let defaults = args(&[]);
        assert!(validate(&defaults).is_ok());
        assert_eq!((defaults.partition_secs, defaults.rate), (60, 500));
        for bad in [
            &["--secs", "0"][..],
            &["--partition-secs", "0"],
            &["--rate", "0"],
            &["--delay-ms", "10001"],
            &["--rounds", "0"],
            &["--connections", "0"],
        ] {
            assert!(
                matches!(validate(&args(bad)), Err(BenchError::Usage(_))),
                "{bad:?} must be refused"
            );
        }
        let missing = args(&["--server", "/nonexistent/koru-dataplane"]);
        assert!(matches!(
            server_binary(&missing),
            Err(BenchError::Usage(m)) if m.contains("--server")
        ));
    }

    #[test]
    fn only_selects_the_parts() {
        let all = args(&[]);
        assert!(all.runs(Phase::Lag) && all.runs(Phase::Source));
        let some = args(&["--only", "crdt,partition", "--partition-secs", "5"]);
        assert!(some.runs(Phase::Crdt) && some.runs(Phase::Partition));
        assert!(!some.runs(Phase::Lag) && !some.runs(Phase::Source));
        assert!(Cli::try_parse_from(["regions", "--only", "nope"]).is_err());
    }

    #[test]
    fn parts_not_run_are_null_in_the_record() {
        let f = RegionsFigures {
            lag_p99_ms: Some(120.0),
            ..RegionsFigures::default()
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["lag_p99_ms"], 120.0);
        assert!(v["patch_ratio"].is_null());
    }
}
