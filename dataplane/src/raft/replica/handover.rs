//! Leadership hand-over (a leader steps down only once a caught-up member takes over, with no
//! write failing), elections on request, and injected partitions for tests.

use super::*;

impl Replica {
    /// Whether calls from member `from` are refused (an injected partition).
    pub fn is_blocked(&self, from: NodeId) -> bool {
        self.blocked.read().contains(&from)
    }

    /// Counts a write proposal in, unless this member is forming the group or handing
    /// leadership over (then None). A hand-over waits until none is left: the count goes up
    /// before the flags are read, and the hand-over sets its flag before reading the count, so
    /// no proposal slips past both.
    pub(super) fn begin_proposal(&self) -> Option<Proposal<'_>> {
        self.proposing.fetch_add(1, Ordering::SeqCst);
        let proposal = Proposal(&self.proposing);
        (!self.forming.load(Ordering::SeqCst) && !self.stepping_down.load(Ordering::SeqCst))
            .then_some(proposal)
    }

    /// Hands leadership to the most caught-up other voter, so this member can be restarted
    /// without an election timeout's worth of unavailability and without the group electing a
    /// member that is about to go away too. openraft 0.9 has no transfer, so this one:
    ///
    /// 1. stops proposing (writes wait, then go to the next leader) and lets what is in flight
    ///    commit;
    /// 2. waits for a voter that holds its whole log;
    /// 3. goes silent towards every other member for the followers' lease, so they stop
    ///    honouring it;
    /// 4. asks the chosen voter to stand at once (`POST /raft/elect`): with the longest log and
    ///    the others' leases over, it wins before any follower's own election timer fires.
    ///
    /// Answers with the status once another member leads; on failure this member carries on
    /// leading (or a normal election follows).
    pub async fn step_down(&self) -> Result<ReplicaStatus, ReplicaError> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.id) {
            return Err(ReplicaError::Refused("this member does not lead".into()));
        }
        let others: Vec<NodeId> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != self.id)
            .collect();
        if others.is_empty() {
            return Err(ReplicaError::Refused(
                "no other voter to hand leadership to".into(),
            ));
        }
        if self.stepping_down.swap(true, Ordering::SeqCst) {
            return Err(ReplicaError::Refused(
                "a hand-over is already under way".into(),
            ));
        }
        // The hand-over cuts links the way an injected partition does; those come back after.
        let injected = self.blocked.read().clone();
        let result = self.hand_over(&others).await;
        *self.blocked.write() = injected;
        self.stepping_down.store(false, Ordering::SeqCst);
        result
    }

    async fn hand_over(&self, others: &[NodeId]) -> Result<ReplicaStatus, ReplicaError> {
        let deadline = Instant::now() + HANDOVER_TIMEOUT;
        // Voters holding the whole log. A member that is down still shows the index it last
        // matched, so each is asked in turn until one stands.
        let candidates = loop {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let applied = m.last_applied.map_or(0, |l| l.index);
            let caught_up: Vec<NodeId> = others
                .iter()
                .copied()
                .filter(|id| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(id).copied().flatten())
                        .is_some_and(|l| l.index == last)
                })
                .collect();
            let idle = self.proposing.load(Ordering::SeqCst) == 0;
            if !caught_up.is_empty() && applied == last && idle {
                break caught_up;
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::Stopped(
                    "no other voter caught up with the leader's log in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        tracing::info!(to = ?candidates, "handing leadership over");
        self.blocked.write().extend(others.iter().copied());
        tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
        let mut stood = None;
        for &target in &candidates {
            self.blocked.write().remove(&target);
            match self
                .network
                .call::<_, ()>(target, "/raft/elect", &(), FORWARD_TIMEOUT)
                .await
            {
                Ok(()) => {
                    stood = Some(target);
                    break;
                }
                Err(e) => {
                    tracing::info!(member = target, error = %e, "a member could not stand; trying the next");
                    self.blocked.write().insert(target);
                }
            }
        }
        self.blocked.write().retain(|id| !others.contains(id));
        let Some(target) = stood else {
            return Err(ReplicaError::Stopped(format!(
                "none of the caught-up members {candidates:?} could stand"
            )));
        };
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            if leader.is_some_and(|l| l != self.id) {
                tracing::info!(to = ?leader, "handed leadership over");
                return Ok(self.status());
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::Stopped(format!(
                    "member {target} did not take leadership over in time"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts an election on this member at once (the second half of [`Replica::step_down`]).
    pub async fn elect(&self) -> Result<(), ReplicaError> {
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| ReplicaError::Stopped(e.to_string()))
    }

    /// Replaces the injected partition: this member neither reaches nor answers `members`.
    /// Refused unless the process runs with `KORU_FAULT_INJECTION=1`.
    pub fn set_blocked(
        &self,
        members: impl IntoIterator<Item = NodeId>,
    ) -> Result<(), ReplicaError> {
        if !self.faults_enabled {
            return Err(ReplicaError::Refused(
                "fault injection is off (start the member with KORU_FAULT_INJECTION=1)".into(),
            ));
        }
        *self.blocked.write() = members.into_iter().collect();
        tracing::warn!(blocked = ?*self.blocked.read(), "injected partition changed");
        Ok(())
    }
}
