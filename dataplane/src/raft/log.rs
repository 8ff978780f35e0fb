//! The Raft log, vote and state-machine bookkeeping of one member: the member's write-ahead log
//! (`<data-dir>/raft/`, the `raft-log` crate: append-only chunk files, one `fdatasync` per
//! flushed batch, recent entries cached in memory). Appends are fsynced as `--fsync` says:
//! with `always` every append is on disk before openraft is told it is done, so a write is
//! acknowledged only once a majority has it on disk; with `interval=<ms>` appends reach the
//! OS at once and the disk within that window; with `off` when the OS decides. Votes,
//! truncations and purges are always on disk first: a member never forgets whom it voted for.

use std::fmt::Debug;
use std::io::{self, Read, Write};
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    CommittedLeaderId, Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError,
    StoredMembership, Vote,
};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::codeq::{Decode, Encode};
use raft_log::{RaftLog, Types};
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};
use crate::store::FsyncMode;

/// Largest chunk file; the log is purged a whole chunk at a time.
const CHUNK_BYTES: usize = 64 * 1024 * 1024;
/// Entries whose payloads stay cached in memory (the rest are read back from their chunk).
const CACHE_ENTRIES: usize = 50_000;
/// Bytes of payloads cached in memory.
const CACHE_BYTES: usize = 128 * 1024 * 1024;
/// Entries from the end of the log read without a blocking thread: well inside the cache.
const CACHED_TAIL: u64 = 1024;
/// How often buffered bookkeeping is written out when no append carries it.
const BOOKKEEPING_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn io_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write(&io::Error::other(e.to_string())).into()
}

/// How `raft-log` stores our types: log ids as `((term, leader), index)`, payloads as
/// MessagePack (JSON in entries written before; see [`super::codec`]), the rest as JSON.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogTypes;

impl Types for LogTypes {
    type LogId = StoredLogId;
    type LogPayload = Vec<u8>;
    type Vote = StoredVote;
    type Callback = Flushed;
    type UserData = Vec<u8>;

    fn log_index(log_id: &StoredLogId) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Vec<u8>) -> u64 {
        payload.len() as u64
    }
}

/// An openraft vote as the log stores it (length-prefixed JSON).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd)]
pub struct StoredVote(Vote<NodeId>);

impl Encode for StoredVote {
    fn encode<W: Write>(&self, w: W) -> Result<usize, io::Error> {
        serde_json::to_vec(&self.0)?.encode(w)
    }
}

impl Decode for StoredVote {
    fn decode<R: Read>(r: R) -> Result<Self, io::Error> {
        let bytes = Vec::<u8>::decode(r)?;
        Ok(StoredVote(serde_json::from_slice(&bytes)?))
    }
}

/// Who hears that a flush reached the disk.
pub enum Flushed {
    /// openraft, for an append.
    Append(LogFlushed<TypeConfig>),
    /// A caller waiting on its own flush.
    Wait(std::sync::mpsc::SyncSender<Result<(), io::Error>>),
}

impl raft_log::Callback for Flushed {
    fn send(self, res: Result<(), io::Error>) {
        match self {
            Flushed::Append(cb) => cb.log_io_completed(res),
            // The waiter may have given up; nothing to tell then.
            Flushed::Wait(tx) => raft_log::Callback::send(tx, res),
        }
    }
}

/// A log id as the log stores it; ordered as openraft orders them.
type StoredLogId = ((u64, NodeId), u64);

fn to_log_id(id: &LogId<NodeId>) -> StoredLogId {
    ((id.leader_id.term, id.leader_id.node_id), id.index)
}

fn from_log_id(((term, leader), index): StoredLogId) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, leader), index)
}

