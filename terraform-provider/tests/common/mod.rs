//! Harness of the provider's end-to-end tests: the real `koru-controlplane dev` process (running
//! real `koru-dataplane` children), its HTTP API for set-up and checks, and the real `terraform`
//! (or `tofu`) binary finding this crate's provider through a dev override.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use koru_testkit::{Process, ProcessSpec};
use serde_json::{Value, json};

/// The Terraform-compatible CLI to test with: `KORU_TERRAFORM` if set, else `terraform` or
/// `tofu` on the PATH. Missing, it fails the test under `CI=true`; elsewhere the test is skipped
/// loudly (None).
pub fn terraform_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KORU_TERRAFORM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "KORU_TERRAFORM={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        ["terraform", "tofu"].iter().find_map(|name| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        let message = "no terraform or tofu on the PATH, and no KORU_TERRAFORM: run \
                       `terraform-provider/tools.sh`, which prints the machine's CLI or builds \
                       OpenTofu (make test sets KORU_TERRAFORM from it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("\n!!! SKIPPING the Terraform provider's end-to-end test: {message} !!!\n");
    }
    found
}

/// `koru-controlplane` and `koru-dataplane`, built once per test process beside this test's
/// target directory by the test kit (cargo is asked each time, a no-op when fresh, so a test
/// never runs stale binaries). `KORU_TEST_CONTROLPLANE_BIN` and `KORU_TEST_DATAPLANE_BIN` name
/// prebuilt ones.
pub fn binaries() -> (PathBuf, PathBuf) {
    if let (Some(cp), Some(dp)) = (
        std::env::var_os("KORU_TEST_CONTROLPLANE_BIN"),
        std::env::var_os("KORU_TEST_DATAPLANE_BIN"),
    ) {
        return (PathBuf::from(cp), PathBuf::from(dp));
    }
    (
        koru_testkit::controlplane_binary(),
        koru_testkit::dataplane_binary(),
    )
}

/// A `koru-controlplane dev` process on a free loopback port with its own data directory.
/// Dropping it kills it and the data planes it started (they outlive it by design).
pub struct ControlPlane {
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Scratch directory: the control plane's data, its log, Terraform's working directories.
    pub dir: tempfile::TempDir,
    process: Process,
    http: reqwest::Client,
}

impl ControlPlane {
    /// Starts it and waits until it serves; its log also goes to `controlplane.log` in `dir`,
    /// and its end is shown when the test fails.
    pub fn start() -> ControlPlane {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (controlplane, dataplane) = binaries();
        let dir = tempfile::tempdir().expect("a scratch directory");
        let process = Process::start(
            ProcessSpec::controlplane(controlplane)
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
                .env("KORU_DATAPLANE_BIN", dataplane)
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

    /// Calls the API: `(status, JSON body or null)`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("calling the control plane");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs up an owner of a new organization on the pro plan, and creates an owner API token
    /// for it: `(organization slug, API token)`, what a Terraform user configures.
    pub async fn signup_with_api_token(&self, email: &str, organization: &str) -> (String, String) {
        let (org, _session, token) = self.signup(email, organization).await;
        (org, token)
    }

    /// Signs up as [`ControlPlane::signup_with_api_token`] does: `(organization slug, the
    /// owner's session access token, an owner API token)`.
    pub async fn signup(&self, email: &str, organization: &str) -> (String, String, String) {
        let response = self
            .http
            .post(format!("{}/api/v1/signup", self.url))
            .json(&json!({
                "email": email, "password": "a long password", "organization": organization, "tier": "pro"
            }))
            .send()
            .await
            .expect("signing up");
        assert_eq!(response.status().as_u16(), 201, "sign-up");
        let signed_up: Value = response.json().await.expect("sign-up body");
        let session = signed_up["access_token"].as_str().expect("an access token");
        let org = signed_up["organization"]["slug"]
            .as_str()
            .expect("a slug")
            .to_string();
        let (status, token) = self
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/tokens"),
                session,
                Some(json!({"name": "terraform", "role": "owner"})),
            )
            .await;
        assert_eq!(status, 201, "creating the API token: {token}");
        let secret = token["token"].as_str().expect("the secret").to_string();
        (org, session.to_string(), secret)
    }

    /// Waits until an operation has finished and returns it.
    pub async fn wait_operation(&self, token: &str, id: &str) -> Value {
        koru_testkit::eventually_async(120, &format!("operation {id}"), || async {
            let (_, op) = self
                .call("GET", &format!("/api/v1/operations/{id}"), token, None)
                .await;
            (op["status"] != "running").then_some(op)
        })
        .await
    }

    /// A scratch working directory for one Terraform configuration.
    pub fn workdir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("a working directory");
        dir
    }

