//! The write path: a write from any member becomes one Raft entry, proposed on the leader in
//! group-committed batches, or forwarded to it from a follower.

use super::*;

impl Replica {
    /// Writes `ops` as one record through Raft, from any member, by `meta`'s author.
    pub async fn write(
        &self,
        ops: Vec<WriteOp>,
        meta: crate::store::WriteMeta,
    ) -> Result<Committed, ReplicaError> {
        let cmd = Command::new(&ops, self.store.clock_now(), meta);
        match self.write_command(cmd).await? {
            Applied::UniqueViolation(violation) => Err(ReplicaError::UniqueViolation(violation)),
            applied => applied.into_committed().map_err(ReplicaError::Refused),
        }
    }

    /// Commits `cmd` through Raft from any member (forwarded to the leader from a follower);
    /// what applying it produced.
    async fn write_command(&self, cmd: Command) -> Result<Applied, ReplicaError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let applied = loop {
            let leader = self.leader().await?;
            if leader == self.id {
                let Some(_proposal) = self.begin_proposal() else {
                    if Instant::now() >= deadline {
                        return Err(ReplicaError::NoLeader);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                break self.propose_write(cmd).await?;
            }
            match self
                .network
                .call::<_, ForwardReply>(leader, "/raft/write", &cmd, FORWARD_TIMEOUT)
                .await
            {
                Ok(ForwardReply::Applied(applied)) => break applied,
                // It was not the leader when the write arrived, so nothing was proposed.
                Ok(ForwardReply::NotLeader) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(ForwardReply::Failed { unknown, message }) => {
                    return Err(if unknown {
                        ReplicaError::Unknown(message)
                    } else {
                        ReplicaError::NoLeader
                    });
                }
                // Never delivered: safe to try again once a leader is known.
                Err(CallError::Unreachable(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // The leader's rate limit or quota turned it away before proposing it.
                Err(CallError::Status(status @ (429 | 507), body)) => {
                    return Err(ReplicaError::LeaderRefused { status, body });
                }
                Err(e) => return Err(ReplicaError::Unknown(e.to_string())),
            }
        };
        Ok(applied)
    }

    /// Proposes the write `cmd` on this member, which believes it leads, together with the
    /// writes that arrive meanwhile (see [`batch_writes`]).
    pub async fn propose_write(&self, cmd: Command) -> Result<Applied, ReplicaError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writes
            .send((cmd, reply))
            .map_err(|_| ReplicaError::Stopped("the write batcher stopped".into()))?;
        answer
            .await
            .map_err(|_| ReplicaError::Stopped("the write batcher stopped".into()))?
    }

    /// Proposes `cmd` on this member, which believes it leads.
    pub async fn propose(&self, cmd: Request) -> Result<Applied, ReplicaError> {
        propose_on(&self.raft, cmd).await
    }
}

/// Proposes queued writes in batches, each entry taking every write queued while earlier ones
/// were being committed (group commit), so concurrent writes share one Raft log append, one
/// replication round and one fsync per member instead of one each. Up to [`WRITES_IN_FLIGHT`]
/// entries are in flight at once.
pub(super) async fn batch_writes(
    raft: Raft<TypeConfig>,
    mut queued: tokio::sync::mpsc::UnboundedReceiver<QueuedWrite>,
) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(WRITES_IN_FLIGHT));
    while let Some(first) = queued.recv().await {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut bytes = first.0.size();
        let mut batch = vec![first];
        while batch.len() < BATCH_WRITES && bytes < BATCH_BYTES {
            let Ok(next) = queued.try_recv() else { break };
            bytes += next.0.size();
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose_batch(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Proposes `batch` as one entry and answers each of its writers.
async fn propose_batch(raft: &Raft<TypeConfig>, batch: Vec<QueuedWrite>) {
    let (mut cmds, replies): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
    let request = if cmds.len() == 1 {
        Request::Write(cmds.remove(0))
    } else {
        Request::Writes(cmds)
    };
    let answers = match propose_on(raft, request).await {
        Ok(Applied::Batch(answers)) if answers.len() == replies.len() => {
            answers.into_iter().map(Ok).collect()
        }
        Ok(Applied::Batch(answers)) => {
            let e = ReplicaError::Stopped(format!(
                "{} writes were proposed but {} applied",
                replies.len(),
                answers.len()
            ));
            vec![Err(e); replies.len()]
        }
        Ok(applied) => vec![Ok(applied)],
        Err(e) => vec![Err(e); replies.len()],
    };
    for (reply, answer) in replies.into_iter().zip(answers) {
        // The writer may have given up waiting; nothing to tell then.
        let _ = reply.send(answer);
    }
}

/// Proposes `cmd` through `raft`, whose member believes it leads.
async fn propose_on(raft: &Raft<TypeConfig>, cmd: Request) -> Result<Applied, ReplicaError> {
    let Ok(written) = tokio::time::timeout(QUORUM_TIMEOUT, raft.client_write(cmd)).await else {
        return Err(ReplicaError::Unknown(format!(
            "no majority committed it within {} s",
            QUORUM_TIMEOUT.as_secs()
        )));
    };
    match written {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ReplicaError::Unknown(format!(
                "leadership moved to {:?} while the write was in flight",
                f.leader_id
            )))
        }
        Err(RaftError::APIError(e)) => Err(ReplicaError::Refused(e.to_string())),
        Err(RaftError::Fatal(e)) => Err(ReplicaError::Stopped(e.to_string())),
    }
}

impl Replica {
    /// The answer to a forwarded write.
    pub async fn forwarded_write(&self, cmd: Command) -> ForwardReply {
        if self.raft.metrics().borrow().current_leader != Some(self.id) {
            return ForwardReply::NotLeader;
        }
        let Some(_proposal) = self.begin_proposal() else {
            return ForwardReply::NotLeader;
        };
        match self.propose_write(cmd).await {
            Ok(applied) => ForwardReply::Applied(applied),
            Err(e) => ForwardReply::Failed {
                unknown: matches!(e, ReplicaError::Unknown(_)),
                message: e.to_string(),
            },
        }
    }
}

impl crate::rewind::GuardedWrite for Replica {
    async fn write_guarded(
        &self,
        ops: Vec<WriteOp>,
        guard: crate::store::RangeGuard,
        meta: crate::store::WriteMeta,
    ) -> Result<Committed, crate::rewind::RewindError> {
        let mut cmd = Command::new(&ops, self.store.clock_now(), meta);
        cmd.guard = Some(guard.clone());
        match self.write_command(cmd).await? {
            Applied::Conflict => Err(crate::rewind::RewindError::Store(
                crate::StoreError::Conflict {
                    namespace: guard.namespace,
                    prefix: guard.prefix,
                    since_lsn: guard.since_lsn,
                },
            )),
            applied => applied
                .into_committed()
                .map_err(|m| ReplicaError::Refused(m).into()),
        }
    }
}
