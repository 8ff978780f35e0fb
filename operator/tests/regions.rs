//! A KoruCluster as one region of a global database, for real: the real `koru-operator` against
//! the real API server. Its replication Secret is checked before any pod is made, `spec.region`
//! reaches the pods' settings and volumes, and the peer regions' streams the data plane reports
//! (`GET /admin/v1/regions`) reach `status.regions` and the RegionsHealthy condition, kept while
//! the data plane does not answer, and gone once the cluster leaves the global database.
//!
//! The data plane here is a small stub serving only `GET /admin/v1/regions` (with the shared
//! `koru-dataplane-api` type), reached through the `koru.dev/admin-endpoint` annotation: the
//! streams themselves are the data plane's (its own tests run them between real regions). The
//! real `koru-dataplane` is started with the region settings the operator writes, to show it
//! accepts them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get as route_get;
use common::{annotate_endpoint, cluster_yaml, patch_spec, start_operator_with, wait_admin_token};
use koru_dataplane_api::region::{LinkState, PeerLink, RegionStatus};
use koru_testkit::{
    DataPlane, Operator, apply, eventually, field, fresh_namespace, get, install_crds, kubeconfig,
    kubectl, mark_pods_ready,
};
use serde_json::Value;

/// What the stub answers: a report, or 503 while "down".
struct Answer {
    report: RegionStatus,
    down: bool,
}

/// The stub's state: its answer and the admin token it expects.
#[derive(Clone)]
struct Stub {
    answer: Arc<Mutex<Answer>>,
    token: String,
}

async fn regions(State(stub): State<Stub>, headers: HeaderMap) -> (StatusCode, String) {
    let bearer = format!("Bearer {}", stub.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return (StatusCode::UNAUTHORIZED, "{}".into());
    }
    let answer = stub.answer.lock().unwrap();
    if answer.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "{}".into());
    }
    (
        StatusCode::OK,
        serde_json::to_string(&answer.report).unwrap(),
    )
}

/// Starts the stub on a free loopback port; its base URL.
async fn start_stub(stub: Stub) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/admin/v1/regions", route_get(regions))
        .with_state(stub);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn link(name: &str, state: LinkState, lsn: u64, lag: Option<f64>, error: Option<&str>) -> PeerLink {
    PeerLink {
        name: name.into(),
        url: format!("https://{name}.db.example.com"),
        state,
        applied_lsn: lsn,
        applied_time: None,
        lag_seconds: lag,
        records_applied: lsn,
        last_error: error.map(Into::into),
    }
}

fn object(k: &str, ns: &str, what: &str) -> Value {
    serde_json::from_str(&get(k, &["get", what, "-n", ns, "-o", "json"]).expect(what)).unwrap()
}

fn condition(k: &str, ns: &str, cluster: &str) -> Value {
    let status = object(k, ns, &format!("kc/{cluster}"))["status"].clone();
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "RegionsHealthy").cloned())
        .unwrap_or(Value::Null)
}

