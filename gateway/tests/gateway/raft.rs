//! Writes go to the leader of a real 3-member Raft cluster (whose followers redirect writes
//! instead of forwarding them, so a write sent to a follower would show), also after the
//! leader is killed and another is elected; reads go round-robin to ready members.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use koru_dataplane_api::ready::Readiness;
use koru_testkit::DataPlane;

use crate::support::{Gateway, free_port, http, route, write_routes};

/// Starts three members that redirect follower writes.
fn three_members(dir: &std::path::Path) -> BTreeMap<u64, DataPlane> {
    let ports: BTreeMap<u64, (u16, u16)> =
        (1..=3).map(|id| (id, (free_port(), free_port()))).collect();
    let peers = ports
        .iter()
        .map(|(id, (_, peer))| format!("{id}=127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    ports
        .iter()
        .map(|(&id, &(api, peer))| {
            let member = DataPlane::start_at(
                &dir.join(format!("member-{id}")),
                &format!("127.0.0.1:{api}"),
                &[
                    "--node-id",
                    &id.to_string(),
                    "--peers",
                    &peers,
                    "--peer-listen",
                    &format!("127.0.0.1:{peer}"),
                    "--follower-writes",
                    "redirect",
                ],
            );
            (id, member)
        })
        .collect()
}

/// The member that says it leads, once one does.
async fn leader(members: &BTreeMap<u64, DataPlane>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (&id, member) in members {
            let ready: Option<Readiness> =
                match http().get(format!("{}/readyz", member.url)).send().await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
            if ready
                .and_then(|r| r.replication)
                .is_some_and(|r| r.role == "leader")
            {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn writes_go_to_the_leader_also_after_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || three_members(&dir)
    })
    .await
    .unwrap();
    let first = leader(&members).await;
    let urls: Vec<&str> = members.values().map(|m| m.url.as_str()).collect();
    let routes = dir.path().join("routes.json");
    write_routes(&routes, vec![route("ha", &urls)]);
    let gw = Gateway::start(&routes, &[]);
    let http = http();
    let base = gw.cluster("ha");
    // The gateway learns the leader from the members' /readyz within a second or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..20 {
        let put = http
            .put(format!("{base}/api/v1/ha/k{i}"))
            .json(&serde_json::json!({"value": i}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.status(),
            200,
            "write {i}: {}",
            put.text().await.unwrap()
        );
    }
    // Reads with a staleness bound are spread over the members, and see the writes.
    for i in 0..6 {
        let get = http
            .get(format!("{base}/api/v1/ha/k{i}"))
            .header("x-koru-max-staleness-ms", "5000")
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200, "read {i}");
    }

    members.get_mut(&first).unwrap().process.kill();
    members.remove(&first);
    let killed = Instant::now();
    // The first write after the kill is held by the gateway's retries until a new leader takes
    // it (or answered 502 after the retry bound, if the election is slower).
    let mut first_ok = None;
    for attempt in 0..10 {
        let put = http
            .put(format!("{base}/api/v1/ha/after-{attempt}"))
            .json(&serde_json::json!({"value": attempt}))
            .send()
            .await
            .unwrap();
        if put.status() == 200 {
            first_ok = Some(attempt);
            break;
        }
        assert_eq!(
            put.status(),
            502,
            "only a failed leader search may fail a write"
        );
    }
    let first_ok = first_ok.expect("a write succeeds after the leader changed");
    eprintln!(
        "first write after killing the leader succeeded after {:?} (attempt {first_ok})",
        killed.elapsed()
    );
    let second = leader(&members).await;
    assert_ne!(second, first);
    for i in 0..10 {
        let put = http
            .put(format!("{base}/api/v1/ha/later-{i}"))
            .json(&serde_json::json!({"value": i}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200, "write {i} on the new leader");
    }
}
