//! Embedded write throughput: concurrent writers calling `Store::write` with batches of puts,
//! measuring versions per second and the latency of each write call.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use koru_dataplane::metrics::Metrics;
use koru_dataplane::{FsyncMode, Store, StoreConfig, WriteOp};
use serde_json::value::RawValue;

use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::report::{self, CommitStats, Figures};

/// Arguments of `koru-bench embedded`.
#[derive(Debug, Clone, Args)]
pub struct EmbeddedArgs {
    /// Store directory (created if missing; a fresh one gives repeatable figures).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Durability mode: always, interval, interval=<ms>, off.
    #[arg(long, default_value = "interval")]
    pub fsync: FsyncMode,
    /// Puts per write call.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Versions to write in all.
    #[arg(long, default_value_t = 5_000_000)]
    pub versions: u64,
    /// Concurrent writers (async tasks), each waiting for its write before sending the next.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Keys drawn from.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Stop early after this long, reporting what was written.
    #[arg(long, default_value_t = 60)]
    pub max_secs: u64,
    /// Name in the report (default: `embedded <fsync> batch <n>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Also print the result as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What one writer measured.
#[derive(Default)]
struct Tally {
    hist: Histogram,
    versions: u64,
}

/// Writes `count` versions in batches until done or the deadline passes.
async fn writer(
    store: Store,
    id: u64,
    count: u64,
    batch: usize,
    keys: u64,
    deadline: Instant,
) -> Result<Tally, BenchError> {
    let mut tally = Tally::default();
    // Keys stride by a large odd step so concurrent writers spread over the key space.
    let mut n = id.wrapping_mul(0x9E37_79B9);
    while tally.versions < count && Instant::now() < deadline {
        let take = (count - tally.versions).min(batch as u64);
        let mut ops = Vec::with_capacity(take as usize);
        for _ in 0..take {
            n = n.wrapping_add(7919);
            let value = RawValue::from_string(format!("{{\"n\":{n},\"pad\":\"xx\"}}")).map_err(
                |source| BenchError::Json {
                    context: "building a value".into(),
                    source,
                },
            )?;
            ops.push(WriteOp::put("bench", format!("k{}", n % keys), value));
        }
        let started = Instant::now();
        store.write(ops).await?;
        tally.hist.record(started.elapsed().as_nanos() as u64);
        tally.versions += take;
    }
    Ok(tally)
}

/// One sample of the Prometheus text format, e.g. `koru_fsync_duration_seconds_sum`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The commit thread's group and fsync counters, from the store's metrics in text form.
fn commit_stats(text: &str) -> Option<CommitStats> {
    let groups = sample(text, "koru_commit_group_requests_count")?;
    let writes = sample(text, "koru_commit_group_requests_sum")?;
    let fsyncs = sample(text, "koru_fsync_duration_seconds_count")?;
    let fsync_secs = sample(text, "koru_fsync_duration_seconds_sum")?;
    Some(CommitStats {
        groups: groups as u64,
        mean_group_size: writes / groups.max(1.0),
        fsyncs: fsyncs as u64,
        mean_fsync_us: 1e6 * fsync_secs / fsyncs.max(1.0),
    })
}

/// Runs `koru-bench embedded`.
pub fn run(args: EmbeddedArgs) -> Result<(), BenchError> {
    if !(1..=10_000).contains(&args.batch_size) {
        return Err(BenchError::Usage(
            "--batch-size must be between 1 and 10000".into(),
        ));
    }
    if !(1..=1024).contains(&args.writers) || args.versions == 0 || args.keys == 0 {
        return Err(BenchError::Usage(
            "--writers must be 1..=1024, --versions and --keys at least 1".into(),
        ));
    }
    if !(1..=3600).contains(&args.max_secs) {
        return Err(BenchError::Usage(
            "--max-secs must be between 1 and 3600".into(),
        ));
    }
    let mut config = StoreConfig::new(&args.data_dir);
    config.fsync = args.fsync;
    // The full registry, so the commit thread's counters can be read back in text form.
    let metrics = Metrics::default();
    let (store, _) = Store::open(config, Arc::clone(&metrics.store))?;
    // Two workers like the server's runtime on this 2-core machine; the commit thread is extra.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    let per_writer = args.versions.div_ceil(args.writers as u64);
    let cpu_before = report::process_cpu_secs();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_secs);
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.writers as u64)
            .map(|id| {
                tokio::spawn(writer(
                    store.clone(),
                    id,
                    per_writer,
                    args.batch_size,
                    args.keys,
                    deadline,
                ))
            })
            .collect();
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            tallies.push(
                task.await
                    .map_err(|e| BenchError::Target(format!("writer task failed: {e}")))??,
            );
        }
        Ok::<_, BenchError>(tallies)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = report::process_cpu_secs() - cpu_before;
    store.close();
    let mut hist = Histogram::default();
    let mut versions = 0;
    for t in &tallies {
        hist.merge(&t.hist);
        versions += t.versions;
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("embedded fsync {} batch {}", args.fsync, args.batch_size));
    let mut figures = Figures::new(name, &hist, versions, 0, elapsed);
    figures.process_cpu_percent = 100.0 * cpu / elapsed.max(1e-9);
    figures.commit = commit_stats(&metrics.encode());
    report::emit(&figures.human(), &figures, args.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_stats_come_from_the_store_metrics() {
        let metrics = Metrics::default();
        metrics.store.commit_group_size.observe(4.0);
        metrics.store.commit_group_size.observe(2.0);
        metrics.store.fsync_seconds.observe(0.000_2);
        let stats = commit_stats(&metrics.encode()).unwrap();
        assert_eq!(stats.groups, 2);
        assert!((stats.mean_group_size - 3.0).abs() < 1e-9);
        assert_eq!(stats.fsyncs, 1);
        assert!((stats.mean_fsync_us - 200.0).abs() < 1e-6);
    }
}
