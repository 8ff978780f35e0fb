//! The hosted path for real: `koru-controlplane dev` runs the real `koru-gateway` in front of its
//! local clusters. A cluster is written and read through the gateway with a token the control
//! plane issued; its allow list, a revoked token and another cluster's token are refused at the
//! edge; idle, the free cluster suspends, and the next request is held while it wakes and then
//! answered — never an error.

use std::time::{Duration, Instant};

use koru_testkit::{Process, ProcessSpec};
use serde_json::{Value, json};

use crate::support::{error_code, gateway_binary, http};

/// `koru-controlplane dev` with the real gateway, a free cluster idle after two seconds.
fn start_dev(data_dir: &std::path::Path) -> Process {
    Process::start(
        ProcessSpec::controlplane(koru_testkit::controlplane_binary())
            .args([
                "dev",
                "--listen",
                "127.0.0.1:0",
                "--gateway-listen",
                "127.0.0.1:0",
                "--suspend-after",
                "free=2s",
                "--data-dir",
            ])
            .arg(data_dir)
            .env("KORU_DATAPLANE_BIN", koru_testkit::dataplane_binary())
            .env("KORU_GATEWAY_BIN", gateway_binary()),
    )
}

/// A signed-in organization of the control plane at `api`.
struct Org {
    api: String,
    slug: String,
    session: String,
}

