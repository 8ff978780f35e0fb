//! Harness of the CLI's tests: the real `koru-controlplane dev` process (running real
//! `koru-dataplane` children), set-up calls to its API, and runs of the real `koru` binary with a
//! config file and environment of the test's own.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use koru_testkit::{Process, ProcessSpec};
use serde_json::{Value, json};

/// The password of every test account.
pub const PASSWORD: &str = "a long password";

/// A `koru-controlplane dev` process on a free loopback port with its own data directory.
/// Dropping it kills it and the data planes it started (they outlive it by design).
pub struct ControlPlane {
    /// Its base URL.
    pub url: String,
    /// Scratch directory: the control plane's data and log, the CLI's config.
    pub dir: tempfile::TempDir,
    process: Process,
    /// An HTTP client for set-up.
    pub http: reqwest::Client,
}

impl ControlPlane {
    /// Starts it and waits until it serves.
    pub fn start() -> ControlPlane {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("a scratch directory");
        let process = Process::start(
            ProcessSpec::controlplane(koru_testkit::controlplane_binary())
                .clear_koru_env()
                .args([
                    "dev",
                    "--listen",
                    "127.0.0.1:0",
                    "--gateway-listen",
                    "127.0.0.1:0",
                    "--data-dir",
                ])
                .arg(dir.path().join("cloud"))
                .env("KORU_DATAPLANE_BIN", koru_testkit::dataplane_binary())
                .log_file(dir.path().join("controlplane.log")),
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(200))
            .build()
            .expect("an HTTP client");
        ControlPlane {
            url: process.url().to_string(),
            dir,
            process,
            http,
        }
    }

    /// Signs up an owner of a new organization on the pro plan: its slug.
    pub async fn signup(&self, email: &str, organization: &str) -> String {
        let response = self
            .http
            .post(format!("{}/api/v1/signup", self.url))
            .json(&json!({
                "email": email, "password": PASSWORD, "organization": organization, "tier": "pro"
            }))
            .send()
            .await
            .expect("signing up");
        assert_eq!(response.status().as_u16(), 201, "sign-up");
        let body: Value = response.json().await.expect("sign-up body");
        body["organization"]["slug"]
            .as_str()
            .expect("a slug")
            .to_string()
    }

    /// A CLI whose config file lives in a fresh directory under this one.
    pub fn cli(&self, name: &str) -> Koru {
        let home = self.dir.path().join(name);
        std::fs::create_dir_all(&home).expect("a home directory");
        Koru {
            home,
            env: vec![("KORU_URL".into(), self.url.clone())],
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.process.kill();
        // The data planes it started, found by their data directory under ours.
        koru_testkit::kill_dataplanes_under(self.dir.path());
    }
}

/// The real `koru` binary with a home (and so a config file) of its own.
#[derive(Clone)]
pub struct Koru {
    /// `HOME` and `XDG_CONFIG_HOME` of its runs.
    pub home: PathBuf,
    /// Extra environment of every run.
    pub env: Vec<(String, String)>,
}

/// What one run did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Standard output as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.output()))
    }

    /// Asserts success; returns self.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{}", self.output());
        self
    }
}

impl Koru {
    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.home.join("koru").join("config.toml")
    }

    /// A command with the test's environment and nothing of the caller's `KORU_*`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_koru"));
        for (k, _) in std::env::vars() {
            if k.starts_with("KORU_") {
                command.env_remove(k);
            }
        }
        command
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("KORU_NO_BROWSER", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `koru args…` with `stdin`, waiting at most 10 minutes.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
        let mut command = self.command(args);
        command
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting koru");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("running koru");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Runs `koru args…` with an empty standard input.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], "")
    }

    /// Logs in with a password read from standard input.
    pub fn login(&self, email: &str) -> Run {
        self.run_with(
            &["login", "--email", email, "--password-stdin"],
            &[],
            &format!("{PASSWORD}\n"),
        )
    }

    /// The config file, parsed.
    pub fn config(&self) -> String {
        std::fs::read_to_string(self.config_path()).unwrap_or_default()
    }
}

/// A fresh home directory outside any control plane (for runs that need no server).
pub fn offline(dir: &Path) -> Koru {
    Koru {
        home: dir.to_path_buf(),
        env: Vec::new(),
    }
}
