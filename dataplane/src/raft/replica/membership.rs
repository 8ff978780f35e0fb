//! This member's view of the group and membership changes (joint consensus through
//! openraft), each new voter caught up first.

use super::*;

impl Replica {
    /// This member's view of the cluster.
    pub fn status(&self) -> ReplicaStatus {
        let m = self.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let last = m.last_log_index.unwrap_or(0);
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .map(|l| l.map_or(0, |l| l.index));
                MemberStatus {
                    id: *id,
                    addr: self.address_of(*id).unwrap_or_else(|| node.addr.clone()),
                    voter: voters.contains(id),
                    matched_index: matched,
                    lag: matched.map(|i| last.saturating_sub(i)),
                }
            })
            .collect();
        ReplicaStatus {
            id: self.id,
            role: role.to_owned(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: last,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            votes_held: self.votes_held(),
            public_addr: self.public_addr.lock().clone(),
            members,
        }
    }

    /// Whether this member is a healthy part of the group: it knows a leader it can follow.
    pub fn is_ready(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.running_state.is_ok()
            && m.current_leader.is_some()
            && self.store.last_applied().0 >= self.catch_up.load(Ordering::SeqCst)
    }

    /// Makes `members` the cluster's voters (id → address), from any member: new members are
    /// first added as learners and caught up, then the voter set is replaced in one joint
    /// consensus change, so a majority of both the old and the new set agrees at every step.
    pub async fn change_members(
        &self,
        members: BTreeMap<NodeId, String>,
    ) -> Result<ReplicaStatus, ReplicaError> {
        if members.is_empty() {
            return Err(ReplicaError::Refused(
                "a cluster needs at least one member".into(),
            ));
        }
        self.check_addresses(&members)?;
        let leader = self.leader().await?;
        if leader != self.id {
            return self
                .network
                .call(
                    leader,
                    "/raft/membership",
                    &MembersBody {
                        members,
                        voters: Vec::new(),
                    },
                    MEMBERSHIP_TIMEOUT,
                )
                .await
                .map_err(|e| ReplicaError::Unknown(format!("forwarding to the leader: {e}")));
        }
        if !may_change_membership(&self.raft, self.id) {
            // It left the voters and leads on until the group elects one of them: the change
            // goes to that leader (the caller retries on no_leader).
            return Err(ReplicaError::NoLeader);
        }
        let known: Vec<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        for (id, addr) in &members {
            if !known.contains(id) {
                tracing::info!(id, %addr, "adding a learner");
                let added = tokio::time::timeout(
                    MEMBERSHIP_TIMEOUT,
                    self.raft.add_learner(*id, BasicNode::new(addr), true),
                )
                .await
                .map_err(|_| {
                    ReplicaError::Unknown(format!("member {id} did not catch up in time"))
                })?;
                added.map_err(membership_error)?;
            }
        }
        let voters: std::collections::BTreeSet<NodeId> = members.keys().copied().collect();
        let current: Vec<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        for id in voters.iter().filter(|id| !current.contains(id)) {
            self.caught_up(*id).await?;
        }
        tracing::info!(?voters, "changing the voters");
        tokio::time::timeout(
            MEMBERSHIP_TIMEOUT,
            self.raft.change_membership(voters, false),
        )
        .await
        .map_err(|_| ReplicaError::Unknown("the membership change did not commit in time".into()))?
        .map_err(membership_error)?;
        Ok(self.status())
    }

    /// The peer address of member `id`: from --peers or --peer-template (see
    /// [`Directory`](super::directory::Directory)).
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        self.network.directory().address(id)
    }

    /// Waits until member `id` holds the leader's log (within [`CATCH_UP_SLACK`] entries), so it
    /// votes only once it can: a member that cannot be reached is never made a voter.
    async fn caught_up(&self, id: NodeId) -> Result<(), ReplicaError> {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map(|l| l.index);
            if matched.is_some_and(|i| i + CATCH_UP_SLACK >= last) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::Unknown(format!(
                    "member {id} has not caught up with the leader (it holds {}, the leader {last}); is it running?",
                    matched.map_or_else(|| "nothing".to_string(), |i| format!("up to entry {i}"))
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Maps a failed membership step.
pub(super) fn membership_error(
    e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
) -> ReplicaError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            ReplicaError::Unknown("leadership moved during the membership change; retry".into())
        }
        RaftError::APIError(e) => ReplicaError::Refused(e.to_string()),
        RaftError::Fatal(e) => ReplicaError::Stopped(e.to_string()),
    }
}
