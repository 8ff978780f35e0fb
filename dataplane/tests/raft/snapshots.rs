//! A member behind the purged log installs a snapshot and copies the records (the sealed segments
//! byte for byte).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::client;
use crate::common::cluster::Cluster;
use crate::support::{converges, get_json, put};

/// The sealed segments (all but the active, highest-numbered one) of member `id`, by name.
fn sealed_segments(cluster: &Cluster, id: u64) -> BTreeMap<String, Vec<u8>> {
    let dir = cluster.dir.path().join(format!("member-{id}")).join("wal");
    let mut files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.pop_last();
    files
}

/// Each segment's name, first LSN (from its header) and length, for a failure message.
fn describe(segments: &BTreeMap<String, Vec<u8>>) -> String {
    segments
        .iter()
        .map(|(name, bytes)| {
            let first = bytes
                .get(20..28)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
            format!("{name} (first LSN {first:?}, {} bytes)", bytes.len())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_behind_the_purged_log_installs_a_snapshot_and_copies_the_records() {
    let archive = tempfile::tempdir().unwrap();
    let store = format!("file://{}", archive.path().join("store").display());
    // Small snapshots, and segments sealed by time (seal entries the lagging member never
    // sees), so the copy must reproduce the leader's segment boundaries from the records pages.
    let extra = [
        "--raft-snapshot-entries",
        "50",
        "--backup-store",
        store.as_str(),
        "--archive-timeout",
        "1s",
    ];
    let mut cluster = Cluster::start_with(3, 3, &extra);
    let http = client();
    let leader = cluster.leader(&http).await;
    // Not member 1: a first member with an empty data directory would form a group of its own.
    let lagging = (2..=3).rev().find(|&id| id != leader).unwrap();
    for i in 0..20u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("a{i}"), i).await,
            Some(200)
        );
    }
    let before = get_json(&http, format!("{}/raft/status", cluster.peer_url(lagging))).await;
    cluster.kill(lagging);
    let mut n = 0u64;
    for _round in 0..3 {
        for _ in 0..100 {
            assert_eq!(
                put(&http, &cluster.url(leader), &format!("b{n}"), n).await,
                Some(200)
            );
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let status = get_json(&http, format!("{}/raft/status", cluster.peer_url(leader))).await;
    let purged = status["purged_index"].as_u64().unwrap_or(0);
    assert!(
        purged > before["last_log_index"].as_u64().unwrap(),
        "the leader kept the entries the stopped member lacks, so no snapshot is needed: {status} vs {before}"
    );

    // Restarted with its data: it holds a prefix of the records and copies the rest.
    cluster.restart(lagging);
    converges(&cluster, &http, lagging, leader).await;
    assert!(
        cluster.members[&lagging]
            .stderr()
            .contains("installed a snapshot"),
        "{}",
        cluster.logs()
    );
    let read = get_json(
        &http,
        format!("{}/api/v1/acked/b{}", cluster.url(lagging), n - 1),
    )
    .await;
    assert_eq!(read["value"], n - 1, "{read}");
    let sealed = sealed_segments(&cluster, leader);
    assert!(
        sealed.len() >= 2,
        "the test needs sealed segments: {:?}",
        sealed.keys()
    );
    let copied = sealed_segments(&cluster, lagging);
    for (name, bytes) in &copied {
        assert!(
            sealed.get(name) == Some(bytes),
            "sealed segment {name} of member {lagging} differs from the leader's:\n\
             leader {leader}: {}\nmember {lagging}: {}\n{}",
            describe(&sealed),
            describe(&copied),
            cluster.logs()
        );
    }

    // Replaced with an empty data directory (a new volume): it copies everything.
    cluster.kill(lagging);
    std::fs::remove_dir_all(cluster.dir.path().join(format!("member-{lagging}"))).unwrap();
    for i in 0..100u64 {
        assert_eq!(
            put(&http, &cluster.url(leader), &format!("c{i}"), i).await,
            Some(200)
        );
    }
    cluster.restart(lagging);
    converges(&cluster, &http, lagging, leader).await;
    let sealed = sealed_segments(&cluster, leader);
    let copied = sealed_segments(&cluster, lagging);
    assert!(copied.len() >= 2, "{:?}", copied.keys());
    for (name, bytes) in &copied {
        assert!(
            sealed.get(name) == Some(bytes),
            "sealed segment {name} of the replaced member {lagging} differs from the leader's"
        );
    }
    // Writes through it still work, and reach everyone.
    assert_eq!(
        put(&http, &cluster.url(lagging), "after", 1).await,
        Some(200)
    );
    converges(&cluster, &http, lagging, leader).await;
}
