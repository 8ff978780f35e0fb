//! The HTTP load generator: keep-alive hyper HTTP/1.1 connections, each a task sending requests
//! back-to-back, with per-task latency histograms merged at the end.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::report::{self, Figures};

/// Request bodies built per connection for the batch mode; cycling a few keeps the client cheap
/// while every write still makes a new version on the server.
const BATCH_BODIES_PER_CONNECTION: usize = 4;
/// Reconnections one connection may make after transport errors before it gives up.
const MAX_RECONNECTS: u32 = 100;
/// Longest the tool waits for one preload request before giving up.
const PRELOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the measured window a request still in flight is waited for; it cannot count,
/// and a server that never answers (koru-delta 3.0.1 does that under load) must not hang the run.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `PUT /api/v1/{ns}/{key}` with `{"value": ...}`, random keys.
    Put,
    /// `GET /api/v1/{ns}/{key}` of random preloaded keys.
    Get,
    /// `POST /api/v1/batch` with `--batch-size` writes of random keys.
    Batch,
    /// `PATCH /api/v1/{ns}/{key}` incrementing a counter by 1, random keys (an absent key
    /// becomes a counter), for the CRDT operations' throughput against plain PUTs.
    Patch,
}

/// How the get mode writes its keys before measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preload {
    /// Batches of `--batch-size` through `POST /api/v1/batch`.
    Batch,
    /// One PUT per key, for servers without the batch extension.
    Put,
    /// Nothing: the server answers any key (the ceiling server).
    None,
}

/// Arguments of `koru-bench http`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Base URL of the server under test, e.g. http://127.0.0.1:7878; loopback addresses only.
    #[arg(long)]
    pub url: String,
    /// Request kind.
    #[arg(long, value_enum, default_value = "put")]
    pub mode: Mode,
    /// Concurrent keep-alive connections, each sending one request at a time.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Length of the measured window.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Load sent before the measured window starts, not counted.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// Writes per batch request (batch mode and batch preload).
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Keys drawn from (uniformly at random).
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Approximate size of each value's JSON text.
    #[arg(long, default_value_t = 32)]
    pub value_bytes: usize,
    /// Namespace written and read.
    #[arg(long, default_value = "bench")]
    pub namespace: String,
    /// How the get mode loads its keys.
    #[arg(long, value_enum, default_value = "batch")]
    pub preload: Preload,
    /// Client runtime threads (1 runs the client on one core, like redis-benchmark).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Name in the report (default: `http <mode>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Also print the result as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
    /// Prefix of every path, e.g. `/c/<org>/<cluster>` to load a cluster through the gateway.
    #[arg(long, default_value = "")]
    pub path_prefix: String,
    /// A server process (pid, on this machine) whose CPU time over the measured window is
    /// reported (`server_cpu_us`, in the order given); may be repeated.
    #[arg(long = "cpu-pid")]
    pub cpu_pids: Vec<u32>,
}

/// Checks ranges clap cannot, and that the target is on this machine.
fn validate(args: &HttpArgs) -> Result<(SocketAddr, String), BenchError> {
    let bad = |m: &str| Err(BenchError::Usage(m.into()));
    if !(1..=1024).contains(&args.connections) {
        return bad("--connections must be between 1 and 1024");
    }
    if !(1..=3600).contains(&args.duration_secs) || args.warmup_secs > 600 {
        return bad("--duration-secs must be 1..=3600 and --warmup-secs at most 600");
    }
    if !(1..=65_535).contains(&args.batch_size) {
        return bad("--batch-size must be between 1 and 65535");
    }
    if !(1..=1_000_000_000).contains(&args.keys) {
        return bad("--keys must be between 1 and 1000000000");
    }
    if !(8..=1 << 20).contains(&args.value_bytes) {
        return bad("--value-bytes must be between 8 and 1048576");
    }
    if !(1..=64).contains(&args.threads) {
        return bad("--threads must be between 1 and 64");
    }
    let ns_ok = !args.namespace.is_empty()
        && args
            .namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ns_ok {
        return bad("--namespace must be letters, digits, '_' or '-'");
    }
    loopback_target(&args.url)
}

/// The socket address and Host header of a loopback URL; anything else is refused, because this
/// tool generates heavy load and must never point it at another machine.
pub fn loopback_target(url: &str) -> Result<(SocketAddr, String), BenchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| BenchError::Usage(format!("--url {url:?} is not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(BenchError::Usage(format!(
            "--url {url:?}: only http:// is supported"
        )));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| BenchError::Usage(format!("--url {url:?} has no host")))?;
    let host = authority.host();
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| BenchError::Usage(format!("--url host {host:?} is not an IP address")))?
    };
    if !ip.is_loopback() {
        return Err(BenchError::Usage(format!(
            "--url {url:?}: only loopback addresses (127.0.0.0/8, ::1) may be targeted"
        )));
    }
    let port = authority.port_u16().unwrap_or(80);
    Ok((SocketAddr::new(ip, port), authority.as_str().to_string()))
}

