//! Watches every member's `/readyz` (the data plane's `Readiness`) once a second: which members
//! are ready, and which one leads, so writes go to the leader and reads to ready members.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use koru_dataplane_api::ready::Readiness;
use tokio::task::JoinSet;

use crate::config::MEMBER_POLL_INTERVAL;
use crate::proxy::Upstream;
use crate::table::{Health, Routes};

/// How long one `/readyz` may take before the member counts as not ready.
const PROBE_TIMEOUT: Duration = Duration::from_millis(900);

/// Polls every cluster's members until the process ends: each second, and at once when a table
/// names new members or a write found no leader.
pub async fn watch_members(routes: Arc<Routes>, upstream: Upstream) {
    loop {
        poll_once(&routes, &upstream).await;
        tokio::select! {
            () = tokio::time::sleep(MEMBER_POLL_INTERVAL) => {}
            () = routes.poll_now.notified() => {}
        }
    }
}

/// Polls every member of every cluster once, concurrently, and records what changed.
pub async fn poll_once(routes: &Routes, upstream: &Upstream) {
    let snapshot = routes.snapshot();
    let mut probes = JoinSet::new();
    for entry in snapshot.entries() {
        for member in &entry.route.members {
            let (id, member, upstream) = (entry.route.id.clone(), member.clone(), upstream.clone());
            probes.spawn(async move {
                let readiness = probe(&upstream, &member).await;
                (id, member, readiness)
            });
        }
    }
    let mut answers: std::collections::HashMap<String, Vec<(String, Option<Readiness>)>> =
        Default::default();
    while let Some(Ok((id, member, readiness))) = probes.join_next().await {
        answers.entry(id).or_default().push((member, readiness));
    }
    let mut changed = false;
    for entry in snapshot.entries() {
        let said = answers.remove(&entry.route.id).unwrap_or_default();
        let next = health_of(&entry.route.members, &said);
        let mut health = entry.live.health.write();
        // A newer table may have moved the members meanwhile: that view is polled next time.
        if health.members == next.members && *health != next {
            *health = next;
            changed = true;
        }
    }
    if changed {
        routes.notify_changed();
    }
}

/// One member's `/readyz`, or None if it did not answer in time with the JSON of one.
async fn probe(upstream: &Upstream, member: &str) -> Option<Readiness> {
    let request = Request::get(format!("{}/readyz", member.trim_end_matches('/')))
        .body(Full::new(Bytes::new()))
        .ok()?;
    let call = async {
        let response = upstream.request(request).await.ok()?;
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice::<Readiness>(&body).ok()
    };
    tokio::time::timeout(PROBE_TIMEOUT, call)
        .await
        .ok()
        .flatten()
}

/// The health of a cluster's `members` from what each said (in the members' order).
pub fn health_of(members: &[String], said: &[(String, Option<Readiness>)]) -> Health {
    let answer = |m: &String| {
        said.iter()
            .find(|(s, _)| s == m)
            .and_then(|(_, r)| r.as_ref())
    };
    let ready: Vec<String> = members
        .iter()
        .filter(|m| answer(m).is_some_and(|r| r.status == "ready"))
        .cloned()
        .collect();
    let leader = members
        .iter()
        .find(|m| {
            answer(m).is_some_and(|r| match &r.replication {
                Some(replica) => replica.role == "leader",
                // A single node (no replication) takes its own writes.
                None => r.status == "ready",
            })
        })
        .cloned();
    Health {
        members: members.to_vec(),
        polled: true,
        ready,
        leader,
    }
}

#[cfg(test)]
mod tests {
    use koru_dataplane_api::raft::ReplicaStatus;

    use super::*;

    fn member(status: &str, role: Option<&str>) -> Option<Readiness> {
        Some(Readiness {
            status: status.into(),
            replication: role.map(|role| ReplicaStatus {
                role: role.into(),
                ..serde_json::from_str(r#"{"id":1,"role":"x","term":1,"leader":null,"last_log_index":0,"applied_index":0,"members":[]}"#).expect("status")
            }),
            ..Readiness::default()
        })
    }

    #[test]
    fn the_leader_is_the_member_that_says_so_and_a_single_node_leads_itself() {
        let members: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let said = vec![
            ("a".to_string(), member("ready", Some("follower"))),
            ("b".to_string(), member("ready", Some("leader"))),
            ("c".to_string(), None),
        ];
        let h = health_of(&members, &said);
        assert_eq!(h.ready, ["a", "b"]);
        assert_eq!(h.leader.as_deref(), Some("b"));
        assert!(h.polled);
        let single = vec!["s".to_string()];
        let h = health_of(&single, &[("s".into(), member("ready", None))]);
        assert_eq!(h.leader.as_deref(), Some("s"));
        let h = health_of(&single, &[("s".into(), member("read_only", None))]);
        assert!(h.ready.is_empty() && h.leader.is_none());
    }
}
