//! Membership changes under writes (three to five to three members) and a member back on an empty
//! data directory kept from voting until it has caught up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::client;
use crate::common::cluster::Cluster;
use crate::support::{Acked, converges, put, spawn_writers, state_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_three_to_five_to_three_under_writes_lose_nothing() {
    let mut cluster = Cluster::start_some(5, 3);
    let http = client();
    cluster.leader(&http).await;
    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id)).collect();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&http, &urls, 3, "m", &acked, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart(4);
    cluster.restart(5);
    let grown = cluster.set_members(&http, 2, &[1, 2, 3, 4, 5], false).await;
    assert_eq!(voters(&grown), vec![1, 2, 3, 4, 5], "{grown}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shrunk = cluster.set_members(&http, 4, &[1, 2, 3], true).await;
    assert_eq!(voters(&shrunk), vec![1, 2, 3], "{shrunk}");
    cluster.kill(4);
    cluster.kill(5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().clone();
    assert!(acked.len() > 10, "only {} writes acknowledged", acked.len());
    let leader = cluster.leader(&http).await;
    let reference = cluster.changes(&http, leader).await;
    let state = state_of(&reference);
    for (key, value, _, _) in &acked {
        assert_eq!(state.get(key), Some(&json!(value)), "lost {key}={value}");
    }
    for id in 1..=3 {
        assert!(
            cluster.changes(&http, id).await == reference,
            "member {id} differs from the leader"
        );
    }
    eprintln!(
        "3 -> 5 -> 3 members: {} writes acknowledged, none lost",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_back_on_an_empty_data_directory_does_not_vote_until_caught_up() {
    let mut cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let (behind, wiped) = (followers[0], followers[1]);
    assert_eq!(
        put(&http, &cluster.url(leader), "before", 0).await,
        Some(200)
    );
    // Writes acknowledged by the leader and `wiped` only.
    cluster.block(&http, behind, &[leader, wiped]).await;
    for i in 0..10u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("during-{i}"), i).await,
            Some(200)
        );
    }
    // The only other copy of those writes is lost with `wiped`'s volume; the leader dies.
    cluster.kill(wiped);
    std::fs::remove_dir_all(cluster.dir.path().join(format!("member-{wiped}"))).unwrap();
    cluster.kill(leader);
    cluster.block(&http, behind, &[]).await;
    cluster.restart(wiped);

    // `behind` lacks the writes; had `wiped` voted for it, it would lead without them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for id in [behind, wiped] {
        let status = cluster.status(&http, id).await.expect("a running member");
        assert_ne!(
            status["role"],
            "leader",
            "member {id} leads without the old leader: {status}\n{}",
            cluster.logs()
        );
    }
    assert!(
        cluster.members[&wiped].stderr().contains("without voting"),
        "{}",
        cluster.logs()
    );
    let status = cluster.status(&http, wiped).await.unwrap();
    assert_eq!(status["votes_held"], true, "{status}");

    // The old leader comes back and every member ends with every acknowledged write.
    cluster.restart(leader);
    let now = cluster.leader(&http).await;
    for id in (1..=3).filter(|&id| id != now) {
        converges(&cluster, &http, id, now).await;
    }
    for id in 1..=3 {
        let state = state_of(&cluster.changes(&http, id).await);
        for i in 0..10 {
            assert!(
                state.contains_key(&format!("during-{i}")),
                "member {id}: {state:?}"
            );
        }
    }
    let status = cluster.status(&http, wiped).await.unwrap();
    assert_eq!(status["votes_held"], false, "{status}");
    // Caught up, it votes again: with the leader gone, the two others elect one of them.
    cluster.kill(now);
    let others: Vec<u64> = (1..=3).filter(|&id| id != now).collect();
    let next = cluster
        .leader_among(&http, &others, Duration::from_secs(20))
        .await;
    assert_ne!(next, now);
}

/// Found by the simulated cluster (`tests/raft_sim.rs`): a leader that removed itself from the
/// voters leads on for a moment, and a membership change asked of it then made openraft panic,
/// which stopped that member's Raft for good (it could never be taken back in).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_that_left_the_voters_refuses_membership_changes_and_can_come_back() {
    let cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    assert_eq!(
        put(&http, &cluster.url(leader), "before", 1).await,
        Some(200)
    );
    let shrunk = cluster.set_members(&http, leader, &others, true).await;
    assert_eq!(voters(&shrunk), others, "{shrunk}");
    // Asked again at once, the member that left may still think it leads: it must not change
    // the membership from outside it (openraft 0.9 panics there and the member is lost), but
    // refuse (503) or pass the change on.
    let again = http
        .post(format!("{}/raft/membership", cluster.peer_url(leader)))
        .timeout(Duration::from_secs(150))
        .json(&json!({ "voters": [1, 2, 3] }))
        .send()
        .await
        .expect("POST /raft/membership");
    let status = again.status().as_u16();
    let body = again.text().await.unwrap_or_default();
    assert!(status == 200 || status == 503, "{status} {body}");
    let next = cluster
        .leader_among(&http, &others, Duration::from_secs(20))
        .await;
    assert_ne!(next, leader);
    assert_eq!(
        put(&http, &cluster.url(next), "between", 2).await,
        Some(200)
    );
    // Asked to take it back, the group does, and it catches up.
    let grown = cluster.set_members(&http, next, &[1, 2, 3], true).await;
    assert_eq!(voters(&grown), vec![1, 2, 3], "{grown}");
    let now = cluster.leader(&http).await;
    assert_eq!(put(&http, &cluster.url(now), "after", 3).await, Some(200));
    converges(&cluster, &http, leader, now).await;
}

/// The voters a member's status lists.
fn voters(status: &Value) -> Vec<u64> {
    status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}
