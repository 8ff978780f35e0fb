//! Replication: write throughput and latency of a 3-member cluster against a single node with the
//! same durability, `--fsync always` (a member fsyncs its Raft log, its write-ahead log, before
//! it acknowledges an entry) and the default `--fsync interval=100`, and failover time (the
//! leader SIGKILLed under a light steady write load, timed to the first write a survivor
//! acknowledges; the member is then restarted and caught up, and the next run begins), and
//! leadership hand-overs (`POST /raft/step-down`) under the same load. Every
//! server is a real `koru-dataplane` child process on loopback; the throughput loads are
//! `koru-bench http` child processes, the same load as the other HTTP figures. Each load also
//! reports the CPU time every server process used during its measured window, so the CPU per
//! acknowledged write of the single node and of each member comes from the same run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use koru_dataplane::store::DEFAULT_MAX_BATCH_OPS;
use serde::Serialize;

use crate::error::BenchError;
use crate::report::{self, Figures};

pub(crate) mod cluster;
mod cpu;
mod table;

use cluster::{Cluster, client, free_port, put, start_server};
use cpu::{CpuFigure, cpu_figure};
use table::table;

/// Members of the replicated cluster.
const MEMBERS: u64 = 3;
/// How long a server may take to print its URL.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long the members may take to agree on a leader (start-up, or after a failover).
const LEADER_LIMIT: Duration = Duration::from_secs(30);
/// How long after the kill a survivor must acknowledge a write before the run is a failure.
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);
/// How long a restarted member may take to follow the leader with its applied index caught up.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);
/// How often `/raft/status` is polled while waiting.
const POLL: Duration = Duration::from_millis(20);
/// Steady writes on the whole cluster before the next kill.
const SETTLE: Duration = Duration::from_millis(500);
/// One write's longest wait; above the server's own forwarding timeout (10 s), so the server
/// answers first.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// One `/raft/status` call's longest wait.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between a failed probe write and the next one.
const PROBE_RETRY: Duration = Duration::from_millis(5);
/// Keys and value size of the throughput loads, as in `scripts/bench.sh`.
const KEYS: u64 = 100_000;
const VALUE_BYTES: usize = 32;
/// Target: median failover below this.
const FAILOVER_GOAL_SECS: f64 = 5.0;
/// Target: replicated single-put throughput at least this fraction of the single node's.
const PUT_RATIO_GOAL: f64 = 0.35;
/// Target: replicated batch throughput (versions/s) at least this fraction of the single node's.
const BATCH_RATIO_GOAL: f64 = 0.5;
/// Target: the whole cluster's CPU per acknowledged write at most this multiple of the single
/// node's.
const CPU_RATIO_GOAL: f64 = 2.5;

