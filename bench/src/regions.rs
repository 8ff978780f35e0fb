//! Multi-region replication: a source region and a region streaming from it through a proxy that
//! delays every chunk by `--link-delay-ms` (50 ms by default, a cross-region link). Measured:
//! replication lag under a steady write load (from the source's commit time to the commit time of
//! the applied copy, both read from the records, so polling adds nothing), catch-up versions/s
//! after a partition heals, and the source's write throughput with and without a peer streaming.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::raft::cluster::{free_port, start_server};

/// Arguments of `koru-bench regions`.
#[derive(Debug, Clone, Args)]
pub struct RegionsArgs {
    /// The `koru-dataplane` binary; the one beside this executable when not given.
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// One-way delay the proxy adds to each chunk on the link, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub link_delay_ms: u64,
    /// Writes per second of the steady load the lag is measured under.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Seconds of steady load, and of each throughput figure.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Versions written while the link is cut, for the catch-up figure.
    #[arg(long, default_value_t = 20_000)]
    pub backlog: u64,
    /// Concurrent writers of the throughput figures.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub struct RegionsFigures {
    /// The link's injected one-way delay.
    pub link_delay_ms: u64,
    /// Replication lag under the steady load: median and 99th percentile, and versions seen.
    pub lag_p50_ms: f64,
    /// See `lag_p50_ms`.
    pub lag_p99_ms: f64,
    /// Versions the lag was measured over.
    pub lag_versions: u64,
    /// Versions applied per second while catching up after the partition healed.
    pub catch_up_versions_per_sec: f64,
    /// The source's PUTs per second with no peer streaming from it.
    pub source_puts_per_sec_alone: f64,
    /// The same with a peer streaming.
    pub source_puts_per_sec_streamed: f64,
}

/// A TCP proxy delaying each chunk; `cut` drops live connections and refuses new ones.
struct DelayProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl DelayProxy {
    async fn start(target: SocketAddr, delay: Duration) -> Result<DelayProxy, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(BenchError::io("binding the link proxy"))?;
        let addr = listener
            .local_addr()
            .map_err(BenchError::io("reading the proxy's address"))?;
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (c, g) = (Arc::clone(&cut), Arc::clone(&generation));
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let born = g.load(Ordering::SeqCst);
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, delay, Arc::clone(&g), born));
                tokio::spawn(pump(ro, wi, delay, Arc::clone(&g), born));
            }
        });
        Ok(DelayProxy {
            addr,
            cut,
            generation,
        })
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Copies one direction, each chunk after `delay`, until the link is cut or a side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    generation: Arc<AtomicU64>,
    born: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        tokio::time::sleep(delay).await;
        if generation.load(Ordering::SeqCst) != born || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn binary(args: &RegionsArgs) -> Result<PathBuf, BenchError> {
    let path = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(BenchError::io("finding this executable"))?
            .with_file_name("koru-dataplane"),
    };
    if !path.is_file() {
        return Err(BenchError::Usage(format!(
            "no koru-dataplane binary at {}: build it or pass --server",
            path.display()
        )));
    }
    Ok(path)
}

