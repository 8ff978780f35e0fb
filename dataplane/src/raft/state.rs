//! The Raft state machine: committed entries are written to the member's [`Store`] as records
//! with the same LSN and commit time on every member.
//!
//! Durability comes from the Raft log, the member's write-ahead log, fsynced as `--fsync` says
//! (with `always`, before the member acknowledges an entry). The store holds the applied
//! history: it is fsynced in the background, and always before a snapshot lets log entries
//! go. Idempotence: the state machine's bookkeeping ([`AppliedMeta`] plus the next LSN)
//! is saved after the store has the records, so after a process crash it may be behind the store,
//! never ahead: entries are applied again, and one whose LSN the store already holds is
//! recognised and skipped. After a power loss the store may instead be behind the bookkeeping
//! (records it had not fsynced); the member then starts applying again from its snapshot, or
//! from the start of its log when it has none.
//!
//! Snapshots: the store keeps every version, so the state as of an applied entry is simply the
//! store's records up to the LSN it reached. A snapshot is therefore a [`SnapshotPointer`]
//! naming that LSN. Every member builds its own every `--raft-snapshot-entries` entries (and
//! then drops older Raft log entries); a follower that lacks dropped entries installs the
//! leader's, and copies the records it lacks page by page from the members' `/raft/records`
//! (SHA-256 checked per page), in the background: openraft counts the snapshot as applied at
//! once, and the member's reads wait until the copy is done (see `Replica::read_barrier`).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::log::{AppliedMeta, Copying, LogStore};
use super::network::{Network, RecordsPage};
use super::{Applied, Base, Command, NodeId, Request, TypeConfig};
use crate::store::{Fixed, Store, WriteOp};
use crate::wal::record::OpKind;
use crate::wal::storage::{OpenMode, Storage};

/// Records asked for per page while copying a group's base.
const BASE_PAGE: usize = 1000;

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn fatal(message: String) -> StorageError<NodeId> {
    StorageIOError::apply(LogId::default(), &std::io::Error::other(message)).into()
}

/// What a snapshot holds: every record up to `lsn`, which are the same on every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPointer {
    /// The last LSN the snapshot covers.
    pub lsn: u64,
}

/// A member's current snapshot, as kept in `raft/snapshot.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    pointer: SnapshotPointer,
}

