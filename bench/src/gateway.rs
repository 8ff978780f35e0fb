//! The gateway's overhead: PUT and GET load straight to a data plane and through a
//! `koru-gateway` in front of it, in the same run, alternating, on the same server; the
//! throughput ratio (goal: at least 0.7x direct) and the latency the hop adds. Every server is a
//! real child process on loopback; the loads are `koru-bench http` child processes.

use std::path::{Path, PathBuf};

use clap::Args;
use koru_gateway_api::{ClusterRoute, RouteState, RouteTable};
use koru_testkit::{Process, ProcessSpec};
use serde::Serialize;

use crate::error::BenchError;
use crate::report::{self, Figures};

/// The line `koru-gateway` prints once it serves (the rest is its URL).
const GATEWAY_READY: &str = "koru-gateway listening on ";
/// Target: throughput through the gateway at least this fraction of direct.
const RATIO_GOAL: f64 = 0.7;
/// Keys and value size, as the other HTTP figures.
const KEYS: u64 = 100_000;
const VALUE_BYTES: usize = 32;

/// Arguments of `koru-bench gateway`.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Length of each measured window.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Concurrent keep-alive connections of each load.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// The koru-dataplane binary [default: beside this executable].
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// The koru-gateway binary [default: beside this executable].
    #[arg(long)]
    pub gateway: Option<PathBuf>,
    /// Also print the result as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The record of one run.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayFigures {
    /// Connections per load.
    pub connections: usize,
    /// PUT throughput through the gateway over direct.
    pub put_ratio: f64,
    /// GET throughput through the gateway over direct.
    pub get_ratio: f64,
    /// Latency the gateway adds to a PUT at the median and the 99th percentile, microseconds.
    pub put_added_p50_us: f64,
    /// See `put_added_p50_us`.
    pub put_added_p99_us: f64,
    /// Latency the gateway adds to a GET at the median, microseconds.
    pub get_added_p50_us: f64,
    /// See `get_added_p50_us`.
    pub get_added_p99_us: f64,
    /// Whether both ratios meet the goal.
    pub pass: bool,
    /// The four loads: direct PUT, gateway PUT, direct GET, gateway GET.
    pub loads: Vec<Figures>,
}

/// A binary given on the command line or beside this executable.
fn beside(given: &Option<PathBuf>, name: &str, flag: &str) -> Result<PathBuf, BenchError> {
    let path = match given {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(BenchError::io("finding this executable"))?
            .with_file_name(name),
    };
    if !path.is_file() {
        return Err(BenchError::Usage(format!(
            "no {name} binary at {}: build it (cargo build -p {name} with the same profile and \
             target directory) or pass {flag}",
            path.display()
        )));
    }
    Ok(path)
}

/// Runs `koru-bench http` against `url` and reads its JSON record.
async fn load(
    url: &str,
    prefix: &str,
    name: &str,
    mode: &str,
    args: &GatewayArgs,
    preload: &str,
) -> Result<Figures, BenchError> {
    let args = [
        "--url",
        url,
        "--mode",
        mode,
        "--path-prefix",
        prefix,
        "--preload",
        preload,
        "--connections",
        &args.connections.to_string(),
        "--duration-secs",
        &args.secs.to_string(),
        "--keys",
        &KEYS.to_string(),
        "--value-bytes",
        &VALUE_BYTES.to_string(),
    ]
    .map(String::from);
    crate::child_load::run(name, &args).await
}

/// Starts a child process, mapping its failure to start.
fn start(spec: ProcessSpec) -> Result<Process, BenchError> {
    Process::try_start(spec).map_err(|e| BenchError::Target(e.to_string()))
}

