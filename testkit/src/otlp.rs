//! A tiny OTLP/HTTP collector for tests that check a binary exports its spans: it records each
//! request and answers 200 with an empty body (an empty ExportTraceServiceResponse).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

/// A request the collector received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The HTTP method.
    pub method: String,
    /// The request path (`/v1/traces` for spans).
    pub path: String,
    /// The body as sent (protobuf).
    pub body: Vec<u8>,
}

/// A collector listening on a free loopback port until the test process ends.
pub struct Collector {
    /// The base URL to pass as `--otlp-endpoint`.
    pub endpoint: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    /// Starts listening.
    pub fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake collector");
        let port = listener.local_addr().expect("collector address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Collector {
            endpoint: format!("http://127.0.0.1:{port}"),
            received,
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The bodies of the `POST /v1/traces` requests received so far.
    pub fn trace_exports(&self) -> Vec<Vec<u8>> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/v1/traces")
            .map(|r| r.body)
            .collect()
    }
}

/// Whether `haystack` contains `needle` (span and trace ids are raw bytes in the protobuf).
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Serves one keep-alive connection.
fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Received { method, path, body });
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
