//! A replicated member's view of its Raft group, as `/raft/status` (and the membership routes)
//! answer and `/readyz` embeds it; the operator reads it to follow and change the membership.

use serde::{Deserialize, Serialize};

/// One member in [`ReplicaStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Member id (the pod's ordinal under the operator).
    pub id: u64,
    /// Its address; empty in views anyone may read (see [`ReplicaStatus::without_addresses`]).
    #[serde(default)]
    pub addr: String,
    /// Whether it votes (false for a learner being caught up).
    pub voter: bool,
    /// Highest log index known to be replicated to it (leader only).
    #[serde(default)]
    pub matched_index: Option<u64>,
    /// Entries it is behind the leader's log (leader only).
    #[serde(default)]
    pub lag: Option<u64>,
}

/// The member's view of the cluster, for `/raft/status`, `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// This member's id.
    pub id: u64,
    /// leader, follower, candidate, learner or shutdown.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader this member knows, if any.
    pub leader: Option<u64>,
    /// Index of the last entry in this member's log.
    pub last_log_index: u64,
    /// Index of the last entry applied to this member's store.
    pub applied_index: u64,
    /// Index of the last entry this member's latest snapshot covers.
    #[serde(default)]
    pub snapshot_index: Option<u64>,
    /// Index of the last entry dropped from this member's log (covered by a snapshot).
    #[serde(default)]
    pub purged_index: Option<u64>,
    /// This member came back on an empty data directory and does not vote until caught up.
    #[serde(default)]
    pub votes_held: bool,
    /// Where clients reach this member (`host:port` of its API), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_addr: Option<String>,
    /// The voting members and, on the leader, how far each is replicated.
    pub members: Vec<MemberStatus>,
}

impl ReplicaStatus {
    /// The same view without the members' addresses, for answers anyone may read (`/readyz`):
    /// they name hosts and ports of the provider's network.
    pub fn without_addresses(mut self) -> ReplicaStatus {
        self.public_addr = None;
        for member in &mut self.members {
            member.addr.clear();
        }
        self
    }

    /// Ids of the voting members, ascending.
    pub fn voters(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.id)
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leader's `/raft/status` answer as the data plane writes it.
    const LEADER: &str = concat!(
        r#"{"id":0,"role":"leader","term":3,"leader":0,"last_log_index":12,"applied_index":12,"#,
        r#""snapshot_index":10,"purged_index":null,"votes_held":false,"public_addr":"db-0:7878","#,
        r#""members":[{"id":2,"addr":"db-2:7879","voter":false,"matched_index":11,"lag":1},"#,
        r#"{"id":0,"addr":"db-0:7879","voter":true,"matched_index":12,"lag":0}]}"#
    );

    #[test]
    fn the_status_round_trips_and_hides_addresses_on_request() {
        let status: ReplicaStatus = serde_json::from_str(LEADER).unwrap();
        assert_eq!(serde_json::to_string(&status).unwrap(), LEADER);
        assert_eq!(status.voters(), [0]);
        let public = status.without_addresses();
        assert_eq!(public.public_addr, None);
        assert!(public.members.iter().all(|m| m.addr.is_empty()));
        assert!(
            !serde_json::to_string(&public)
                .unwrap()
                .contains("public_addr")
        );
    }
}
