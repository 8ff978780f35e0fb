//! The Raft log, vote and state-machine bookkeeping of one member, as openraft sees them: an
//! adapter over the member's [`Journal`] (`<data-dir>/raft/journal/`, on the store's storage).
//! Appends are fsynced as `--fsync` says: with `always` every append is on disk before openraft
//! is told it is done, so a write is acknowledged only once a majority has it on disk; with
//! `interval=<ms>` appends reach the OS at once and the disk within that window; with `off`
//! when the OS decides. Votes, truncations and purges are always on disk first: a member never
//! forgets whom it voted for.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    CommittedLeaderId, Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError,
    StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use super::journal::{self, Id, Journal, Payload};
use super::{NodeId, TypeConfig};
use crate::store::FsyncMode;
use crate::wal::storage::Storage;

/// Entries from the end of the log read without a blocking thread: well inside the cache.
const CACHED_TAIL: u64 = 1024;

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn io_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write(&io::Error::other(e.to_string())).into()
}

fn to_log_id(id: &LogId<NodeId>) -> Id {
    ((id.leader_id.term, id.leader_id.node_id), id.index)
}

fn from_log_id(((term, leader), index): Id) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, leader), index)
}

/// A member's Raft storage; clones share the journal.
#[derive(Clone)]
pub struct LogStore {
    journal: Arc<Journal>,
    /// Appends are fsynced before openraft hears of them (`--fsync always`).
    sync_appends: bool,
}

/// What the state machine last recorded: the last applied entry, the membership then, and the
/// LSN the next written command takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// A snapshot was installed whose records the store is still copying.
    #[serde(default)]
    pub copying: Option<Copying>,
    /// The store lost unsynced records and the member applies its log again from the start:
    /// the records it holds are the group's, not a base to propose.
    #[serde(default)]
    pub rebuilding: bool,
}

/// The records of an installed snapshot the store is copying.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Copying {
    /// The last LSN to copy.
    pub lsn: u64,
    /// Member addresses to copy from.
    pub sources: Vec<String>,
}

impl Default for AppliedMeta {
    fn default() -> Self {
        AppliedMeta {
            applied: None,
            membership: StoredMembership::default(),
            next_lsn: 1,
            base_pending: None,
            copying: None,
            rebuilding: false,
        }
    }
}

impl LogStore {
    /// Opens (or creates) the journal in `<dir>/journal` on `storage` (`dir` being the member's
    /// `raft/` directory), its appends fsynced as `fsync` says.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        fsync: FsyncMode,
    ) -> Result<LogStore, io::Error> {
        if storage.is_os_files() && dir.join("raft.redb").exists() {
            // Its vote and log would be forgotten, which Raft cannot survive.
            return Err(io::Error::other(format!(
                "{} holds a Raft log in the layout of an earlier development build \
                 (raft.redb); start this member from an empty data directory",
                dir.display()
            )));
        }
        // Bookkeeping (what was applied, the commit hint) is only buffered when saved; the
        // journal writes it out when no append does, and fsyncs appends with `interval`.
        let interval = match fsync {
            FsyncMode::Interval(every) => Some(every),
            FsyncMode::Always | FsyncMode::Off => None,
        };
        let options = journal::Options {
            interval,
            ..journal::Options::default()
        };
        let journal = Journal::open(storage, dir, options)?;
        Ok(LogStore {
            journal,
            sync_appends: fsync == FsyncMode::Always,
        })
    }

    /// Opens the journal with every append fsynced on the caller's thread and no thread of
    /// its own (see [`journal::Options::inline`]): what the simulated cluster runs.
    pub fn open_inline(storage: Arc<dyn Storage>, dir: &Path) -> Result<LogStore, io::Error> {
        let options = journal::Options {
            inline: true,
            ..journal::Options::default()
        };
        Ok(LogStore {
            journal: Journal::open(storage, dir, options)?,
            sync_appends: true,
        })
    }

    /// Whether disk work happens on the caller's thread (see [`LogStore::open_inline`]).
    pub fn is_inline(&self) -> bool {
        self.journal.is_inline()
    }

    /// Runs `f` on a blocking thread, or right here when the journal is inline.
    async fn off_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Journal) -> io::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        if self.journal.is_inline() {
            return f(&self.journal).map_err(io_error);
        }
        let journal = Arc::clone(&self.journal);
        tokio::task::spawn_blocking(move || f(&journal))
            .await
            .map_err(io_error)?
            .map_err(io_error)
    }

    /// Records what the state machine has applied: fsynced before returning when `durable`,
    /// else only buffered (written with the next append, or within
    /// [`journal::Options::tick`]). A stale record only means re-applying entries the state
    /// machine recognises as already in the store.
    pub fn save_applied(&self, meta: &AppliedMeta, durable: bool) -> StoreResult<()> {
        let bytes = serde_json::to_vec(meta).map_err(io_error)?;
        self.journal.save_applied(bytes, durable).map_err(io_error)
    }

    /// What [`save_applied`](Self::save_applied) last recorded.
    pub fn load_applied(&self) -> StoreResult<AppliedMeta> {
        match &self.journal.state().applied {
            Some(bytes) => serde_json::from_slice(bytes).map_err(io_error),
            None => Ok(AppliedMeta::default()),
        }
    }

    fn decode(read: Vec<(Id, Payload)>) -> StoreResult<Vec<Entry<TypeConfig>>> {
        read.into_iter()
            .map(|(id, payload)| {
                Ok(Entry {
                    log_id: from_log_id(id),
                    payload: super::codec::decode_payload(&payload).map_err(io_error)?,
                })
            })
            .collect()
    }
}

