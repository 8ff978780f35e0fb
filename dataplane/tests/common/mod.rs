//! Helpers shared by the integration tests: run the real `koru-dataplane` binary as a child process.
//!
//! `Server::start(data_dir, extra_args)` starts the server on a free loopback port through the test
//! kit's process harness and returns once it prints its URL; `kill()` sends SIGKILL, `term()`
//! SIGTERM. The server's stderr (its logs) is kept so tests can look for log lines and show them
//! when something fails. [`stores`] gives the backup tests
//! their `file://` and S3 stores.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

pub mod cluster;
pub mod register;
pub mod seeds;
pub mod stores;

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use koru_testkit::{Process, ProcessSpec, StartError};

/// A server that exited before it was ready, with what it said (`status`, `stderr`, `after`).
pub use koru_testkit::Exited;

/// Path of the server binary Cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_koru-dataplane");

/// How long a server may take to print its URL; debug builds replaying a big log are slow.
pub const START_TIMEOUT: Duration = koru_testkit::START_TIMEOUT;

/// How long a server may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = koru_testkit::STOP_TIMEOUT;

/// A running server process (the test kit's [`Process`] with the data plane's arguments).
pub struct Server {
    /// Base URL, e.g. `http://127.0.0.1:41234`, without a trailing slash.
    pub url: String,
    /// The child process and its output.
    pub process: Process,
}

impl Server {
    /// Starts a server on `data_dir` with extra command-line arguments; panics if it does not start.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Server {
        Server::start_with_env(data_dir, extra_args, &[])
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
            Err(e) => panic!("{}", StartError::Exited(e)),
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
    /// Panics if it prints no URL within [`START_TIMEOUT`].
    pub fn try_start_at(
        data_dir: &Path,
        listen: &str,
        extra_args: &[&str],
        env: &[(String, String)],
    ) -> Result<Server, Exited> {
        // The server reads its settings from KORU_* variables too; the test's arguments alone count.
        let spec = ProcessSpec::dataplane(BINARY)
            .clear_koru_env()
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen])
            .args(extra_args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("KORU_LOG", "info");
        match Process::try_start(spec) {
            Ok(process) => Ok(Server {
                url: process.url().to_string(),
                process,
            }),
            Err(StartError::Exited(exited)) => Err(exited),
            Err(e) => panic!("{e}"),
        }
    }

    /// The URL of an API path, e.g. `server.api("/status")` for `/api/v1/status`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Everything the server wrote to stderr so far (all of it once it has exited).
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Sends SIGTERM and waits for the server to exit; panics if it takes longer than `STOP_TIMEOUT`.
    pub fn term(&mut self) -> ExitStatus {
        self.process.stop()
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
