//! Replication lag and catch-up between two regions: region `a` takes a steady write load, region
//! `b` streams from it through a delaying proxy. Each acknowledged write's LSN (from its session
//! token) is timed until b's `GET /admin/v1/regions` shows a's watermark at or past it; then the
//! link is cut for the partition, healed, and b's watermark is timed to a's last LSN.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use koru_dataplane::region::session::SESSION_HEADER;
use koru_dataplane_api::region::RegionStatus;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::stats::{self, CatchUp};
use crate::error::BenchError;

/// Namespace the steady load writes.
const NS: &str = "regbench";
/// Keys the steady load cycles through.
const STEADY_KEYS: u64 = 10_000;
/// Writes of the steady load in flight at most (a slow answer must not stop the pace).
const MAX_IN_FLIGHT: usize = 64;
/// How often the lag poller reads the reader's watermark.
pub(super) const LAG_POLL: Duration = Duration::from_millis(2);
/// How often the watermark is read while catching up.
const CATCH_UP_POLL: Duration = Duration::from_millis(10);
/// How long the reader may take to apply the last sampled writes, or catch up, before the run
/// fails.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// Warm-up before lag samples count.
const WARMUP: Duration = Duration::from_secs(1);

/// What the steady load counted.
#[derive(Default)]
pub(super) struct Counts {
    stop: AtomicBool,
    pub(super) ok: AtomicU64,
    pub(super) failed: AtomicU64,
}