/// The log indexes `from..to` a range's bounds take in.
fn index_range((start, end): (Bound<u64>, Bound<u64>)) -> (u64, u64) {
    let from = match start {
        Bound::Included(i) => i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match end {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let (from, to) = index_range((range.start_bound().cloned(), range.end_bound().cloned()));
        let last = self.journal.state().last.map_or(0, |id| id.1);
        if from.saturating_add(CACHED_TAIL) > last
            && let Some(read) = self.journal.read_cached(from, to)
        {
            // The newest entries, which replication reads on every round, are in the memory
            // cache: a hand-off to a blocking thread would cost more than the read.
            return Self::decode(read);
        }
        let read = self.off_thread(move |j| j.read(from, to)).await?;
        Self::decode(read)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let state = self.journal.state();
        Ok(LogState {
            last_purged_log_id: state.purged.map(from_log_id),
            last_log_id: state.last.map(from_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let vote = serde_json::to_vec(vote).map_err(io_error)?;
        self.off_thread(move |j| j.save_vote(&vote)).await
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        match self.journal.state().vote {
            Some(vote) => serde_json::from_slice(&vote).map(Some).map_err(io_error),
            None => Ok(None),
        }
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        // A hint for faster start-up only (Raft recovers the commit index from the leader), so
        // it is only buffered, and written with the next append or flush.
        if let Some(id) = committed {
            self.journal.save_committed(to_log_id(&id));
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(self.journal.state().committed.map(from_log_id))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            encoded.push((
                to_log_id(&entry.log_id),
                super::codec::encode_payload(&entry.payload).map_err(io_error)?,
            ));
        }
        // Written to the OS here; the journal's flush thread fsyncs it (with every other
        // append waiting) when appends are synced, and then tells openraft.
        self.journal.append(encoded).map_err(io_error)?;
        self.journal.flush(
            self.sync_appends,
            Box::new(move |res| callback.log_io_completed(res)),
        );
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        // Entries from `log_id` on conflict with the leader's log and were never committed.
        self.off_thread(move |j| j.truncate(log_id.index)).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.off_thread(move |j| j.purge(to_log_id(&log_id))).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::storage::RaftLogStorageExt;

    use super::*;
    use crate::wal::storage::FileStorage;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: from_log_id(((term, 1), index)),
            payload: EntryPayload::Blank,
        }
    }

    fn open(dir: &Path, mode: FsyncMode) -> LogStore {
        LogStore::open(Arc::new(FileStorage), dir, mode).unwrap()
    }

    async fn put(store: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
        store.blocking_append(entries).await.unwrap();
    }

    #[tokio::test]
    async fn entries_votes_truncation_and_purge_survive_a_reopen() {
        for mode in [
            FsyncMode::Always,
            FsyncMode::Interval(std::time::Duration::from_millis(5)),
            FsyncMode::Off,
        ] {
            survive_a_reopen(mode).await;
        }
    }

    async fn survive_a_reopen(mode: FsyncMode) {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut store = open(tmp.path(), mode);
            put(&mut store, (1..=5).map(|i| entry(1, i)).collect()).await;
            store.save_vote(&Vote::new(2, 3)).await.unwrap();
            store.truncate(entry(1, 4).log_id).await.unwrap();
            store.purge(entry(1, 1).log_id).await.unwrap();
            // Unsynced appends are in the OS's cache at once: a process crash cannot take them.
            put(&mut store, vec![entry(1, 4)]).await;
        }
        let mut store = open(tmp.path(), mode);
        assert_eq!(
            store.read_vote().await.unwrap(),
            Some(Vote::new(2, 3)),
            "{mode}"
        );
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.unwrap().index, 4);
        assert_eq!(state.last_purged_log_id.unwrap().index, 1);
        let got = store.try_get_log_entries(0..10).await.unwrap();
        let indexes: Vec<u64> = got.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![2, 3, 4], "{mode}");
        // Appends after a truncation take the truncated indexes, in a later term.
        store.truncate(entry(1, 4).log_id).await.unwrap();
        put(&mut store, vec![entry(2, 4)]).await;
        let got = store.try_get_log_entries(4..=4).await.unwrap();
        assert_eq!(got[0].log_id, entry(2, 4).log_id);
        // Purged up to the last entry: the purged id stands in for the last.
        store.purge(entry(2, 4).log_id).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.unwrap().index, 4);
        assert!(store.try_get_log_entries(0..10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_raft_log_crate_log_of_an_earlier_version_is_converted_with_its_json_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |index: u64| super::super::Request::Seal.to_string() + &index.to_string();
        let json_entry = |index: u64| {
            let payload = openraft::EntryPayload::<TypeConfig>::Normal(
                super::super::Request::Base(super::super::Base {
                    lsn: index,
                    last_micros: 7,
                    source: write(index),
                }),
            );
            (((1, 1), index), serde_json::to_vec(&payload).unwrap())
        };
        let applied = AppliedMeta {
            next_lsn: 4,
            ..AppliedMeta::default()
        };
        // What a member of an earlier version left: `raft/log/`, JSON payloads.
        super::super::journal::write_old(
            &tmp.path().join("log"),
            (1..=3).map(json_entry).collect(),
            &serde_json::to_vec(&Vote::<NodeId>::new(3, 2)).unwrap(),
            &serde_json::to_vec(&applied).unwrap(),
        );
        let mut store = open(tmp.path(), FsyncMode::Always);
        assert!(!tmp.path().join("log").exists(), "the old log is removed");
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
        assert_eq!(store.load_applied().unwrap().next_lsn, 4);
        put(&mut store, vec![entry(1, 4)]).await;
        let got = store.try_get_log_entries(1..=4).await.unwrap();
        assert_eq!(got.len(), 4);
        for e in &got[..3] {
            let i = e.log_id.index;
            assert!(
                matches!(&e.payload, EntryPayload::Normal(super::super::Request::Base(b))
                    if b.lsn == i && b.source == write(i)),
                "entry {i}: {:?}",
                e.payload
            );
        }
        assert!(matches!(got[3].payload, EntryPayload::Blank));
        let raw = store.journal.read(4, 5).unwrap();
        assert_eq!(
            raw[0].1[0],
            super::super::codec::PAYLOAD_MSGPACK,
            "new entries are MessagePack"
        );
        drop(store);
        // And again: the converted journal is what opens.
        let mut store = open(tmp.path(), FsyncMode::Always);
        assert_eq!(store.try_get_log_entries(1..=4).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_garbage_tail_that_power_loss_leaves_does_not_stop_start_up() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut store = open(tmp.path(), FsyncMode::Always);
            put(&mut store, (1..=3).map(|i| entry(1, i)).collect()).await;
            store.save_vote(&Vote::new(1, 1)).await.unwrap();
        }
        // A sector of an append in flight landed as garbage: in the newest file of the log.
        let newest = walkdir(tmp.path())
            .into_iter()
            .max_by_key(|p| {
                let meta = std::fs::metadata(p).unwrap();
                (meta.modified().unwrap(), meta.len())
            })
            .unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&newest)
            .unwrap();
        std::io::Write::write_all(&mut file, &[0x5a; 512]).unwrap();
        drop(file);
        let mut store = LogStore::open(Arc::new(FileStorage), tmp.path(), FsyncMode::Always)
            .unwrap_or_else(|e| panic!("start-up refused after a garbage tail: {e}"));
        let got = store.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
    }

    /// Every file under `dir`.
    fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            } else if path.file_name().is_some_and(|n| n != "LOCK") {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn the_applied_record_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = open(tmp.path(), FsyncMode::Always);
            assert!(store.load_applied().unwrap().applied.is_none());
            let meta = AppliedMeta {
                applied: Some(entry(2, 9).log_id),
                membership: StoredMembership::default(),
                next_lsn: 5,
                base_pending: Some((4, 9)),
                copying: None,
                rebuilding: false,
            };
            store.save_applied(&meta, true).unwrap();
        }
        let back = open(tmp.path(), FsyncMode::Always).load_applied().unwrap();
        assert_eq!(back.applied, Some(entry(2, 9).log_id));
        assert_eq!(back.next_lsn, 5);
        assert_eq!(back.base_pending, Some((4, 9)));
    }

    #[test]
    fn a_log_from_the_redb_layout_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("raft.redb"), b"old").unwrap();
        let err = LogStore::open(Arc::new(FileStorage), tmp.path(), FsyncMode::Always)
            .err()
            .unwrap();
        assert!(err.to_string().contains("raft.redb"), "{err}");
    }
}
