//! The Raft log, vote and state-machine bookkeeping of one member, in one redb file
//! (`<data-dir>/raft/raft.redb`). Every append and vote is committed durably before openraft
//! is told it is done: a member never forgets what it acknowledged to a leader or whom it voted for.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{NodeId, TypeConfig};

/// Entries by index, JSON-encoded.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// Small records by name, JSON-encoded: see the `KEY_*` constants.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "purged";
const KEY_APPLIED: &str = "applied";
const KEY_MEMBERSHIP: &str = "membership";
const KEY_NEXT_LSN: &str = "next_lsn";
const KEY_BASE_PENDING: &str = "base_pending";

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn io_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write(&std::io::Error::other(e.to_string())).into()
}

/// A member's Raft storage; clones share the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

/// What the state machine last recorded: the last applied entry, the membership then, and the
/// LSN the next written command takes.
#[derive(Debug, Clone)]
pub struct AppliedMeta {
    /// The last entry applied.
    pub applied: Option<LogId<NodeId>>,
    /// The membership as of that entry.
    pub membership: StoredMembership<NodeId, openraft::BasicNode>,
    /// The store LSN of the next command written.
    pub next_lsn: u64,
    /// The store held records (last LSN, its time) before the group applied anything, and no
    /// [`Base`](super::Base) has been applied yet.
    pub base_pending: Option<(u64, i64)>,
}

impl Default for AppliedMeta {
    fn default() -> Self {
        AppliedMeta {
            applied: None,
            membership: StoredMembership::default(),
            next_lsn: 1,
            base_pending: None,
        }
    }
}