/// A small, fast, seedable generator: key choice must not cost the client more than the server.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// xorshift64*.
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Everything the connection tasks share.
struct Plan {
    addr: SocketAddr,
    host: String,
    mode: Mode,
    namespace: String,
    keys: u64,
    batch_size: usize,
    /// Filler that brings each value to about `--value-bytes`.
    pad: String,
    /// `--path-prefix`.
    prefix: String,
}

impl Plan {
    /// `{"n":<n>,"pad":"..."}`: unique per write so no server can deduplicate identical values.
    fn value(&self, n: u64) -> String {
        format!("{{\"n\":{n},\"pad\":\"{}\"}}", self.pad)
    }

    fn key_path(&self, key: u64) -> String {
        format!("{}/api/v1/{}/k{key}", self.prefix, self.namespace)
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, BenchError> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| BenchError::Usage(format!("cannot build a request for {path}: {e}")))
    }

    fn put(&self, key: u64, n: u64) -> Result<Request<Full<Bytes>>, BenchError> {
        let body = format!("{{\"value\":{}}}", self.value(n));
        self.request(Method::PUT, &self.key_path(key), Bytes::from(body))
    }

    /// A CRDT operation: increment the counter at `key` by one.
    fn patch(&self, key: u64) -> Result<Request<Full<Bytes>>, BenchError> {
        let body = Bytes::from_static(br#"{"op":"increment","by":1}"#);
        self.request(Method::PATCH, &self.key_path(key), body)
    }

    /// A batch body writing `keys`.
    fn batch_body(&self, keys: impl Iterator<Item = u64>, n: u64) -> Bytes {
        let mut body = String::with_capacity(self.batch_size * (self.pad.len() + 64) + 16);
        body.push_str("{\"writes\":[");
        for (i, key) in keys.enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                "{{\"namespace\":\"{}\",\"key\":\"k{key}\",\"value\":{}}}",
                self.namespace,
                self.value(n + i as u64)
            ));
        }
        body.push_str("]}");
        Bytes::from(body)
    }
}

/// One connection's view of the measured window.
struct Window {
    start: Instant,
    end: Instant,
}

/// What one connection task measured.
#[derive(Default)]
struct Tally {
    hist: Histogram,
    versions: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, counted: bool, message: impl FnOnce() -> String) {
        if counted {
            self.errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }
}

/// Opens one keep-alive connection; its driver runs as its own task.
async fn connect(plan: &Plan) -> Result<SendRequest<Full<Bytes>>, BenchError> {
    let stream = TcpStream::connect(plan.addr)
        .await
        .map_err(BenchError::io(format!("connecting to {}", plan.addr)))?;
    stream
        .set_nodelay(true)
        .map_err(BenchError::io("setting TCP_NODELAY"))?;
    let (send, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| BenchError::Target(format!("HTTP handshake with {}: {e}", plan.addr)))?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the server closes it; either way the
        // request side sees the error, so there is nothing to do with it here.
        let _ = conn.await;
    });
    Ok(send)
}

/// Sends one request and reads the whole answer.
async fn exchange(
    send: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
    deadline: Instant,
) -> Result<(StatusCode, Bytes), String> {
    let exchange = async {
        send.ready().await?;
        let response = send.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body))
    };
    match tokio::time::timeout_at(deadline.into(), exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer before the deadline".into()),
    }
}

