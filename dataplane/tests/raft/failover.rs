//! The leader killed with SIGKILL under concurrent writes (3 and 5 members), a partitioned leader
//! (an injected fault in the members' transport, see `common::cluster`), and a leadership
//! hand-over under writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

use crate::common::cluster::Cluster;
use crate::common::{Server, client};
use crate::support::{Acked, converges, post_json, put, spawn_writers, state_of};

/// Starts `n` members, writes from four concurrent clients through every member, kills the
/// leader with SIGKILL, and checks that a new leader takes writes within seconds, that every
/// acknowledged write is on every survivor, and that the restarted member ends with exactly
/// the same history (every record: LSN, time, operations).
async fn leader_killed_under_writes(n: u64) {
    let mut cluster = Cluster::start(n);
    let http = client();
    let leader = cluster.leader(&http).await;
    let urls: Vec<String> = (1..=n).map(|id| cluster.url(id)).collect();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&http, &urls, 4, "w", &acked, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = acked.lock().len();
    assert!(
        before > 0,
        "no write acknowledged before the kill:\n{}",
        cluster.logs()
    );
    cluster.kill(leader);
    let killed_at = Instant::now();
    let failover = loop {
        let first = acked
            .lock()
            .iter()
            .filter(|(_, _, sent, _)| *sent > killed_at)
            .map(|(_, _, _, done)| *done)
            .min();
        if let Some(first) = first {
            break first - killed_at;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no write acknowledged within 15 s of killing leader {leader}:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().clone();
    eprintln!(
        "{n} members: {} writes acknowledged ({before} before the kill); the first write sent \
         after the kill was acknowledged {failover:?} after it",
        acked.len()
    );
    let new_leader = cluster.leader(&http).await;
    assert_ne!(new_leader, leader);
    let metrics = http
        .get(format!("{}/metrics", cluster.url(new_leader)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("koru_raft_role{role=\"leader\"} 1"),
        "{metrics}"
    );
    for id in 1..=n {
        assert!(
            metrics.contains(&format!(
                "koru_raft_replication_lag_entries{{peer=\"{id}\"}}"
            )),
            "no lag for member {id}: {metrics}"
        );
    }
    let survivors = cluster.running();
    for &id in &survivors {
        let state = state_of(&cluster.changes(&http, id).await);
        for (key, value, _, _) in &acked {
            assert_eq!(
                state.get(key),
                Some(&json!(value)),
                "member {id} lacks acknowledged write {key}={value}"
            );
        }
    }
    cluster.restart(leader);
    cluster.leader(&http).await;
    let reference = cluster.changes(&http, new_leader).await;
    for id in 1..=n {
        let feed = cluster.changes(&http, id).await;
        assert_eq!(
            feed.len(),
            reference.len(),
            "member {id} has {} records, the leader {}",
            feed.len(),
            reference.len()
        );
        assert!(
            feed == reference,
            "member {id}'s history differs from the leader's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_keep_every_acknowledged_write_when_the_leader_is_killed() {
    leader_killed_under_writes(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_members_keep_every_acknowledged_write_when_the_leader_is_killed() {
    leader_killed_under_writes(5).await;
}

/// Every member stopped (a suspended cluster) and started again on its data directory: the
/// group elects a leader again and serves what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_group_stopped_and_started_again_serves_its_data() {
    let mut cluster = Cluster::start(3);
    let http = client();
    for round in 0..3u64 {
        let leader = cluster.leader(&http).await;
        for i in 0..20 {
            assert_eq!(
                put(
                    &http,
                    &cluster.url(leader),
                    &format!("k{i}"),
                    round * 100 + i
                )
                .await,
                Some(200),
                "round {round}\n{}",
                cluster.logs()
            );
        }
        for id in 1..=3 {
            cluster.stop(id);
        }
        for id in 1..=3 {
            cluster.restart(id);
        }
        let leader = cluster
            .leader_among(&http, &[1, 2, 3], Duration::from_secs(30))
            .await;
        let got =
            crate::support::get_json(&http, format!("{}/api/v1/acked/k19", cluster.url(leader)))
                .await;
        assert_eq!(
            got["value"],
            json!(round * 100 + 19),
            "round {round}: {got}\n{}",
            cluster.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_acknowledges_nothing_and_the_majority_goes_on() {
    let cluster = Cluster::start(3);
    let http = client();
    let old = cluster.leader(&http).await;
    assert_eq!(put(&http, &cluster.url(old), "before", 1).await, Some(200));
    let others: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    cluster.block(&http, old, &others).await;
    for &id in &others {
        cluster.block(&http, id, &[old]).await;
    }

    // The minority side: a write is not acknowledged, a linearizable read is refused.
    let status = put(&http, &cluster.url(old), "lost", 1).await;
    assert!(
        matches!(status, Some(503)),
        "the cut-off leader answered {status:?} to a write"
    );
    let read = http
        .get(format!("{}/api/v1/acked/before", cluster.url(old)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status(),
        503,
        "a linearizable read on the minority side"
    );
    // A client that accepts staleness is served from what the member has.
    let stale = http
        .get(format!("{}/api/v1/acked/before", cluster.url(old)))
        .header("x-koru-max-staleness-ms", "600000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status(),
        200,
        "a bounded-stale read on the minority side"
    );

    // The majority side elects a leader of a later term and keeps taking writes.
    let new = cluster
        .leader_among(&http, &others, Duration::from_secs(20))
        .await;
    assert_ne!(new, old);
    for (i, &id) in others.iter().enumerate() {
        assert_eq!(
            put(&http, &cluster.url(id), &format!("during-{i}"), 2).await,
            Some(200)
        );
    }
    let old_term = cluster.status(&http, old).await.unwrap()["term"].clone();
    let new_term = cluster.status(&http, new).await.unwrap()["term"].clone();
    assert!(
        new_term.as_u64() > old_term.as_u64(),
        "new leader's term {new_term} is not past the old leader's {old_term}"
    );

    // Healed: everyone follows one leader, with one history, without the unacknowledged write.
    for id in 1..=3 {
        cluster.block(&http, id, &[]).await;
    }
    cluster.leader(&http).await;
    let reference = cluster.changes(&http, new).await;
    let state = state_of(&reference);
    assert!(state.contains_key("before") && state.contains_key("during-0"));
    assert!(
        !state.contains_key("lost"),
        "an unacknowledged write surfaced"
    );
    for id in 1..=3 {
        assert!(
            cluster.changes(&http, id).await == reference,
            "member {id} did not converge"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_hands_leadership_over_and_no_write_fails() {
    let cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id)).collect();
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let (http, urls, failed, acked, stop) = (
                http.clone(),
                urls.clone(),
                Arc::clone(&failed),
                Arc::clone(&acked),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let url = &urls[((t + i) % 3) as usize];
                    let resp = http
                        .put(format!("{url}/api/v1/acked/h{t}-{i}"))
                        .json(&json!({ "value": i }))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => {
                            let body = r.text().await.unwrap_or_default();
                            failed.lock().push(format!("{url}: {body}"));
                        }
                        Err(e) => failed.lock().push(format!("{url}: {e}")),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Asked of a follower, passed on to the leader.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let (status, body) = post_json(
        &http,
        format!("{}/admin/members/step-down", cluster.url(follower)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let new_leader = body["leader"].as_u64().unwrap();
    assert_ne!(new_leader, leader, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(cluster.leader(&http).await, new_leader);
    assert!(
        failed.lock().is_empty(),
        "writes failed during the hand-over: {:?}",
        failed.lock()
    );
    assert!(acked.load(Ordering::SeqCst) > 0);
    // Every member holds the same history afterwards.
    let reference = cluster.changes(&http, new_leader).await;
    for id in 1..=3 {
        converges(&cluster, &http, id, new_leader).await;
    }
    assert!(!reference.is_empty());
    // With a member down, the two left still hand over: the old leader's vote makes the majority.
    let mut cluster = cluster;
    let down = (1..=3).find(|&id| id != new_leader).unwrap();
    cluster.kill(down);
    let (status, body) = post_json(
        &http,
        format!("{}/raft/step-down", cluster.peer_url(new_leader)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let third = body["leader"].as_u64().unwrap();
    assert!(third != new_leader && third != down, "{body}");
    assert_eq!(
        put(&http, &cluster.url(new_leader), "after-handover", 1).await,
        Some(200)
    );
    // A member that does not lead, alone, or a single node cannot hand anything over.
    let single = tempfile::tempdir().unwrap();
    let server = Server::start(single.path(), &[]);
    let resp = http
        .post(format!("{}/raft/step-down", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
