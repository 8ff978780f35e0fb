//! A closed-loop HTTP driver for the query figures: keep-alive HTTP/1.1 connections, each sending
//! its next request (built from a sequence number) as soon as the previous answer is read, until
//! the time is up and each has finished at least a few requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::table::Measure;
use crate::error::BenchError;
use crate::histogram::Histogram;

/// Longest wait for one answer; a 1 M-document scan takes seconds, not minutes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// One request: method, path and body.
pub type Call = (Method, String, Bytes);

/// Builds the request numbered `n` (unique across connections).
pub type MakeCall = Arc<dyn Fn(u64) -> Call + Send + Sync>;

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Load {
    /// Successful requests per second over the run.
    pub per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Successful requests.
    pub requests: u64,
    /// Requests answered with an error status or not at all.
    pub errors: u64,
    /// The first error, `<status>: <body>`.
    pub first_error: Option<String>,
}

impl Load {
    /// Requests per second, or unavailable when every request failed.
    pub fn rate(&self) -> Measure {
        self.unless_failed(self.per_sec)
    }

    /// Median latency in milliseconds, or unavailable when every request failed.
    pub fn p50(&self) -> Measure {
        self.unless_failed(self.p50_ms)
    }

    fn unless_failed(&self, v: f64) -> Measure {
        if self.requests == 0 {
            Measure::Unavailable(
                self.first_error
                    .clone()
                    .unwrap_or_else(|| "no answer".into()),
            )
        } else {
            Measure::Value(v)
        }
    }

    /// `p50 / p99 ms, requests, errors` for a row's detail.
    pub fn detail(&self) -> String {
        let errors = match &self.first_error {
            Some(e) if self.errors > 0 => format!(", {} errors (first: {e})", self.errors),
            _ => String::new(),
        };
        format!(
            "p50 {:.3} ms, p99 {:.3} ms, {} requests{errors}",
            self.p50_ms, self.p99_ms, self.requests
        )
    }
}

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's socket address.
    pub addr: SocketAddr,
    /// Its Host header.
    pub host: String,
}

async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, BenchError> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(BenchError::io(format!("connecting to {}", target.addr)))?;
    stream
        .set_nodelay(true)
        .map_err(BenchError::io("setting TCP_NODELAY"))?;
    let (send, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| BenchError::Target(format!("HTTP handshake with {}: {e}", target.addr)))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped; request errors show on the sending side.
        let _ = conn.await;
    });
    Ok(send)
}

/// Sends one request and reads the whole answer: Ok on 2xx, else `<status>: <body>`.
async fn exchange(
    send: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    (method, path, body): Call,
) -> Result<Bytes, String> {
    let request = Request::builder()
        .method(method)
        .uri(&path)
        .header(HOST, &target.host)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| format!("building a request for {path}: {e}"))?;
    let answer = async {
        send.ready().await?;
        let response = send.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body))
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
        Ok(Ok((status, body))) if status.is_success() => Ok(body),
        Ok(Ok((status, body))) => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

/// One connection's tally.
#[derive(Default)]
struct Tally {
    hist: Histogram,
    /// Requests per second of this loop, timed after its warm-up.
    per_sec: f64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `connections` closed loops for `secs` seconds (each at least `min_each` requests; one
/// unmeasured warm-up request first) and merges what they measured.
pub async fn drive(
    target: &Target,
    connections: usize,
    secs: f64,
    min_each: u64,
    make: MakeCall,
) -> Result<Load, BenchError> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(target).await?);
    }
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(id, mut send)| {
            let target = target.clone();
            let make = Arc::clone(&make);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut n = (id as u64) << 40;
                let mut done = 0u64;
                let _ = exchange(&mut send, &target, make(n)).await;
                let warm = Instant::now();
                while Instant::now() < end || done < min_each {
                    n += 1;
                    let sent = Instant::now();
                    match exchange(&mut send, &target, make(n)).await {
                        Ok(_) => tally.hist.record(sent.elapsed().as_nanos() as u64),
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(e);
                            // A failed connection cannot be reused; an error status can.
                            if send.is_closed() {
                                match connect(&target).await {
                                    Ok(s) => send = s,
                                    Err(_) => break,
                                }
                            }
                            if tally.hist.count() == 0 && tally.errors >= min_each.max(3) {
                                break;
                            }
                        }
                    }
                    done += 1;
                }
                tally.per_sec = tally.hist.count() as f64 / warm.elapsed().as_secs_f64().max(1e-9);
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let t = task
            .await
            .map_err(|e| BenchError::Target(format!("load task failed: {e}")))?;
        total.hist.merge(&t.hist);
        total.per_sec += t.per_sec;
        total.errors += t.errors;
        if total.first_error.is_none() {
            total.first_error = t.first_error;
        }
    }
    let ms = |q: f64| total.hist.quantile(q) as f64 / 1e6;
    Ok(Load {
        per_sec: total.per_sec,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        requests: total.hist.count(),
        errors: total.errors,
        first_error: total.first_error,
    })
}

/// Times `run` repeatedly in this thread for `secs` seconds (at least `min` times): queries per
/// second and latency, the embedded and SQLite side of a figure.
pub fn repeat(
    secs: f64,
    min: u64,
    mut run: impl FnMut(u64) -> Result<(), BenchError>,
) -> Result<Load, BenchError> {
    let mut hist = Histogram::default();
    // Warm-up, unmeasured.
    run(u64::MAX / 2)?;
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    let mut n = 0;
    while Instant::now() < end || n < min {
        let sent = Instant::now();
        run(n)?;
        hist.record(sent.elapsed().as_nanos() as u64);
        n += 1;
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let ms = |q: f64| hist.quantile(q) as f64 / 1e6;
    Ok(Load {
        per_sec: hist.count() as f64 / elapsed,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        requests: hist.count(),
        errors: 0,
        first_error: None,
    })
}