/// Writes this connection's share of the keys before a get run; any failure aborts the run.
async fn preload(
    plan: &Plan,
    how: Preload,
    id: u64,
    connections: u64,
    send: &mut SendRequest<Full<Bytes>>,
) -> Result<(), BenchError> {
    let chunk = match how {
        Preload::Batch => plan.batch_size as u64,
        Preload::Put => 1,
        Preload::None => return Ok(()),
    };
    let chunks = plan.keys.div_ceil(chunk);
    let mut c = id;
    while c < chunks {
        let first = c * chunk;
        let last = (first + chunk).min(plan.keys);
        let request = match how {
            Preload::Batch => plan.request(
                Method::POST,
                &format!("{}/api/v1/batch", plan.prefix),
                plan.batch_body(first..last, first),
            )?,
            Preload::Put | Preload::None => plan.put(first, first)?,
        };
        match exchange(send, request, Instant::now() + PRELOAD_TIMEOUT).await {
            Ok((status, _)) if status.is_success() => {}
            Ok((status, body)) => {
                return Err(BenchError::Target(format!(
                    "preloading keys {first}..{last}: {status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            Err(e) => {
                return Err(BenchError::Target(format!(
                    "preloading keys {first}..{last}: {e}"
                )));
            }
        }
        c += connections;
    }
    Ok(())
}

/// Sends requests back-to-back until the window closes, counting those that finish inside it.
async fn drive(
    plan: Arc<Plan>,
    window: Arc<Window>,
    id: u64,
    mut send: SendRequest<Full<Bytes>>,
) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng::new(id + 1);
    let mut reconnects = 0;
    // Values are numbered id << 40 + seq so no two writes of a run carry the same value.
    let mut seq = id << 40;
    let batches: Vec<Bytes> = if plan.mode == Mode::Batch {
        (0..BATCH_BODIES_PER_CONNECTION)
            .map(|b| {
                let keys: Vec<u64> = (0..plan.batch_size).map(|_| rng.below(plan.keys)).collect();
                plan.batch_body(keys.into_iter(), seq + (b * plan.batch_size) as u64)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut next_batch = 0;
    while Instant::now() < window.end {
        let key = rng.below(plan.keys);
        seq += 1;
        let built = match plan.mode {
            Mode::Put => plan.put(key, seq),
            Mode::Get => plan.request(Method::GET, &plan.key_path(key), Bytes::new()),
            Mode::Patch => plan.patch(key),
            Mode::Batch => {
                next_batch = (next_batch + 1) % batches.len();
                let path = format!("{}/api/v1/batch", plan.prefix);
                plan.request(Method::POST, &path, batches[next_batch].clone())
            }
        };
        let request = match built {
            Ok(r) => r,
            Err(e) => {
                tally.error(true, || e.to_string());
                break;
            }
        };
        let started = Instant::now();
        let answer = exchange(&mut send, request, window.end + DRAIN_GRACE).await;
        let done = Instant::now();
        // Successes count when they finish inside the window; failures when they started in it,
        // so a request the server never answers still shows up as an error.
        let sent_inside = started >= window.start && started < window.end;
        let counted = sent_inside && done <= window.end;
        match answer {
            Ok((status, _)) if status.is_success() => {
                if counted {
                    tally
                        .hist
                        .record(done.duration_since(started).as_nanos() as u64);
                    tally.versions += match plan.mode {
                        Mode::Put | Mode::Patch => 1,
                        Mode::Get => 0,
                        Mode::Batch => plan.batch_size as u64,
                    };
                }
            }
            Ok((status, body)) => tally.error(sent_inside, || {
                format!("{status}: {}", String::from_utf8_lossy(&body))
            }),
            Err(e) => {
                tally.error(sent_inside, || e.clone());
                // A timed-out or broken connection is unusable either way: hyper refuses to reuse it.
                if reconnects >= MAX_RECONNECTS || Instant::now() >= window.end {
                    break;
                }
                reconnects += 1;
                match connect(&plan).await {
                    Ok(s) => send = s,
                    Err(e) => {
                        tally.error(false, || e.to_string());
                        break;
                    }
                }
            }
        }
    }
    tally
}

/// Runs `koru-bench http`.
pub fn run(args: HttpArgs) -> Result<(), BenchError> {
    let (addr, host) = validate(&args)?;
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(BenchError::io("starting the client runtime"))?;
    let figures = runtime.block_on(measure(&args, addr, host))?;
    report::emit(&figures.human(), &figures, args.json)
}

async fn measure(args: &HttpArgs, addr: SocketAddr, host: String) -> Result<Figures, BenchError> {
    // The value is {"n":<up to 19 digits>,"pad":"..."}: about 30 bytes around the pad.
    let pad = "x".repeat(args.value_bytes.saturating_sub(30).max(1));
    let plan = Arc::new(Plan {
        addr,
        host,
        mode: args.mode,
        namespace: args.namespace.clone(),
        keys: args.keys,
        batch_size: args.batch_size,
        pad,
        prefix: args.path_prefix.trim_end_matches('/').to_string(),
    });
    let mut senders = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        senders.push(connect(&plan).await?);
    }
    if args.mode == Mode::Get {
        let started = Instant::now();
        let connections = args.connections as u64;
        let mut tasks = Vec::new();
        for (id, mut send) in senders.into_iter().enumerate() {
            let plan = Arc::clone(&plan);
            let how = args.preload;
            tasks.push(tokio::spawn(async move {
                preload(&plan, how, id as u64, connections, &mut send)
                    .await
                    .map(|()| send)
            }));
        }
        senders = Vec::with_capacity(args.connections);
        for task in tasks {
            let joined = task
                .await
                .map_err(|e| BenchError::Target(format!("preload task failed: {e}")))?;
            senders.push(joined?);
        }
        if args.preload != Preload::None {
            eprintln!(
                "preloaded {} keys in {:.1} s",
                args.keys,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let start = Instant::now() + Duration::from_secs(args.warmup_secs);
    let window = Arc::new(Window {
        start,
        end: start + Duration::from_secs(args.duration_secs),
    });
    let servers = server_cpu(args.cpu_pids.clone(), Arc::clone(&window));
    let cpu_before = report::process_cpu_secs();
    let began = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(id, send)| {
            tokio::spawn(drive(
                Arc::clone(&plan),
                Arc::clone(&window),
                id as u64,
                send,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = task
            .await
            .map_err(|e| BenchError::Target(format!("load task failed: {e}")))?;
        total.hist.merge(&tally.hist);
        total.versions += tally.versions;
        total.errors += tally.errors;
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    let cpu = report::process_cpu_secs() - cpu_before;
    let wall = began.elapsed().as_secs_f64();
    let server_cpu_us = servers
        .join()
        .map_err(|_| BenchError::Target("the CPU sampling thread panicked".into()))??;
    if let Some(e) = &total.first_error {
        eprintln!("first error: {e}");
    }
    if total.hist.count() == 0 {
        return Err(BenchError::Target(format!(
            "no request succeeded against {}; first error: {}",
            plan.addr,
            total.first_error.as_deref().unwrap_or("none")
        )));
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("http {}", format!("{:?}", args.mode).to_lowercase()));
    let mut figures = Figures::new(
        name,
        &total.hist,
        total.versions,
        total.errors,
        window.end.duration_since(window.start).as_secs_f64(),
    );
    figures.process_cpu_percent = 100.0 * cpu / wall.max(1e-9);
    figures.server_cpu_us = server_cpu_us;
    Ok(figures)
}

/// Reads the CPU time of `pids` at the measured window's start and end, on a thread of its own
/// so a busy client runtime cannot delay the readings; the difference per process, in
/// microseconds. A process gone by the end is an error: its figure would be meaningless.
fn server_cpu(
    pids: Vec<u32>,
    window: Arc<Window>,
) -> std::thread::JoinHandle<Result<Vec<u64>, BenchError>> {
    std::thread::spawn(move || {
        let read = |pid: u32| {
            report::pid_cpu_micros(pid).ok_or_else(|| {
                BenchError::Target(format!("process {pid} (--cpu-pid) is not running"))
            })
        };
        if pids.is_empty() {
            return Ok(Vec::new());
        }
        std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
        let before: Vec<u64> = pids.iter().map(|&p| read(p)).collect::<Result<_, _>>()?;
        std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
        pids.iter()
            .zip(before)
            .map(|(&p, b)| Ok(read(p)?.saturating_sub(b)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        let (addr, host) = loopback_target("http://127.0.0.1:7878").unwrap();
        assert_eq!(addr.port(), 7878);
        assert_eq!(host, "127.0.0.1:7878");
        assert!(loopback_target("http://localhost:80/").is_ok());
        assert!(loopback_target("http://[::1]:9000").is_ok());
        for bad in [
            "http://10.0.0.1:80",
            "http://example.com",
            "https://127.0.0.1",
            "nonsense",
        ] {
            assert!(
                matches!(loopback_target(bad), Err(BenchError::Usage(_))),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn batch_bodies_are_the_api_shape() {
        let plan = Plan {
            addr: "127.0.0.1:1".parse().unwrap(),
            host: "h".into(),
            mode: Mode::Batch,
            namespace: "ns".into(),
            keys: 10,
            batch_size: 3,
            pad: "xx".into(),
            prefix: String::new(),
        };
        let body: serde_json::Value =
            serde_json::from_slice(&plan.batch_body([1, 2, 3].into_iter(), 7)).unwrap();
        let writes = body["writes"].as_array().unwrap();
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[2]["key"], "k3");
        assert_eq!(writes[2]["value"]["n"], 9);
        assert_eq!(writes[0]["namespace"], "ns");
    }

    #[test]
    fn patch_requests_increment_a_counter_at_the_key() {
        let plan = Plan {
            addr: "127.0.0.1:1".parse().unwrap(),
            host: "h".into(),
            mode: Mode::Patch,
            namespace: "counters".into(),
            keys: 10,
            batch_size: 1,
            pad: "xx".into(),
            prefix: "/c/o/c".into(),
        };
        let request = plan.patch(4).unwrap();
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(request.uri().path(), "/c/o/c/api/v1/counters/k4");
    }
}
