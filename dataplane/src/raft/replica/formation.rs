//! Forming a new group: the first member initialises it alone, proposes the base, then adds
//! the other peers as they come up.

use super::membership::membership_error;
use super::*;

impl Replica {
    /// The first member's part in forming the group: the base, then the other peers (see
    /// [`Replica::start`]). Resumes after a restart; writes are refused until the base is in.
    pub(super) async fn form(self: Arc<Self>, base: Option<(u64, i64)>) {
        let mut wait = Duration::from_millis(50);
        loop {
            match self.form_step(base).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "forming the cluster; retrying"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        self.forming.store(false, Ordering::SeqCst);
        tracing::info!("the cluster is formed");
    }

    /// One attempt: Ok(true) once formed, Ok(false) to wait (not leader yet).
    async fn form_step(&self, base: Option<(u64, i64)>) -> Result<bool, ReplicaError> {
        let metrics = self.raft.metrics().borrow().clone();
        let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        if voters.is_empty() {
            // The initial membership is not in effect yet.
            return Ok(false);
        }
        if voters != [self.id] {
            // Already formed (or formed by an earlier run).
            return Ok(true);
        }
        if metrics.current_leader != Some(self.id) {
            return Ok(false);
        }
        // Proposed once, even for an empty store: a member holding other records then refuses
        // at once.
        if self.forming.load(Ordering::SeqCst) {
            let (lsn, last_micros) = base.unwrap_or((0, 0));
            let request = crate::raft::Request::Base(crate::raft::Base {
                lsn,
                last_micros,
                source: self.peers.0[&self.id].clone(),
            });
            self.propose(request).await?;
            tracing::info!(records = lsn, "the cluster's base is this member's records");
            self.forming.store(false, Ordering::SeqCst);
        }
        if self.peers.0.len() == 1 {
            return Ok(true);
        }
        // Every peer joins as a learner; those that catch up within FORM_WAIT become voters
        // together, and the rest are left to a later membership change (the operator's).
        let known: Vec<NodeId> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        for (id, addr) in self.peers.0.iter().filter(|(id, _)| **id != self.id) {
            if !known.contains(id) {
                self.raft
                    .add_learner(*id, BasicNode::new(addr), false)
                    .await
                    .map_err(membership_error)?;
            }
        }
        let deadline = Instant::now() + FORM_WAIT;
        let ready = loop {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let caught_up: BTreeMap<NodeId, String> = self
                .peers
                .0
                .iter()
                .filter(|(id, _)| {
                    **id == self.id
                        || m.replication
                            .as_ref()
                            .and_then(|r| r.get(id).copied().flatten())
                            .is_some_and(|l| l.index + CATCH_UP_SLACK >= last)
                })
                .map(|(id, a)| (*id, a.clone()))
                .collect();
            if caught_up.len() == self.peers.0.len() || Instant::now() >= deadline {
                break caught_up;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if ready.len() == 1 {
            return Ok(false);
        }
        self.change_members(ready).await?;
        Ok(true)
    }
}
