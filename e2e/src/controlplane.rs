//! The control plane as a process (`koru-controlplane serve`) with the Kubernetes provisioner,
//! against the test Kubernetes with nodes, and its API as users call it. It runs in the
//! `koru-client` network namespace, where it stands as a pod of the cluster would: it resolves
//! the clusters' Service names (its calls to their admin API) and pods reach it (the revocation
//! lists they poll), as when its chart deploys it.

use std::net::TcpListener;
use std::time::Duration;

use koru_testkit::{Process, ProcessSpec, controlplane_binary};
use serde_json::{Value, json};

use crate::{CLIENT_NETNS, TokenKey};

/// The address of the `koru-client` network namespace on the first node's bridge.
pub const CLIENT_IP: &str = "10.244.0.250";

/// The address pods reach this host at: the first node's bridge (scripts/testenv-nodes.sh).
pub const NODES_HOST_IP: &str = "10.244.0.1";

/// A `koru-controlplane serve` process, killed when dropped.
pub struct ControlPlane {
    /// Its base URL, e.g. `http://10.244.0.1:41234`.
    pub url: String,
    _dir: tempfile::TempDir,
    _process: Process,
    http: reqwest::Client,
}

impl ControlPlane {
    /// Starts it against `kubeconfig` with organization namespaces named `<prefix><org>`, and
    /// `extra` arguments of `serve`.
    pub fn start(kubeconfig: &str, namespace_prefix: &str, extra: &[&str]) -> ControlPlane {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let session = dir.path().join("session.pem");
        let dataplane = dir.path().join("dataplane.pem");
        std::fs::write(&session, TokenKey::new(21).private_pem).expect("writing the session key");
        std::fs::write(&dataplane, TokenKey::new(22).private_pem).expect("writing the data key");
        // The port is chosen first so the public URL (which pods poll) can name it; the namespace
        // is shared by the journeys, so a port the kernel just handed out here keeps them apart.
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("http://{CLIENT_IP}:{port}");
        let database = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("cloud.db").display()
        );
        let process = Process::start(
            ProcessSpec::controlplane("ip")
                .clear_koru_env()
                .args(["netns", "exec", CLIENT_NETNS])
                .arg(controlplane_binary())
                .args(["serve", "--provisioner", "kubernetes", "--listen"])
                .arg(format!("{CLIENT_IP}:{port}"))
                .args(["--public-url", &url, "--database-url", &database])
                .args(["--namespace-prefix", namespace_prefix])
                .arg("--session-key")
                .arg(&session)
                .arg("--dataplane-key")
                .arg(&dataplane)
                .args(extra)
                .env("KUBECONFIG", kubeconfig)
                .log_file(dir.path().join("controlplane.log")),
        );
        ControlPlane {
            url,
            _dir: dir,
            _process: process,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
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

    /// Signs up the owner of a new organization on the pro plan: `(organization slug, session
    /// access token)`.
    pub async fn signup(&self, email: &str, organization: &str) -> (String, String) {
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
        let body: Value = response.json().await.expect("a sign-up body");
        (
            body["organization"]["slug"]
                .as_str()
                .expect("a slug")
                .to_string(),
            body["access_token"]
                .as_str()
                .expect("an access token")
                .to_string(),
        )
    }

    /// Waits until an operation has finished and returns it.
    pub async fn wait_operation(&self, token: &str, id: &str, secs: u64) -> Value {
        koru_testkit::eventually_async(secs, &format!("operation {id}"), || async {
            let (_, op) = self
                .call("GET", &format!("/api/v1/operations/{id}"), token, None)
                .await;
            (op["status"] != "running").then_some(op)
        })
        .await
    }
}
