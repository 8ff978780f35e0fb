//! Restart time and memory: fills a store to N versions (in a child process, so the fill's heap
//! does not pollute the measurement), then times `Store::open` and reads the resident set size.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use koru_dataplane::metrics::StoreMetrics;
use koru_dataplane::{FsyncMode, Store, StoreConfig, WriteOp};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::BenchError;
use crate::report::{self, thousands};

/// Default writes per batch while filling: the store's default largest batch, the cheapest way in.
const FILL_BATCH: u64 = 10_000;
/// Concurrent fill writers: enough that small fill batches still form large group commits.
const FILL_WRITERS: u64 = 32;
/// Longest a fill may take before the benchmark gives up.
const FILL_LIMIT: Duration = Duration::from_secs(600);

/// Arguments of `koru-bench restart`.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Store directory; filled up to `--versions` if it holds fewer.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Versions the store must hold when it is reopened.
    #[arg(long, default_value_t = 10_000_000)]
    pub versions: u64,
    /// Keys the versions are spread over (version i writes key i mod keys).
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Versions per record while filling (smaller means more, smaller records to replay).
    #[arg(long, default_value_t = FILL_BATCH)]
    pub fill_batch: u64,
    /// Drop the page cache after filling so the open reads the log from disk (needs root; the
    /// figures say whether it worked).
    #[arg(long)]
    pub cold: bool,
    /// Only fill the store and exit (what the measuring process runs in its child).
    #[arg(long, hide = true)]
    pub fill_only: bool,
    /// Also print the result as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What `koru-bench restart` reports.
#[derive(Debug, Serialize)]
pub struct RestartFigures {
    /// Wall time of `Store::open`, seconds.
    pub open_secs: f64,
    /// Whether the page cache was dropped before the open.
    pub cold: bool,
    /// Records replayed.
    pub records: u64,
    /// Versions in the index after opening.
    pub versions: u64,
    /// Live keys after opening.
    pub keys: u64,
    /// Bytes of log replayed.
    pub log_bytes: u64,
    /// Resident set before opening.
    pub rss_before_bytes: u64,
    /// Resident set after opening.
    pub rss_after_bytes: u64,
    /// Peak resident set of the process.
    pub peak_rss_bytes: u64,
    /// (RSS after - RSS before) / versions.
    pub bytes_per_version: f64,
    /// (RSS after - RSS before) / keys.
    pub bytes_per_key: f64,
}

/// A field of `/proc/self/status` in bytes (the file gives kB).
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn check(args: &RestartArgs) -> Result<(), BenchError> {
    if !(1..=1_000_000_000).contains(&args.versions) || !(1..=args.versions).contains(&args.keys) {
        return Err(BenchError::Usage(
            "--versions must be 1..=1000000000 and --keys 1..=versions".into(),
        ));
    }
    if !(1..=FILL_BATCH).contains(&args.fill_batch) {
        return Err(BenchError::Usage(format!(
            "--fill-batch must be between 1 and {FILL_BATCH}"
        )));
    }
    Ok(())
}

/// Tops the store up to `--versions`, in batches of the largest allowed size.
fn fill(args: &RestartArgs) -> Result<(), BenchError> {
    let mut config = StoreConfig::new(&args.data_dir);
    // Filling is setup, not the thing measured; `close` still fsyncs everything at the end.
    config.fsync = FsyncMode::Off;
    let (store, _) = Store::open(config, Arc::new(StoreMetrics::default()))?;
    let have = store.stats().versions;
    if have >= args.versions {
        store.close();
        return Ok(());
    }
    eprintln!(
        "filling {} with {} versions over {} keys",
        args.data_dir.display(),
        thousands((args.versions - have) as f64),
        thousands(args.keys as f64)
    );
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..FILL_WRITERS)
            .map(|w| {
                let store = store.clone();
                let (keys, target, batch) = (args.keys, args.versions, args.fill_batch);
                tokio::spawn(async move {
                    // Writer w writes the batches starting at have + (w + k * writers) * batch.
                    let mut first = have + w * batch;
                    while first < target {
                        if started.elapsed() > FILL_LIMIT {
                            return Err(BenchError::Target(format!(
                                "filling took over {FILL_LIMIT:?}"
                            )));
                        }
                        let last = (first + batch).min(target);
                        let mut ops = Vec::with_capacity((last - first) as usize);
                        for i in first..last {
                            let value = RawValue::from_string(format!("{{\"n\":{i}}}")).map_err(
                                |source| BenchError::Json {
                                    context: "building a value".into(),
                                    source,
                                },
                            )?;
                            ops.push(WriteOp::put("bench", format!("k{}", i % keys), value));
                        }
                        store.write(ops).await?;
                        first += FILL_WRITERS * batch;
                    }
                    Ok::<_, BenchError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await
                .map_err(|e| BenchError::Target(format!("fill task failed: {e}")))??;
        }
        Ok::<_, BenchError>(())
    })?;
    store.close();
    eprintln!("filled in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `koru-bench restart`.
pub fn run(args: RestartArgs) -> Result<(), BenchError> {
    check(&args)?;
    if args.fill_only {
        return fill(&args);
    }
    let exe = std::env::current_exe().map_err(BenchError::io("finding this executable"))?;
    let status = Command::new(exe)
        .arg("restart")
        .arg("--fill-only")
        .arg("--data-dir")
        .arg(&args.data_dir)
        .arg("--versions")
        .arg(args.versions.to_string())
        .arg("--keys")
        .arg(args.keys.to_string())
        .arg("--fill-batch")
        .arg(args.fill_batch.to_string())
        .status()
        .map_err(BenchError::io("running the fill process"))?;
    if !status.success() {
        return Err(BenchError::Target(format!(
            "the fill process failed: {status}"
        )));
    }
    // The fill process closed the store, which fsyncs the log, so its pages are clean and the
    // kernel can drop them all.
    let cold = args.cold && std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok();
    if args.cold && !cold {
        eprintln!("could not drop the page cache (not root?): this restart is warm");
    }
    let rss_before = proc_status_bytes("VmRSS");
    let started = Instant::now();
    let (store, open) = Store::open(
        StoreConfig::new(&args.data_dir),
        Arc::new(StoreMetrics::default()),
    )?;
    let open_secs = started.elapsed().as_secs_f64();
    let rss_after = proc_status_bytes("VmRSS");
    let stats = store.stats();
    let figures = RestartFigures {
        open_secs,
        cold,
        records: open.records,
        versions: stats.versions,
        keys: stats.live_keys as u64,
        log_bytes: store.stored_bytes(),
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        peak_rss_bytes: proc_status_bytes("VmHWM"),
        bytes_per_version: rss_after.saturating_sub(rss_before) as f64
            / stats.versions.max(1) as f64,
        bytes_per_key: rss_after.saturating_sub(rss_before) as f64
            / (stats.live_keys as f64).max(1.0),
    };
    store.close();
    let human = format!(
        "restart: opened {} versions ({} keys, {} records, {:.0} MiB of log) in {:.2} s ({}); \
         RSS {:.0} -> {:.0} MiB (peak {:.0}): {:.1} B/version, {:.1} B/key",
        thousands(figures.versions as f64),
        thousands(figures.keys as f64),
        thousands(figures.records as f64),
        figures.log_bytes as f64 / 1048576.0,
        figures.open_secs,
        if cold {
            "cold page cache"
        } else {
            "warm page cache"
        },
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        figures.peak_rss_bytes as f64 / 1048576.0,
        figures.bytes_per_version,
        figures.bytes_per_key,
    );
    report::emit(&human, &figures, args.json)
}