impl Org {
    async fn sign_up(api: &str, name: &str) -> Org {
        let (status, body) = send(http().post(format!("{api}/signup")).json(&json!({
            "email": format!("{}@example.com", name.to_lowercase()),
            "password": "a long password",
            "organization": name,
        })))
        .await;
        assert_eq!(status, 201, "{body}");
        Org {
            api: api.to_string(),
            slug: name.to_lowercase(),
            session: body["access_token"].as_str().unwrap().to_string(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/orgs/{}{path}", self.api, self.slug);
        let mut request = http().request(method, url).bearer_auth(&self.session);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    /// Creates cluster `name` and waits until it runs: its record.
    async fn cluster(&self, name: &str) -> Value {
        let (status, created) = self
            .call(
                reqwest::Method::POST,
                "/clusters",
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, 202, "{created}");
        self.wait_phase(name, "Running", Duration::from_secs(60))
            .await
    }

    async fn wait_phase(&self, name: &str, phase: &str, limit: Duration) -> Value {
        self.wait_phase_in(name, &[phase], limit).await
    }

    /// Waits until cluster `name` is in one of `phases`: its record.
    async fn wait_phase_in(&self, name: &str, phases: &[&str], limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (_, c) = self
                .call(reqwest::Method::GET, &format!("/clusters/{name}"), None)
                .await;
            if phases.iter().any(|phase| c["phase"] == *phase) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {phases:?}: {c}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A fresh write token for cluster `name`: (token, its id).
    async fn data_token(&self, name: &str) -> (String, String) {
        let (status, t) = self
            .call(
                reqwest::Method::POST,
                &format!("/clusters/{name}/data-tokens"),
                Some(json!({"scope": "write"})),
            )
            .await;
        assert_eq!(status, 201, "{t}");
        (
            t["token"].as_str().unwrap().to_string(),
            t["id"].as_str().unwrap().to_string(),
        )
    }
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Retries `probe` until it gives `want` (the gateway learns of changes at its next sync).
async fn until_code(want: u16, what: &str, probe: impl AsyncFn() -> (u16, String)) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, code) = probe().await;
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {status} {code}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_hosted_cluster_is_reached_guarded_suspended_and_woken_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let dev = start_dev(&dir.path().join("cloud"));
    let api = format!("{}/api/v1", dev.url());
    let acme = Org::sign_up(&api, "Acme").await;
    let cluster = acme.cluster("orders").await;
    let endpoint = cluster["endpoint"].as_str().unwrap().to_string();
    assert!(
        endpoint.ends_with("/c/acme/orders") && !endpoint.contains(dev.url()),
        "the cluster is shown behind the gateway: {endpoint}"
    );
    let (token, token_id) = acme.data_token("orders").await;
    let get = async |token: &str| {
        let answer = http()
            .get(format!("{endpoint}/api/v1/users/alice"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        (status, body)
    };

    // Written and read through the gateway.
    let put = http()
        .put(format!("{endpoint}/api/v1/users/alice"))
        .bearer_auth(&token)
        .json(&json!({"value": {"name": "Alice"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let (status, read) = get(&token).await;
    assert_eq!(
        (status, &read["value"]["name"]),
        (200, &json!("Alice")),
        "{read}"
    );

    // Another organization's token for its own cluster opens nothing here.
    let globex = Org::sign_up(&api, "Globex").await;
    globex.cluster("orders").await;
    let (stranger, _) = globex.data_token("orders").await;
    let (status, body) = get(&stranger).await;
    assert_eq!(status, 401, "another tenant's token: {body}");

    // An allow list without this address shuts the door; emptied, it opens again.
    let (status, body) = acme
        .call(
            reqwest::Method::PATCH,
            "/clusters/orders",
            Some(json!({"allowed_cidrs": ["203.0.113.0/24"]})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let probe = async || {
        let answer = http()
            .get(format!("{endpoint}/api/v1/users/alice"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        error_code(answer).await
    };
    until_code(403, "outside the allow list", probe).await;
    // The change is applied once the cluster settles; idle for two seconds meanwhile (the refused
    // probes do not count as use), it may settle as Suspended, which the next read wakes.
    acme.wait_phase_in("orders", &["Running", "Suspended"], Duration::from_secs(30))
        .await;
    let (status, body) = acme
        .call(
            reqwest::Method::PATCH,
            "/clusters/orders",
            Some(json!({"allowed_cidrs": []})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    until_code(200, "allow list emptied", probe).await;

    // A revoked token is refused at the edge.
    let (revoker, revoked_id) = acme.data_token("orders").await;
    let (status, body) = acme
        .call(
            reqwest::Method::DELETE,
            &format!("/clusters/orders/data-tokens/{revoked_id}"),
            None,
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    until_code(401, "revoked token", async || {
        let answer = http()
            .get(format!("{endpoint}/api/v1/users/alice"))
            .bearer_auth(&revoker)
            .send()
            .await
            .unwrap();
        error_code(answer).await
    })
    .await;
    assert_ne!(token_id, revoked_id);

    // Idle for two seconds, the free cluster suspends; the next read is held and answered.
    acme.wait_phase("orders", "Suspended", Duration::from_secs(60))
        .await;
    let started = Instant::now();
    let (status, read) = get(&token).await;
    let first = started.elapsed();
    assert_eq!(
        (status, &read["value"]["name"]),
        (200, &json!("Alice")),
        "{read}"
    );
    eprintln!("first request to a suspended cluster answered in {first:?} (wake included)");
    acme.wait_phase("orders", "Running", Duration::from_secs(10))
        .await;

    // Killed outright, dev cannot stop its gateway: the gateway notices and stops by itself.
    let url = dev.url().to_string();
    let gateways = || gateway_pids_for(&url);
    assert_eq!(gateways().len(), 1, "one gateway runs for this dev");
    let mut dev = dev;
    dev.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateways().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the gateway outlived its killed dev"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its data planes keep serving by design (a restarted control plane adopts them).
    koru_testkit::kill_dataplanes_under(dir.path());
}

/// The pids of koru-gateway processes syncing with the control plane at `url`.
fn gateway_pids_for(url: &str) -> Vec<u32> {
    koru_testkit::pids_where(|args| {
        args[0].ends_with("koru-gateway")
            && args
                .windows(2)
                .any(|w| w[0] == "--controlplane-url" && w[1] == url)
    })
}
