//! The Raft journal of one member: its log entries, vote and bookkeeping as checksummed records
//! in chunk files (`<raft-dir>/journal/<20-digit seq>.chunk`) on the [`Storage`] seam, so the
//! simulated disk sees every write and fsync the Raft log makes and a power loss can cut them.
//!
//! Only one journal may be open on a directory at a time; the store's lock on the data directory
//! (which holds `raft/`) sees to that.
//!
//! Every change is written to the OS at once; one thread fsyncs for all waiting callers
//! together (group commit). A chunk starts with the whole state (vote, commit hint, applied
//! record, purged id), so older chunks are removed once every entry in them is purged. At
//! start-up a record that is cut short or fails its checksum ends the newest chunk (a power loss
//! leaves only that: bytes after the last fsync); anywhere else it is damage, and refused.

mod migrate;
pub mod record;
mod replay;

#[cfg(test)]
pub(crate) use migrate::write_old;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::wal::storage::{OpenMode, Storage, StorageFile};
use record::{CHUNK_MAGIC, Record};
pub use record::{Id, State};

/// The journal's directory inside a member's `raft/` directory.
pub const DIR: &str = "journal";
/// Chunks are sealed at this size.
const CHUNK_BYTES: u64 = 64 * 1024 * 1024;
/// Entries whose payloads stay cached in memory (the rest are read back from their chunk).
const CACHE_ENTRIES: usize = 50_000;
/// Bytes of payloads cached in memory.
const CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Told once a flush it waited for is done (or failed).
pub type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

/// An entry's payload: shared when cached, read back from its chunk otherwise.
pub type Payload = Arc<[u8]>;

/// One member's Raft journal; share it in an `Arc`.
pub struct Journal {
    inner: Mutex<Inner>,
    /// To the flush thread, which exits when the journal is dropped; None when the journal
    /// fsyncs on the caller's thread (see [`Options::inline`]).
    flushes: Option<mpsc::Sender<Done>>,
}

/// How a journal works.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Appends not waited for are fsynced at least this often.
    pub interval: Option<Duration>,
    /// How often buffered bookkeeping is written out when no change carries it.
    pub tick: Duration,
    /// Chunks are sealed at this size.
    pub chunk_bytes: u64,
    /// Every fsync on the caller's thread, and bookkeeping only written with the next change:
    /// no thread, so a simulation on a paused clock need not wait for real time.
    pub inline: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: None,
            tick: Duration::from_millis(100),
            chunk_bytes: CHUNK_BYTES,
            inline: false,
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // A clean close keeps the latest bookkeeping (a crash may lose it: it is only a hint).
        let inner = self.inner.get_mut();
        if inner.pending()
            && let Err(e) = inner.write(&[])
        {
            tracing::warn!(error = %e, "writing out the Raft journal's bookkeeping at close");
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

struct Inner {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    /// A chunk holding at least this many bytes is sealed before the next write.
    chunk_bytes: u64,
    /// Chunk files by sequence number; the last is the one written to.
    chunks: BTreeMap<u64, Chunk>,
    active_len: u64,
    state: State,
    /// The live entries, contiguous by index.
    entries: VecDeque<Slot>,
    /// How many leading entries have had their payloads evicted from the cache.
    uncached: usize,
    cached_bytes: usize,
    /// While replaying: entries up to this index were in chunks that a purge removed, and the
    /// purge's record is still to come.
    hole: Option<u64>,
    /// The commit hint changed and is not written yet.
    pending_committed: bool,
    /// The applied record changed and is not written yet.
    pending_applied: bool,
    /// A write or fsync failed: nothing more is written (the disk may hold less than we think).
    failed: Option<String>,
    buf: Vec<u8>,
}

/// Where a read finds an entry's payload.
enum Wanted {
    Cached(Payload),
    /// In a chunk file: offset and length.
    OnDisk(Arc<dyn StorageFile>, u64, u32),
}

struct Chunk {
    file: Arc<dyn StorageFile>,
    /// The highest entry index written to it.
    last_index: Option<u64>,
}

struct Slot {
    id: Id,
    chunk: u64,
    /// Where its payload starts in the chunk.
    at: u64,
    len: u32,
    payload: Option<Payload>,
}

/// Why a journal did not open.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing its files failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Bytes that no power loss leaves (a sealed chunk damaged, an entry out of order).
    #[error("the Raft journal is damaged: {0}")]
    Damaged(String),
}