impl StoredSnapshot {
    fn to_snapshot(&self) -> StoreResult<Snapshot<TypeConfig>> {
        let data = serde_json::to_vec(&self.pointer).map_err(|e| fatal(e.to_string()))?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// The current snapshot, shared with the builder that replaces it; its record
/// (`raft/snapshot.json`) is on the store's storage seam.
#[derive(Clone)]
struct Snapshots {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl Snapshots {
    fn open(storage: Arc<dyn Storage>, dir: &Path) -> Result<Snapshots, String> {
        let path = dir.join("snapshot.json");
        // A record written aside and never renamed into place is no snapshot.
        let current = match storage
            .open(&path, OpenMode::Read)
            .and_then(|f| f.read_all())
        {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{} is not a snapshot record: {e}", path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        Ok(Snapshots {
            storage,
            path,
            current: Arc::new(Mutex::new(current)),
        })
    }

    /// Makes `snap` the current snapshot, on disk first (written aside, fsynced, renamed), so
    /// a member never drops log entries that no saved snapshot covers.
    fn save(&self, snap: StoredSnapshot) -> StoreResult<()> {
        let bytes = serde_json::to_vec(&snap).map_err(|e| fatal(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let f = self.storage.open(&tmp, OpenMode::CreateTruncate)?;
            f.append(&bytes)?;
            f.sync_all()?;
            self.storage.rename(&tmp, &self.path)?;
            self.storage
                .sync_dir(self.path.parent().unwrap_or(Path::new("")))
        };
        write().map_err(|e| fatal(format!("saving {}: {e}", self.path.display())))?;
        *self.current.lock() = Some(snap);
        Ok(())
    }
}

/// The state machine of one member.
pub struct StateMachine {
    store: Store,
    log: LogStore,
    meta: AppliedMeta,
    network: Network,
    snapshots: Snapshots,
    /// The LSN a snapshot's records are being copied up to (0: none), for reads to wait on.
    catch_up: Arc<AtomicU64>,
    /// The background copy of a snapshot's records.
    copying: Option<tokio::task::JoinHandle<StoreResult<()>>>,
}

impl StateMachine {
    /// The state machine over `store`, resuming from what `log` recorded.
    ///
    /// A store holding records the Raft state knows nothing about must match the group's
    /// [`Base`] when it is applied (see [`StateMachine::pending_base`]).
    pub fn open(
        store: Store,
        log: LogStore,
        network: Network,
        dir: &Path,
        catch_up: Arc<AtomicU64>,
    ) -> Result<StateMachine, String> {
        let mut meta = log.load_applied().map_err(|e| e.to_string())?;
        let (applied_lsn, last_micros) = store.last_applied();
        if meta.applied.is_none() && applied_lsn > 0 && !meta.rebuilding {
            // Kept until a base is applied, so a restart in between still knows.
            meta.base_pending = Some((applied_lsn, last_micros));
            log.save_applied(&meta, true).map_err(|e| e.to_string())?;
        }
        let snapshots = Snapshots::open(Arc::clone(&store.config().storage), dir)?;
        // While a snapshot's records are being copied the store is behind on purpose.
        if meta.copying.is_none() && applied_lsn + 1 < meta.next_lsn {
            // A power loss took records the store had not fsynced yet (members fsync their Raft
            // log on every write, their store on its own schedule): apply the entries again
            // from a point the store holds.
            let snapshot = snapshots.current.lock().clone();
            match snapshot {
                Some(snap) if snap.pointer.lsn <= applied_lsn => {
                    meta.applied = snap.meta.last_log_id;
                    meta.membership = snap.meta.last_membership;
                    meta.next_lsn = snap.pointer.lsn + 1;
                }
                Some(snap) => {
                    return Err(format!(
                        "the store ends at LSN {applied_lsn}, before this member's snapshot at \
                         LSN {}: the data directory lost records; start this member from an \
                         empty data directory to copy them from the cluster",
                        snap.pointer.lsn
                    ));
                }
                None => {
                    meta = AppliedMeta {
                        rebuilding: true,
                        ..AppliedMeta::default()
                    };
                }
            }
            tracing::warn!(
                store_lsn = applied_lsn,
                from = ?meta.applied,
                "the store lost records it had not fsynced; applying the Raft log again"
            );
            log.save_applied(&meta, true).map_err(|e| e.to_string())?;
        }
        let mut sm = StateMachine {
            store,
            log,
            meta,
            network,
            snapshots,
            catch_up,
            copying: None,
        };
        // A copy cut short by a restart carries on.
        if let Some(copying) = sm.meta.copying.clone() {
            sm.start_copy(copying);
        }
        Ok(sm)
    }

    /// Copies a snapshot's records in the background (see the module documentation).
    fn start_copy(&mut self, copying: Copying) {
        self.catch_up.store(copying.lsn, Ordering::SeqCst);
        let (store, network) = (self.store.clone(), self.network.clone());
        self.copying = Some(tokio::spawn(async move {
            copy_records(&store, &network, &copying.sources, copying.lsn).await
        }));
    }

    /// Waits for a background copy to finish: entries after a snapshot apply only on top of
    /// its records.
    async fn finish_copy(&mut self) -> StoreResult<()> {
        if let Some(task) = self.copying.take() {
            task.await
                .map_err(|e| fatal(format!("copying a snapshot's records: {e}")))??;
            // Once the copy is no longer recorded as under way, its records must be durable:
            // the snapshot they complete may be all that is left of the entries they came from.
            self.store
                .sync()
                .await
                .map_err(|e| fatal(format!("fsyncing copied records: {e}")))?;
            self.meta.copying = None;
        }
        Ok(())
    }

    /// Saves the bookkeeping and waits until it is on disk (on a blocking thread, unless the
    /// log works inline).
    async fn save_meta_durably(&self) -> StoreResult<()> {
        if self.log.is_inline() {
            return self.log.save_applied(&self.meta, true);
        }
        let (log, meta) = (self.log.clone(), self.meta.clone());
        tokio::task::spawn_blocking(move || log.save_applied(&meta, true))
            .await
            .map_err(|e| fatal(e.to_string()))?
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
        copy_records(
            &self.store,
            &self.network,
            std::slice::from_ref(&base.source),
            base.lsn,
        )
        .await?;
        if held < base.lsn {
            tracing::info!(records = base.lsn - held, source = %base.source, "copied the cluster's base");
        }
        self.meta.next_lsn = base.lsn + 1;
        self.meta.base_pending = None;
        Ok(())
    }

    /// Whether `cmd` is decided against the store (a guard, a unique index, an index
    /// definition): the entries before it are applied first, and it is applied before the next.
    fn needs_store_before(&self, cmd: &Command) -> bool {
        cmd.guard.is_some()
            || self
                .store
                .unique_relevant(cmd.ops.iter().map(|op| (op.namespace.as_str(), !op.delete)))
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
        if let Some(guard) = &cmd.guard
            && self.store.guard_broken_at(guard, lsn - 1)
        {
            // Every write before this one is in the store (the caller waited for them), and
            // the check looks only up to it, so every member decides alike, and so does this
            // one applying the entry again after a crash. No LSN is used.
            return Submitted::Done(Applied::Conflict);
        }
        // Like the guard, decided against the store as of LSN `lsn - 1` only: the caller
        // applied every entry before this one first when a unique index could be involved.
        let unique = if lsn <= store_lsn {
            self.store.check_unique_after(&ops, lsn - 1)
        } else {
            self.store.check_unique(&ops)
        };
        match unique {
            Ok(()) => {}
            Err(crate::StoreError::UniqueViolation(violation)) => {
                return Submitted::Done(Applied::UniqueViolation(violation));
            }
            Err(e) => {
                return Submitted::Failed(format!("checking unique indexes at LSN {lsn}: {e}"));
            }
        }
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
        match self.store.submit_fixed(ops, fixed, cmd.meta) {
            Ok(rx) => Submitted::Queued(lsn, rx),
            Err(e) => Submitted::Failed(format!("applying LSN {lsn}: {e}")),
        }
    }
}

/// Copies the records after the store's last up to `upto` from the first of `sources` (member
/// addresses) that has them, page by page, each page's SHA-256 checked, sealing segments where
/// the sender's start. Retries until done: some member always holds them.
async fn copy_records(
    store: &Store,
    network: &Network,
    sources: &[String],
    upto: u64,
) -> StoreResult<()> {
    let (held, _) = store.last_applied();
    let mut since = held;
    let mut backoff = Duration::from_millis(100);
    let sources = network.record_sources(sources);
    while since < upto {
        let limit = BASE_PAGE.min((upto - since) as usize);
        let mut page = None;
        for source in &sources {
            match network.records(source, since, limit).await {
                Ok(p) if !p.changes.is_empty() => {
                    page = Some(p);
                    break;
                }
                Ok(_) => {
                    tracing::warn!(%source, since, upto, "a member has no records to copy yet; trying another");
                }
                Err(e) => {
                    tracing::warn!(%source, since, error = %e, "copying records; trying another member")
                }
            }
        }
        match page {
            Some(page) => {
                since = write_page(store, page, upto).await?;
                backoff = Duration::from_millis(100);
            }
            None => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    Ok(())
}

/// Writes copied records (exactly their LSNs and times), sealing the active segment before
/// each one the sender's segment starts with; returns the last LSN written.
async fn write_page(store: &Store, page: RecordsPage, upto: u64) -> StoreResult<u64> {
    let mut waits = Vec::new();
    let (mut last, _) = store.last_applied();
    for change in page.changes.into_iter().filter(|c| c.lsn <= upto) {
        if change.lsn != last + 1 {
            return Err(fatal(format!(
                "the copy skipped from LSN {last} to {}",
                change.lsn
            )));
        }
        if page.segment_starts.contains(&change.lsn) {
            // Queued records first; sealing an empty segment does nothing.
            await_all(std::mem::take(&mut waits)).await?;
            store
                .roll()
                .await
                .map_err(|e| fatal(format!("sealing a copied segment: {e}")))?;
        }
        let meta = change.meta;
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
            store
                .submit_fixed(ops, fixed, meta)
                .map_err(|e| fatal(format!("copying LSN {}: {e}", change.lsn)))?,
        );
        last = change.lsn;
    }
    await_all(waits).await?;
    Ok(last)
}

/// Waits until the store has written every record of `waits`.
async fn await_all(
    waits: Vec<tokio::sync::oneshot::Receiver<Result<crate::store::Committed, crate::StoreError>>>,
) -> StoreResult<()> {
    for rx in waits {
        rx.await
            .map_err(|_| fatal("the store closed while copying records".into()))?
            .map_err(|e| fatal(format!("copying records: {e}")))?;
    }
    Ok(())
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
    type SnapshotBuilder = Builder;

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
        self.finish_copy().await?;
        let first_ever = self.meta.applied.is_none();
        let mut durable = first_ever;
        // Every write of the batch is queued before any is awaited, so they share one group
        // commit (one fsync) instead of one each.
        let mut submitted = Vec::new();
        let mut out = Vec::new();
        let mut last_micros = self.store.last_applied().1;
        // Where each batch entry's answers start among all answers, and how many it has.
        let mut batches: Vec<(usize, usize)> = Vec::new();
        self.meta.rebuilding = false;
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
                    let ordered = self.needs_store_before(&cmd);
                    if ordered {
                        out.extend(finish(std::mem::take(&mut submitted)).await?);
                    }
                    let next = self.submit_command(cmd, &mut last_micros);
                    if ordered {
                        // An index definition must be in the store before the next check.
                        submitted.push(next);
                        out.extend(finish(std::mem::take(&mut submitted)).await?);
                        continue;
                    }
                    next
                }
                EntryPayload::Normal(Request::Writes(cmds)) => {
                    // Queued like single writes; regrouped into one answer below.
                    let start = out.len() + submitted.len();
                    let n = cmds.len();
                    for cmd in cmds {
                        let ordered = self.needs_store_before(&cmd);
                        if ordered {
                            out.extend(finish(std::mem::take(&mut submitted)).await?);
                        }
                        let next = self.submit_command(cmd, &mut last_micros);
                        submitted.push(next);
                        if ordered {
                            out.extend(finish(std::mem::take(&mut submitted)).await?);
                        }
                    }
                    batches.push((start, n));
                    continue;
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
                    // Applied again after a crash, a seal the store already has records after
                    // must not seal again: it would cut the segment somewhere else.
                    let (held, _) = self.store.last_applied();
                    if self.meta.base_pending.is_none() && held < self.meta.next_lsn {
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
        for &(start, n) in batches.iter().rev() {
            let answers: Vec<Applied> = out.splice(start..start + n, []).collect();
            out.insert(start, Applied::Batch(answers));
        }
        if durable {
            self.save_meta_durably().await?;
        } else {
            // Only buffered: no wait on the disk or another thread.
            self.log.save_applied(&self.meta, false)?;
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // What the snapshot covers is fixed now: the state machine goes on applying meanwhile.
        Builder {
            store: self.store.clone(),
            applied: self.meta.applied,
            membership: self.meta.membership.clone(),
            lsn: self.meta.next_lsn - 1,
            base_pending: self.meta.base_pending.is_some(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let pointer: SnapshotPointer = serde_json::from_slice(snapshot.get_ref()).map_err(|e| {
            fatal(format!(
                "a received snapshot is not a snapshot pointer: {e}"
            ))
        })?;
        if self.meta.base_pending.is_some() {
            let (held, _) = self.store.last_applied();
            return Err(fatal(format!(
                "the data directory holds {held} records written outside this cluster; a new \
                 member starts from an empty data directory"
            )));
        }
        // A copy for an earlier snapshot is a prefix of this one's.
        self.finish_copy().await?;
        self.meta.applied = meta.last_log_id;
        self.meta.membership = meta.last_membership.clone();
        self.meta.next_lsn = pointer.lsn + 1;
        let (held, _) = self.store.last_applied();
        if held < pointer.lsn {
            let me = self.network.id();
            let copying = Copying {
                lsn: pointer.lsn,
                sources: meta
                    .last_membership
                    .membership()
                    .nodes()
                    .filter(|(id, _)| **id != me)
                    .map(|(_, node)| node.addr.clone())
                    .collect(),
            };
            self.meta.copying = Some(copying.clone());
            self.start_copy(copying);
        }
        self.save_meta_durably().await?;
        tracing::info!(lsn = pointer.lsn, held, applied = ?meta.last_log_id, "installed a snapshot");
        let snapshots = self.snapshots.clone();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            pointer,
        };
        tokio::task::spawn_blocking(move || snapshots.save(stored))
            .await
            .map_err(|e| fatal(e.to_string()))?
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        self.snapshots
            .current
            .lock()
            .as_ref()
            .map(StoredSnapshot::to_snapshot)
            .transpose()
    }
}

/// Builds a member's snapshot: a pointer to the LSN its store reached (see the module
/// documentation).
pub struct Builder {
    store: Store,
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    lsn: u64,
    base_pending: bool,
    snapshots: Snapshots,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        if self.base_pending {
            return Err(fatal(
                "no snapshot before the cluster's base is applied".into(),
            ));
        }
        let last = self
            .applied
            .ok_or_else(|| fatal("no snapshot before anything is applied".into()))?;
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(last),
                last_membership: self.membership.clone(),
                snapshot_id: format!("{}-{}-{}", last.leader_id.term, last.index, self.lsn),
            },
            pointer: SnapshotPointer { lsn: self.lsn },
        };
        let snapshot = stored.to_snapshot()?;
        // The log entries the snapshot covers are dropped next: its records must survive a
        // power loss first.
        self.store
            .sync()
            .await
            .map_err(|e| fatal(format!("fsyncing the store for a snapshot: {e}")))?;
        let snapshots = self.snapshots.clone();
        tokio::task::spawn_blocking(move || snapshots.save(stored))
            .await
            .map_err(|e| fatal(e.to_string()))??;
        tracing::info!(lsn = self.lsn, index = last.index, "built a snapshot");
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::metrics::StoreMetrics;
    use crate::raft::CommandOp;
    use crate::raft::network::Blocked;
    use crate::store::StoreConfig;

    fn command(n: u64) -> Command {
        Command {
            guard: None,
            meta: Default::default(),
            proposed_micros: 1_000_000 + n as i64,
            ops: vec![CommandOp {
                delete: false,
                namespace: "t".into(),
                key: format!("k{n}"),
                value: Some(n.to_string()),
            }],
        }
    }

    /// Command `n`, written only if no key starting with `prefix` changed after `since_lsn`.
    fn guarded(n: u64, prefix: &str, since_lsn: u64) -> Command {
        Command {
            guard: Some(crate::store::RangeGuard {
                namespace: "t".into(),
                prefix: prefix.into(),
                since_lsn,
                exact: false,
            }),
            ..command(n)
        }
    }

    fn entry(index: u64, request: Request) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(request),
        }
    }

    /// A member's store (`<dir>/data`) and state machine (`<dir>/raft`), opened as at start-up.
    fn member(dir: &Path) -> (Store, StateMachine) {
        // The member's HTTP client needs one; the server installs it in `main`.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (store, _) = Store::open(
            StoreConfig::new(dir.join("data")),
            Arc::new(StoreMetrics::default()),
        )
        .unwrap();
        let raft_dir = dir.join("raft");
        let log = LogStore::open(
            Arc::clone(&store.config().storage),
            &raft_dir,
            crate::store::FsyncMode::Always,
        )
        .unwrap();
        let directory =
            crate::raft::directory::Directory::new("1=127.0.0.1:1".parse().unwrap(), None);
        let network = Network::new(1, None, Blocked::default(), directory);
        let sm =
            StateMachine::open(store.clone(), log, network, &raft_dir, Arc::default()).unwrap();
        (store, sm)
    }

    /// Single writes 1..=n as entries 1..=n.
    fn writes(n: u64) -> Vec<Entry<TypeConfig>> {
        (1..=n)
            .map(|i| entry(i, Request::Write(command(i))))
            .collect()
    }

    /// Saves a copy of `<dir>/data` in `<dir>/synced`: what a power loss would leave of it.
    fn save_synced(dir: &Path) {
        let mut options = fs_extra::dir::CopyOptions::new();
        options.copy_inside = true;
        fs_extra::dir::copy(dir.join("data"), dir.join("synced"), &options).unwrap();
    }

    /// Puts back the copy [`save_synced`] made, as a power loss would.
    fn lose_unsynced(dir: &Path) {
        std::fs::remove_dir_all(dir.join("data")).unwrap();
        std::fs::rename(dir.join("synced"), dir.join("data")).unwrap();
    }

    #[tokio::test]
    async fn entries_applied_again_after_a_crash_change_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, mut sm) = member(tmp.path());
        let entries = vec![
            entry(1, Request::Write(command(1))),
            entry(2, Request::Write(command(2))),
            entry(3, Request::Seal),
            entry(4, Request::Writes(vec![command(3), command(4)])),
            entry(5, Request::Seal),
            entry(6, Request::Write(command(5))),
            // Guarded writes (rewinds): the first meets a write into its range after its LSN and
            // is refused without using an LSN; the second is written.
            entry(7, Request::Write(guarded(6, "k", 0))),
            entry(8, Request::Write(guarded(7, "k", 5))),
        ];
        // What a crash right after the store wrote everything, but before the bookkeeping was
        // saved, leaves: the same entries applied once more.
        let before = sm.meta.clone();
        let answers = sm.apply(entries.clone()).await.unwrap();
        let segments = store.segment_starts(0, u64::MAX);
        let records = store.changes_since(0, 100).unwrap();
        assert_eq!(segments, vec![1, 3, 5], "sealed after LSN 2 and 4");
        assert_eq!(records.len(), 6);
        assert_eq!(answers[6], Applied::Conflict, "{answers:?}");
        assert!(
            matches!(answers[7], Applied::Written { lsn: 6, .. }),
            "{answers:?}"
        );
        assert!(
            matches!(&answers[3], Applied::Batch(b) if b.len() == 2),
            "{answers:?}"
        );
        sm.meta = before;
        sm.apply(entries).await.unwrap();
        assert_eq!(store.segment_starts(0, u64::MAX), segments);
        assert_eq!(store.changes_since(0, 100).unwrap(), records);
        assert_eq!(sm.meta.next_lsn, 7);
    }

    #[test]
    fn a_snapshot_record_cut_by_power_loss_is_the_old_one_or_the_new_one() {
        use rand::rngs::StdRng;
        use rand::{RngExt, SeedableRng};

        use crate::wal::storage::SimStorage;

        let snapshot = |lsn: u64| StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), lsn)),
                last_membership: Default::default(),
                snapshot_id: format!("s{lsn}"),
            },
            pointer: SnapshotPointer { lsn },
        };
        let dir = Path::new("/data/raft");
        for seed in 0..300 {
            let mut rng = StdRng::seed_from_u64(seed);
            let disk = SimStorage::new();
            disk.create_dir_all_durable(dir).unwrap();
            let snapshots = Snapshots::open(Arc::new(disk.clone()), dir).unwrap();
            snapshots.save(snapshot(1)).unwrap();
            disk.fail_after(rng.random_range(1..=6));
            let saved = snapshots.save(snapshot(2)).is_ok();
            disk.power_off();
            let after = disk.power_loss(&mut |n| rng.random_range(0..n));
            let back = Snapshots::open(Arc::new(after), dir)
                .unwrap_or_else(|e| panic!("seed {seed}: start-up refused: {e}"));
            let lsn = back.current.lock().as_ref().map(|s| s.pointer.lsn);
            assert!(
                lsn == Some(2) || (lsn == Some(1) && !saved),
                "seed {seed}: snapshot {lsn:?} after a save that returned {saved}"
            );
        }
    }

    #[tokio::test]
    async fn a_store_that_lost_unsynced_records_is_rebuilt_from_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let entries = writes(6);
        let records = {
            let (store, mut sm) = member(tmp.path());
            sm.apply(entries[..2].to_vec()).await.unwrap();
            // What survives a power loss: the store as it was after two records.
            save_synced(tmp.path());
            sm.apply(entries[2..].to_vec()).await.unwrap();
            let records = store.changes_since(0, 100).unwrap();
            store.close();
            records
        };
        assert_eq!(records.len(), 6);
        lose_unsynced(tmp.path());
        let (store, mut sm) = member(tmp.path());
        assert_eq!(store.last_applied().0, 2);
        assert_eq!(
            sm.meta.applied, None,
            "no snapshot: applied again from the start"
        );
        assert_eq!(
            sm.meta.base_pending, None,
            "its records are the group's, not a base"
        );
        sm.apply(entries).await.unwrap();
        assert_eq!(store.changes_since(0, 100).unwrap(), records);
        assert_eq!(sm.meta.next_lsn, 7);
    }

    #[tokio::test]
    async fn after_a_snapshot_a_store_that_lost_unsynced_records_applies_again_from_it() {
        let tmp = tempfile::tempdir().unwrap();
        let entries = writes(6);
        let records = {
            let (store, mut sm) = member(tmp.path());
            sm.apply(entries[..3].to_vec()).await.unwrap();
            let snapshot = sm
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            assert_eq!(snapshot.meta.last_log_id, Some(entries[2].log_id));
            sm.apply(entries[3..4].to_vec()).await.unwrap();
            // What survives a power loss: the store as it was one record after the snapshot.
            save_synced(tmp.path());
            sm.apply(entries[4..].to_vec()).await.unwrap();
            let records = store.changes_since(0, 100).unwrap();
            store.close();
            records
        };
        lose_unsynced(tmp.path());
        let (store, mut sm) = member(tmp.path());
        assert_eq!(store.last_applied().0, 4);
        assert_eq!(
            sm.meta.applied,
            Some(entries[2].log_id),
            "from the snapshot"
        );
        assert_eq!(sm.meta.next_lsn, 4);
        sm.apply(entries[3..].to_vec()).await.unwrap();
        assert_eq!(store.changes_since(0, 100).unwrap(), records);
        assert_eq!(sm.meta.next_lsn, 7);
    }
}

#[cfg(test)]
#[path = "state_unique_tests.rs"]
mod unique_tests;
