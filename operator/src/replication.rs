//! A cluster's Raft membership as the operator drives it: every KoruCluster is one Raft group
//! whose voters are its pods' ordinals. Scaling up adds pods first and then asks the group to
//! take them in; scaling down asks the group to let members go and only then removes their
//! pods, so a majority of the group is never taken away by the StatefulSet.

use crate::admin::{AdminClient, CallError, GroupView};
use koru_crd::{MemberStatus, ReplicationStatus};

/// What to do this reconcile, from the spec and the group as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The StatefulSet's replicas for now.
    pub statefulset_replicas: i32,
    /// The voters to ask the group for, when they differ from its current ones.
    pub change_to: Option<Vec<u64>>,
}

/// Plans a reconcile: `wanted` replicas, the group's voters if it could be asked (`None` when
/// unreachable), and the StatefulSet's current replicas.
pub fn plan(wanted: i32, voters: Option<&[u64]>, current: Option<i32>) -> Plan {
    let wanted_ids: Vec<u64> = (0..wanted.max(1) as u64).collect();
    let Some(voters) = voters else {
        // Nobody to ask: pods may be added, never taken away.
        return Plan {
            statefulset_replicas: current.map_or(wanted, |c| c.max(wanted)),
            change_to: None,
        };
    };
    let change_to = (voters != wanted_ids.as_slice()).then(|| wanted_ids.clone());
    // Until the group has let them go, the pods of every current voter stay.
    let highest_voter = voters.iter().max().map_or(0, |v| *v as i32 + 1);
    Plan {
        statefulset_replicas: wanted.max(highest_voter),
        change_to,
    }
}

/// The group as the operator reads it: through the endpoint, then from the leader's own answer
/// when the endpoint is a follower (only the leader knows how far each member is).
pub async fn read(
    admin: &AdminClient,
    endpoint: &str,
    token: &str,
) -> Result<GroupView, CallError> {
    let view = admin.raft_status(endpoint, token).await?;
    if view.role == "leader" {
        return Ok(view);
    }
    let leader_addr = view
        .leader
        .and_then(|l| view.members.iter().find(|m| m.id == l))
        .map(|m| m.addr.clone())
        .filter(|a| !a.is_empty());
    match leader_addr {
        Some(addr) => Ok(admin
            .raft_status(&format!("http://{addr}"), token)
            .await
            .unwrap_or(view)),
        None => Ok(view),
    }
}

/// The status block from a view of the group: the leader and each member's health (a member is
/// healthy when it votes and, as the leader sees it, is at most [`HEALTHY_LAG`] entries behind).
pub fn status(cluster: &str, view: &GroupView) -> ReplicationStatus {
    let leader_view = view.role == "leader";
    ReplicationStatus {
        leader: view.leader.map(|id| format!("{cluster}-{id}")),
        members: view
            .members
            .iter()
            .map(|m| MemberStatus {
                pod: format!("{cluster}-{}", m.id),
                voter: m.voter,
                lag: m.lag,
                healthy: if leader_view {
                    Some(m.voter && m.lag.is_some_and(|l| l <= HEALTHY_LAG))
                } else {
                    None
                },
            })
            .collect(),
    }
}

/// Most entries a healthy member may trail the leader by.
pub const HEALTHY_LAG: u64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_up_adds_pods_first_and_down_waits_for_the_group() {
        // Up 3 -> 5: pods at once, then the voters.
        assert_eq!(
            plan(5, Some(&[0, 1, 2]), Some(3)),
            Plan {
                statefulset_replicas: 5,
                change_to: Some(vec![0, 1, 2, 3, 4])
            }
        );
        // Down 5 -> 3: the pods stay until the group has let members 3 and 4 go.
        assert_eq!(
            plan(3, Some(&[0, 1, 2, 3, 4]), Some(5)),
            Plan {
                statefulset_replicas: 5,
                change_to: Some(vec![0, 1, 2])
            }
        );
        assert_eq!(
            plan(3, Some(&[0, 1, 2]), Some(5)),
            Plan {
                statefulset_replicas: 3,
                change_to: None
            }
        );
        // Unreachable: never fewer pods than there are.
        assert_eq!(plan(1, None, Some(5)).statefulset_replicas, 5);
        assert_eq!(plan(5, None, Some(3)).statefulset_replicas, 5);
        assert_eq!(plan(3, None, None).statefulset_replicas, 3);
    }

    fn member(id: u64, voter: bool, lag: u64) -> crate::admin::GroupMember {
        crate::admin::GroupMember {
            id,
            addr: String::new(),
            voter,
            matched_index: None,
            lag: Some(lag),
        }
    }

    #[test]
    fn health_comes_from_the_leaders_view() {
        let view = GroupView {
            id: 0,
            role: "leader".into(),
            term: 1,
            leader: Some(0),
            last_log_index: 0,
            applied_index: 0,
            snapshot_index: None,
            purged_index: None,
            votes_held: false,
            public_addr: None,
            members: vec![
                member(0, true, 0),
                member(1, true, 5000),
                member(2, false, 0),
            ],
        };
        let s = status("db", &view);
        assert_eq!(s.leader.as_deref(), Some("db-0"));
        let healthy: Vec<Option<bool>> = s.members.iter().map(|m| m.healthy).collect();
        assert_eq!(healthy, [Some(true), Some(false), Some(false)]);
        let follower = GroupView {
            role: "follower".into(),
            ..view
        };
        assert!(
            status("db", &follower)
                .members
                .iter()
                .all(|m| m.healthy.is_none())
        );
    }
}