/// The data plane, the gateway in front of it, and the four loads.
async fn measure(
    args: &GatewayArgs,
    server: &Path,
    gateway: &Path,
    work: &Path,
) -> Result<GatewayFigures, BenchError> {
    let member = start(
        ProcessSpec::dataplane(server)
            .clear_koru_env()
            .arg("--data-dir")
            .arg(work.join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .env("KORU_LOG", "warn"),
    )?;
    let routes = work.join("routes.json");
    let table = RouteTable {
        clusters: vec![ClusterRoute {
            id: "c-bench".into(),
            name: "bench".into(),
            org_slug: "bench".into(),
            state: RouteState::Running,
            members: vec![member.url().to_string()],
            token_public_key_pem: String::new(),
            revoked_token_ids: vec![],
            allowed_cidrs: vec![],
            max_ops_per_sec: 0,
            max_request_bytes: 0,
            ops_share: 1.0,
        }],
        live_gateways: 1,
    };
    let json = serde_json::to_vec(&table).map_err(|source| BenchError::Json {
        context: "the routes file".into(),
        source,
    })?;
    std::fs::write(&routes, json)
        .map_err(BenchError::io(format!("writing {}", routes.display())))?;
    let gw = start(
        ProcessSpec::new(gateway, GATEWAY_READY)
            .clear_koru_env()
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--routes-file")
            .arg(&routes)
            .args(["--log-filter", "warn"]),
    )?;
    // The gateway learns its member's health within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let direct = member.url().to_string();
    let via = gw.url().to_string();
    let prefix = "/c/bench/bench";
    let loads = vec![
        load(&direct, "", "direct put", "put", args, "batch").await?,
        load(&via, prefix, "gateway put", "put", args, "batch").await?,
        // The PUT runs wrote keys at random; the GET runs preload every key once first.
        load(&direct, "", "direct get", "get", args, "batch").await?,
        load(&via, prefix, "gateway get", "get", args, "none").await?,
    ];
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let (dp, gp, dg, gg) = (&loads[0], &loads[1], &loads[2], &loads[3]);
    let put_ratio = ratio(gp.requests_per_sec, dp.requests_per_sec);
    let get_ratio = ratio(gg.requests_per_sec, dg.requests_per_sec);
    Ok(GatewayFigures {
        connections: args.connections,
        put_ratio,
        get_ratio,
        put_added_p50_us: gp.p50_us - dp.p50_us,
        put_added_p99_us: gp.p99_us - dp.p99_us,
        get_added_p50_us: gg.p50_us - dg.p50_us,
        get_added_p99_us: gg.p99_us - dg.p99_us,
        pass: put_ratio >= RATIO_GOAL && get_ratio >= RATIO_GOAL,
        loads: loads.clone(),
    })
}

/// Runs `koru-bench gateway`.
pub fn run(args: GatewayArgs) -> Result<(), BenchError> {
    if !(1..=600).contains(&args.secs) || !(1..=1024).contains(&args.connections) {
        return Err(BenchError::Usage(
            "--secs must be 1..=600 and --connections 1..=1024".into(),
        ));
    }
    let server = beside(&args.server, "koru-dataplane", "--server")?;
    let gateway = beside(&args.gateway, "koru-gateway", "--gateway")?;
    let work = std::env::temp_dir().join(format!("koru-bench-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&work)
        .map_err(BenchError::io(format!("creating {}", work.display())))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    let result = runtime.block_on(measure(&args, &server, &gateway, &work));
    drop(runtime);
    let _ = std::fs::remove_dir_all(&work);
    let figures = result?;
    let human = format!(
        "gateway vs direct ({} connections): PUT {:.2}x (p50 +{:.3} ms, p99 +{:.3} ms), GET {:.2}x (p50 +{:.3} ms, p99 +{:.3} ms); goal >= {RATIO_GOAL}x: {}",
        figures.connections,
        figures.put_ratio,
        figures.put_added_p50_us / 1000.0,
        figures.put_added_p99_us / 1000.0,
        figures.get_ratio,
        figures.get_added_p50_us / 1000.0,
        figures.get_added_p99_us / 1000.0,
        if figures.pass { "PASS" } else { "FAIL" },
    );
    report::emit(&human, &figures, args.json)
}
