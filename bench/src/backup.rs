//! Backups: archive throughput (a filled store's log shipped to a backup store by the archiver and
//! sealed by a base backup), restore speed (the same archive rebuilt into a new data directory),
//! and the recovery point under a steady write load (the age of the oldest write not yet archived,
//! sampled every 50 ms: what a lost volume would lose at that moment).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use koru_dataplane::backup::archiver::ArchiveMetrics;
use koru_dataplane::backup::layout::Target;
use koru_dataplane::backup::restore::{RestoreRequest, restore};
use koru_dataplane::backup::{Archiver, BackupStore, BackupUrl, base};
use koru_dataplane::metrics::StoreMetrics;
use koru_dataplane::{FsyncMode, Store, StoreConfig, WriteOp};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::BenchError;
use crate::report::{self, thousands};

/// Writes per batch while filling.
const FILL_BATCH: u64 = 1_000;
/// Concurrent fill writers.
const FILL_WRITERS: u64 = 8;
/// Longest the archive of the filled log may take.
const ARCHIVE_WAIT: Duration = Duration::from_secs(600);
/// How often the recovery point is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Arguments of `koru-bench backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Scratch directory: the store, the restored copy and (with a `file://` store) the archive.
    #[arg(long)]
    pub work_dir: PathBuf,
    /// Backup store URL; `file://<work-dir>/archive` when absent (`s3://…` reads `AWS_*`).
    #[arg(long)]
    pub store: Option<String>,
    /// Versions written before the archive is timed.
    #[arg(long, default_value_t = 2_000_000)]
    pub versions: u64,
    /// Bytes of each value's padding.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Segment size of the store, bytes (smaller means more, smaller uploads).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub segment_size: u64,
    /// `--archive-timeout` of the recovery-point run, milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub archive_timeout_ms: u64,
    /// Seconds of steady writes in the recovery-point run.
    #[arg(long, default_value_t = 10)]
    pub rpo_secs: u64,
    /// Writes per second in the recovery-point run.
    #[arg(long, default_value_t = 2_000)]
    pub rpo_rate: u64,
    /// Also print the result as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What `koru-bench backup` reports.
#[derive(Debug, Serialize)]
pub struct BackupFigures {
    /// Bytes of log archived.
    pub log_bytes: u64,
    /// Versions in the archived log.
    pub versions: u64,
    /// Seconds from starting the archiver to the base backup's manifest.
    pub archive_secs: f64,
    /// `log_bytes / archive_secs`, MB/s (10^6).
    pub archive_mb_per_sec: f64,
    /// Seconds the restore took (download, checksums, replay check, rename).
    pub restore_secs: f64,
    /// Bytes the restore downloaded / restore_secs, MB/s.
    pub restore_mb_per_sec: f64,
    /// Versions restored / restore_secs.
    pub restore_versions_per_sec: f64,
    /// `--archive-timeout` of the recovery-point run, seconds.
    pub archive_timeout_secs: f64,
    /// Largest recovery point sampled under steady writes, seconds.
    pub rpo_max_secs: f64,
    /// Median recovery point sampled under steady writes, seconds.
    pub rpo_p50_secs: f64,
}

fn value(i: u64, pad: &str) -> Result<Box<RawValue>, BenchError> {
    RawValue::from_string(format!("{{\"n\":{i},\"pad\":\"{pad}\"}}")).map_err(|source| {
        BenchError::Json {
            context: "building a value".into(),
            source,
        }
    })
}

fn store_config(args: &BackupArgs, dir: PathBuf, fsync: FsyncMode) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.fsync = fsync;
    config.segment_size = args.segment_size;
    config
}