fn events(k: &str, ns: &str, cluster: &str) -> String {
    get(
        k,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={cluster},involvedObject.kind=KoruCluster"),
            "-o",
            "jsonpath={range .items[*]}{.type}/{.reason}: {.message}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default()
}

fn secret(k: &str, ns: &str, token: Option<&str>) {
    let data = token.map_or(String::new(), |t| format!("stringData:\n  token: {t}\n"));
    let yaml = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: replication\n{data}");
    apply(k, ns, &yaml);
}

fn wait_condition(
    operator: &mut Operator,
    k: &str,
    ns: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(operator, 60, what, || {
        Some(condition(k, ns, "us")).filter(|c| check(c))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regions_secret_settings_and_streams_reach_the_pods_and_the_status() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "regions-status";
    fresh_namespace(&k, ns);
    // The streams are read every 2 s instead of every 30.
    let mut operator = start_operator_with(&k, ns, &["--region-status-interval-secs", "2"]);
    let spec = "  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n  region:\n    name: us-east\n    credentialsSecret: replication\n    peers:\n    - name: eu-west\n      endpoint: https://eu-west.db.example.com\n    - name: ap-south\n      endpoint: https://ap-south.db.example.com\n";
    apply(&k, ns, &cluster_yaml("us", spec));

    // No Secret: nothing is made (a pod would never start), and the status and an event say why.
    let refused = wait_condition(&mut operator, &k, ns, "RegionsHealthy False", |c| {
        c["reason"] == "CredentialsInvalid"
    });
    assert_eq!(refused["status"], "False", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("replication does not exist"),
        "{refused}"
    );
    assert!(events(&k, ns, "us").contains("Warning/RegionCredentialsInvalid"));
    assert_eq!(get(&k, &["get", "statefulset", "us", "-n", ns]), None);
    // A Secret without a token is refused too.
    secret(&k, ns, None);
    wait_condition(&mut operator, &k, ns, "the empty Secret refused", |c| {
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("has no `token` key"))
    });

    // With the token: the pods get the region, its peers and the token file.
    secret(&k, ns, Some("shared-replication-secret"));
    let token = wait_admin_token(&mut operator, &k, ns, "us");
    let config = eventually(&mut operator, 60, "the region's settings", || {
        let data = object(&k, ns, "configmap/us-config")["data"].clone();
        data.get("KORU_REGION").is_some().then_some(data)
    });
    assert_eq!(config["KORU_REGION"], "us-east");
    assert_eq!(
        config["KORU_REGION_PEERS"],
        "eu-west=https://eu-west.db.example.com,ap-south=https://ap-south.db.example.com"
    );
    assert_eq!(config["KORU_REGION_TOKEN_FILE"], "/etc/koru/region/token");
    let sts = eventually(&mut operator, 60, "the StatefulSet", || {
        get(&k, &["get", "statefulset", "us", "-n", ns, "-o", "json"])
    });
    let sts: Value = serde_json::from_str(&sts).unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "region-token")
        .cloned()
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], "replication", "{volume}");
    let hash = |sts: &Value| {
        sts["spec"]["template"]["metadata"]["annotations"]["koru.dev/config-hash"].clone()
    };
    let first_hash = hash(&sts);

    // The data plane reports its streams: each reaches the status, and RegionsHealthy is True.
    let answer = Arc::new(Mutex::new(Answer {
        report: RegionStatus {
            region: "us-east".into(),
            peers: vec![
                link("eu-west", LinkState::Streaming, 120, Some(0.4), None),
                link("ap-south", LinkState::Streaming, 80, Some(1.5), None),
            ],
        },
        down: false,
    }));
    let url = start_stub(Stub {
        answer: answer.clone(),
        token,
    })
    .await;
    annotate_endpoint(&k, ns, "us", &url);
    eventually(&mut operator, 120, "us Running", || {
        mark_pods_ready(&k, ns, "us");
        field(&k, ns, "kc/us", "{.status.phase}").filter(|p| p == "Running")
    });
    let healthy = wait_condition(&mut operator, &k, ns, "RegionsHealthy True", |c| {
        c["status"] == "True"
    });
    assert_eq!(healthy["reason"], "Streaming", "{healthy}");
    let regions = object(&k, ns, "kc/us")["status"]["regions"].clone();
    assert_eq!(regions["region"], "us-east", "{regions}");
    assert_eq!(regions["links"][0]["name"], "eu-west");
    assert_eq!(regions["links"][0]["state"], "streaming");
    assert_eq!(regions["links"][0]["appliedLsn"], 120);
    assert_eq!(regions["links"][1]["lagSeconds"], 1.5);
    assert!(regions["lastCheckedTime"].is_string(), "{regions}");

    // A stream fails: False with its error, and a Warning event.
    answer.lock().unwrap().report.peers[1] = link(
        "ap-south",
        LinkState::Failing,
        80,
        None,
        Some("the peer answered 401 (unauthorized)"),
    );
    let failing = wait_condition(&mut operator, &k, ns, "RegionsHealthy False", |c| {
        c["status"] == "False"
    });
    assert_eq!(failing["reason"], "LinkFailing", "{failing}");
    assert!(
        failing["message"]
            .as_str()
            .unwrap()
            .contains("401 (unauthorized)"),
        "{failing}"
    );
    eventually(&mut operator, 30, "the RegionLinkFailing event", || {
        events(&k, ns, "us")
            .contains("Warning/RegionLinkFailing")
            .then_some(())
    });
    let failing_status = object(&k, ns, "kc/us")["status"]["regions"].clone();
    assert_eq!(failing_status["links"][1]["state"], "failing");
    assert_eq!(
        failing_status["links"][1]["lastError"],
        "the peer answered 401 (unauthorized)"
    );

    // The data plane stops answering: the last streams and condition stay as they were.
    answer.lock().unwrap().down = true;
    std::thread::sleep(std::time::Duration::from_secs(6));
    operator.assert_running();
    let kept = object(&k, ns, "kc/us")["status"]["regions"].clone();
    assert_eq!(kept, failing_status, "kept while unreachable");
    assert_eq!(condition(&k, ns, "us")["status"], "False");

    // It answers again, recovered: True, and a Normal event.
    {
        let mut a = answer.lock().unwrap();
        a.down = false;
        a.report.peers[1] = link("ap-south", LinkState::Streaming, 95, Some(0.2), None);
    }
    wait_condition(&mut operator, &k, ns, "RegionsHealthy True again", |c| {
        c["status"] == "True"
    });
    eventually(&mut operator, 30, "the RegionLinksRecovered event", || {
        events(&k, ns, "us")
            .contains("Normal/RegionLinksRecovered")
            .then_some(())
    });

    // A new peer region: the settings change, and so does the digest that rolls the pods.
    patch_spec(
        &k,
        ns,
        "us",
        r#"{"region":{"name":"us-east","credentialsSecret":"replication","peers":[{"name":"eu-west","endpoint":"https://eu-west.db.example.com"},{"name":"ap-south","endpoint":"https://ap-south.db.example.com"},{"name":"sa-east","endpoint":"https://sa-east.db.example.com"}]}}"#,
    );
    eventually(&mut operator, 60, "the new peer rolling the pods", || {
        let sts: Value = serde_json::from_str(&get(
            &k,
            &["get", "statefulset", "us", "-n", ns, "-o", "json"],
        )?)
        .ok()?;
        (hash(&sts) != first_hash).then_some(())
    });
    let peers = field(&k, ns, "configmap/us-config", "{.data.KORU_REGION_PEERS}").unwrap();
    assert!(
        peers.ends_with(",sa-east=https://sa-east.db.example.com"),
        "{peers}"
    );

    // Leaving the global database: the streams and the condition go with spec.region.
    patch_spec(&k, ns, "us", r#"{"region":null}"#);
    eventually(
        &mut operator,
        60,
        "status.regions and RegionsHealthy gone",
        || {
            let status = object(&k, ns, "kc/us")["status"].clone();
            (status.get("regions").is_none() && condition(&k, ns, "us").is_null()).then_some(())
        },
    );
    assert_eq!(
        field(&k, ns, "configmap/us-config", "{.data.KORU_REGION}").as_deref(),
        Some("")
    );
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

/// The regional cluster `orders` in `team-a` with `peers`.
fn regional_cluster(peers: &[(&str, &str)]) -> koru_crd::KoruCluster {
    let spec = serde_json::json!({
        "version": "0.1.0",
        "replicas": 1,
        "storage": {"size": "1Gi"},
        "region": {
            "name": "us-east",
            "credentialsSecret": "replication",
            "peers": peers
                .iter()
                .map(|(n, e)| serde_json::json!({"name": n, "endpoint": e}))
                .collect::<Vec<_>>(),
        },
    });
    let mut kc = koru_crd::KoruCluster::new("orders", serde_json::from_value(spec).unwrap());
    kc.metadata.namespace = Some("team-a".into());
    kc.metadata.uid = Some("uid-1".into());
    kc
}

#[test]
fn the_real_data_plane_starts_with_the_region_settings_the_operator_writes() {
    let scratch = tempfile::tempdir().unwrap();
    let admin = scratch.path().join("admin-token");
    std::fs::write(&admin, "a".repeat(64)).unwrap();
    // As the Secret volume holds it.
    let token = scratch.path().join("region-token");
    std::fs::write(&token, "r".repeat(64)).unwrap();
    let peers = [
        ("eu-west", "https://eu-west.db.example.com/"),
        ("ap-south", "http://127.0.0.1:1"),
    ];
    // With peers, and as the first region of a global database (none yet).
    for (i, kc) in [regional_cluster(&peers), regional_cluster(&[])]
        .iter()
        .enumerate()
    {
        let config = koru_operator::desired::desired(kc)
            .unwrap()
            .config
            .data
            .unwrap();
        assert_eq!(config["KORU_REGION"], "us-east");
        let env: Vec<(String, String)> = config
            .into_iter()
            // No peer pods (nor their DNS names) here: the single member runs without Raft peers.
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "KORU_PEERS" | "KORU_PEER_TEMPLATE" | "KORU_PEER_LISTEN"
                )
            })
            .map(|(k, v)| match k.as_str() {
                "KORU_ADMIN_TOKEN_FILE" => (k, admin.display().to_string()),
                "KORU_REGION_TOKEN_FILE" => (k, token.display().to_string()),
                _ => (k, v),
            })
            .collect();
        // It starts and serves (DataPlane::start waits for that, and fails the test when the
        // process exits): the data plane accepted --region, --region-peer and the token file.
        let dataplane = DataPlane::start_with_env(
            &scratch.path().join(format!("data-{i}")),
            "127.0.0.1:0",
            &env,
            &[],
        );
        assert!(dataplane.url.starts_with("http://127.0.0.1:"));
    }
}