fn target(e: impl std::fmt::Display) -> BenchError {
    BenchError::Target(e.to_string())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, BenchError> {
    http.get(url)
        .send()
        .await
        .map_err(target)?
        .json()
        .await
        .map_err(target)
}

/// PUTs from `connections` writers for `secs`; writes per second.
async fn throughput(http: &reqwest::Client, url: &str, connections: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (http, url, done) = (http.clone(), url.to_owned(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < until {
                    i += 1;
                    let ok = http
                        .put(format!("{url}/api/v1/load/c{c}-{}", i % 1000))
                        .json(&json!({"value": {"i": i}}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

/// Waits until `reader` has applied the source's records through `lsn`.
async fn applied(http: &reqwest::Client, reader: &str, lsn: u64) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let s = get_json(http, &format!("{reader}/admin/v1/regions")).await?;
        if s["peers"][0]["applied_lsn"].as_u64().unwrap_or(0) >= lsn {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Target(format!(
                "the reader never reached LSN {lsn}: {s}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn measure(args: &RegionsArgs, work: &std::path::Path) -> Result<RegionsFigures, BenchError> {
    let bin = binary(args)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(target)?;
    let (src_port, rdr_port) = (free_port()?, free_port()?);
    let delay = Duration::from_millis(args.link_delay_ms);
    let proxy = DelayProxy::start(
        format!("127.0.0.1:{src_port}").parse().map_err(target)?,
        delay,
    )
    .await?;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let _source = start_server(&bin, &work.join("src"), src_port, &s(&["--region", "src"])).await?;
    let peer = format!("src=http://{}", proxy.addr);
    let _reader = start_server(
        &bin,
        &work.join("rdr"),
        rdr_port,
        &s(&["--region", "rdr", "--region-peer", &peer]),
    )
    .await?;
    let (src, rdr) = (
        format!("http://127.0.0.1:{src_port}"),
        format!("http://127.0.0.1:{rdr_port}"),
    );

    // Throughput with nobody streaming (the link cut), then with the reader streaming.
    proxy.set_cut(true);
    let alone = throughput(&http, &src, args.connections, args.secs).await;
    proxy.set_cut(false);
    let streamed = throughput(&http, &src, args.connections, args.secs).await;
    let (last, _) = last_lsn(&http, &src).await?;
    applied(&http, &rdr, last).await?;

    // Lag under a steady load: from each record's commit time at the source to its copy's.
    let (start_lsn, _) = last_lsn(&http, &rdr).await?;
    let every = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut tick = tokio::time::interval(every);
    let until = Instant::now() + Duration::from_secs(args.secs);
    let mut n = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        n += 1;
        let (http, src) = (http.clone(), src.clone());
        tokio::spawn(async move {
            let _ = http
                .put(format!("{src}/api/v1/lag/k{}", n % 100))
                .json(&json!({"value": n}))
                .send()
                .await;
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (last, _) = last_lsn(&http, &src).await?;
    applied(&http, &rdr, last).await?;
    let mut hist = Histogram::default();
    let mut since = start_lsn;
    loop {
        let page = get_json(
            &http,
            &format!("{rdr}/api/v1/changes?since={since}&raw=true&limit=10000"),
        )
        .await?;
        let changes = page["changes"].as_array().cloned().unwrap_or_default();
        if changes.is_empty() {
            break;
        }
        for c in &changes {
            let applied_at = micros(c["timestamp"].as_str().unwrap_or_default());
            for op in c["ops"].as_array().into_iter().flatten() {
                if op["namespace"] != "lag" {
                    continue;
                }
                if let Some(t) = op["value"]["$crdt"]["register"]["hlc"]["t"].as_i64() {
                    hist.record(((applied_at - t).max(0) as u64) * 1000);
                }
            }
        }
        since = page["next_since"].as_u64().unwrap_or(since);
    }

    // Catch-up: a backlog written while the link is cut, timed from the heal.
    proxy.set_cut(true);
    let batch = 100u64;
    for b in 0..args.backlog.div_ceil(batch) {
        let writes: Vec<Value> = (0..batch)
            .map(|i| json!({"namespace": "backlog", "key": format!("k{}", (b * batch + i) % 5000), "value": b * batch + i}))
            .collect();
        let resp = http
            .post(format!("{src}/api/v1/batch"))
            .json(&json!({ "writes": writes }))
            .send()
            .await
            .map_err(target)?;
        if !resp.status().is_success() {
            return Err(BenchError::Target(format!(
                "batch write: {}",
                resp.status()
            )));
        }
    }
    let (last, _) = last_lsn(&http, &src).await?;
    let healed = Instant::now();
    proxy.set_cut(false);
    applied(&http, &rdr, last).await?;
    let catch_up = args.backlog as f64 / healed.elapsed().as_secs_f64();

    Ok(RegionsFigures {
        link_delay_ms: args.link_delay_ms,
        lag_p50_ms: hist.quantile(0.5) as f64 / 1e6,
        lag_p99_ms: hist.quantile(0.99) as f64 / 1e6,
        lag_versions: hist.count(),
        catch_up_versions_per_sec: catch_up,
        source_puts_per_sec_alone: alone,
        source_puts_per_sec_streamed: streamed,
    })
}

async fn last_lsn(http: &reqwest::Client, url: &str) -> Result<(u64, Value), BenchError> {
    let page = get_json(http, &format!("{url}/api/v1/changes?since=0&limit=1")).await?;
    Ok((page["last_lsn"].as_u64().unwrap_or(0), page))
}

fn micros(rfc3339: &str) -> i64 {
    koru_dataplane::clock::parse_micros(rfc3339).unwrap_or(0)
}

/// Runs `koru-bench regions`.
pub fn run(args: RegionsArgs) -> Result<(), BenchError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = std::env::temp_dir().join(format!("koru-bench-regions-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(BenchError::io("creating the work directory"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    let result = runtime.block_on(measure(&args, &work));
    drop(runtime);
    let _ = std::fs::remove_dir_all(&work);
    let f = result?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&f).map_err(|e| BenchError::Json {
                context: "figures".into(),
                source: e
            })?
        );
    } else {
        println!(
            "regions (link +{} ms): lag p50 {:.1} ms, p99 {:.1} ms over {} versions; catch-up {:.0} versions/s; source PUTs/s {:.0} alone, {:.0} streamed",
            f.link_delay_ms,
            f.lag_p50_ms,
            f.lag_p99_ms,
            f.lag_versions,
            f.catch_up_versions_per_sec,
            f.source_puts_per_sec_alone,
            f.source_puts_per_sec_streamed
        );
    }
    Ok(())
}