/// A member's Raft storage; clones share the log.
#[derive(Clone)]
pub struct LogStore {
    log: Arc<Mutex<RaftLog<LogTypes>>>,
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
    /// Opens (or creates) the log in `<dir>/log` (`dir` being the member's `raft/` directory),
    /// its appends fsynced as `fsync` says.
    pub fn open(dir: &Path, fsync: FsyncMode) -> Result<LogStore, io::Error> {
        if dir.join("raft.redb").exists() {
            // Its vote and log would be forgotten, which Raft cannot survive.
            return Err(io::Error::other(format!(
                "{} holds a Raft log in the layout of an earlier development build \
                 (raft.redb); start this member from an empty data directory",
                dir.display()
            )));
        }
        let dir = dir.join("log");
        std::fs::create_dir_all(&dir)?;
        let mut config = raft_log::Config::new(dir.display());
        config.wal.chunk_max_size = Some(CHUNK_BYTES);
        // A flush starts at once: the appends of one openraft batch arrive together anyway.
        config.wal.flush_batch_wait = Some(std::time::Duration::ZERO);
        config.log_cache_max_items = Some(CACHE_ENTRIES);
        config.log_cache_capacity = Some(CACHE_BYTES);
        let log = Arc::new(Mutex::new(RaftLog::open(Arc::new(config))?));
        // Bookkeeping (what was applied, the commit hint) is only buffered when saved; this
        // writes it out when no append does, and fsyncs appends with `interval`.
        let (every, sync) = match fsync {
            FsyncMode::Interval(every) => (every, true),
            FsyncMode::Always | FsyncMode::Off => (BOOKKEEPING_FLUSH, false),
        };
        let weak = Arc::downgrade(&log);
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_every(&weak, every, sync))?;
        Ok(LogStore {
            log,
            sync_appends: fsync == FsyncMode::Always,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RaftLog<LogTypes>> {
        // A panic while holding the lock leaves the log as the last completed call left it.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what `f` queued, fsyncs, and waits until it is on disk.
    fn durably(
        &self,
        f: impl FnOnce(&mut RaftLog<LogTypes>) -> Result<(), io::Error>,
    ) -> StoreResult<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        {
            let mut log = self.lock();
            f(&mut log).map_err(io_error)?;
            log.flush(true, Some(Flushed::Wait(tx))).map_err(io_error)?;
        }
        rx.recv()
            .map_err(|_| io_error("the Raft log's flush thread stopped"))?
            .map_err(io_error)
    }

    /// Records what the state machine has applied: fsynced before returning when `durable`,
    /// else only buffered (written with the next append, or within [`BOOKKEEPING_FLUSH`]). A
    /// stale record only means re-applying entries the state machine recognises as already
    /// in the store.
    pub fn save_applied(&self, meta: &AppliedMeta, durable: bool) -> StoreResult<()> {
        let bytes = serde_json::to_vec(meta).map_err(io_error)?;
        if durable {
            return self.durably(|log| log.save_user_data(Some(bytes)).map(drop));
        }
        self.lock().save_user_data(Some(bytes)).map_err(io_error)?;
        Ok(())
    }

    /// What [`save_applied`](Self::save_applied) last recorded.
    pub fn load_applied(&self) -> StoreResult<AppliedMeta> {
        match &self.lock().log_state().user_data {
            Some(bytes) => serde_json::from_slice(bytes).map_err(io_error),
            None => Ok(AppliedMeta::default()),
        }
    }

    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let from = first_index(range.0);
        let to = match range.1 {
            Bound::Included(i) => i + 1,
            Bound::Excluded(i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let log = self.lock();
        log.read(from, to)
            .map(|item| {
                let (id, payload) = item.map_err(io_error)?;
                Ok(Entry {
                    log_id: from_log_id(id),
                    payload: super::codec::decode_payload(&payload).map_err(io_error)?,
                })
            })
            .collect()
    }
}

/// The first log index a range's start bound takes in.
fn first_index(start: Bound<u64>) -> u64 {
    match start {
        Bound::Included(i) => i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

/// Flushes the log (with an fsync when `sync`) every `every` until the last [`LogStore`] is
/// gone.
fn flush_every(log: &Weak<Mutex<RaftLog<LogTypes>>>, every: std::time::Duration, sync: bool) {
    loop {
        std::thread::sleep(every);
        let Some(log) = log.upgrade() else { return };
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        // The log's own flush thread does the writing; this only queues it.
        if let Err(e) = log.flush(sync, None) {
            tracing::error!(error = %e, "flushing the Raft log");
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        let last = self.lock().log_state().last().map_or(0, |id| id.1);
        if first_index(bounds.0).saturating_add(CACHED_TAIL) > last {
            // The newest entries, which replication reads on every round, are in the memory
            // cache: a hand-off to a blocking thread would cost more than the read.
            return self.entries(bounds);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.entries(bounds))
            .await
            .map_err(io_error)?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let log = self.lock();
        let state = log.log_state();
        Ok(LogState {
            last_purged_log_id: state.purged().copied().map(from_log_id),
            last_log_id: state.last().copied().map(from_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let vote = StoredVote(*vote);
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.durably(|log| log.save_vote(vote).map(drop)))
            .await
            .map_err(io_error)?
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        Ok(self.lock().log_state().vote().map(|v| v.0))
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        // A hint for faster start-up only (Raft recovers the commit index from the leader), so
        // it is only buffered, and written with the next append or flush.
        if let Some(id) = committed {
            self.lock().commit(to_log_id(&id)).map_err(io_error)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(self
            .lock()
            .log_state()
            .committed()
            .copied()
            .map(from_log_id))
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
        // Handed to the log's flush thread here, which writes it to the OS, fsyncs it when
        // appends are synced, and then tells openraft.
        let mut log = self.lock();
        log.append(encoded).map_err(io_error)?;
        log.flush(self.sync_appends, Some(Flushed::Append(callback)))
            .map_err(io_error)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        // Entries from `log_id` on conflict with the leader's log and were never committed.
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.durably(|log| log.truncate(log_id.index).map(drop))
        })
        .await
        .map_err(io_error)?
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.durably(|log| log.purge(to_log_id(&log_id)).map(drop))
        })
        .await
        .map_err(io_error)?
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::storage::RaftLogStorageExt;

    use super::*;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: from_log_id(((term, 1), index)),
            payload: EntryPayload::Blank,
        }
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
            let mut store = LogStore::open(tmp.path(), mode).unwrap();
            put(&mut store, (1..=5).map(|i| entry(1, i)).collect()).await;
            store.save_vote(&Vote::new(2, 3)).await.unwrap();
            store.truncate(entry(1, 4).log_id).await.unwrap();
            store.purge(entry(1, 1).log_id).await.unwrap();
            // Unsynced appends are in the OS's cache at once: a process crash cannot take them.
            put(&mut store, vec![entry(1, 4)]).await;
        }
        let mut store = LogStore::open(tmp.path(), mode).unwrap();
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
    async fn json_entries_of_earlier_versions_are_read_beside_messagepack_ones() {
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
        {
            // What a member of an earlier version left in its log: JSON payloads.
            let store = LogStore::open(tmp.path(), FsyncMode::Always).unwrap();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            {
                let mut log = store.lock();
                log.append((1..=3).map(json_entry).collect::<Vec<_>>())
                    .unwrap();
                log.flush(true, Some(Flushed::Wait(tx))).unwrap();
            }
            rx.recv().unwrap().unwrap();
        }
        let mut store = LogStore::open(tmp.path(), FsyncMode::Always).unwrap();
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
        let raw: Vec<u8> = store.lock().read(4, 5).next().unwrap().unwrap().1;
        assert_eq!(
            raw[0],
            super::super::codec::PAYLOAD_MSGPACK,
            "new entries are MessagePack"
        );
    }

    #[test]
    fn the_applied_record_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(tmp.path(), FsyncMode::Always).unwrap();
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
        let back = LogStore::open(tmp.path(), FsyncMode::Always)
            .unwrap()
            .load_applied()
            .unwrap();
        assert_eq!(back.applied, Some(entry(2, 9).log_id));
        assert_eq!(back.next_lsn, 5);
        assert_eq!(back.base_pending, Some((4, 9)));
    }

    #[test]
    fn a_log_from_the_redb_layout_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("raft.redb"), b"old").unwrap();
        let err = LogStore::open(tmp.path(), FsyncMode::Always).err().unwrap();
        assert!(err.to_string().contains("raft.redb"), "{err}");
    }
}