impl LogStore {
    /// Opens (or creates) `<dir>/raft.redb`.
    pub fn open(dir: &Path) -> Result<LogStore, std::io::Error> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join("raft.redb")).map_err(std::io::Error::other)?;
        let store = LogStore { db: Arc::new(db) };
        // Create both tables so readers never meet a missing one.
        store
            .write(Durability::Immediate, |txn| {
                txn.open_table(ENTRIES)?;
                txn.open_table(META)?;
                Ok(())
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(store)
    }

    fn write(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> StoreResult<()> {
        let mut txn = self.db.begin_write().map_err(io_error)?;
        txn.set_durability(durability).map_err(io_error)?;
        f(&txn).map_err(io_error)?;
        txn.commit().map_err(io_error)
    }

    fn put_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        durability: Durability,
    ) -> StoreResult<()> {
        let bytes = serde_json::to_vec(value).map_err(io_error)?;
        self.write(durability, |txn| {
            txn.open_table(META)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> StoreResult<Option<T>> {
        let txn = self.db.begin_read().map_err(io_error)?;
        let table = txn.open_table(META).map_err(io_error)?;
        let Some(bytes) = table.get(key).map_err(io_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(io_error)
    }

    /// Records what the state machine has applied. Not fsynced on its own: the store itself is
    /// durable before this is written, and a stale record only means re-applying entries the
    /// state machine recognises as already in the store.
    pub fn save_applied(&self, meta: &AppliedMeta, durable: bool) -> StoreResult<()> {
        let applied = serde_json::to_vec(&meta.applied).map_err(io_error)?;
        let membership = serde_json::to_vec(&meta.membership).map_err(io_error)?;
        let next_lsn = serde_json::to_vec(&meta.next_lsn).map_err(io_error)?;
        let base_pending = serde_json::to_vec(&meta.base_pending).map_err(io_error)?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        self.write(durability, |txn| {
            let mut table = txn.open_table(META)?;
            table.insert(KEY_APPLIED, applied.as_slice())?;
            table.insert(KEY_MEMBERSHIP, membership.as_slice())?;
            table.insert(KEY_NEXT_LSN, next_lsn.as_slice())?;
            table.insert(KEY_BASE_PENDING, base_pending.as_slice())?;
            Ok(())
        })
    }

    /// What [`save_applied`](Self::save_applied) last recorded.
    pub fn load_applied(&self) -> StoreResult<AppliedMeta> {
        Ok(AppliedMeta {
            applied: self.get_meta(KEY_APPLIED)?.flatten(),
            membership: self.get_meta(KEY_MEMBERSHIP)?.unwrap_or_default(),
            next_lsn: self.get_meta(KEY_NEXT_LSN)?.unwrap_or(1),
            base_pending: self.get_meta(KEY_BASE_PENDING)?.flatten(),
        })
    }

    fn entries<RB: RangeBounds<u64>>(&self, range: RB) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let txn = self.db.begin_read().map_err(io_error)?;
        let table = txn.open_table(ENTRIES).map_err(io_error)?;
        let mut out = Vec::new();
        for item in table.range(range).map_err(io_error)? {
            let (_, bytes) = item.map_err(io_error)?;
            out.push(serde_json::from_slice(bytes.value()).map_err(io_error)?);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> StoreResult<Option<LogId<NodeId>>> {
        let txn = self.db.begin_read().map_err(io_error)?;
        let table = txn.open_table(ENTRIES).map_err(io_error)?;
        let Some((_, bytes)) = table.last().map_err(io_error)? else {
            return Ok(None);
        };
        let entry: Entry<TypeConfig> = serde_json::from_slice(bytes.value()).map_err(io_error)?;
        Ok(Some(entry.log_id))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let store = self.clone();
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        tokio::task::spawn_blocking(move || store.entries(bounds))
            .await
            .map_err(io_error)?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let purged: Option<LogId<NodeId>> = self.get_meta(KEY_PURGED)?.flatten();
        let last = self.last_entry_id()?.or(purged);
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        self.put_meta(KEY_VOTE, vote, Durability::Immediate)
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        // A hint for faster start-up only; Raft recovers the commit index from the leader.
        self.put_meta(KEY_COMMITTED, &committed, Durability::None)
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(self.get_meta(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            encoded.push((
                entry.log_id.index,
                serde_json::to_vec(&entry).map_err(io_error)?,
            ));
        }
        let store = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            store.write(Durability::Immediate, |txn| {
                let mut table = txn.open_table(ENTRIES)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
        })
        .await
        .map_err(io_error)?;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        // Entries from `log_id` on conflict with the leader's log and were never committed.
        self.write(Durability::Immediate, |txn| {
            txn.open_table(ENTRIES)?
                .retain_in(log_id.index.., |_, _| false)?;
            Ok(())
        })
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let bytes = serde_json::to_vec(&Some(log_id)).map_err(io_error)?;
        self.write(Durability::Immediate, |txn| {
            txn.open_table(META)?.insert(KEY_PURGED, bytes.as_slice())?;
            txn.open_table(ENTRIES)?
                .retain_in(..=log_id.index, |_, _| false)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn put(store: &LogStore, entries: Vec<Entry<TypeConfig>>) {
        store
            .write(Durability::Immediate, |txn| {
                let mut table = txn.open_table(ENTRIES)?;
                for e in &entries {
                    table.insert(e.log_id.index, serde_json::to_vec(e).unwrap().as_slice())?;
                }
                Ok(())
            })
            .unwrap();
    }

    #[tokio::test]
    async fn entries_votes_truncation_and_purge_survive_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(tmp.path()).unwrap();
            put(&store, (1..=5).map(|i| entry(1, i)).collect());
            store.save_vote(&Vote::new(2, 3)).await.unwrap();
            store.truncate(entry(1, 4).log_id).await.unwrap();
            store.purge(entry(1, 1).log_id).await.unwrap();
        }
        let mut store = LogStore::open(tmp.path()).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.unwrap().index, 3);
        assert_eq!(state.last_purged_log_id.unwrap().index, 1);
        let got = store.try_get_log_entries(0..10).await.unwrap();
        let indexes: Vec<u64> = got.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![2, 3]);
        // Purged up to the last entry: the purged id stands in for the last.
        store.purge(entry(1, 3).log_id).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.unwrap().index, 3);
    }

    #[test]
    fn the_applied_record_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LogStore::open(tmp.path()).unwrap();
        assert!(store.load_applied().unwrap().applied.is_none());
        let meta = AppliedMeta {
            applied: Some(entry(2, 9).log_id),
            membership: StoredMembership::default(),
            next_lsn: 5,
            base_pending: Some((4, 9)),
        };
        store.save_applied(&meta, true).unwrap();
        let back = store.load_applied().unwrap();
        assert_eq!(back.applied, meta.applied);
        assert_eq!(back.next_lsn, 5);
        assert_eq!(back.base_pending, Some((4, 9)));
    }
}
