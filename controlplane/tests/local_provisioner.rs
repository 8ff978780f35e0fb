//! The local provisioner against real `koru-dataplane` processes: a cluster is created and serves
//! authenticated requests, survives SIGKILL, a control-plane restart (adopted, not duplicated) and
//! a tier change, and is deleted without a trace; a data plane that cannot start backs off, and
//! one that dies while no control plane runs is started again on the same port.
//!
//! Every process a test starts has the test's temporary directory in its command line, and a guard
//! SIGKILLs whatever still matches when the test ends, passing or not.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use koru_controlplane::auth::keys::KeyPair;
use koru_controlplane::provisioner::local::LocalProvisioner;
use koru_controlplane::provisioner::{ClusterSpec, ClusterState, ProvisionError};
use koru_dataplane_api::auth::{Claims, Scope};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How long a debug-build data plane may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_lives_through_a_crash_a_control_plane_restart_and_a_tier_change() {
    let bin = dataplane_bin();
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().canonicalize().expect("temp dir path");
    let _reaper = Reaper(root.clone());
    let data_dir = root.join("controlplane");
    let keys = KeyPair::load_or_generate(&root.join("dataplane-tokens.pem")).expect("key pair");
    let spec = spec("c-1", &keys.public_pem, 100);
    let cluster_dir = data_dir.join("clusters").join(&spec.id);
    let http = client();
    let write = token(&keys, &spec.id, Scope::Write);

    // 1. Created in the background, then Running with a loopback endpoint and enforcing tokens.
    let provisioner = LocalProvisioner::start(data_dir.clone(), bin.clone())
        .await
        .expect("starting the provisioner");
    provisioner.apply(&spec).await.expect("apply");
    let running = wait_for(&provisioner, &spec, &cluster_dir, |s| s.phase == "Running").await;
    let endpoint = running
        .endpoint
        .clone()
        .expect("a running cluster has an endpoint");
    let port: u16 = read(&cluster_dir.join("port")).parse().expect("port file");
    assert_eq!(endpoint, format!("http://127.0.0.1:{port}"));
    assert_eq!(running.ready_replicas, 1);
    for file in ["spec.json", "public.pem", "pid", "dataplane.log", "data"] {
        assert!(cluster_dir.join(file).exists(), "{file} missing");
    }
    assert_eq!(
        read(&cluster_dir.join("public.pem")),
        keys.public_pem.trim()
    );

    let first_pid = pid(&cluster_dir);
    provisioner
        .apply(&spec)
        .await
        .expect("re-applying the same spec");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pid(&cluster_dir),
        first_pid,
        "an unchanged apply restarted the data plane"
    );

    let put_status = put(&http, &endpoint, Some(&write), "o-1", &json!({"total": 42})).await;
    assert_eq!(put_status, StatusCode::OK);
    assert_eq!(
        get(&http, &endpoint, &write, "o-1").await,
        json!({"total": 42})
    );
    let anonymous = put(&http, &endpoint, None, "o-2", &json!(1)).await;
    assert_eq!(
        anonymous,
        StatusCode::UNAUTHORIZED,
        "a request without a token"
    );
    let other_cluster = token(&keys, "c-2", Scope::Write);
    let misdirected = put(&http, &endpoint, Some(&other_cluster), "o-2", &json!(1)).await;
    assert_eq!(
        misdirected,
        StatusCode::FORBIDDEN,
        "a token for another cluster"
    );
    let stranger = KeyPair::load_or_generate(&root.join("stranger.pem")).expect("key pair");
    let forged = token(&stranger, &spec.id, Scope::Write);
    let forged_status = put(&http, &endpoint, Some(&forged), "o-2", &json!(1)).await;
    assert_eq!(
        forged_status,
        StatusCode::UNAUTHORIZED,
        "a token signed by another key"
    );

    // 2. SIGKILL: reported while down, restarted on the same port, nothing lost (fsync always).
    kill(first_pid, Signal::SIGKILL);
    let down = wait_for(&provisioner, &spec, &cluster_dir, |s| s.phase != "Running").await;
    assert_eq!(down.phase, "Degraded", "{down:?}");
    let message = down.message.clone().unwrap_or_default();
    assert!(
        message.contains("killed by signal 9") && message.contains("(restart 1)"),
        "{message}"
    );
    let restarted = wait_for(&provisioner, &spec, &cluster_dir, |s| s.phase == "Running").await;
    assert_eq!(restarted.endpoint.as_deref(), Some(endpoint.as_str()));
    let second_pid = pid(&cluster_dir);
    assert_ne!(second_pid, first_pid);
    assert_eq!(serving(&cluster_dir), vec![second_pid]);
    assert_eq!(
        get(&http, &endpoint, &write, "o-1").await,
        json!({"total": 42})
    );

    // 3. Control-plane restart: the data plane keeps serving and is adopted, not duplicated.
    drop(provisioner);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        serving(&cluster_dir),
        vec![second_pid],
        "dropping the provisioner stopped it"
    );
    assert_eq!(
        get(&http, &endpoint, &write, "o-1").await,
        json!({"total": 42})
    );
    let provisioner = LocalProvisioner::start(data_dir.clone(), bin.clone())
        .await
        .expect("restarting the provisioner");
    let adopted = wait_for(&provisioner, &spec, &cluster_dir, |s| s.phase == "Running").await;
    assert_eq!(adopted.endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(
        pid(&cluster_dir),
        second_pid,
        "the running data plane was not adopted"
    );
    assert_eq!(
        serving(&cluster_dir),
        vec![second_pid],
        "a duplicate data plane runs"
    );
    let put_status = put(&http, &endpoint, Some(&write), "o-2", &json!({"total": 7})).await;
    assert_eq!(put_status, StatusCode::OK);

    // 4. Tier change: the data plane restarts with the new limit and still has everything.
    let pro = spec_with_ops(&spec, 10_000);
    provisioner.apply(&pro).await.expect("apply the pro tier");
    let deadline = Instant::now() + READY_TIMEOUT;
    let third_pid = loop {
        let now_pid = std::fs::read_to_string(cluster_dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        let state = provisioner.state(&pro).await.expect("state");
        match now_pid {
            Some(p) if p != second_pid && state.phase == "Running" => break p,
            _ if Instant::now() > deadline => panic!(
                "no restart with the new limits: {state:?}\n{}",
                log_tail(&cluster_dir)
            ),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(serving(&cluster_dir), vec![third_pid]);
    let cmdline = read(&PathBuf::from(format!("/proc/{third_pid}/cmdline"))).replace('\0', " ");
    assert!(cmdline.contains("--max-ops-per-sec 10000"), "{cmdline}");
    let on_disk: ClusterSpec =
        serde_json::from_str(&read(&cluster_dir.join("spec.json"))).expect("spec.json");
    assert_eq!(on_disk, pro);
    assert_eq!(
        get(&http, &endpoint, &write, "o-1").await,
        json!({"total": 42})
    );
    assert_eq!(
        get(&http, &endpoint, &write, "o-2").await,
        json!({"total": 7})
    );

    // 5. Delete: process and files gone, the cluster unknown, deleting again fine.
    provisioner.delete(&pro).await.expect("delete");
    assert!(
        serving(&cluster_dir).is_empty(),
        "the data plane survived delete"
    );
    assert!(
        !cluster_dir.exists(),
        "the cluster's directory survived delete"
    );
    let gone = provisioner.state(&pro).await;
    assert!(
        matches!(gone, Err(ProvisionError::NotFound(ref id)) if id == "c-1"),
        "{gone:?}"
    );
    provisioner.delete(&pro).await.expect("deleting again");
    let refused = http.get(format!("{endpoint}/healthz")).send().await;
    assert!(refused.is_err(), "something still answers on {endpoint}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_that_cannot_start_backs_off_then_recovers_and_outlives_a_shutdown() {
    let bin = dataplane_bin();
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().canonicalize().expect("temp dir path");
    let _reaper = Reaper(root.clone());
    let data_dir = root.join("controlplane");
    let keys = KeyPair::load_or_generate(&root.join("dataplane-tokens.pem")).expect("key pair");
    let broken = spec("c-broken", "this is not a PEM key", 100);
    let cluster_dir = data_dir.join("clusters").join(&broken.id);
    let provisioner = LocalProvisioner::start(data_dir.clone(), bin.clone())
        .await
        .expect("starting the provisioner");
    provisioner.apply(&broken).await.expect("apply");

    let failing = wait_for(&provisioner, &broken, &cluster_dir, |s| {
        s.phase == "Degraded"
    })
    .await;
    let message = failing.message.unwrap_or_default();
    assert!(
        message.contains("exited with status 1") && message.contains("token verification key"),
        "the state should quote the data plane's error: {message}"
    );
    // Backoff of 0.5, 1, 2 s: at most four attempts in four seconds, not hundreds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let attempts = read(&cluster_dir.join("dataplane.log"))
        .matches("token verification key")
        .count();
    assert!((2..=5).contains(&attempts), "{attempts} attempts in 4 s");
    let state = provisioner.state(&broken).await.expect("state");
    assert!(
        state.phase == "Degraded" || state.phase == "Failed",
        "{state:?}"
    );

    // A good key is applied at once, without waiting out the backoff.
    let mut fixed = broken.clone();
    fixed.token_public_key_pem = keys.public_pem.clone();
    provisioner.apply(&fixed).await.expect("apply the fix");
    let started = Instant::now();
    let running = wait_for(&provisioner, &fixed, &cluster_dir, |s| s.phase == "Running").await;
    assert!(started.elapsed() < Duration::from_secs(8), "{running:?}");
    let endpoint = running.endpoint.expect("endpoint");
    let write = token(&keys, &fixed.id, Scope::Write);
    let http = client();
    assert_eq!(
        put(&http, &endpoint, Some(&write), "k", &json!(1)).await,
        StatusCode::OK
    );

    // Shutdown leaves the data plane serving; if it dies while no control plane runs, the next
    // one starts it again on the same port.
    let pid_before = pid(&cluster_dir);
    provisioner.shutdown().await;
    let forgotten = provisioner.state(&fixed).await;
    assert!(
        matches!(forgotten, Err(ProvisionError::NotFound(_))),
        "{forgotten:?}"
    );
    assert_eq!(
        serving(&cluster_dir),
        vec![pid_before],
        "shutdown stopped the data plane"
    );
    kill(pid_before, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !serving(&cluster_dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "SIGKILL did not stop {pid_before}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let provisioner = LocalProvisioner::start(data_dir, bin)
        .await
        .expect("restarting the provisioner");
    let again = wait_for(&provisioner, &fixed, &cluster_dir, |s| s.phase == "Running").await;
    assert_eq!(again.endpoint.as_deref(), Some(endpoint.as_str()));
    let pid_after = pid(&cluster_dir);
    assert_ne!(pid_after, pid_before);
    assert_eq!(serving(&cluster_dir), vec![pid_after]);
    assert_eq!(get(&http, &endpoint, &write, "k").await, json!(1));

    provisioner.delete(&fixed).await.expect("delete");
    assert!(serving(&cluster_dir).is_empty());
    assert!(!cluster_dir.exists());
}

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_cluster_stays_down_across_a_restart_and_resumes_with_its_data() {
    let bin = dataplane_bin();
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().canonicalize().expect("temp dir path");
    let _reaper = Reaper(root.clone());
    let data_dir = root.join("controlplane");
    let keys = KeyPair::load_or_generate(&root.join("dataplane-tokens.pem")).expect("key pair");
    let spec = spec("c-sleep", &keys.public_pem, 100);
    let cluster_dir = data_dir.join("clusters").join(&spec.id);
    let http = client();
    let write = token(&keys, &spec.id, Scope::Write);
    let provisioner = LocalProvisioner::start(data_dir.clone(), bin.clone())
        .await
        .expect("starting the provisioner");
    provisioner.apply(&spec).await.expect("apply");
    let running = wait_for(&provisioner, &spec, &cluster_dir, |s| s.phase == "Running").await;
    let endpoint = running.endpoint.clone().expect("endpoint");
    assert_eq!(
        put(&http, &endpoint, Some(&write), "k", &json!("kept")).await,
        StatusCode::OK
    );

    // Suspend: the process stops; directory and port stay.
    let mut asleep = spec.clone();
    asleep.suspended = true;
    provisioner.apply(&asleep).await.expect("suspend");
    let state = wait_for(&provisioner, &asleep, &cluster_dir, |s| {
        s.phase == "Suspended"
    })
    .await;
    assert_eq!(state.endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(state.ready_replicas, 0);
    assert!(
        serving(&cluster_dir).is_empty(),
        "the data plane still runs"
    );
    assert!(cluster_dir.join("data").exists() && cluster_dir.join("port").exists());

    // A control-plane restart does not start it, even when a stray process serves it.
    provisioner.shutdown().await;
    drop(provisioner);
    let stray = std::process::Command::new(&bin)
        .args(["--data-dir"])
        .arg(cluster_dir.join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a stray data plane");
    let provisioner = LocalProvisioner::start(data_dir.clone(), bin.clone())
        .await
        .expect("restarting the provisioner");
    let state = wait_for(&provisioner, &asleep, &cluster_dir, |s| {
        s.phase == "Suspended"
    })
    .await;
    assert_eq!(state.phase, "Suspended");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !serving(&cluster_dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the stray data plane of a suspended cluster still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stray);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        serving(&cluster_dir).is_empty(),
        "a suspended cluster was started"
    );

    // Resume: the same port, the same data.
    let started = Instant::now();
    provisioner.apply(&spec).await.expect("resume");
    let state = wait_for(&provisioner, &spec, &cluster_dir, |s| s.phase == "Running").await;
    assert_eq!(state.endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(get(&http, &endpoint, &write, "k").await, json!("kept"));
    println!(
        "local resume, apply to Running and the first read answered: {:?}",
        started.elapsed()
    );

    // Stopping every cluster (dev's Ctrl-C) stops the process and keeps the files.
    let stopped = provisioner.stop_all().await;
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0].0, spec.id);
    assert!(
        serving(&cluster_dir).is_empty(),
        "stop_all left the data plane running"
    );
    assert!(cluster_dir.join("spec.json").exists() && cluster_dir.join("data").exists());
}

/// The `koru-dataplane` binary, built once per test process. Cargo is asked every time (a no-op
/// when it is fresh) so the tests never run a data plane older than its source; the testkit's
/// `cargo` leaves out the variables cargo sets for tests, which would make ring's build script
/// (it watches `CARGO_PKG_*`) run again and rebuild the TLS stack in every later build.
fn dataplane_bin() -> PathBuf {
    // Called from the tests' runtime threads: building may take minutes.
    tokio::task::block_in_place(koru_testkit::dataplane_binary)
}

/// An HTTP client with timeouts, so a hung data plane fails the test instead of stalling it.
fn client() -> reqwest::Client {
    // In a workspace build another crate may switch on reqwest's rustls without a provider; the
    // test speaks plain HTTP, but reqwest still wants one named before it builds a client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("building the HTTP client")
}

/// SIGKILLs, on drop, every process whose command line names the test's directory.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        // Twice: a supervisor task still finishing a start when the test failed may add one.
        for pass in 0..2 {
            if pass > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            for pid in processes_naming(&self.0.display().to_string()) {
                kill(pid, Signal::SIGKILL);
            }
        }
    }
}

/// Live processes serving the cluster in `cluster_dir`.
fn serving(cluster_dir: &Path) -> Vec<u32> {
    processes_naming(&format!("{}/data", cluster_dir.display()))
}

/// Live (not zombie) processes whose command line contains `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .expect("listing /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid: &u32| pid != std::process::id())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Sends a signal to one process.
fn kill(pid: u32, signal: Signal) {
    let pid = i32::try_from(pid).expect("pid fits pid_t");
    assert!(pid > 1, "refusing to signal pid {pid}");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

/// Polls the cluster's state until `done` holds, or fails with the last state and the log.
async fn wait_for(
    provisioner: &LocalProvisioner,
    spec: &ClusterSpec,
    cluster_dir: &Path,
    done: impl Fn(&ClusterState) -> bool,
) -> ClusterState {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let state = provisioner.state(spec).await.expect("state");
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "cluster {} stuck in {state:?}\n{}",
            spec.id,
            log_tail(cluster_dir)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The end of the cluster's data-plane log, for failure messages.
fn log_tail(cluster_dir: &Path) -> String {
    let log = std::fs::read_to_string(cluster_dir.join("dataplane.log")).unwrap_or_default();
    let start = log.len().saturating_sub(3000);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(log.len());
    format!("dataplane.log (end):\n{}", &log[start..])
}

/// A cluster spec as the control plane would send it.
fn spec(id: &str, public_pem: &str, max_ops_per_sec: u64) -> ClusterSpec {
    ClusterSpec {
        id: id.into(),
        name: "orders".into(),
        org_id: "org-1".into(),
        org_slug: "acme".into(),
        version: "0.1.0".into(),
        replicas: 1,
        storage_bytes: 1 << 30,
        max_ops_per_sec,
        max_stored_bytes: 1_000_000_000,
        backup_retention_days: 1,
        restore: None,
        suspended: false,
        regions: Vec::new(),
        region: None,
        token_public_key_pem: public_pem.into(),
        revocations_url: None,
    }
}

/// `spec` with another rate limit.
fn spec_with_ops(spec: &ClusterSpec, max_ops_per_sec: u64) -> ClusterSpec {
    ClusterSpec {
        max_ops_per_sec,
        ..spec.clone()
    }
}

/// A data-plane token signed with `keys`.
fn token(keys: &KeyPair, cluster: &str, scope: Scope) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = Claims {
        sub: "test".into(),
        cluster: cluster.into(),
        scope,
        exp: now + 3600,
        iat: now,
        aud: koru_dataplane_api::auth::audience(cluster),
        jti: "test-token".into(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &keys.encoding)
        .expect("signing a token")
}

/// `PUT /api/v1/orders/<key>`; the response status.
async fn put(
    http: &reqwest::Client,
    endpoint: &str,
    token: Option<&str>,
    key: &str,
    value: &Value,
) -> StatusCode {
    let mut request = http
        .put(format!("{endpoint}/api/v1/orders/{key}"))
        .json(&json!({ "value": value }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("PUT").status()
}

/// `GET /api/v1/orders/<key>`'s value; fails on anything but 200.
async fn get(http: &reqwest::Client, endpoint: &str, token: &str, key: &str) -> Value {
    let response = http
        .get(format!("{endpoint}/api/v1/orders/{key}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "GET {key}");
    let body: Value = response.json().await.expect("GET body");
    body["value"].clone()
}

/// The pid the provisioner recorded.
fn pid(cluster_dir: &Path) -> u32 {
    read(&cluster_dir.join("pid")).parse().expect("pid file")
}

/// A text file's trimmed contents.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}
