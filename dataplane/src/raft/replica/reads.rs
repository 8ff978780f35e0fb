//! The read path: linearizable reads wait for the leader's read index to be applied here;
//! bounded-staleness reads accept a recent commit heard from the leader.

use openraft::error::CheckIsLeaderError;

use super::*;

impl Replica {
    /// The leader's read index: the log index a linearizable read must see applied.
    ///
    /// openraft confirms leadership with one heartbeat round that must reach a quorum within a
    /// heartbeat interval (100 ms); on a loaded machine an answer can miss that, though nothing
    /// is wrong. A leader that is still the leader asks again until [`QUORUM_TIMEOUT`] rather
    /// than fail the read with 503.
    pub async fn read_index(&self) -> Result<u64, ReplicaError> {
        let deadline = Instant::now() + QUORUM_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(read) = tokio::time::timeout(left, self.raft.get_read_log_id()).await else {
                return Err(ReplicaError::NoLeader);
            };
            match read {
                Ok((read, _)) => return Ok(read.map_or(0, |l| l.index)),
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))
                    if Instant::now() < deadline =>
                {
                    tracing::debug!(error = %e, "leadership not confirmed in one heartbeat round; asking again");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(RaftError::APIError(_)) => return Err(ReplicaError::NoLeader),
                Err(RaftError::Fatal(e)) => return Err(ReplicaError::Stopped(e.to_string())),
            }
        }
    }

    /// Waits until this member's store reflects every write acknowledged before the call
    /// (linearizable), or, with `max_staleness`, every write the leader had committed at most
    /// that long ago as seen by this member.
    pub async fn read_barrier(&self, max_staleness: Option<Duration>) -> Result<(), ReplicaError> {
        let index = match max_staleness {
            Some(bound) => match self.recent_commit(bound) {
                Some(index) => index,
                None => self.linearizable_index().await?,
            },
            None => self.linearizable_index().await?,
        };
        self.raft
            .wait(Some(FORWARD_TIMEOUT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map_err(|e| ReplicaError::Stopped(e.to_string()))?;
        self.store_caught_up(FORWARD_TIMEOUT).await
    }

    /// Waits until the store holds the records of any snapshot this member installed: until
    /// then openraft counts entries as applied that the store is still copying.
    async fn store_caught_up(&self, limit: Duration) -> Result<(), ReplicaError> {
        let deadline = Instant::now() + limit;
        loop {
            let target = self.catch_up.load(Ordering::SeqCst);
            let (held, _) = self.store.last_applied();
            if held >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::CatchingUp { held, target });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The commit index this member heard from its leader within `bound`, if it did; the
    /// leader itself always qualifies with its own commit index.
    fn recent_commit(&self, bound: Duration) -> Option<u64> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader == Some(self.id) {
            return metrics
                .millis_since_quorum_ack
                .filter(|&ms| Duration::from_millis(ms) <= bound)
                .map(|_| metrics.last_applied.map_or(0, |l| l.index));
        }
        let heard = (*self.heard.lock())?;
        (heard.at.elapsed() <= bound).then_some(heard.leader_commit)
    }

    async fn linearizable_index(&self) -> Result<u64, ReplicaError> {
        loop {
            let leader = self.leader().await?;
            if leader == self.id {
                return self.read_index().await;
            }
            match self
                .network
                .call::<_, Option<u64>>(leader, "/raft/read-index", &(), FORWARD_TIMEOUT)
                .await
            {
                Ok(Some(index)) => return Ok(index),
                Ok(None) | Err(CallError::Unreachable(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(ReplicaError::Stopped(format!(
                        "asking the leader for a read index: {e}"
                    )));
                }
            }
        }
    }
}
