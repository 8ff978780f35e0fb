//! Raft membership driven by the real `koru-operator` against the real API server, with real
//! `koru-dataplane` members on loopback standing where the pods would serve (there is no kubelet
//! here): each member on its own loopback address (`127.0.1.<id>`, one API port and one peer
//! port shared by all), so the members' `--peer-template` resolves ids the way the pods' DNS
//! names do. Scaling up takes the new
//! members in; scaling down lets members go before their pods are removed; the status shows the
//! leader and each member's health.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{
    annotate_endpoint, cluster_yaml, event_reasons, patch_spec, start_operator, wait_admin_token,
};
use koru_testkit::{
    DataPlane, apply, eventually, field, fresh_namespace, install_crds, kubeconfig, kubectl,
    mark_pods_ready,
};
use serde_json::Value;

/// A port free on every member's loopback address, other than `not`.
fn common_port(members: u64, not: u16) -> u16 {
    for _ in 0..50 {
        let port = std::net::TcpListener::bind("127.0.1.0:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let free = port != not
            && (0..members)
                .all(|id| std::net::TcpListener::bind(format!("127.0.1.{id}:{port}")).is_ok());
        if free {
            return port;
        }
    }
    panic!("no port free on 127.0.1.0-{members}");
}

/// Starts member `id` of the cluster, its API on `ports.0` and its member routes on `ports.1`.
fn member(
    dir: &std::path::Path,
    id: u64,
    ports: (u16, u16),
    peers: &str,
    token_file: &str,
) -> DataPlane {
    let (port, peer_port) = ports;
    let template = format!("127.0.1.{{id}}:{peer_port}");
    let peer_listen = format!("127.0.1.{id}:{peer_port}");
    let id_text = id.to_string();
    DataPlane::start_at(
        &dir.join(format!("member-{id}")),
        &format!("127.0.1.{id}:{port}"),
        &[
            "--node-id",
            &id_text,
            "--peers",
            peers,
            "--peer-template",
            &template,
            "--peer-listen",
            &peer_listen,
            "--admin-token-file",
            token_file,
        ],
    )
}

/// The voters of the group as member 0 reports the leader's view.
fn voters(port: u16, token: &str) -> Vec<u64> {
    let out = std::process::Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.1.0:{port}/admin/members"))
        .output()
        .expect("curl");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    status["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["voter"] == true)
                .filter_map(|m| m["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn scaling_changes_the_raft_membership_and_pods_go_only_after() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "replication";
    fresh_namespace(&k, ns);
    let mut operator = start_operator(&k, ns);
    apply(
        &k,
        ns,
        &cluster_yaml(
            "ring",
            "  version: \"0.1.0\"\n  replicas: 3\n  storage:\n    size: 1Gi\n",
        ),
    );
    let token = wait_admin_token(&mut operator, &k, ns, "ring");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let token_file = token_file.display().to_string();
    let port = common_port(5, 0);
    let ports = (port, common_port(5, port));
    let mut members: Vec<DataPlane> = (0..3)
        .map(|id| member(dir.path(), id, ports, "0,1,2", &token_file))
        .collect();
    annotate_endpoint(&k, ns, "ring", &format!("http://127.0.1.0:{port}"));

    // The status shows the leader and three healthy voters.
    eventually(
        &mut operator,
        90,
        "three healthy members in the status",
        || {
            mark_pods_ready(&k, ns, "ring");
            let healthy = field(
                &k,
                ns,
                "kc/ring",
                "{.status.replication.leader}/{range .status.replication.members[*]}{.pod}={.healthy},{end}",
            )?;
            (healthy == "ring-0/ring-0=true,ring-1=true,ring-2=true,").then_some(())
        },
    );

    // Up to five: the new pods first, then the group takes them in.
    patch_spec(&k, ns, "ring", r#"{"replicas":5}"#);
    eventually(&mut operator, 60, "five pods asked for", || {
        (field(&k, ns, "statefulset/ring", "{.spec.replicas}")? == "5").then_some(())
    });
    // Members that do not run are not made voters.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        voters(port, &token),
        [0, 1, 2],
        "unreachable members became voters"
    );
    members.extend((3..5).map(|id| member(dir.path(), id, ports, "0,1,2,3,4", &token_file)));
    eventually(&mut operator, 120, "five voters", || {
        mark_pods_ready(&k, ns, "ring");
        (voters(port, &token) == [0, 1, 2, 3, 4]).then_some(())
    });
    eventually(&mut operator, 60, "five members in the status", || {
        let pods = field(
            &k,
            ns,
            "kc/ring",
            "{range .status.replication.members[*]}{.pod}:{.voter},{end}",
        )?;
        (pods == "ring-0:true,ring-1:true,ring-2:true,ring-3:true,ring-4:true,").then_some(())
    });

    // Down to three: the group lets members 3 and 4 go before the StatefulSet shrinks.
    patch_spec(&k, ns, "ring", r#"{"replicas":3}"#);
    eventually(&mut operator, 120, "three pods", || {
        let replicas = field(&k, ns, "statefulset/ring", "{.spec.replicas}")?;
        if replicas == "3" {
            assert_eq!(
                voters(port, &token),
                [0, 1, 2],
                "pods were removed while they still voted"
            );
            return Some(());
        }
        None
    });
    members.truncate(3);

    // An upgrade replaces the followers first and the leader last. Member 0 goes away so the
    // leader is not simply the pod a highest-ordinal-first roll would take last.
    members.remove(0);
    annotate_endpoint(&k, ns, "ring", &format!("http://127.0.1.1:{port}"));
    let leader = eventually(&mut operator, 60, "a new leader in the status", || {
        mark_pods_ready(&k, ns, "ring");
        field(&k, ns, "kc/ring", "{.status.replication.leader}").filter(|l| l != "ring-0")
    });
    patch_spec(&k, ns, "ring", r#"{"version":"0.2.0"}"#);
    let mut order: Vec<String> = Vec::new();
    eventually(&mut operator, 180, "every pod on the new version", || {
        mark_pods_ready(&k, ns, "ring");
        for i in 0..3 {
            let pod = format!("ring-{i}");
            let image = field(&k, ns, &format!("pod/{pod}"), "{.spec.containers[0].image}");
            if image.is_some_and(|i| i.ends_with(":0.2.0")) && !order.contains(&pod) {
                order.push(pod);
            }
        }
        (order.len() == 3).then_some(())
    });
    assert_eq!(
        order.last(),
        Some(&leader),
        "the leader was not replaced last: {order:?}"
    );
    let events = event_reasons(&k, ns, "ring");
    assert!(events.contains("MembershipChanged"), "{events}");
    // The leader handed leadership over before its pod was replaced (the members here are
    // processes the pod deletion leaves running, so the group now follows another member).
    assert!(events.contains("LeaderHandedOver"), "{events}");
    eventually(&mut operator, 30, "another leader in the status", || {
        field(&k, ns, "kc/ring", "{.status.replication.leader}").filter(|l| *l != leader)
    });
    drop(members);
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}
