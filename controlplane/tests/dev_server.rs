//! The README's quick start with the real `koru-controlplane dev` process: sign up, create a
//! cluster, write and read it with an issued token, restart the control plane (the cluster keeps
//! running at the same endpoint with its data), delete it. And `make run`'s Ctrl-C: `dev` stops
//! the gateway it runs and its local clusters, saying so.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::path::Path;
use std::time::Duration;

use koru_testkit::{Process, ProcessSpec};
use serde_json::{Value, json};

/// `koru-controlplane dev` over `data_dir` on a free loopback port; SIGKILLed when dropped if
/// still running.
fn start_server(data_dir: &Path) -> Process {
    Process::start(
        ProcessSpec::controlplane(env!("CARGO_BIN_EXE_koru-controlplane"))
            // Clients reach the data plane directly here, so it can serve while the control
            // plane (and a gateway it would run) is down.
            .args([
                "dev",
                "--no-gateway",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .env("KORU_DATAPLANE_BIN", common::dataplane_bin()),
    )
}

/// SIGTERM, then wait: a graceful stop.
fn stop(server: &mut Process) {
    let status = server.stop();
    assert!(
        status.success(),
        "koru-controlplane exited with {status} on SIGTERM"
    );
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let response = req.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_quick_start_works_and_survives_a_control_plane_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    let api = format!("{}/api/v1", server.url());

    let (status, signup) = send(http.post(format!("{api}/signup")).json(&json!({
        "email": "me@example.com", "password": "a long password", "organization": "Me"
    })))
    .await;
    assert_eq!(status, 201, "{signup}");
    let token = signup["access_token"].as_str().unwrap().to_string();
    let (status, created) = send(
        http.post(format!("{api}/orgs/me/clusters"))
            .bearer_auth(&token)
            .json(&json!({"name": "hello"})),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let cluster = format!("{api}/orgs/me/clusters/hello");
    let mut endpoint = String::new();
    for _ in 0..300 {
        let (_, c) = send(http.get(&cluster).bearer_auth(&token)).await;
        if c["phase"] == "Running" {
            endpoint = c["endpoint"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!endpoint.is_empty(), "the cluster never became Running");
    let (status, data_token) = send(
        http.post(format!("{cluster}/data-tokens"))
            .bearer_auth(&token)
            .json(&json!({"scope": "write"})),
    )
    .await;
    assert_eq!(status, 201, "{data_token}");
    let data_token = data_token["token"].as_str().unwrap().to_string();
    let key = format!("{endpoint}/api/v1/users/alice");
    let (status, _) = send(
        http.put(&key)
            .bearer_auth(&data_token)
            .json(&json!({"value": {"name": "Alice"}})),
    )
    .await;
    assert_eq!(status, 200);

    // A restart of the control plane leaves the cluster serving, at the same endpoint.
    stop(&mut server);
    let (status, alice) = send(http.get(&key).bearer_auth(&data_token)).await;
    assert_eq!(
        (status, &alice["value"]["name"]),
        (200, &json!("Alice")),
        "served while the control plane is down"
    );
    server.restart();
    let api = format!("{}/api/v1", server.url());
    let cluster = format!("{api}/orgs/me/clusters/hello");
    let (status, c) = send(http.get(&cluster).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["endpoint"].as_str(), Some(endpoint.as_str()));
    let (status, alice) = send(http.get(&key).bearer_auth(&data_token)).await;
    assert_eq!((status, &alice["value"]["name"]), (200, &json!("Alice")));

    let (status, op) = send(http.delete(&cluster).bearer_auth(&token)).await;
    assert_eq!(status, 202, "{op}");
    let op_url = format!("{api}/operations/{}", op["id"].as_str().unwrap());
    for _ in 0..300 {
        let (_, op) = send(http.get(&op_url).bearer_auth(&token)).await;
        if op["status"] != "running" {
            assert_eq!(op["status"], "succeeded", "{op}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        http.get(&key)
            .bearer_auth(&data_token)
            .send()
            .await
            .is_err(),
        "the data plane is gone"
    );
    stop(&mut server);
}

/// Signs up, creates cluster `hello` and waits until it runs; returns (token, detail).
async fn hello_cluster(http: &reqwest::Client, server: &Process) -> (String, Value) {
    let api = format!("{}/api/v1", server.url());
    let (status, signup) = send(http.post(format!("{api}/signup")).json(&json!({
        "email": "me@example.com", "password": "a long password", "organization": "Me"
    })))
    .await;
    assert_eq!(status, 201, "{signup}");
    let token = signup["access_token"].as_str().unwrap().to_string();
    let (status, created) = send(
        http.post(format!("{api}/orgs/me/clusters"))
            .bearer_auth(&token)
            .json(&json!({"name": "hello"})),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    for _ in 0..300 {
        let (_, c) = send(
            http.get(format!("{api}/orgs/me/clusters/hello"))
                .bearer_auth(&token),
        )
        .await;
        if c["phase"] == "Running" {
            return (token, c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the cluster never became Running");
}

#[tokio::test]
async fn ctrl_c_on_dev_stops_its_gateway_and_local_clusters_and_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for koru-gateway (not built on this branch): records how it was started, says
    // where it listens as the real one does, and runs until signalled.
    let fake = dir.path().join("fake-gateway");
    let record = dir.path().join("gateway-started");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$$ $KORU_GATEWAY_SECRET $*\" > {}\necho 'listening on 127.0.0.1:1'\nexec sleep 600\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("cloud");
    let mut server = Process::start(
        ProcessSpec::controlplane(env!("CARGO_BIN_EXE_koru-controlplane"))
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
            .arg(&data_dir)
            .env("KORU_DATAPLANE_BIN", common::dataplane_bin())
            .env("KORU_GATEWAY_BIN", &fake),
    );
    let (token, cluster) = hello_cluster(&http, &server).await;
    // Clusters are shown behind the gateway, by path.
    assert_eq!(
        cluster["endpoint"], "http://127.0.0.1:1/c/me/hello",
        "{cluster}"
    );
    let started = std::fs::read_to_string(&record).unwrap();
    let mut words = started.split_whitespace();
    let gateway_pid: i32 = words.next().unwrap().parse().unwrap();
    let secret = std::fs::read_to_string(data_dir.join("keys/gateway.secret")).unwrap();
    assert_eq!(
        words.next(),
        Some(secret.trim()),
        "the gateway gets the generated secret"
    );
    let args: Vec<&str> = words.collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--controlplane-url", server.url()]),
        "{args:?}"
    );
    assert!(args.contains(&"--admin-listen"), "{args:?}");
    // Idle for two seconds, the free cluster suspends by itself.
    let api = format!("{}/api/v1", server.url());
    let detail = format!("{api}/orgs/me/clusters/hello");
    let mut phase = Value::Null;
    for _ in 0..300 {
        let (_, c) = send(http.get(&detail).bearer_auth(&token)).await;
        phase = c["phase"].clone();
        if phase == "Suspended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        phase, "Suspended",
        "the idle free cluster was not suspended"
    );
    // The secret opens the internal API: a wake, as the gateway sends for a held request, and
    // the route table until the cluster runs again.
    let (status, woken) = send(
        http.post(format!(
            "{}/internal/v1/gateway/clusters/{}/wake",
            server.url(),
            cluster["id"].as_str().unwrap()
        ))
        .bearer_auth(secret.trim()),
    )
    .await;
    assert_eq!(status, 200, "{woken}");
    let mut member = String::new();
    for _ in 0..300 {
        let (status, table) = send(
            http.post(format!("{}/internal/v1/gateway/sync", server.url()))
                .bearer_auth(secret.trim())
                .json(&json!({"gateway_id": "test"})),
        )
        .await;
        assert_eq!(status, 200, "{table}");
        if table["clusters"][0]["state"] == "running" {
            member = table["clusters"][0]["members"][0]
                .as_str()
                .unwrap()
                .to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!member.is_empty(), "the woken cluster never ran again");
    let (status, _) = send(http.get(format!("{member}/healthz"))).await;
    assert_eq!(status, 200);

    // Ctrl-C.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.pid()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.exited() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dev did not stop on Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "dev exited with {status}: {}",
        server.stderr()
    );
    let out = server.stdout();
    assert!(out.contains("stopped the gateway"), "{out}");
    assert!(
        out.contains("stopped cluster ") && out.contains("stopped 1 local cluster(s)"),
        "{out}"
    );
    assert!(
        http.get(format!("{member}/healthz")).send().await.is_err(),
        "the data plane still serves"
    );
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(gateway_pid), None).is_err()
            || std::fs::read_to_string(format!("/proc/{gateway_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the gateway still runs"
    );
    common::kill_dataplanes_under(dir.path());
}
