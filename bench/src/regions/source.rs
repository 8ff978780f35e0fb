//! Throughput on one region: CRDT operations (`PATCH` increments on many keys) against plain
//! PUTs, and a source region's PUT throughput with nobody streaming from it, with two peer
//! regions streaming from it, and with two bare feed readers making the streams' requests
//! without applying anything (on this machine the peers' own work competes for the same cores;
//! the readers show the source's share alone).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::lag::{last_lsn, watermark};
use super::{CATCH_UP_LIMIT, RegionsArgs, start_region};
use crate::error::BenchError;
use crate::raft::cluster::free_port;
use crate::report::Figures;

/// Keys and value size of the throughput loads, as in `scripts/bench.sh`.
const KEYS: u64 = 100_000;
const VALUE_BYTES: usize = 32;
/// Records per feed page and the pause on a drained feed: what the region streams ask for.
const PAGE_LIMIT: u64 = 500;
const FEED_POLL: Duration = Duration::from_millis(100);

/// Runs `koru-bench http` against `url` and reads its JSON record.
async fn load(
    url: &str,
    name: &str,
    mode: &str,
    namespace: &str,
    args: &RegionsArgs,
) -> Result<Figures, BenchError> {
    let args = [
        "--url",
        url,
        "--mode",
        mode,
        "--namespace",
        namespace,
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

/// PUTs and PATCH increments against one region, `--rounds` times each, interleaved. The PATCH
/// loads are None when the server refused them all (a build without the CRDT operations).
pub(super) async fn crdt(
    args: &RegionsArgs,
    binary: &Path,
    work: &Path,
) -> Result<(Vec<Figures>, Option<Vec<Figures>>), BenchError> {
    let port = free_port()?;
    let _solo = start_region(binary, &work.join("solo"), "solo", port, &[]).await?;
    let url = format!("http://127.0.0.1:{port}");
    let (mut puts, mut patches) = (Vec::new(), Some(Vec::new()));
    for round in 1..=args.rounds {
        eprintln!("CRDT vs PUT, round {round}/{}", args.rounds);
        puts.push(load(&url, "region_put", "put", "bench", args).await?);
        if let Some(done) = &mut patches {
            match load(&url, "region_patch", "patch", "counters", args).await {
                Ok(f) => done.push(f),
                Err(e) => {
                    eprintln!(
                        "warning: the PATCH load failed ({e}); is {} built with the CRDT \
                         operations? The CRDT figure is left out",
                        binary.display()
                    );
                    patches = None;
                }
            }
        }
    }
    Ok((puts, patches))
}

/// The source's PUT loads, by who read its feed meanwhile.
pub(super) struct SourceRuns {
    /// Nobody.
    pub(super) alone: Vec<Figures>,
    /// Two peer regions (real `koru-dataplane` processes) streaming.
    pub(super) peers: Vec<Figures>,
    /// Two feed readers in this process.
    pub(super) readers: Vec<Figures>,
    /// After each peers load: seconds until both peers held the source's last LSN.
    pub(super) peers_settle_secs: Vec<f64>,
}

/// Waits until every reader in `readers` holds `source`'s last LSN; the seconds it took.
async fn caught_up(
    http: &reqwest::Client,
    source: &str,
    readers: &[String],
) -> Result<f64, BenchError> {
    let started = Instant::now();
    let target = last_lsn(http, source).await?;
    for reader in readers {
        loop {
            if watermark(http, reader, "a")
                .await
                .is_some_and(|lsn| lsn >= target)
            {
                break;
            }
            if started.elapsed() > CATCH_UP_LIMIT {
                return Err(BenchError::Target(format!(
                    "{reader} did not reach a's LSN {target} within {CATCH_UP_LIMIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The part of a feed page a reader needs (the records are parsed past, not kept).
#[derive(Deserialize)]
struct Page {
    next_since: u64,
    last_lsn: u64,
}

/// Follows `url`'s raw, local-origin feed from `since` as a region stream does, applying nothing.
async fn feed_reader(http: reqwest::Client, url: String, mut since: u64, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let page = async {
            let resp = http
                .get(format!(
                    "{url}/api/v1/changes?since={since}&limit={PAGE_LIMIT}&raw=true&origin=local"
                ))
                .send()
                .await
                .ok()?;
            resp.json::<Page>().await.ok()
        };
        match page.await {
            Some(p) => {
                since = p.next_since;
                if p.next_since >= p.last_lsn {
                    tokio::time::sleep(FEED_POLL).await;
                }
            }
            None => tokio::time::sleep(FEED_POLL).await,
        }
    }
}

/// Region a's PUT throughput alone, with peers b and c streaming from it, and with two feed
/// readers, `--rounds` times each, interleaved.
pub(super) async fn source(
    args: &RegionsArgs,
    binary: &Path,
    work: &Path,
    http: &reqwest::Client,
) -> Result<SourceRuns, BenchError> {
    let port = free_port()?;
    let a = format!("http://127.0.0.1:{port}");
    let _a = start_region(binary, &work.join("source-a"), "a", port, &[]).await?;
    let peer_ports = [("b", free_port()?), ("c", free_port()?)];
    let peer_urls: Vec<String> = peer_ports
        .iter()
        .map(|(_, p)| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut runs = SourceRuns {
        alone: Vec::new(),
        peers: Vec::new(),
        readers: Vec::new(),
        peers_settle_secs: Vec::new(),
    };
    for round in 1..=args.rounds {
        eprintln!(
            "source cost, round {round}/{}: nobody streaming",
            args.rounds
        );
        runs.alone
            .push(load(&a, "source_alone_put", "put", "bench", args).await?);
        eprintln!(
            "source cost, round {round}/{}: peers b and c streaming",
            args.rounds
        );
        let mut peers = Vec::new();
        for (name, p) in peer_ports {
            let dir = work.join(format!("source-{name}"));
            peers.push(start_region(binary, &dir, name, p, &[("a", a.as_str())]).await?);
        }
        // Both peers first apply what a took so far, so the load meets steady streams.
        let took = caught_up(http, &a, &peer_urls).await?;
        eprintln!("  peers caught up in {took:.1} s");
        runs.peers
            .push(load(&a, "source_peers_put", "put", "bench", args).await?);
        let settle = caught_up(http, &a, &peer_urls).await?;
        eprintln!("  peers held a's last LSN {settle:.2} s after the load");
        runs.peers_settle_secs.push(settle);
        drop(peers);
        eprintln!(
            "source cost, round {round}/{}: two feed readers",
            args.rounds
        );
        let stop = Arc::new(AtomicBool::new(false));
        let from = last_lsn(http, &a).await?;
        let readers: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(feed_reader(
                    http.clone(),
                    a.clone(),
                    from,
                    Arc::clone(&stop),
                ))
            })
            .collect();
        let measured = load(&a, "source_readers_put", "put", "bench", args).await;
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.abort();
        }
        runs.readers.push(measured?);
    }
    Ok(runs)
}