/// Arguments of `koru-bench raft`.
#[derive(Debug, Clone, Args)]
pub struct RaftArgs {
    /// Scratch directory for the servers' data and logs; must be absent or empty. A new
    /// directory under the system's temporary directory when not given. Removed after a
    /// successful run, kept (with the server logs) after a failed one.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The `koru-dataplane` binary; the one beside this executable when not given.
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Measured seconds per throughput figure (after 1 s of warm-up).
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Concurrent keep-alive connections of the throughput loads.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Writes per request of the batch figures.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Leader kills timed; 0 skips the failover and hand-over runs (throughput and CPU only).
    #[arg(long, default_value_t = 20)]
    pub failover_runs: u32,
    /// Writes per second of the steady load during the failover runs.
    #[arg(long, default_value_t = 100)]
    pub failover_rate: u32,
    /// Leadership hand-overs (`POST /raft/step-down`) timed, under the same steady load.
    #[arg(long, default_value_t = 10)]
    pub handover_runs: u32,
    /// Also print the result as one JSON line on stdout (the table then goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// What `koru-bench raft` reports. `single_*` is one node with `--fsync always`, `raft_*` the
/// leader of a 3-member cluster with the same; `interval_*` the same pair with the default
/// `--fsync interval=100`; ratios are replicated over single.
#[derive(Debug, Serialize)]
pub struct RaftFigures {
    /// Members of the cluster.
    pub members: u64,
    /// Connections of the throughput loads.
    pub connections: usize,
    /// Writes per batch request.
    pub batch_size: usize,
    /// Single PUTs per second, one node.
    pub single_put_per_sec: f64,
    /// Single PUTs per second, the cluster.
    pub raft_put_per_sec: f64,
    /// `raft_put_per_sec / single_put_per_sec`.
    pub put_ratio: f64,
    /// p99 of a PUT, one node, microseconds.
    pub single_put_p99_us: f64,
    /// p99 of a PUT, the cluster, microseconds.
    pub raft_put_p99_us: f64,
    /// Versions per second written in batches, one node.
    pub single_batch_versions_per_sec: f64,
    /// Versions per second written in batches, the cluster.
    pub raft_batch_versions_per_sec: f64,
    /// `raft_batch_versions_per_sec / single_batch_versions_per_sec`.
    pub batch_ratio: f64,
    /// p99 of a batch request, one node, microseconds.
    pub single_batch_p99_us: f64,
    /// p99 of a batch request, the cluster, microseconds.
    pub raft_batch_p99_us: f64,
    /// Single PUTs per second, one node, `--fsync interval=100`.
    pub interval_single_put_per_sec: f64,
    /// Single PUTs per second, the cluster, `--fsync interval=100`.
    pub interval_raft_put_per_sec: f64,
    /// `interval_raft_put_per_sec / interval_single_put_per_sec`.
    pub interval_put_ratio: f64,
    /// p99 of a PUT, one node, `--fsync interval=100`, microseconds.
    pub interval_single_put_p99_us: f64,
    /// p99 of a PUT, the cluster, `--fsync interval=100`, microseconds.
    pub interval_raft_put_p99_us: f64,
    /// Versions per second written in batches, one node, `--fsync interval=100`.
    pub interval_single_batch_versions_per_sec: f64,
    /// Versions per second written in batches, the cluster, `--fsync interval=100`.
    pub interval_raft_batch_versions_per_sec: f64,
    /// `interval_raft_batch_versions_per_sec / interval_single_batch_versions_per_sec`.
    pub interval_batch_ratio: f64,
    /// p99 of a batch request, one node, `--fsync interval=100`, microseconds.
    pub interval_single_batch_p99_us: f64,
    /// p99 of a batch request, the cluster, `--fsync interval=100`, microseconds.
    pub interval_raft_batch_p99_us: f64,
    /// Leader kills timed (members on `--fsync always`).
    pub failover_runs: u32,
    /// Median seconds from the SIGKILL to the first acknowledged write.
    pub failover_p50_secs: f64,
    /// Shortest of those.
    pub failover_min_secs: f64,
    /// Longest of those.
    pub failover_max_secs: f64,
    /// Median seconds from restarting the killed member to it following the leader, caught up.
    pub rejoin_p50_secs: f64,
    /// Longest of those.
    pub rejoin_max_secs: f64,
    /// Steady-load writes acknowledged during the failover runs.
    pub steady_writes: u64,
    /// Steady-load writes to survivors that failed (in elections, mostly).
    pub steady_failed: u64,
    /// Hand-overs timed.
    pub handover_runs: u32,
    /// Median seconds a `POST /raft/step-down` took (until another member led).
    pub handover_p50_secs: f64,
    /// Longest of those.
    pub handover_max_secs: f64,
    /// Median over the hand-overs of the longest steady-load write (what a client waited).
    pub handover_longest_write_p50_secs: f64,
    /// Longest of those.
    pub handover_longest_write_max_secs: f64,
    /// Steady-load writes that failed during the hand-overs.
    pub handover_failed: u64,
    /// Whole-cluster CPU per acknowledged write over the single node's, PUTs, `--fsync always`.
    pub put_cpu_ratio: f64,
    /// The same for batch entries.
    pub batch_cpu_ratio: f64,
    /// The same for PUTs, `--fsync interval=100`.
    pub interval_put_cpu_ratio: f64,
    /// The same for batch entries, `--fsync interval=100`.
    pub interval_batch_cpu_ratio: f64,
    /// CPU per acknowledged request and per write of each load pair: PUT and batch, `always`
    /// then `interval=100`.
    pub cpu: Vec<CpuFigure>,
    /// The eight throughput loads in full; each one's `server_cpu_us` is the single node's, or
    /// the leader's followed by the followers' (ids in `cpu[].follower_ids`).
    pub loads: Vec<Figures>,
}

/// Checks ranges clap cannot.
fn validate(args: &RaftArgs) -> Result<(), BenchError> {
    let bad = |m: String| Err(BenchError::Usage(m));
    if !(1..=3600).contains(&args.secs) {
        return bad("--secs must be between 1 and 3600".into());
    }
    if !(1..=1024).contains(&args.connections) {
        return bad("--connections must be between 1 and 1024".into());
    }
    if !(1..=DEFAULT_MAX_BATCH_OPS).contains(&args.batch_size) {
        return bad(format!(
            "--batch-size must be between 1 and {DEFAULT_MAX_BATCH_OPS} (the server's largest batch)"
        ));
    }
    if args.failover_runs > 1000 {
        return bad("--failover-runs must be at most 1000".into());
    }
    if args.handover_runs > 1000 {
        return bad("--handover-runs must be at most 1000".into());
    }
    if !(1..=10_000).contains(&args.failover_rate) {
        return bad("--failover-rate must be between 1 and 10000 writes per second".into());
    }
    Ok(())
}

/// The server binary: `--server`, or `koru-dataplane` beside this executable (Cargo builds both
/// The server binary (see [`cluster::server_binary`]).
fn server_binary(args: &RaftArgs) -> Result<PathBuf, BenchError> {
    cluster::server_binary(args.server.as_deref())
}

/// The scratch directory (see [`cluster::work_dir`]).
fn work_dir(args: &RaftArgs) -> Result<PathBuf, BenchError> {
    cluster::work_dir(args.work_dir.as_deref(), "raft")
}

/// Runs `koru-bench http` against `url` and reads its JSON record, with the CPU time the
/// `pids` (the servers) used in its measured window.
async fn load(
    url: &str,
    name: &str,
    mode: &str,
    args: &RaftArgs,
    pids: &[u32],
) -> Result<Figures, BenchError> {
    let mut argv: Vec<String> = [
        "--url",
        url,
        "--mode",
        mode,
        "--connections",
        &args.connections.to_string(),
        "--duration-secs",
        &args.secs.to_string(),
        "--batch-size",
        &args.batch_size.to_string(),
        "--keys",
        &KEYS.to_string(),
        "--value-bytes",
        &VALUE_BYTES.to_string(),
    ]
    .map(String::from)
    .into();
    for pid in pids {
        argv.extend(["--cpu-pid".into(), pid.to_string()]);
    }
    crate::child_load::run(name, &argv).await
}

/// The eight throughput loads (PUT and batch against one node, then against the leader, with
/// `--fsync always` and then with `--fsync interval=100`) and the ids of the followers of the
/// two clusters.
async fn throughput(
    args: &RaftArgs,
    binary: &Path,
    work: &Path,
    http: &reqwest::Client,
) -> Result<(Vec<Figures>, Vec<Vec<u64>>), BenchError> {
    let mut loads = Vec::new();
    let mut followers = Vec::new();
    for (fsync, name) in [("always", "always"), ("interval=100", "interval")] {
        eprintln!("single node, --fsync {fsync}");
        let port = free_port()?;
        let dir = work.join(format!("single-{name}"));
        let single = start_server(binary, &dir, port, &["--fsync".into(), fsync.into()]).await?;
        let url = format!("http://127.0.0.1:{port}");
        let pids = [single.pid()];
        loads.push(load(&url, &format!("single_{name}_put"), "put", args, &pids).await?);
        loads.push(load(&url, &format!("single_{name}_batch"), "batch", args, &pids).await?);
        drop(single);
        let _ = std::fs::remove_dir_all(dir);
        eprintln!("{MEMBERS}-member cluster, --fsync {fsync}");
        let dir = work.join(format!("cluster-{name}"));
        let cluster = Cluster::start(binary, dir.clone(), fsync).await?;
        let leader = cluster.leader(http).await?;
        let url = cluster.url(leader);
        // The leader first, then the followers in id order.
        let ids: Vec<u64> = std::iter::once(leader)
            .chain(cluster.running().into_iter().filter(|&id| id != leader))
            .collect();
        let pids: Vec<u32> = ids.iter().map(|id| cluster.members[id].pid()).collect();
        loads.push(load(&url, &format!("raft_{name}_put"), "put", args, &pids).await?);
        loads.push(load(&url, &format!("raft_{name}_batch"), "batch", args, &pids).await?);
        followers.push(ids[1..].to_vec());
        let after = cluster.leader(http).await?;
        if after != leader {
            eprintln!("warning: the leader changed from {leader} to {after} during the loads");
        }
        drop(cluster);
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok((loads, followers))
}

/// The steady write load of the failover runs and its counts.
#[derive(Default)]
struct Steady {
    stop: AtomicBool,
    /// The member that is down (0: none); the load skips it.
    down: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Longest write since last reset, microseconds.
    longest_us: AtomicU64,
}

/// Writes at `rate` per second, one at a time, to the members in turn (skipping the one down).
async fn steady_load(http: reqwest::Client, urls: Vec<(u64, String)>, rate: u32, s: Arc<Steady>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let (id, url) = &urls[n as usize % urls.len()];
        if *id == s.down.load(Ordering::Relaxed) {
            continue;
        }
        let sent = Instant::now();
        match put(&http, url, &format!("k{}", n % 10_000), n).await {
            Ok(()) => s.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => s.failed.fetch_add(1, Ordering::Relaxed),
        };
        s.longest_us
            .fetch_max(sent.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// Sends writes to every survivor, each retried until acknowledged; returns when the first is,
/// and by which member.
async fn first_write(
    http: &reqwest::Client,
    survivors: Vec<(u64, String)>,
    run: u32,
) -> Result<(Instant, u64), BenchError> {
    let mut probes = tokio::task::JoinSet::new();
    for (id, url) in survivors {
        let http = http.clone();
        probes.spawn(async move {
            let mut n = 0u64;
            loop {
                n += 1;
                if put(&http, &url, &format!("probe-{run}-{id}-{n}"), n)
                    .await
                    .is_ok()
                {
                    return (Instant::now(), id);
                }
                tokio::time::sleep(PROBE_RETRY).await;
            }
        });
    }
    // Dropping the set aborts the other probes.
    match tokio::time::timeout(FAILOVER_LIMIT, probes.join_next()).await {
        Ok(Some(Ok(first))) => Ok(first),
        Ok(Some(Err(e))) => Err(BenchError::Target(format!("a probe task failed: {e}"))),
        Ok(None) => Err(BenchError::Target("no survivor to write to".into())),
        Err(_) => Err(BenchError::Target(format!(
            "no survivor acknowledged a write within {FAILOVER_LIMIT:?} of the kill"
        ))),
    }
}

/// One failover run's figures, seconds.
struct Run {
    failover: f64,
    rejoin: f64,
}

/// One hand-over's figures, seconds.
struct Handover {
    took: f64,
    longest_write: f64,
}

/// What the availability runs measured.
struct Availability {
    runs: Vec<Run>,
    handovers: Vec<Handover>,
    ok: u64,
    failed: u64,
    handover_failed: u64,
}

/// Kills the leader `--failover-runs` times, then has it hand leadership over
/// `--handover-runs` times, under the steady load.
async fn failover(
    args: &RaftArgs,
    binary: &Path,
    work: &Path,
    http: &reqwest::Client,
) -> Result<Availability, BenchError> {
    eprintln!(
        "failover: {} runs, {} writes/s of steady load",
        args.failover_runs, args.failover_rate
    );
    let mut cluster = Cluster::start(binary, work.join("failover"), "always").await?;
    cluster.leader(http).await?;
    let steady = Arc::new(Steady::default());
    let urls: Vec<(u64, String)> = (1..=MEMBERS).map(|id| (id, cluster.url(id))).collect();
    let writer = tokio::spawn(steady_load(
        http.clone(),
        urls,
        args.failover_rate,
        Arc::clone(&steady),
    ));
    // Stops the load on every way out of this function, errors included.
    struct StopOnDrop(Arc<Steady>, tokio::task::JoinHandle<()>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::Relaxed);
            self.1.abort();
        }
    }
    let stop = StopOnDrop(Arc::clone(&steady), writer);
    tokio::time::sleep(SETTLE).await;
    let mut runs = Vec::new();
    for run in 1..=args.failover_runs {
        let leader = cluster.leader(http).await?;
        let survivors: Vec<(u64, String)> = cluster
            .running()
            .into_iter()
            .filter(|&id| id != leader)
            .map(|id| (id, cluster.url(id)))
            .collect();
        let mut proc = cluster
            .members
            .remove(&leader)
            .ok_or_else(|| BenchError::Target(format!("leader {leader} is not running")))?;
        steady.down.store(leader, Ordering::Relaxed);
        let killed = Instant::now();
        proc.start_kill();
        // Reaping blocks; it must not hold up the probes.
        let reaped = tokio::task::spawn_blocking(move || drop(proc));
        let (acked, via) = first_write(http, survivors, run).await?;
        let failover = acked.duration_since(killed).as_secs_f64();
        let new_leader = cluster.leader(http).await?;
        reaped
            .await
            .map_err(|e| BenchError::Target(format!("reaping member {leader}: {e}")))?;
        let restarted = Instant::now();
        cluster.restart(leader).await?;
        steady.down.store(0, Ordering::Relaxed);
        cluster.caught_up(http, leader).await?;
        let rejoin = restarted.elapsed().as_secs_f64();
        eprintln!(
            "run {run}/{}: killed leader {leader}; first write acknowledged after {failover:.3} s \
             (through member {via}, new leader {new_leader}); member {leader} restarted and caught \
             up in {rejoin:.2} s",
            args.failover_runs
        );
        runs.push(Run { failover, rejoin });
        tokio::time::sleep(SETTLE).await;
    }
    let failed_before = steady.failed.load(Ordering::Relaxed);
    let mut handovers = Vec::new();
    for run in 1..=args.handover_runs {
        let leader = cluster.leader(http).await?;
        steady.longest_us.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let resp = http
            .post(format!("{}/raft/step-down", cluster.peer_url(leader)))
            .timeout(FAILOVER_LIMIT)
            .send()
            .await
            .map_err(|e| BenchError::Target(format!("asking member {leader} to step down: {e}")))?;
        let took = started.elapsed().as_secs_f64();
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(BenchError::Target(format!(
                "member {leader} did not hand leadership over: {status} {body}"
            )));
        }
        // Writes waiting when the hand-over ended finish first.
        tokio::time::sleep(SETTLE).await;
        let longest_write = steady.longest_us.load(Ordering::Relaxed) as f64 / 1e6;
        let new_leader = cluster.leader(http).await?;
        eprintln!(
            "hand-over {run}/{}: leader {leader} handed over to {new_leader} in {took:.3} s; \
             longest steady write {longest_write:.3} s",
            args.handover_runs
        );
        handovers.push(Handover {
            took,
            longest_write,
        });
    }
    drop(stop);
    let (ok, failed) = (
        steady.ok.load(Ordering::Relaxed),
        steady.failed.load(Ordering::Relaxed),
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(work.join("failover"));
    Ok(Availability {
        runs,
        handovers,
        ok,
        failed: failed_before,
        handover_failed: failed - failed_before,
    })
}

/// The middle value of sorted samples (the mean of the middle two for an even count); 0 if none.
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Both measurements, as one record.
async fn measure(args: &RaftArgs, binary: &Path, work: &Path) -> Result<RaftFigures, BenchError> {
    let http = client()?;
    let (loads, followers) = throughput(args, binary, work, &http).await?;
    let availability = if args.failover_runs == 0 {
        Availability {
            runs: Vec::new(),
            handovers: Vec::new(),
            ok: 0,
            failed: 0,
            handover_failed: 0,
        }
    } else {
        failover(args, binary, work, &http).await?
    };
    let runs = &availability.runs;
    let mut failovers: Vec<f64> = runs.iter().map(|r| r.failover).collect();
    let mut rejoins: Vec<f64> = runs.iter().map(|r| r.rejoin).collect();
    let mut handovers: Vec<f64> = availability.handovers.iter().map(|h| h.took).collect();
    let mut waits: Vec<f64> = availability
        .handovers
        .iter()
        .map(|h| h.longest_write)
        .collect();
    for v in [&mut failovers, &mut rejoins, &mut handovers, &mut waits] {
        v.sort_by(f64::total_cmp);
    }
    let [
        single_put,
        single_batch,
        raft_put,
        raft_batch,
        interval_single_put,
        interval_single_batch,
        interval_raft_put,
        interval_raft_batch,
    ] = &loads[..]
    else {
        return Err(BenchError::Target("expected eight throughput loads".into()));
    };
    let [always_followers, interval_followers] = &followers[..] else {
        return Err(BenchError::Target("expected two clusters".into()));
    };
    let cpu = vec![
        cpu_figure("always_put", single_put, raft_put, 1, always_followers)?,
        cpu_figure(
            "always_batch",
            single_batch,
            raft_batch,
            args.batch_size,
            always_followers,
        )?,
        cpu_figure(
            "interval_put",
            interval_single_put,
            interval_raft_put,
            1,
            interval_followers,
        )?,
        cpu_figure(
            "interval_batch",
            interval_single_batch,
            interval_raft_batch,
            args.batch_size,
            interval_followers,
        )?,
    ];
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(RaftFigures {
        members: MEMBERS,
        connections: args.connections,
        batch_size: args.batch_size,
        single_put_per_sec: single_put.requests_per_sec,
        raft_put_per_sec: raft_put.requests_per_sec,
        put_ratio: ratio(raft_put.requests_per_sec, single_put.requests_per_sec),
        single_put_p99_us: single_put.p99_us,
        raft_put_p99_us: raft_put.p99_us,
        single_batch_versions_per_sec: single_batch.versions_per_sec,
        raft_batch_versions_per_sec: raft_batch.versions_per_sec,
        batch_ratio: ratio(raft_batch.versions_per_sec, single_batch.versions_per_sec),
        single_batch_p99_us: single_batch.p99_us,
        raft_batch_p99_us: raft_batch.p99_us,
        interval_single_put_per_sec: interval_single_put.requests_per_sec,
        interval_raft_put_per_sec: interval_raft_put.requests_per_sec,
        interval_put_ratio: ratio(
            interval_raft_put.requests_per_sec,
            interval_single_put.requests_per_sec,
        ),
        interval_single_put_p99_us: interval_single_put.p99_us,
        interval_raft_put_p99_us: interval_raft_put.p99_us,
        interval_single_batch_versions_per_sec: interval_single_batch.versions_per_sec,
        interval_raft_batch_versions_per_sec: interval_raft_batch.versions_per_sec,
        interval_batch_ratio: ratio(
            interval_raft_batch.versions_per_sec,
            interval_single_batch.versions_per_sec,
        ),
        interval_single_batch_p99_us: interval_single_batch.p99_us,
        interval_raft_batch_p99_us: interval_raft_batch.p99_us,
        failover_runs: args.failover_runs,
        failover_p50_secs: median(&failovers),
        failover_min_secs: failovers.first().copied().unwrap_or(0.0),
        failover_max_secs: failovers.last().copied().unwrap_or(0.0),
        rejoin_p50_secs: median(&rejoins),
        rejoin_max_secs: rejoins.last().copied().unwrap_or(0.0),
        steady_writes: availability.ok,
        steady_failed: availability.failed,
        handover_runs: args.handover_runs,
        handover_p50_secs: median(&handovers),
        handover_max_secs: handovers.last().copied().unwrap_or(0.0),
        handover_longest_write_p50_secs: median(&waits),
        handover_longest_write_max_secs: waits.last().copied().unwrap_or(0.0),
        handover_failed: availability.handover_failed,
        put_cpu_ratio: cpu[0].cluster_ratio,
        batch_cpu_ratio: cpu[1].cluster_ratio,
        interval_put_cpu_ratio: cpu[2].cluster_ratio,
        interval_batch_cpu_ratio: cpu[3].cluster_ratio,
        cpu,
        loads,
    })
}

/// Runs `koru-bench raft`.
pub fn run(args: RaftArgs) -> Result<(), BenchError> {
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
    // Every server is stopped by now: the guards dropped with the measuring future.
    drop(runtime);
    let figures = match result {
        Ok(figures) => figures,
        Err(e) => {
            eprintln!(
                "koru-bench raft: the servers' data and logs are kept in {}",
                work.display()
            );
            return Err(e);
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    let human = table(&figures, &args);
    if args.json {
        report::emit(&human, &figures, true)
    } else {
        print!("{human}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::cluster::Status;
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RaftArgs,
    }

    fn args(extra: &[&str]) -> RaftArgs {
        Cli::try_parse_from(std::iter::once("raft").chain(extra.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn defaults_are_valid_and_bad_ranges_are_usage_errors() {
        assert!(validate(&args(&[])).is_ok());
        for bad in [
            &["--secs", "0"][..],
            &["--connections", "0"],
            &["--batch-size", "0"],
            &["--batch-size", "10001"],
            &["--failover-runs", "1001"],
            &["--failover-rate", "0"],
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
    fn work_dir_must_be_empty() {
        let dir = std::env::temp_dir().join(format!("koru-bench-raft-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keep"), "x").unwrap();
        let given = args(&["--work-dir", dir.to_str().unwrap()]);
        let refused = work_dir(&given);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(refused, Err(BenchError::Usage(_))));
        assert_eq!(work_dir(&given).unwrap(), dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }

    #[test]
    fn status_reads_the_raft_status_body() {
        let s: Status = serde_json::from_str(
            r#"{"id":2,"role":"follower","term":3,"leader":1,"last_log_index":9,
                "applied_index":8,"members":[]}"#,
        )
        .unwrap();
        assert_eq!(
            (s.role.as_str(), s.leader, s.applied_index),
            ("follower", Some(1), 8)
        );
        let s: Status = serde_json::from_str(
            r#"{"id":2,"role":"candidate","term":4,"leader":null,"last_log_index":9,
                "applied_index":9,"members":[]}"#,
        )
        .unwrap();
        assert_eq!(s.leader, None);
    }
}
