//! Helpers shared by the integration tests: run the real `koru-dataplane` binary as a child process.
//!
//! `Server::start(data_dir, extra_args)` starts the server on a free loopback port and returns once it
//! prints its URL; `kill()` sends SIGKILL, `term()` SIGTERM. The server's stderr (its logs) is kept so
//! tests can look for log lines and show them when something fails. [`stores`] gives the backup tests
//! their `file://` and S3 stores.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

pub mod cluster;
pub mod stores;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Path of the server binary Cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_koru-dataplane");

/// How long a server may take to print its URL; debug builds replaying a big log are slow.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The line prefix the server prints on stdout once it accepts connections.
const READY_PREFIX: &str = "koru-dataplane listening on ";

/// A running server process.
pub struct Server {
    /// Base URL, e.g. `http://127.0.0.1:41234`, without a trailing slash.
    pub url: String,
    /// The child process.
    pub child: Child,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

/// A server that exited before it was ready, with what it said.
#[derive(Debug)]
pub struct Exited {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// How long it ran.
    pub after: Duration,
}

impl Server {
    /// Starts a server on `data_dir` with extra command-line arguments; panics if it does not start.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Server {
        match Server::try_start(data_dir, extra_args) {
            Ok(server) => server,
            Err(e) => panic!(
                "koru-dataplane exited with {} after {:?} instead of starting; stderr:\n{}",
                e.status, e.after, e.stderr
            ),
        }
    }

    /// Starts a server with extra environment variables (e.g. a backup store's `AWS_*`); panics if
    /// it does not start.
    pub fn start_with_env(
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(String, String)],
    ) -> Server {
        match Server::try_start_with_env(data_dir, extra_args, env) {
            Ok(server) => server,
            Err(e) => panic!(
                "koru-dataplane exited with {} after {:?} instead of starting; stderr:\n{}",
                e.status, e.after, e.stderr
            ),
        }
    }

    /// Starts a server, or reports how it exited if it stops before printing its URL.
    pub fn try_start(data_dir: &Path, extra_args: &[&str]) -> Result<Server, Exited> {
        Server::try_start_with_env(data_dir, extra_args, &[])
    }

    /// [`Server::try_start`] with extra environment variables.
    pub fn try_start_with_env(
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(String, String)],
    ) -> Result<Server, Exited> {
        Server::try_start_at(data_dir, "127.0.0.1:0", extra_args, env)
    }

    /// [`Server::try_start_with_env`] listening on `listen` (a member whose peers know its port).
    pub fn try_start_at(
        data_dir: &Path,
        listen: &str,
        extra_args: &[&str],
        env: &[(String, String)],
    ) -> Result<Server, Exited> {
        let started = Instant::now();
        let mut command = Command::new(BINARY);
        // The server reads its settings from KORU_* variables too; the test's arguments alone count.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KORU_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen])
            .args(extra_args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("KORU_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BINARY}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = {
            let mut pipe = child.stderr.take().expect("stderr is piped");
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                // Read until the process closes the pipe, i.e. exits.
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    stderr
                        .lock()
                        .expect("stderr buffer")
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            })
        };
        let (url_tx, url_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            // Keep draining stdout after the URL so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(READY_PREFIX) {
                    let _ = url_tx.send(url.trim().to_string());
                }
            }
        });
        let mut server = Server {
            url: String::new(),
            child,
            stderr,
            stderr_reader: Some(stderr_reader),
            exit: None,
        };
        match url_rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => {
                server.url = url;
                Ok(server)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Stdout closed without the URL: the process is exiting.
                let status = server.wait();
                Err(Exited {
                    status,
                    stderr: server.stderr(),
                    after: started.elapsed(),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                server.kill();
                panic!(
                    "koru-dataplane printed no URL within {START_TIMEOUT:?}; stderr:\n{}",
                    server.stderr()
                );
            }
        }
    }

    /// The URL of an API path, e.g. `server.api("/status")` for `/api/v1/status`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far (all of it once it has exited).
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            self.wait();
        }
    }

    /// Sends SIGTERM and waits for the server to exit; panics if it takes longer than `STOP_TIMEOUT`.
    pub fn term(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM {} failed", self.pid());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return self.wait(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    self.kill();
                    panic!(
                        "koru-dataplane did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                        self.stderr()
                    );
                }
            }
        }
    }

    /// Waits for the process to exit and for its stderr to be read to the end.
    fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let status = self.child.wait().expect("waiting for koru-dataplane");
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        self.exit = Some(status);
        status
    }
}

impl Drop for Server {
    /// A failing test must not leave a server running (and holding its data directory).
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP client for the tests: short timeouts so a hung server fails a test instead of stalling it.
pub fn client() -> reqwest::Client {
    // In a workspace build another crate may switch on reqwest's rustls without a provider; the
    // tests speak plain HTTP, but reqwest still wants one named before it builds a client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("building the HTTP client")
}

/// PUTs a value given as JSON text (so the stored text is exactly this), asserting success;
/// returns the response body (`version_id`, `timestamp`, ...).
pub async fn put_text(
    http: &reqwest::Client,
    server: &Server,
    namespace: &str,
    key: &str,
    value: &str,
) -> serde_json::Value {
    let resp = http
        .put(server.api(&format!("/{namespace}/{key}")))
        .header("content-type", "application/json")
        .body(format!("{{\"value\":{value}}}"))
        .send()
        .await
        .expect("PUT request");
    assert!(resp.status().is_success(), "put: {}", resp.status());
    resp.json().await.expect("PUT response body")
}

/// An RFC 3339 time as microseconds since the epoch.
pub fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .timestamp_micros()
}
