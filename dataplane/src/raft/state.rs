//! The Raft state machine: committed entries are written to the member's [`Store`] as records
//! with the same LSN and commit time on every member.
//!
//! Idempotence: the state machine's bookkeeping ([`AppliedMeta`] plus the next LSN) is saved after
//! the store has the records, so after a crash it may be behind the store, never ahead. Entries
//! are then applied again; one whose LSN the store already holds is recognised and skipped.
//! This needs the store to be durable before the bookkeeping is: replicated members open their
//! store with `fsync always`.
//!
//! Snapshots are not built: leaders keep their whole log (the store keeps every version anyway),
//! so a follower, however far behind, catches up from the log.

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};

use super::log::{AppliedMeta, LogStore};
use super::{Applied, Command, NodeId, TypeConfig};
use crate::store::{Fixed, Store};

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn fatal(message: String) -> StorageError<NodeId> {
    StorageIOError::apply(LogId::default(), &std::io::Error::other(message)).into()
}

/// The state machine of one member.
pub struct StateMachine {
    store: Store,
    log: LogStore,
    meta: AppliedMeta,
}

impl StateMachine {
    /// The state machine over `store`, resuming from what `log` recorded.
    ///
    /// A store holding records the Raft state knows nothing about (a single-node data directory
    /// joined to a cluster) is refused: its history would differ from the other members'.
    pub fn open(store: Store, log: LogStore) -> Result<StateMachine, String> {
        let meta = log.load_applied().map_err(|e| e.to_string())?;
        let (applied_lsn, _) = store.last_applied();
        if meta.applied.is_none() && applied_lsn > 0 {
            return Err(format!(
                "the data directory holds {applied_lsn} records written outside this cluster; a \
                 new member starts from an empty data directory"
            ));
        }
        if applied_lsn + 1 < meta.next_lsn {
            return Err(format!(
                "the store ends at LSN {applied_lsn} but this member applied up to LSN {}: the \
                 data directory lost acknowledged records",
                meta.next_lsn - 1
            ));
        }
        Ok(StateMachine { store, log, meta })
    }

    /// Queues `cmd` for the store (or decides it without the store); what the entry applied
    /// to is known once its receiver, if any, resolves. `last_micros` is the commit time of the
    /// record before, carried through a batch so queued records need not wait for each other.
    fn submit_command(&mut self, cmd: Command, last_micros: &mut i64) -> Submitted {
        let ops = match cmd.write_ops() {
            Ok(ops) => ops,
            Err(message) => return Submitted::Done(Applied::Refused { message }),
        };
        if let Err(e) = self.store.validate(&ops) {
            return Submitted::Done(Applied::Refused {
                message: e.to_string(),
            });
        }
        let lsn = self.meta.next_lsn;
        let (store_lsn, _) = self.store.last_applied();
        self.meta.next_lsn += 1;
        if lsn <= store_lsn {
            // Written before a crash that lost the bookkeeping; nobody waits for this reply.
            return Submitted::Done(Applied::Written {
                lsn,
                timestamp_micros: 0,
                previous: Vec::new(),
            });
        }
        let fixed = Fixed {
            lsn,
            timestamp_micros: cmd.proposed_micros.max(*last_micros + 1),
        };
        *last_micros = fixed.timestamp_micros;
        match self.store.submit_fixed(ops, fixed) {
            Ok(rx) => Submitted::Queued(lsn, rx),
            Err(e) => Submitted::Failed(format!("applying LSN {lsn}: {e}")),
        }
    }
}

/// An entry on its way into the store.
enum Submitted {
    /// Decided without writing.
    Done(Applied),
    /// Queued as the record with this LSN.
    Queued(
        u64,
        tokio::sync::oneshot::Receiver<Result<crate::store::Committed, crate::StoreError>>,
    ),
    /// The store refused to queue it.
    Failed(String),
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = NoSnapshots;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(
        Option<LogId<NodeId>>,
        StoredMembership<NodeId, openraft::BasicNode>,
    )> {
        Ok((self.meta.applied, self.meta.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let first_ever = self.meta.applied.is_none();
        let mut durable = first_ever;
        // Every write of the batch is queued before any is awaited, so they share one group
        // commit (one fsync) instead of one each.
        let mut submitted = Vec::new();
        let mut last_micros = self.store.last_applied().1;
        for entry in entries {
            self.meta.applied = Some(entry.log_id);
            submitted.push(match entry.payload {
                EntryPayload::Blank => Submitted::Done(Applied::Nothing),
                EntryPayload::Membership(m) => {
                    self.meta.membership = StoredMembership::new(Some(entry.log_id), m);
                    durable = true;
                    Submitted::Done(Applied::Nothing)
                }
                EntryPayload::Normal(cmd) => self.submit_command(cmd, &mut last_micros),
            });
        }
        let mut out = Vec::with_capacity(submitted.len());
        for s in submitted {
            out.push(match s {
                Submitted::Done(applied) => applied,
                Submitted::Failed(message) => return Err(fatal(message)),
                Submitted::Queued(lsn, rx) => {
                    let committed = rx
                        .await
                        .map_err(|_| fatal(format!("applying LSN {lsn}: the store closed")))?
                        .map_err(|e| fatal(format!("applying LSN {lsn}: {e}")))?;
                    Applied::Written {
                        lsn: committed.lsn,
                        timestamp_micros: committed.timestamp_micros,
                        previous: committed
                            .versions
                            .iter()
                            .map(|(_, p)| p.map(|v| (v.lsn, v.op)))
                            .collect(),
                    }
                }
            });
        }
        let log = self.log.clone();
        let meta = self.meta.clone();
        tokio::task::spawn_blocking(move || log.save_applied(&meta, durable))
            .await
            .map_err(|e| fatal(e.to_string()))??;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        NoSnapshots
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<std::io::Cursor<Vec<u8>>>> {
        Err(fatal(
            "this member cannot install snapshots; leaders keep their whole log".into(),
        ))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        _snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        Err(fatal(
            "this member cannot install snapshots; leaders keep their whole log".into(),
        ))
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        Ok(None)
    }
}

/// The snapshot builder of a state machine that builds none (see the module documentation).
pub struct NoSnapshots;

impl RaftSnapshotBuilder<TypeConfig> for NoSnapshots {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        Err(fatal(
            "snapshots are not built; leaders keep their whole log".into(),
        ))
    }
}
