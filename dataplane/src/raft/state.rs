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
use super::network::Network;
use super::{Applied, Base, Command, NodeId, Request, TypeConfig};
use crate::store::{Change, Fixed, Store, WriteOp};
use crate::wal::record::OpKind;

/// Records asked for per page while copying a group's base.
const BASE_PAGE: usize = 1000;

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn fatal(message: String) -> StorageError<NodeId> {
    StorageIOError::apply(LogId::default(), &std::io::Error::other(message)).into()
}

/// The state machine of one member.
pub struct StateMachine {
    store: Store,
    log: LogStore,
    meta: AppliedMeta,
    network: Network,
}

impl StateMachine {
    /// The state machine over `store`, resuming from what `log` recorded.
    ///
    /// A store holding records the Raft state knows nothing about must match the group's
    /// [`Base`] when it is applied (see [`StateMachine::pending_base`]).
    pub fn open(store: Store, log: LogStore, network: Network) -> Result<StateMachine, String> {
        let mut meta = log.load_applied().map_err(|e| e.to_string())?;
        let (applied_lsn, last_micros) = store.last_applied();
        if meta.applied.is_none() && applied_lsn > 0 {
            // Kept until a base is applied, so a restart in between still knows.
            meta.base_pending = Some((applied_lsn, last_micros));
            log.save_applied(&meta, true).map_err(|e| e.to_string())?;
        }
        if applied_lsn + 1 < meta.next_lsn {
            return Err(format!(
                "the store ends at LSN {applied_lsn} but this member applied up to LSN {}: the \
                 data directory lost acknowledged records",
                meta.next_lsn - 1
            ));
        }
        Ok(StateMachine {
            store,
            log,
            meta,
            network,
        })
    }

    /// The records (last LSN, its time) that predate the group, when this member holds some
    /// and has applied nothing yet: what a first member proposes as the [`Base`].
    pub fn pending_base(&self) -> Option<(u64, i64)> {
        self.meta.base_pending
    }

    /// Applies a [`Base`]: checks this member holds exactly the records it names, copying them
    /// from its source when the store is empty.
    async fn apply_base(&mut self, base: &Base) -> StoreResult<()> {
        if self.meta.base_pending.is_none() && self.meta.next_lsn > 1 {
            // A first member that restarted while forming proposes its base again; the group
            // already has one, and records after it.
            tracing::info!(lsn = base.lsn, "ignoring a repeated base");
            return Ok(());
        }
        let (held, _) = self.store.last_applied();
        if self.meta.base_pending.is_some() && held != base.lsn {
            return Err(fatal(format!(
                "the data directory holds {held} records written outside this cluster, but the \
                 cluster's base is {} records; a new member starts from an empty data directory",
                base.lsn
            )));
        }
        let mut since = held;
        let mut backoff = std::time::Duration::from_millis(100);
        while since < base.lsn {
            let limit = BASE_PAGE.min((base.lsn - since) as usize);
            match self.network.records(&base.source, since, limit).await {
                Ok(page) if !page.is_empty() => {
                    since = self.copy(page, base.lsn).await?;
                    backoff = std::time::Duration::from_millis(100);
                }
                Ok(_) => {
                    return Err(fatal(format!(
                        "{} has no records after LSN {since}, but the base reaches LSN {}",
                        base.source, base.lsn
                    )));
                }
                Err(e) => {
                    tracing::warn!(source = %base.source, since, error = %e, "copying the cluster's base; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
        if held < base.lsn {
            tracing::info!(records = base.lsn - held, source = %base.source, "copied the cluster's base");
        }
        self.meta.next_lsn = base.lsn + 1;
        self.meta.base_pending = None;
        Ok(())
    }

    /// Writes copied base records (exactly their LSNs and times); returns the last LSN written.
    async fn copy(&mut self, page: Vec<Change>, upto: u64) -> StoreResult<u64> {
        let mut waits = Vec::new();
        let (mut last, _) = self.store.last_applied();
        for change in page.into_iter().filter(|c| c.lsn <= upto) {
            if change.lsn != last + 1 {
                return Err(fatal(format!(
                    "the base copy skipped from LSN {last} to {}",
                    change.lsn
                )));
            }
            let ops = change
                .ops
                .into_iter()
                .map(|op| {
                    let value = op
                        .value
                        .map(serde_json::value::RawValue::from_string)
                        .transpose()
                        .map_err(|e| fatal(format!("a copied value is not JSON: {e}")))?;
                    Ok(WriteOp {
                        kind: if op.delete {
                            OpKind::Delete
                        } else {
                            OpKind::Put
                        },
                        namespace: op.namespace,
                        key: op.key,
                        value,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let fixed = Fixed {
                lsn: change.lsn,
                timestamp_micros: change.timestamp_micros,
            };
            waits.push(
                self.store
                    .submit_fixed(ops, fixed)
                    .map_err(|e| fatal(format!("copying LSN {}: {e}", change.lsn)))?,
            );
            last = change.lsn;
        }
        for rx in waits {
            rx.await
                .map_err(|_| fatal("the store closed while copying the base".into()))?
                .map_err(|e| fatal(format!("copying the base: {e}")))?;
        }
        Ok(last)
    }

    /// Queues `cmd` for the store (or decides it without the store); what the entry applied
    /// to is known once its receiver, if any, resolves. `last_micros` is the commit time of the
    /// record before, carried through a batch so queued records need not wait for each other.
    fn submit_command(&mut self, cmd: Command, last_micros: &mut i64) -> Submitted {
        if self.meta.base_pending.is_some() {
            let (held, _) = self.store.last_applied();
            return Submitted::Failed(format!(
                "the data directory holds {held} records written outside this cluster; a new \
                 member starts from an empty data directory"
            ));
        }
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

/// Waits for queued entries in order and says what each applied to.
async fn finish(submitted: Vec<Submitted>) -> StoreResult<Vec<Applied>> {
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
    Ok(out)
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
        let mut out = Vec::new();
        let mut last_micros = self.store.last_applied().1;
        for entry in entries {
            self.meta.applied = Some(entry.log_id);
            let next = match entry.payload {
                EntryPayload::Blank => Submitted::Done(Applied::Nothing),
                EntryPayload::Membership(m) => {
                    self.meta.membership = StoredMembership::new(Some(entry.log_id), m);
                    durable = true;
                    Submitted::Done(Applied::Nothing)
                }
                EntryPayload::Normal(Request::Write(cmd)) => {
                    self.submit_command(cmd, &mut last_micros)
                }
                // Both act on the store at their place in the log, after what came before.
                EntryPayload::Normal(Request::Base(base)) => {
                    out.extend(finish(std::mem::take(&mut submitted)).await?);
                    self.apply_base(&base).await?;
                    last_micros = self.store.last_applied().1;
                    durable = true;
                    Submitted::Done(Applied::Nothing)
                }
                EntryPayload::Normal(Request::Seal) => {
                    out.extend(finish(std::mem::take(&mut submitted)).await?);
                    if self.meta.base_pending.is_none() {
                        self.store
                            .roll()
                            .await
                            .map_err(|e| fatal(format!("sealing the segment: {e}")))?;
                    }
                    Submitted::Done(Applied::Nothing)
                }
            };
            submitted.push(next);
        }
        out.extend(finish(submitted).await?);
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