    /// The end of the control plane's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("controlplane.log"))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The end of its log is shown by the process harness when the test fails.
        self.process.kill();
        // The data planes it started, found by their data directory under ours.
        koru_testkit::kill_dataplanes_under(self.dir.path());
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// What one run of the CLI did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertion messages and searches.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// The Terraform CLI in one working directory, with this crate's provider as a dev override
/// and the provider's settings in the environment.
pub struct Terraform {
    cli: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Terraform {
    /// The CLI in `dir`, its provider configured through `KORU_*` variables.
    pub fn new(
        cli: PathBuf,
        dir: PathBuf,
        endpoint: &str,
        token: &str,
        org: Option<&str>,
    ) -> Terraform {
        // The dev override names a directory holding exactly this build of the provider.
        let plugins = dir.join(".plugins");
        std::fs::create_dir_all(&plugins).expect("a plugin directory");
        let provider = plugins.join("terraform-provider-koru");
        if !provider.exists() {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_terraform-provider-koru"), &provider)
                .expect("linking the provider");
        }
        let rc = dir.join(".terraformrc");
        std::fs::write(
            &rc,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"koru/koru\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                plugins.display()
            ),
        )
        .expect("writing the CLI configuration");
        let mut env = vec![
            ("TF_CLI_CONFIG_FILE".to_string(), rc.display().to_string()),
            ("TF_IN_AUTOMATION".into(), "1".into()),
            ("TF_INPUT".into(), "0".into()),
            ("CHECKPOINT_DISABLE".into(), "1".into()),
            ("KORU_ENDPOINT".into(), endpoint.into()),
            ("KORU_TOKEN".into(), token.into()),
        ];
        if let Some(org) = org {
            env.push(("KORU_ORGANIZATION".into(), org.into()));
        }
        Terraform { cli, dir, env }
    }

    /// Writes the configuration `main.tf`.
    pub fn write(&self, main_tf: &str) {
        std::fs::write(self.dir.join("main.tf"), main_tf).expect("writing main.tf");
    }

    /// Runs the CLI with `args` (plus `-no-color` where commands take it).
    pub fn run(&self, args: &[&str]) -> Run {
        let mut command = Command::new(&self.cli);
        // The user's own TF_* and KORU_* settings (TF_CLI_ARGS, TF_LOG, a token) stay out.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("TF_") || name.starts_with("KORU_") {
                command.env_remove(name.as_ref());
            }
        }
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("running terraform");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs the CLI and fails the test unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            0,
            "terraform {} failed:\n{}",
            args.join(" "),
            run.output()
        );
        run
    }

    /// `terraform plan -detailed-exitcode`: 0 for no changes, 2 for changes, 1 for errors.
    pub fn plan(&self) -> Run {
        self.run(&["plan", "-detailed-exitcode", "-no-color"])
    }

    /// `terraform output -json`.
    pub fn outputs(&self) -> Value {
        let run = self.ok(&["output", "-json"]);
        serde_json::from_str(&run.stdout).expect("terraform output -json")
    }

    /// `terraform show -json`: the state.
    pub fn state(&self) -> Value {
        let run = self.ok(&["show", "-json"]);
        serde_json::from_str(&run.stdout).expect("terraform show -json")
    }
}

/// The resource `address` in a `terraform show -json` state.
pub fn resource<'a>(state: &'a Value, address: &str) -> &'a Value {
    state["values"]["root_module"]["resources"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["address"] == address))
        .unwrap_or_else(|| panic!("no {address} in the state: {state}"))
}
