//! How a group forms: the membership flags checked before anything starts, a single node's records
//! becoming the first member's, a member with other records refused, and the first member back on
//! an empty data directory rejoining instead of forming a new group.

use std::time::{Duration, Instant};

use crate::common::cluster::Cluster;
use crate::common::{self, Server, client};
use crate::support::{converges, get_json, post_json, put};

#[test]
fn membership_flags_are_checked_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--node-id", "1"], "--peers"),
        (
            &["--node-id", "1", "--peers", "1=127.0.0.1:1"],
            "--peers needs --peer-listen",
        ),
        (
            &["--node-id", "4", "--peers", "1=127.0.0.1:1"],
            "not among --peers",
        ),
        (&["--node-id", "1", "--peers", "1=nowhere"], "host:port"),
        (
            &["--node-id", "1", "--peers", "1", "--peer-template", "x:1"],
            "no {id}",
        ),
        (&["--raft-snapshot-entries", "5"], "not in 10.."),
    ];
    for (args, says) in cases {
        let e = Server::try_start(tmp.path(), args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} started"));
        assert!(!e.status.success());
        assert!(e.stderr.contains(says), "{args:?}: {}", e.stderr);
    }
}

/// A stopped single node's data directory holding `n` writes to namespace `ns`.
async fn single_node_data(dir: &std::path::Path, ns: &str, n: usize) {
    let mut single = Server::start(dir, &[]);
    let http = client();
    for i in 0..n {
        common::put_text(&http, &single, ns, &format!("k{i}"), &i.to_string()).await;
    }
    single.term();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_node_becomes_the_first_member_and_the_others_copy_its_records() {
    let mut cluster = Cluster::start_some(3, 0);
    single_node_data(&cluster.dir.path().join("member-1"), "old", 300).await;
    for id in 1..=3 {
        cluster.restart(id);
    }
    let http = client();
    cluster.leader(&http).await;
    assert_eq!(put(&http, &cluster.url(3), "after", 7).await, Some(200));
    let reference = cluster.changes(&http, 1).await;
    assert_eq!(reference.len(), 301, "300 old records and the new one");
    assert_eq!(reference[0]["lsn"], 1);
    for id in 2..=3 {
        assert!(
            cluster.changes(&http, id).await == reference,
            "member {id} does not hold the same history"
        );
    }
    let old = get_json(&http, format!("{}/api/v1/old/k299", cluster.url(2))).await;
    assert_eq!(old["value"], 299, "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_with_other_records_is_refused_and_nothing_diverges() {
    let mut cluster = Cluster::start_some(2, 0);
    single_node_data(&cluster.dir.path().join("member-2"), "foreign", 5).await;
    cluster.restart(1);
    cluster.restart(2);
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.members[&2]
        .stderr()
        .contains("written outside this cluster")
    {
        assert!(
            Instant::now() < deadline,
            "member 2 did not refuse the cluster's records:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = http
        .get(format!("{}/readyz", cluster.url(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        503,
        "the refusing member says it is not ready"
    );
    let foreign = http
        .get(format!("{}/api/v1/foreign/k0", cluster.url(1)))
        .header("x-koru-max-staleness-ms", "60000")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404, "member 2's records reached member 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_member_on_an_empty_data_directory_rejoins_instead_of_forming_a_new_group() {
    let mut cluster = Cluster::start(3);
    let http = client();
    let mut leader = cluster.leader(&http).await;
    for i in 0..20u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("f{i}"), i).await,
            Some(200)
        );
    }
    if leader == 1 {
        let (status, body) = post_json(
            &http,
            format!("{}/raft/step-down", cluster.peer_url(1)),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        leader = cluster.leader(&http).await;
    }
    // Member 1 (the one that forms a new cluster) comes back on a new, empty volume.
    cluster.kill(1);
    std::fs::remove_dir_all(cluster.dir.path().join("member-1")).unwrap();
    for i in 20..30u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("f{i}"), i).await,
            Some(200)
        );
    }
    cluster.restart(1);
    converges(&cluster, &http, 1, leader).await;
    let status = get_json(&http, format!("{}/raft/status", cluster.peer_url(1))).await;
    assert_eq!(status["leader"].as_u64(), Some(leader), "{status}");
    assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");
    assert!(
        cluster.members[&1]
            .stderr()
            .contains("already belongs to the formed group"),
        "{}",
        cluster.logs()
    );
}
