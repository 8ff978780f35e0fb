//! Journeys 1 to 3 on real pods: the operator installed by `helm install` (two pods, leader
//! election), `kubectl apply -f examples/cluster-production.yaml` giving three data-plane pods
//! that form one Raft group through the headless Service's DNS; writes and reads through the
//! client Service while the leader's pod is deleted (no acknowledged write lost, the pod comes back
//! and catches up); scaling 3 → 5 → 3 through membership changes; and a rolling upgrade to a new
//! image tag under a steady write load, leadership handed over before the leader's pod goes.

use std::time::{Duration, Instant};

use koru_dataplane_api::auth::Scope;
use koru_e2e::{
    OperatorRelease, TokenKey, Writer, apply, client_url, delete_pod, leader_pod, patch_cluster,
    pod_names, pod_uid, tag_image, wait_cluster, wait_pod_replaced, wait_pods_gone,
};
use koru_testkit::root;

/// The cluster the example names.
const CLUSTER: &str = "orders";

/// `examples/cluster-production.yaml` as a user would apply it here: its token key replaced by one
/// whose private half this test holds, and its pods' CPU and memory scaled down to fit this
/// 2-core machine (three pods asking for 2 CPUs each would never schedule).
fn production_example(public_pem: &str) -> String {
    let example = std::fs::read_to_string(root().join("examples/cluster-production.yaml")).unwrap();
    let begin = example.find("    -----BEGIN PUBLIC KEY-----").unwrap();
    let end = example.find("-----END PUBLIC KEY-----").unwrap() + "-----END PUBLIC KEY-----".len();
    let pem: String = public_pem
        .trim_end()
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let example = format!("{}{pem}{}", &example[..begin], &example[end..]);
    for (from, _) in [("cpu: \"2\"", ()), ("memory: 4Gi", ())] {
        assert!(example.contains(from), "the example no longer says {from}");
    }
    example
        .replace("cpu: \"2\"", "cpu: 250m")
        .replace("memory: 4Gi", "memory: 384Mi")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_production_cluster_runs_on_real_pods_fails_over_scales_and_upgrades() {
    let Some(k) = koru_e2e::nodes() else {
        return;
    };
    let namespace = koru_e2e::namespace(&k, "e2e-prod");
    let ns = namespace.name.clone();

    // Journey 1: the operator by its chart, two pods with leader election.
    let begin = Instant::now();
    let operator = OperatorRelease::install(&k, &ns, 2);
    let pods = operator.pods();
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(pods.iter().all(|(_, phase)| phase == "Running"), "{pods:?}");
    let holder = operator.wait_leader(60);
    assert!(
        pods.iter()
            .any(|(name, _)| holder.starts_with(name.as_str())),
        "the Lease holder {holder} is none of the operator pods {pods:?}"
    );
    eprintln!(
        "operator: 2 pods running, {holder} leads, after {:?}",
        begin.elapsed()
    );

    let key = TokenKey::new(16);
    let started = Instant::now();
    apply(&k, &ns, &production_example(&key.public_pem));
    let status = wait_cluster(&k, &ns, CLUSTER, 3, "0.1.0", 300);
    eprintln!(
        "cluster Running with 3 voters, leader {}, after {:?}",
        status["replication"]["leader"],
        started.elapsed()
    );
    assert_eq!(
        pod_names(&k, &ns, CLUSTER),
        ["orders-0", "orders-1", "orders-2"]
    );

    // Journey 2 (the kubectl path): writes and reads through the client Service, and the leader's
    // pod deleted under a steady write load.
    let url = client_url(&k, &ns, CLUSTER);
    let token = key.token(&format!("{ns}/{CLUSTER}"), Scope::Write);
    let writer = Writer::start(&url, &token, "e2e", 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leader = leader_pod(&k, &ns, CLUSTER);
    let uid = pod_uid(&k, &ns, &leader).unwrap();
    delete_pod(&k, &ns, &leader);
    let deleted = Instant::now();
    wait_pod_replaced(&k, &ns, &leader, &uid, 180);
    wait_cluster(&k, &ns, CLUSTER, 3, "0.1.0", 180);
    eprintln!(
        "leader pod {leader} deleted: back, caught up and voting after {:?}",
        deleted.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = writer.stop().await;
    let acknowledged = log.acknowledged();
    eprintln!(
        "failover: {} writes acknowledged, {} failed, longest stretch of failures {:?}; first failures: {:?}",
        acknowledged.len(),
        log.failed().len(),
        log.longest_outage(),
        log.failed().iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        acknowledged.len() > 20,
        "too few writes went through: {log:?}"
    );
    // Deleting the leader's pod costs at most an election (the data plane hands leadership over
    // on SIGTERM), never a long stretch of failed writes. The bound is loose: a connection kube-
    // proxy still sends to a pod that is gone hangs for seconds (the pods have no drain yet).
    assert!(
        log.longest_outage() < Duration::from_secs(30),
        "writes failed for {:?} after the leader's pod was deleted",
        log.longest_outage()
    );
    log.assert_all_present(&url, &token, "e2e").await;
    let new_leader = leader_pod(&k, &ns, CLUSTER);
    eprintln!("new leader {new_leader}");

    // Journey 3: scale 3 → 5 → 3 through membership changes.
    let started = Instant::now();
    patch_cluster(&k, &ns, CLUSTER, r#"{"replicas": 5}"#);
    wait_cluster(&k, &ns, CLUSTER, 5, "0.1.0", 240);
    eprintln!("scaled to 5 voters in {:?}", started.elapsed());
    let started = Instant::now();
    patch_cluster(&k, &ns, CLUSTER, r#"{"replicas": 3}"#);
    wait_cluster(&k, &ns, CLUSTER, 3, "0.1.0", 240);
    let three: Vec<String> = (0..3).map(|i| format!("{CLUSTER}-{i}")).collect();
    wait_pods_gone(&k, &ns, CLUSTER, &three, 120);
    eprintln!("scaled back to 3 in {:?}", started.elapsed());

    // A rolling upgrade to a new image tag under a steady write load.
    tag_image(
        &k,
        "ghcr.io/koru/koru-dataplane:0.1.0",
        "ghcr.io/koru/koru-dataplane:0.1.1",
    );
    let writer = Writer::start(&url, &token, "e2e", 1_000_000);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    patch_cluster(&k, &ns, CLUSTER, r#"{"version": "0.1.1"}"#);
    wait_cluster(&k, &ns, CLUSTER, 3, "0.1.1", 420);
    let upgraded = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = writer.stop().await;
    eprintln!(
        "rolling upgrade in {upgraded:?}: {} writes acknowledged, {} failed, longest stretch of failures {:?}; failures: {:?}",
        log.acknowledged().len(),
        log.failed().len(),
        log.longest_outage(),
        log.failed().iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        log.longest_outage() < Duration::from_secs(30),
        "writes failed for {:?} during the rolling upgrade",
        log.longest_outage()
    );
    log.assert_all_present(&url, &token, "e2e").await;
    let images = koru_testkit::get(
        &k,
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            &format!("app.kubernetes.io/instance={CLUSTER}"),
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
    )
    .unwrap();
    assert!(
        images
            .split_whitespace()
            .all(|i| i == "ghcr.io/koru/koru-dataplane:0.1.1"),
        "{images}"
    );
    drop(operator);
}
