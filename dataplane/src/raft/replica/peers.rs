//! What a member knows of the others' addresses: the check that keeps membership changes to
//! configured peer addresses, this member's client address, and the leader's (for redirected
//! writes and the operator's view of the group).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{NodeId, Replica, ReplicaError, ReplicaStatus};

/// How long asking the leader for its status may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

impl Replica {
    /// Whether this member leads now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// Refuses a membership naming any address other than where that member is configured to
    /// be (see [`Directory`](crate::raft::directory::Directory)); checked before anything is
    /// sent anywhere, on the member asked and again on the leader.
    pub(super) fn check_addresses(
        &self,
        members: &BTreeMap<NodeId, String>,
    ) -> Result<(), ReplicaError> {
        let directory = self.network.directory();
        for (id, addr) in members {
            if !directory.allows(*id, addr) {
                let expected = directory.address(*id).map_or_else(
                    || "none: it is not in --peers and there is no --peer-template".into(),
                    |a| format!("{a:?}"),
                );
                return Err(ReplicaError::ForeignAddress(format!(
                    "member {id}'s address {addr:?} is not its configured peer address \
                     (expected {expected}); members are reached only at the addresses \
                     --peers and --peer-template give, so nothing was changed or sent"
                )));
            }
        }
        Ok(())
    }

    /// Tells this member where clients reach it (`host:port`), for followers that redirect
    /// writes here.
    pub fn set_public_addr(&self, addr: String) {
        *self.public_addr.lock() = Some(addr);
    }

    /// The group as the leader sees it (how far each member is replicated): this member's own
    /// view when it leads or when the leader cannot be asked.
    pub async fn leader_view(&self) -> ReplicaStatus {
        let Some(leader) = self.other_leader() else {
            return self.status();
        };
        match self
            .network
            .get::<ReplicaStatus>(leader, "/raft/status", STATUS_TIMEOUT)
            .await
        {
            Ok(view) => view,
            Err(e) => {
                tracing::info!(leader, error = %e, "the leader's view is unavailable; answering with this member's");
                self.status()
            }
        }
    }

    /// The leader's client address when another member leads, learned from its status once per
    /// leader and term; None when unknown (the caller then forwards instead).
    pub(super) async fn leader_public_addr(&self) -> Option<String> {
        let leader = self.other_leader()?;
        let term = self.raft.metrics().borrow().current_term;
        if let Some((id, t, addr)) = self.leader_public.lock().clone()
            && id == leader
            && t == term
        {
            return Some(addr);
        }
        let view = self
            .network
            .get::<ReplicaStatus>(leader, "/raft/status", STATUS_TIMEOUT)
            .await
            .ok()?;
        let addr = view.public_addr?;
        *self.leader_public.lock() = Some((leader, term, addr.clone()));
        Some(addr)
    }
}