impl From<JournalError> for io::Error {
    fn from(e: JournalError) -> io::Error {
        match e {
            JournalError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

fn chunk_name(seq: u64) -> String {
    format!("{seq:020}.chunk")
}

impl Journal {
    /// Opens (or creates) the journal in `<raft_dir>/journal` on `storage`, converting a log
    /// left by `raft-log` (`<raft_dir>/log`, earlier versions) first.
    pub fn open(
        storage: Arc<dyn Storage>,
        raft_dir: &Path,
        options: Options,
    ) -> Result<Arc<Journal>, JournalError> {
        migrate::from_raft_log(&*storage, raft_dir)?;
        let dir = raft_dir.join(DIR);
        storage.create_dir_all_durable(&dir)?;
        let mut inner = Inner {
            storage,
            dir,
            chunk_bytes: options.chunk_bytes,
            chunks: BTreeMap::new(),
            active_len: 0,
            state: State::default(),
            entries: VecDeque::new(),
            uncached: 0,
            cached_bytes: 0,
            hole: None,
            pending_committed: false,
            pending_applied: false,
            failed: None,
            buf: Vec::new(),
        };
        inner.replay()?;
        inner.roll()?;
        if options.inline {
            return Ok(Arc::new(Journal {
                inner: Mutex::new(inner),
                flushes: None,
            }));
        }
        let (tx, rx) = mpsc::channel();
        let journal = Arc::new(Journal {
            inner: Mutex::new(inner),
            flushes: Some(tx),
        });
        let weak = Arc::downgrade(&journal);
        let (interval, tick) = (options.interval, options.tick);
        std::thread::Builder::new()
            .name("raft-journal".into())
            .spawn(move || flush_thread(&weak, &rx, interval, tick))?;
        Ok(journal)
    }

    /// The state as of the last change (its `last` the last entry, or the purged id).
    pub fn state(&self) -> State {
        let inner = self.inner.lock();
        let mut state = inner.state.clone();
        state.last = inner.last();
        state
    }

    /// Writes `entries` after the last one; each must take the next index.
    pub fn append(&self, entries: Vec<(Id, Vec<u8>)>) -> io::Result<()> {
        self.inner.lock().append(entries)
    }

    /// Records a new vote and waits until it is on disk.
    pub fn save_vote(&self, vote: &[u8]) -> io::Result<()> {
        self.durably(|inner| {
            inner.write(&[Record::Vote(vote)])?;
            inner.state.vote = Some(vote.to_vec());
            Ok(())
        })
    }

    /// Records the commit hint, written with the next change.
    pub fn save_committed(&self, id: Id) {
        let mut inner = self.inner.lock();
        inner.state.committed = Some(id);
        inner.pending_committed = true;
    }

    /// Records what the state machine applied: on disk before returning when `durable`, else
    /// written with the next change.
    pub fn save_applied(&self, applied: Vec<u8>, durable: bool) -> io::Result<()> {
        if durable {
            return self.durably(|inner| {
                inner.state.applied = Some(applied);
                inner.pending_applied = true;
                inner.write(&[]).map(drop)
            });
        }
        let mut inner = self.inner.lock();
        inner.state.applied = Some(applied);
        inner.pending_applied = true;
        Ok(())
    }

    /// Removes entries from `index` on, on disk before returning.
    pub fn truncate(&self, index: u64) -> io::Result<()> {
        self.durably(|inner| {
            inner.write(&[Record::Truncate(index)])?;
            inner.truncate(index);
            Ok(())
        })
    }

    /// Removes entries up to and including `id`, on disk before returning; chunks holding only
    /// such entries go too.
    pub fn purge(&self, id: Id) -> io::Result<()> {
        self.durably(|inner| {
            inner.write(&[Record::Purge(id)])?;
            inner.purge(id);
            Ok(())
        })?;
        self.inner.lock().remove_purged_chunks();
        Ok(())
    }

    /// Calls `done` once everything written so far is on disk (`sync`) or at once (the OS has
    /// it already).
    pub fn flush(&self, sync: bool, done: Done) {
        if let Some(failed) = &self.inner.lock().failed {
            return done(Err(io::Error::other(failed.clone())));
        }
        if !sync {
            return done(Ok(()));
        }
        let Some(flushes) = &self.flushes else {
            let file = self.inner.lock().active_file();
            return done(file.and_then(|file| self.sync(&file)));
        };
        if let Err(mpsc::SendError(done)) = flushes.send(done) {
            done(Err(io::Error::other(
                "the Raft journal's flush thread stopped",
            )));
        }
    }

    /// Whether fsyncs happen on the caller's thread (see [`Options::inline`]).
    pub fn is_inline(&self) -> bool {
        self.flushes.is_none()
    }

    /// Runs `f`, then waits until what it wrote is on disk.
    fn durably(&self, f: impl FnOnce(&mut Inner) -> io::Result<()>) -> io::Result<()> {
        f(&mut self.inner.lock())?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.flush(
            true,
            Box::new(move |res| {
                let _ = tx.send(res);
            }),
        );
        rx.recv()
            .map_err(|_| io::Error::other("the Raft journal's flush thread stopped"))?
    }

    /// Entries `from..to` that are live, payloads from the cache only: None when one would have
    /// to be read from disk.
    pub fn read_cached(&self, from: u64, to: u64) -> Option<Vec<(Id, Payload)>> {
        let inner = self.inner.lock();
        inner
            .range(from, to)
            .map(|slot| Some((slot.id, slot.payload.clone()?)))
            .collect()
    }

    /// Entries `from..to` that are live, reading uncached payloads from their chunks.
    pub fn read(&self, from: u64, to: u64) -> io::Result<Vec<(Id, Payload)>> {
        let wanted: Vec<(Id, Wanted)> = {
            let inner = self.inner.lock();
            inner
                .range(from, to)
                .map(|slot| {
                    let wanted = match &slot.payload {
                        Some(payload) => Wanted::Cached(Arc::clone(payload)),
                        None => {
                            let chunk = inner.chunks.get(&slot.chunk).ok_or_else(|| {
                                io::Error::other(format!(
                                    "Raft log entry {} lost its chunk",
                                    slot.id.1
                                ))
                            })?;
                            Wanted::OnDisk(Arc::clone(&chunk.file), slot.at, slot.len)
                        }
                    };
                    Ok((slot.id, wanted))
                })
                .collect::<io::Result<_>>()?
        };
        // Read outside the lock: appends go on meanwhile, and a purged chunk's open file stays
        // readable.
        wanted
            .into_iter()
            .map(|(id, wanted)| match wanted {
                Wanted::Cached(payload) => Ok((id, payload)),
                Wanted::OnDisk(file, at, len) => {
                    let mut buf = vec![0; len as usize];
                    file.read_exact_at(&mut buf, at)?;
                    Ok((id, buf.into()))
                }
            })
            .collect()
    }

    /// Writes the pending bookkeeping, then fsyncs when `sync`.
    fn tick(&self, sync: bool) -> io::Result<()> {
        let file = {
            let mut inner = self.inner.lock();
            if inner.pending() {
                inner.write(&[]).map(drop)?;
            }
            if !sync {
                return Ok(());
            }
            inner.active_file()?
        };
        self.sync(&file)
    }

    /// Fsyncs `file` (the chunk being written; older ones were fsynced when sealed).
    fn sync(&self, file: &Arc<dyn StorageFile>) -> io::Result<()> {
        file.sync_data().inspect_err(|e| {
            self.inner.lock().failed = Some(format!("an fsync of the Raft journal failed: {e}"));
        })
    }
}

/// Fsyncs for every caller queued, together, and ticks the bookkeeping, until the journal is
/// dropped.
fn flush_thread(
    journal: &Weak<Journal>,
    flushes: &mpsc::Receiver<Done>,
    interval: Option<Duration>,
    tick: Duration,
) {
    let every = interval.unwrap_or(tick);
    let mut next_tick = Instant::now() + every;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let first = match flushes.recv_timeout(wait) {
            Ok(done) => Some(done),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let Some(journal) = journal.upgrade() else {
            if let Some(done) = first {
                done(Err(io::Error::other("the Raft journal was closed")));
            }
            return;
        };
        if Instant::now() >= next_tick {
            if let Err(e) = journal.tick(interval.is_some()) {
                tracing::error!(error = %e, "writing out the Raft journal");
            }
            next_tick = Instant::now() + every;
        }
        let Some(first) = first else { continue };
        let mut waiting = vec![first];
        waiting.extend(flushes.try_iter());
        let file = journal.inner.lock().active_file();
        let res = file.and_then(|file| journal.sync(&file));
        for done in waiting {
            done(match &res {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
    }
}

impl Inner {
    /// The index the next entry takes; None when the log is new (its first entry may take any).
    fn next_index(&self) -> Option<u64> {
        match (self.entries.back(), self.hole, self.state.purged) {
            (Some(slot), _, _) => Some(slot.id.1 + 1),
            (None, Some(hole), _) => Some(hole + 1),
            (None, None, Some(purged)) => Some(purged.1 + 1),
            (None, None, None) => None,
        }
    }

    fn last(&self) -> Option<Id> {
        match self.entries.back() {
            Some(slot) => Some(slot.id),
            None => self.state.purged,
        }
    }

    fn first_index(&self) -> u64 {
        self.entries.front().map_or(0, |slot| slot.id.1)
    }

    fn range(&self, from: u64, to: u64) -> impl Iterator<Item = &Slot> {
        let first = self.first_index();
        let skip = from.saturating_sub(first) as usize;
        let take = to.saturating_sub(from.max(first)) as usize;
        self.entries.iter().skip(skip).take(take)
    }

    fn active_file(&self) -> io::Result<Arc<dyn StorageFile>> {
        if let Some(failed) = &self.failed {
            return Err(io::Error::other(failed.clone()));
        }
        let (_, chunk) = self
            .chunks
            .last_key_value()
            .ok_or_else(|| io::Error::other("the Raft journal has no chunk"))?;
        Ok(Arc::clone(&chunk.file))
    }

    fn append(&mut self, entries: Vec<(Id, Vec<u8>)>) -> io::Result<()> {
        let mut next = self.next_index();
        for (id, _) in &entries {
            let next = next.get_or_insert(id.1);
            if id.1 != *next {
                return Err(io::Error::other(format!(
                    "Raft log entry {} appended where {next} is next",
                    id.1
                )));
            }
            *next += 1;
        }
        let records: Vec<Record<'_>> = entries
            .iter()
            .map(|(id, payload)| Record::Entry(*id, payload))
            .collect();
        let offsets = self.write(&records)?;
        let seq = self.active_seq();
        for ((id, payload), at) in entries.into_iter().zip(offsets) {
            self.push(id, seq, at, payload.into());
        }
        Ok(())
    }

    fn active_seq(&self) -> u64 {
        self.chunks.last_key_value().map_or(0, |(seq, _)| *seq)
    }

    /// Writes the pending bookkeeping and `records` to the chunk being written (sealing it
    /// first when full) and returns where each entry's payload starts.
    fn write(&mut self, records: &[Record<'_>]) -> io::Result<Vec<u64>> {
        if let Some(failed) = &self.failed {
            return Err(io::Error::other(failed.clone()));
        }
        if records.is_empty() && !self.pending() {
            return Ok(Vec::new());
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut payloads = Vec::new();
        self.encode_bookkeeping(&mut buf);
        let mut starts = Vec::with_capacity(records.len());
        for record in records {
            starts.push(buf.len());
            record::encode(record, &mut buf);
        }
        let result = self.write_buf(&buf);
        if let Ok(base) = result {
            for (record, start) in records.iter().zip(starts) {
                if let Record::Entry(id, _) = record {
                    payloads.push(base + (start + record::ENTRY_PAYLOAD_AT) as u64);
                    let chunk = self.chunks.values_mut().next_back();
                    if let Some(chunk) = chunk {
                        chunk.last_index = chunk.last_index.max(Some(id.1));
                    }
                }
            }
            self.pending_committed = false;
            self.pending_applied = false;
        }
        self.buf = buf;
        result.map(|_| payloads)
    }

    /// Whether bookkeeping waits to be written.
    fn pending(&self) -> bool {
        self.pending_committed || self.pending_applied
    }

    /// Encodes the bookkeeping that changed since it was last written.
    fn encode_bookkeeping(&self, buf: &mut Vec<u8>) {
        if self.pending_committed
            && let Some(id) = self.state.committed
        {
            record::encode(&Record::Committed(id), buf);
        }
        if self.pending_applied
            && let Some(applied) = &self.state.applied
        {
            record::encode(&Record::Applied(applied), buf);
        }
    }

    /// Appends `buf` to the chunk being written and returns the offset it starts at.
    fn write_buf(&mut self, buf: &[u8]) -> io::Result<u64> {
        if self.active_len + buf.len() as u64 > self.chunk_bytes {
            self.roll()?;
        }
        let at = self.active_len;
        let file = self.active_file()?;
        if let Err(e) = file.append(buf) {
            self.failed = Some(format!("a write to the Raft journal failed: {e}"));
            return Err(e);
        }
        self.active_len += buf.len() as u64;
        Ok(at)
    }

    /// Seals the chunk being written (fsynced) and starts the next with the whole state.
    fn roll(&mut self) -> io::Result<()> {
        let result = self.try_roll();
        if let Err(e) = &result {
            self.failed = Some(format!("starting a Raft journal chunk failed: {e}"));
        }
        result
    }

    fn try_roll(&mut self) -> io::Result<()> {
        if let Some((_, chunk)) = self.chunks.last_key_value() {
            chunk.file.sync_data()?;
        }
        let seq = self.active_seq() + 1;
        let file = self
            .storage
            .open(&self.dir.join(chunk_name(seq)), OpenMode::CreateTruncate)?;
        let mut header = CHUNK_MAGIC.to_vec();
        let mut state = self.state.clone();
        state.last = self.last();
        record::encode(&Record::State(state), &mut header);
        file.append(&header)?;
        // Once anything after it is written, the header must be readable after a power loss,
        // which makes an unreadable one recognisable as a creation cut short.
        file.sync_data()?;
        // The chunk must be found after a power loss before anything in it is acknowledged.
        self.storage.sync_dir(&self.dir)?;
        self.chunks.insert(
            seq,
            Chunk {
                file,
                last_index: None,
            },
        );
        self.active_len = header.len() as u64;
        self.pending_committed = false;
        self.pending_applied = false;
        Ok(())
    }

    fn push(&mut self, id: Id, chunk: u64, at: u64, payload: Payload) {
        self.cached_bytes += payload.len();
        self.entries.push_back(Slot {
            id,
            chunk,
            at,
            len: payload.len() as u32,
            payload: Some(payload),
        });
        while self.uncached + 1 < self.entries.len()
            && (self.entries.len() - self.uncached > CACHE_ENTRIES
                || self.cached_bytes > CACHE_BYTES)
        {
            let slot = &mut self.entries[self.uncached];
            if let Some(payload) = slot.payload.take() {
                self.cached_bytes -= payload.len();
            }
            self.uncached += 1;
        }
    }

    /// Drops the entries from `index` on.
    fn truncate(&mut self, index: u64) {
        while self.entries.back().is_some_and(|slot| slot.id.1 >= index) {
            if let Some(slot) = self.entries.pop_back()
                && let Some(payload) = slot.payload
            {
                self.cached_bytes -= payload.len();
            }
        }
        self.uncached = self.uncached.min(self.entries.len());
        if self.hole.is_some_and(|hole| hole >= index) {
            let purged = self.state.purged.map(|id| id.1);
            self.hole = index.checked_sub(1).filter(|&i| Some(i) > purged);
        }
    }

    /// Drops the entries up to and including `id`, which becomes the purged id.
    fn purge(&mut self, id: Id) {
        if self.state.purged.is_some_and(|purged| purged.1 >= id.1) {
            return;
        }
        while self.entries.front().is_some_and(|slot| slot.id.1 <= id.1) {
            if let Some(slot) = self.entries.pop_front() {
                match slot.payload {
                    Some(payload) => self.cached_bytes -= payload.len(),
                    None => self.uncached -= 1,
                }
            }
        }
        if self.hole.is_some_and(|hole| hole <= id.1) {
            self.hole = None;
        }
        self.state.purged = Some(id);
    }

    /// Removes the oldest chunks while every entry in them is purged (never the one being
    /// written): later chunks start with the whole state.
    fn remove_purged_chunks(&mut self) {
        let purged = self.state.purged.map(|id| id.1);
        let active = self.active_seq();
        let removable: Vec<u64> = self
            .chunks
            .iter()
            .take_while(|(seq, chunk)| {
                **seq != active && chunk.last_index.is_none_or(|i| Some(i) <= purged)
            })
            .map(|(seq, _)| *seq)
            .collect();
        for seq in removable {
            // A removal a power loss undoes only brings back entries the purge drops again.
            if let Err(e) = self.storage.remove_file(&self.dir.join(chunk_name(seq))) {
                tracing::warn!(error = %e, seq, "removing a purged Raft journal chunk");
                return;
            }
            self.chunks.remove(&seq);
        }
    }
}

#[cfg(test)]
mod tests;
