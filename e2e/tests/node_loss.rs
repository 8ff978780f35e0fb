//! Journey 5 (node loss) on real pods: a three-pod cluster spread over the two nodes keeps taking
//! writes when the node holding one of its members loses power (its kubelet, containerd and
//! containers SIGKILLed by `scripts/testenv.sh stop-node`), loses no acknowledged write, and is
//! whole again, every member caught up, once the node is back.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use koru_dataplane_api::auth::Scope;
use koru_e2e::{
    OperatorRelease, TokenKey, Writer, apply, client_url, cluster_yaml, leader_pod, wait_cluster,
};
use koru_testkit::{get, root};

/// Runs `scripts/testenv.sh <command> <state dir> <node>` on the test Kubernetes of `kubeconfig`.
fn node(kubeconfig: &str, command: &str, index: usize) {
    let dir = Path::new(kubeconfig).parent().unwrap();
    let out = Command::new(root().join("scripts/testenv.sh"))
        .arg(command)
        .arg(dir)
        .arg(index.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/testenv.sh {command} {index}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_keeps_its_writes_through_the_loss_of_a_node() {
    let Some(k) = koru_e2e::nodes() else {
        return;
    };
    let namespace = koru_e2e::namespace(&k, "e2e-node");
    let ns = namespace.name.clone();
    let _operator = OperatorRelease::install(&k, &ns, 1);
    let key = TokenKey::new(51);
    apply(
        &k,
        &ns,
        &format!(
            "{}---\n{}",
            key.secret("token-key"),
            cluster_yaml(
                "orders",
                "  replicas: 3\n  storage:\n    size: 1Gi\n  durability:\n    fsync: always\n"
            )
        ),
    );
    wait_cluster(&k, &ns, "orders", 3, "0.1.0", 300);

    // The soft anti-affinity spreads the three pods over both nodes: the node holding one member
    // goes, the other holds a majority.
    let placement = get(
        &k,
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "app.kubernetes.io/instance=orders",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
        ],
    )
    .unwrap();
    let on = |n: &str| placement.lines().filter(|l| l.ends_with(n)).count();
    let (lone, count) = [("koru-node0", 0), ("koru-node1", 1)]
        .into_iter()
        .map(|(name, index)| (index, on(name)))
        .min_by_key(|(_, c)| *c)
        .unwrap();
    assert_eq!(
        count, 1,
        "the pods are not spread over both nodes: {placement}"
    );
    let lost_pod = placement
        .lines()
        .find(|l| l.ends_with(&format!("koru-node{lone}")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let leader = leader_pod(&k, &ns, "orders");

    let url = client_url(&k, &ns, "orders");
    let token = key.token(&format!("{ns}/orders"), Scope::Write);
    let writer = Writer::start(&url, &token, "e2e", 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    node(&k, "stop-node", lone);
    let lost = Instant::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let log_down = writer.stop().await;
    let during: Vec<u64> = log_down
        .attempts
        .iter()
        .filter(|a| a.error.is_none() && a.at > Duration::from_secs(8))
        .map(|a| a.n)
        .collect();
    eprintln!(
        "node {lone} lost with {lost_pod} (the leader: {}): {} writes acknowledged ({} in the last 10 s), {} failed, longest stretch of failures {:?}",
        leader == lost_pod,
        log_down.acknowledged().len(),
        during.len(),
        log_down.failed().len(),
        log_down.longest_outage()
    );
    assert!(
        during.len() > 10,
        "writes stopped with one member's node down: {:?}",
        log_down.failed().iter().rev().take(3).collect::<Vec<_>>()
    );

    node(&k, "start-node", lone);
    wait_cluster(&k, &ns, "orders", 3, "0.1.0", 300);
    eprintln!(
        "node {lone} back, every member caught up, {:?} after the loss",
        lost.elapsed()
    );
    log_down.assert_all_present(&url, &token, "e2e").await;
}