/// Writes `--versions` versions with several writers (fsync off: filling is setup).
async fn fill(store: &Store, args: &BackupArgs) -> Result<(), BenchError> {
    let pad = "x".repeat(args.value_bytes);
    let tasks: Vec<_> = (0..FILL_WRITERS)
        .map(|w| {
            let (store, pad, target) = (store.clone(), pad.clone(), args.versions);
            tokio::spawn(async move {
                let mut first = w * FILL_BATCH;
                while first < target {
                    let last = (first + FILL_BATCH).min(target);
                    let mut ops = Vec::with_capacity((last - first) as usize);
                    for i in first..last {
                        ops.push(WriteOp::put(
                            "bench",
                            format!("k{}", i % 100_000),
                            value(i, &pad)?,
                        ));
                    }
                    store.write(ops).await?;
                    first += FILL_WRITERS * FILL_BATCH;
                }
                Ok::<_, BenchError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| BenchError::Target(format!("fill task failed: {e}")))??;
    }
    Ok(())
}

/// Runs `koru-bench backup`.
pub fn run(args: BackupArgs) -> Result<(), BenchError> {
    if args.versions == 0 || args.rpo_rate == 0 || args.archive_timeout_ms == 0 {
        return Err(BenchError::Usage(
            "--versions, --rpo-rate and --archive-timeout-ms must be above 0".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    runtime.block_on(measure(args))
}

async fn measure(args: BackupArgs) -> Result<(), BenchError> {
    let _ = std::fs::remove_dir_all(&args.work_dir);
    std::fs::create_dir_all(&args.work_dir).map_err(BenchError::io(format!(
        "creating {}",
        args.work_dir.display()
    )))?;
    let store_url = args
        .store
        .clone()
        .unwrap_or_else(|| format!("file://{}", args.work_dir.join("archive").display()));
    let url: BackupUrl = store_url
        .parse()
        .map_err(|e| BenchError::Usage(format!("--store: {e}")))?;

    // Archive throughput: the whole filled log, shipped and sealed by a base backup.
    let (store, _) = Store::open(
        store_config(&args, args.work_dir.join("data"), FsyncMode::Off),
        Arc::new(StoreMetrics::default()),
    )?;
    eprintln!("filling {} versions", thousands(args.versions as f64));
    fill(&store, &args).await?;
    let log_bytes = store.stored_bytes();
    let versions = store.stats().versions;
    let backup = BackupStore::open(&url, true).map_err(backup_error)?;
    let started = Instant::now();
    let status = Archiver::start(
        store.clone(),
        backup,
        Duration::from_secs(3600),
        Arc::new(ArchiveMetrics::default()),
        None,
        None,
    );
    base::create(&status, ARCHIVE_WAIT)
        .await
        .map_err(backup_error)?;
    let archive_secs = started.elapsed().as_secs_f64();
    store.close();

    // Restore speed: the same archive into a new directory.
    let restored = args.work_dir.join("restored");
    let report = restore(&RestoreRequest {
        from: url.clone(),
        backup: None,
        target: Target::End,
        data_dir: restored.clone(),
    })
    .await
    .map_err(backup_error)?;
    let restore_secs = report.elapsed.as_secs_f64();
    if report.versions != versions {
        return Err(BenchError::Target(format!(
            "restored {} versions of {versions}",
            report.versions
        )));
    }
    let _ = std::fs::remove_dir_all(&restored);
    let _ = std::fs::remove_dir_all(args.work_dir.join("data"));

    // Recovery point: steady writes, archive timeout as configured, lag sampled.
    let rpo_url: BackupUrl = match &args.store {
        Some(_) => format!("{}-rpo", store_url.trim_end_matches('/')),
        None => format!("file://{}", args.work_dir.join("archive-rpo").display()),
    }
    .parse()
    .map_err(|e| BenchError::Usage(format!("--store: {e}")))?;
    let (store, _) = Store::open(
        store_config(&args, args.work_dir.join("rpo"), FsyncMode::Always),
        Arc::new(StoreMetrics::default()),
    )?;
    let timeout = Duration::from_millis(args.archive_timeout_ms);
    let status = Archiver::start(
        store.clone(),
        BackupStore::open(&rpo_url, true).map_err(backup_error)?,
        timeout,
        Arc::new(ArchiveMetrics::default()),
        None,
        None,
    );
    let writer = {
        let store = store.clone();
        let (rate, secs) = (args.rpo_rate, args.rpo_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let per_tick = (rate / 100).max(1);
            let end = Instant::now() + Duration::from_secs(secs);
            let mut i = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                let ops = (0..per_tick)
                    .map(|_| {
                        i += 1;
                        Ok(WriteOp::put(
                            "rpo",
                            format!("k{}", i % 10_000),
                            value(i, "rpo")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, BenchError>>()?;
                store.write(ops).await?;
            }
            Ok::<_, BenchError>(())
        })
    };
    let mut samples = Vec::new();
    while !writer.is_finished() {
        samples.push(status.lag_seconds());
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    writer
        .await
        .map_err(|e| BenchError::Target(format!("writer failed: {e}")))??;
    store.close();
    samples.sort_by(f64::total_cmp);
    let rpo_max_secs = samples.last().copied().unwrap_or(0.0);
    let rpo_p50_secs = samples.get(samples.len() / 2).copied().unwrap_or(0.0);
    let _ = std::fs::remove_dir_all(&args.work_dir);

    let figures = BackupFigures {
        log_bytes,
        versions,
        archive_secs,
        archive_mb_per_sec: log_bytes as f64 / 1e6 / archive_secs,
        restore_secs,
        restore_mb_per_sec: report.downloaded_bytes as f64 / 1e6 / restore_secs,
        restore_versions_per_sec: report.versions as f64 / restore_secs,
        archive_timeout_secs: timeout.as_secs_f64(),
        rpo_max_secs,
        rpo_p50_secs,
    };
    let human = format!(
        "backup: archived {:.0} MB ({} versions) in {:.2} s = {:.0} MB/s; restored in {:.2} s = \
         {:.0} MB/s, {} versions/s; recovery point under {} writes/s with a {:.1} s archive \
         timeout: median {:.2} s, max {:.2} s ({})",
        log_bytes as f64 / 1e6,
        thousands(versions as f64),
        archive_secs,
        figures.archive_mb_per_sec,
        restore_secs,
        figures.restore_mb_per_sec,
        thousands(figures.restore_versions_per_sec),
        thousands(args.rpo_rate as f64),
        figures.archive_timeout_secs,
        rpo_p50_secs,
        rpo_max_secs,
        store_url,
    );
    report::emit(&human, &figures, args.json)
}

fn backup_error(e: koru_dataplane::backup::BackupError) -> BenchError {
    BenchError::Target(format!("backup: {e}"))
}