/// A steady load of single PUTs to `url` at `rate` per second; each acknowledged write's
/// `(LSN in region, acknowledgement time)` goes to `acks`. Runs until `counts.stop` is set.
pub(super) async fn steady(
    http: reqwest::Client,
    url: String,
    region: String,
    rate: u32,
    counts: Arc<Counts>,
    acks: mpsc::UnboundedSender<(u64, Instant)>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut n = 0u64;
    while !counts.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (http, counts, acks) = (http.clone(), Arc::clone(&counts), acks.clone());
        let target = format!("{url}/api/v1/{NS}/k{}", n % STEADY_KEYS);
        let region = region.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let sent = http
                .put(target)
                .header("content-type", "application/json")
                .body(format!("{{\"value\":{{\"n\":{n}}}}}"))
                .send()
                .await;
            let acked = Instant::now();
            let lsn = match &sent {
                Ok(r) if r.status().is_success() => r
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| stats::session_lsn(v, &region)),
                _ => None,
            };
            match lsn {
                Some(lsn) => {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                    let _ = acks.send((lsn, acked));
                }
                None => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// Stops the steady load when dropped, on every way out of a measurement.
pub(super) struct Load {
    pub(super) counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Starts the steady load; acknowledgements go to the returned receiver.
    pub(super) fn start(
        http: &reqwest::Client,
        url: &str,
        region: &str,
        rate: u32,
    ) -> (Load, mpsc::UnboundedReceiver<(u64, Instant)>) {
        let counts = Arc::new(Counts::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(steady(
            http.clone(),
            url.to_string(),
            region.to_string(),
            rate,
            Arc::clone(&counts),
            tx,
        ));
        (Load { counts, task }, rx)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.counts.stop.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

/// The watermark `reader` holds for `source`, from its `GET /admin/v1/regions`; None if it does
/// not answer or does not list the source.
pub(super) async fn watermark(http: &reqwest::Client, reader: &str, source: &str) -> Option<u64> {
    let resp = http
        .get(format!("{reader}/admin/v1/regions"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let status: RegionStatus = resp.json().await.ok()?;
    status
        .peers
        .iter()
        .find(|p| p.name == source)
        .map(|p| p.applied_lsn)
}

/// The part of `/readyz` read here.
#[derive(Deserialize)]
struct Ready {
    last_lsn: u64,
}

/// A server's last LSN, from `/readyz`.
pub(super) async fn last_lsn(http: &reqwest::Client, url: &str) -> Result<u64, BenchError> {
    let fail = |e: String| BenchError::Target(format!("reading {url}/readyz: {e}"));
    let resp = http
        .get(format!("{url}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let ready: Ready = resp.json().await.map_err(|e| fail(e.to_string()))?;
    Ok(ready.last_lsn)
}

/// Replication lag samples, seconds.
pub(super) struct LagRun {
    /// Ascending lag of each write acknowledged in the window.
    pub(super) samples: Vec<f64>,
    /// Writes acknowledged and failed over the whole run.
    pub(super) ok: u64,
    pub(super) failed: u64,
}

/// Writes to `a` at `rate` for `secs` after a second of warm-up and times each acknowledged
/// write until `b` has applied it.
pub(super) async fn lag(
    http: &reqwest::Client,
    a: &str,
    b: &str,
    rate: u32,
    secs: u64,
) -> Result<LagRun, BenchError> {
    let (load, mut acks) = Load::start(http, a, "a", rate);
    let start = Instant::now() + WARMUP;
    let end = start + Duration::from_secs(secs);
    // LSN → acknowledgement times of the writes not yet seen applied.
    let mut pending: BTreeMap<u64, Vec<Instant>> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut stopped = false;
    loop {
        let now = Instant::now();
        if !stopped && now >= end {
            load.counts.stop.store(true, Ordering::Relaxed);
            stopped = true;
        }
        while let Ok((lsn, at)) = acks.try_recv() {
            if at >= start && at < end {
                pending.entry(lsn).or_default().push(at);
            }
        }
        if let Some(applied) = watermark(http, b, "a").await {
            let seen = Instant::now();
            let later = pending.split_off(&(applied + 1));
            for at in std::mem::replace(&mut pending, later)
                .into_values()
                .flatten()
            {
                samples.push(seen.duration_since(at).as_secs_f64());
            }
        }
        if stopped && pending.is_empty() && acks.is_empty() && Instant::now() > end + LAG_POLL {
            break;
        }
        if now > end + SETTLE_LIMIT {
            return Err(BenchError::Target(format!(
                "region b had not applied {} of a's writes {SETTLE_LIMIT:?} after the load ended",
                pending.values().map(Vec::len).sum::<usize>()
            )));
        }
        tokio::time::sleep(LAG_POLL).await;
    }
    let (ok, failed) = (
        load.counts.ok.load(Ordering::Relaxed),
        load.counts.failed.load(Ordering::Relaxed),
    );
    drop(load);
    samples.sort_by(f64::total_cmp);
    Ok(LagRun {
        samples,
        ok,
        failed,
    })
}

/// What a partition measured.
pub(super) struct PartitionRun {
    /// The catch-up.
    pub(super) catch_up: CatchUp,
    /// Writes acknowledged and failed while the link was cut.
    pub(super) ok: u64,
    pub(super) failed: u64,
}

/// Cuts the link (through `cut`) for `secs` while `a` takes writes at `rate`, heals it (through
/// `heal`) and times `b`'s watermark to a's last LSN at the heal. The load goes on meanwhile.
pub(super) async fn partition(
    http: &reqwest::Client,
    (a, b): (&str, &str),
    rate: u32,
    secs: u64,
    cut: impl FnOnce(),
    heal: impl FnOnce(),
) -> Result<PartitionRun, BenchError> {
    let (load, _acks) = Load::start(http, a, "a", rate);
    tokio::time::sleep(WARMUP).await;
    cut();
    let cut_at = Instant::now();
    let partition = Duration::from_secs(secs);
    while cut_at.elapsed() < partition {
        let left = partition.saturating_sub(cut_at.elapsed());
        eprintln!(
            "  partitioned: {} s left, {} writes acknowledged by a",
            left.as_secs(),
            load.counts.ok.load(Ordering::Relaxed)
        );
        tokio::time::sleep(left.min(Duration::from_secs(15))).await;
    }
    let (ok, failed) = (
        load.counts.ok.load(Ordering::Relaxed),
        load.counts.failed.load(Ordering::Relaxed),
    );
    let before = watermark(http, b, "a").await.ok_or_else(|| {
        BenchError::Target("region b did not answer GET /admin/v1/regions".into())
    })?;
    let target = last_lsn(http, a).await?;
    heal();
    let healed = Instant::now();
    let mut readings = Vec::new();
    loop {
        if let Some(lsn) = watermark(http, b, "a").await {
            readings.push((healed.elapsed().as_secs_f64(), lsn));
            if lsn >= target {
                break;
            }
        }
        if healed.elapsed() > SETTLE_LIMIT {
            return Err(BenchError::Target(format!(
                "region b did not catch up with a's LSN {target} within {SETTLE_LIMIT:?} of the \
                 heal; last readings {:?}",
                &readings[readings.len().saturating_sub(5)..]
            )));
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
    drop(load);
    let catch_up = stats::catch_up(before, target, &readings).ok_or_else(|| {
        BenchError::Target(format!(
            "region b's watermark did not move past {before} after the heal"
        ))
    })?;
    Ok(PartitionRun {
        catch_up,
        ok,
        failed,
    })
}
