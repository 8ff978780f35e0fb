//! Group commit: one thread owns the log writer and turns every queued request into one write and,
//! per the durability mode, one fsync, before anyone is acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use web_time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::oneshot;

use super::index::{Index, Previous, VersionId};
use super::syncer::Syncer;
use super::{FsyncMode, WriteOp};
use crate::error::StoreError;
use crate::metrics::StoreMetrics;
use crate::wal::Wal;
use crate::wal::record::{self, DecodedOp, OpRef, Record};

/// What a committed write reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// LSN of the record holding the write.
    pub lsn: u64,
    /// Commit time, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
    /// Per operation, in order: the new version and the one it superseded.
    pub versions: Vec<(VersionId, Previous)>,
}

/// A condition a write commits under: no key of `namespace` starting with `prefix` (or, when
/// `exact`, the key `prefix` itself) has a version newer than `since_lsn`. The commit thread
/// checks it as it orders the write, so nothing can land in the range between the check and the
/// write: a compare-and-set over a key range, or over one key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeGuard {
    /// The namespace guarded.
    pub namespace: String,
    /// The key prefix guarded ("" for the whole namespace), or the key when `exact`.
    pub prefix: String,
    /// The LSN the writer read the range at.
    pub since_lsn: u64,
    /// Only the key equal to `prefix` is guarded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
}

impl RangeGuard {
    /// Whether an operation writes into the guarded range.
    fn covers(&self, op: &WriteOp) -> bool {
        op.namespace == self.namespace
            && match self.exact {
                true => op.key == self.prefix,
                false => op.key.starts_with(&self.prefix),
            }
    }
}

/// The LSN and commit time a replicated write must take: every member of a Raft group applies
/// the same committed entries, and they must become the same records everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// The record's LSN: exactly the store's next one.
    pub lsn: u64,
    /// Its commit time: later than the store's last one.
    pub timestamp_micros: i64,
}

/// A write waiting for the commit thread.
pub(crate) struct Pending {
    pub ops: Vec<WriteOp>,
    /// Refuse the write with `Conflict` unless this holds when it is ordered.
    pub guard: Option<RangeGuard>,
    /// Write it at exactly this LSN and time (a replicated write), skipping the quota check.
    pub fixed: Option<Fixed>,
    /// Its author and cause, stored in its record.
    pub meta: super::WriteMeta,
    pub reply: oneshot::Sender<Result<Committed, StoreError>>,
}

/// The queue between request handlers and the commit thread.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

/// A caller waiting for a seal or an fsync: told the last LSN it covers.
type Waiter = oneshot::Sender<Result<u64, StoreError>>;

#[derive(Default)]
struct QueueState {
    pending: Vec<Pending>,
    /// Callers waiting for the active segment to be sealed.
    rolls: Vec<Waiter>,
    /// Callers waiting for what is queued to be fsynced.
    syncs: Vec<Waiter>,
    closed: bool,
}

/// What the archiver needs to know about sealed segments, published by the commit thread.
///
/// Counters only ever grow, so readers need no lock; `notify` wakes the archiver after each seal.
#[derive(Debug, Default)]
pub struct SealState {
    /// Sequence number of the newest sealed segment (0 while none is sealed).
    pub last_sealed_seq: AtomicU64,
    /// LSN of the last record in the newest sealed segment (0 while none is sealed).
    pub last_sealed_lsn: AtomicU64,
    /// Commit time (µs) of the first record in the active segment; 0 while it holds none.
    pub active_first_write_micros: AtomicI64,
    /// Commit time (µs) of the first record of each sealed segment the archiver has not yet
    /// taken off this map: what the archive lag is measured from.
    pub sealed_first_write: parking_lot::Mutex<std::collections::BTreeMap<u64, i64>>,
    /// Woken after every seal.
    pub notify: tokio::sync::Notify,
}

impl Queue {
    /// Hands a write to the commit thread; fails once the store is closing.
    pub fn submit(&self, pending: Pending) -> Result<(), Box<Pending>> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(Box::new(pending));
        }
        state.pending.push(pending);
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Puts requests back at the head of the queue, in order, for the next group.
    fn requeue(&self, pending: Vec<Pending>) {
        if !pending.is_empty() {
            self.state.lock().pending.splice(0..0, pending);
        }
    }

    /// Asks the commit thread to seal the active segment once what is queued is written.
    pub fn request_roll(&self, reply: Waiter) -> Result<(), Waiter> {
        self.request(reply, |state| &mut state.rolls)
    }

    /// Asks the commit thread to fsync the log once what is queued is written.
    pub fn request_sync(&self, reply: Waiter) -> Result<(), Waiter> {
        self.request(reply, |state| &mut state.syncs)
    }

    /// Queues `reply` on the list `waiting` picks; refused once the store is closing.
    fn request(
        &self,
        reply: Waiter,
        waiting: fn(&mut QueueState) -> &mut Vec<Waiter>,
    ) -> Result<(), Waiter> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(reply);
        }
        waiting(&mut state).push(reply);
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Asks the commit thread to finish what is queued, fsync, and stop.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_one();
    }

    /// Whether the store is closing.
    fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

/// What one turn of the commit loop takes off the queue: writes, seal and fsync waiters.
type Taken = (Vec<Pending>, Vec<Waiter>, Vec<Waiter>);

impl QueueState {
    /// Whether nothing is asked for.
    fn idle(&self) -> bool {
        self.pending.is_empty() && self.rolls.is_empty() && self.syncs.is_empty()
    }

    /// Everything asked for, or None when nothing is.
    fn take(&mut self) -> Option<Taken> {
        (!self.idle()).then(|| {
            (
                std::mem::take(&mut self.pending),
                std::mem::take(&mut self.rolls),
                std::mem::take(&mut self.syncs),
            )
        })
    }
}

/// Buffers and the unsynced flag carried from one turn of the commit loop to the next.
pub(crate) struct Turn {
    buf: Vec<u8>,
    offsets: Vec<u32>,
    /// Appended since the last fsync.
    dirty: bool,
}

impl Default for Turn {
    fn default() -> Turn {
        Turn {
            buf: Vec::with_capacity(1 << 20),
            offsets: Vec::new(),
            dirty: false,
        }
    }
}

/// State the commit thread owns.
pub(crate) struct CommitThread {
    pub wal: Wal,
    pub index: Arc<RwLock<Index>>,
    pub queue: Arc<Queue>,
    pub fsync: FsyncMode,
    pub max_stored_bytes: Option<u64>,
    pub read_only: Arc<AtomicBool>,
    pub metrics: Arc<StoreMetrics>,
    pub next_lsn: u64,
    pub last_timestamp_micros: i64,
    pub seals: Arc<SealState>,
    /// See `Store::raise_clock`.
    pub clock_floor: Arc<std::sync::atomic::AtomicI64>,
}

/// A request accepted into the current group, with where its record went.
struct Accepted {
    pending: Pending,
    lsn: u64,
    timestamp_micros: i64,
    seq: u64,
    record_offset: u64,
    value_offsets: std::ops::Range<usize>,
}

impl CommitThread {
    /// Runs until the queue is closed and drained.
    pub fn run(mut self) {
        let mut syncer = match self.fsync {
            FsyncMode::Interval(every) => {
                let started = Syncer::start(
                    self.wal.active_handle(),
                    every,
                    Arc::clone(&self.read_only),
                    Arc::clone(&self.metrics),
                );
                match started {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the fsync thread; refusing writes");
                        self.read_only.store(true, Ordering::SeqCst);
                        None
                    }
                }
            }
            FsyncMode::Always | FsyncMode::Off => None,
        };
        let mut turn = Turn::default();
        loop {
            let taken = {
                let mut state = self.queue.state.lock();
                while state.idle() && !state.closed {
                    self.queue.wake.wait(&mut state);
                }
                state.take()
            };
            let Some(taken) = taken else { break };
            self.process(taken, &mut turn, syncer.as_ref());
        }
        if let Some(s) = &mut syncer {
            s.stop();
        }
        if turn.dirty {
            self.sync_or_fail();
        }
    }

    /// Commits whatever is queued now, on the caller's thread (the single-threaded mode, for
    /// targets without threads): the caller's reply is ready when this returns. `interval`
    /// fsyncs once per turn here, as there is no thread to do it later.
    pub fn run_inline(&mut self, turn: &mut Turn) {
        let taken = self.queue.state.lock().take();
        if let Some(taken) = taken {
            self.process(taken, turn, None);
        }
        if turn.dirty && (matches!(self.fsync, FsyncMode::Interval(_)) || self.queue.is_closed()) {
            turn.dirty = false;
            self.sync_or_fail();
        }
    }

    /// One turn: commits a group, then answers the seals and fsyncs asked for with it.
    fn process(&mut self, (group, rolls, syncs): Taken, turn: &mut Turn, syncer: Option<&Syncer>) {
        let segment = self.wal.position().0;
        let wrote = !group.is_empty() && self.commit(group, &mut turn.buf, &mut turn.offsets);
        if !rolls.is_empty() {
            let sealed = self.roll_on_request();
            for reply in rolls {
                let _ = reply.send(sealed.ok_or(StoreError::ReadOnly));
            }
        }
        if !syncs.is_empty() {
            if !self.read_only.load(Ordering::SeqCst) {
                self.sync_or_fail();
            }
            let synced = (!self.read_only.load(Ordering::SeqCst)).then_some(self.next_lsn - 1);
            for reply in syncs {
                let _ = reply.send(synced.ok_or(StoreError::ReadOnly));
            }
        }
        if wrote || self.wal.position().0 != segment {
            // `always` fsynced the group before acknowledging it.
            turn.dirty = self.fsync != FsyncMode::Always;
            if let Some(s) = syncer {
                if self.wal.position().0 != segment {
                    s.set_file(self.wal.active_handle());
                }
                s.mark_dirty();
            }
        }
    }

    /// Seals the active segment if it holds records; returns the LSN of the last sealed record.
    /// None when the store is (or just turned) read-only.
    fn roll_on_request(&mut self) -> Option<u64> {
        if self.read_only.load(Ordering::SeqCst) {
            return None;
        }
        if self.wal.position().1 > crate::wal::segment::HEADER_LEN as u64 {
            if let Err(e) = self.wal.roll(self.next_lsn) {
                tracing::error!(error = %e, "sealing the log segment failed; refusing further writes");
                self.read_only.store(true, Ordering::SeqCst);
                return None;
            }
            self.sealed();
        }
        Some(self.next_lsn - 1)
    }

    /// Publishes that the segment before the active one was just sealed.
    fn sealed(&self) {
        let seals = &self.seals;
        let sealed = self.wal.position().0 - 1;
        // The lag entry goes in before the segment is published, so the archiver never removes
        // it first and leaves a stale one behind.
        let first = seals.active_first_write_micros.swap(0, Ordering::SeqCst);
        if first > 0 {
            seals.sealed_first_write.lock().insert(sealed, first);
        }
        seals
            .last_sealed_lsn
            .store(self.wal.first_lsn_of_active() - 1, Ordering::SeqCst);
        seals.last_sealed_seq.store(sealed, Ordering::SeqCst);
        seals.notify.notify_one();
    }

    /// Fsyncs the log, making the store read-only if that fails.
    fn sync_or_fail(&mut self) {
        let started = Instant::now();
        match self.wal.sync() {
            Ok(()) => self
                .metrics
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64()),
            Err(e) => {
                tracing::error!(error = %e, "fsync of the log failed; refusing further writes");
                self.read_only.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Whether a guarded range was written after the guard's LSN: in the index, or by a request
    /// accepted earlier in this group (not in the index until the group is written).
    fn guard_broken(&self, guard: &RangeGuard, accepted: &[Accepted]) -> bool {
        self.index.read().changed_since(
            &guard.namespace,
            &guard.prefix,
            guard.exact,
            guard.since_lsn,
        ) || accepted
            .iter()
            .any(|a| a.pending.ops.iter().any(|op| guard.covers(op)))
    }

    /// Writes one group: encode every accepted request, one append, fsync per mode, apply, reply.
    /// Returns whether anything was written.
    fn commit(&mut self, group: Vec<Pending>, buf: &mut Vec<u8>, offsets: &mut Vec<u32>) -> bool {
        if self.read_only.load(Ordering::SeqCst) {
            for p in group {
                let _ = p.reply.send(Err(StoreError::ReadOnly));
            }
            return false;
        }
        buf.clear();
        offsets.clear();
        let mut accepted: Vec<Accepted> = Vec::with_capacity(group.len());
        let (mut seq, mut segment_len) = self.wal.position();
        let mut failed = None;
        let files = self.wal.files();
        // Unique-index values written by requests accepted earlier in this group.
        let mut overlay = super::unique::Overlay::new();
        let mut group = group.into_iter();
        while let Some(pending) = group.next() {
            if let Some(guard) = &pending.guard
                && self.guard_broken(guard, &accepted)
            {
                let _ = pending.reply.send(Err(StoreError::Conflict {
                    namespace: guard.namespace.clone(),
                    prefix: guard.prefix.clone(),
                    since_lsn: guard.since_lsn,
                }));
                continue;
            }
            // A replicated write was decided by every member as it applied the entry.
            let unique = match pending.fixed {
                Some(_) => Vec::new(),
                None => match super::unique::check(&self.index, &files, &pending.ops, &overlay) {
                    Ok(unique) => unique,
                    Err(e) => {
                        let _ = pending.reply.send(Err(e));
                        continue;
                    }
                },
            };
            let size = record::FRAME_HEADER_LEN
                + record::BODY_HEADER_LEN
                + pending.meta.as_ref().encoded_len()
                + pending
                    .ops
                    .iter()
                    .map(|op| record::op_encoded_len(&op.as_ref()))
                    .sum::<usize>();
            if let Some(fixed) = pending.fixed
                && (fixed.lsn != self.next_lsn
                    || fixed.timestamp_micros <= self.last_timestamp_micros)
            {
                let _ = pending.reply.send(Err(StoreError::InvalidRequest(format!(
                    "replicated record LSN {} at {} µs does not follow LSN {} at {} µs",
                    fixed.lsn,
                    fixed.timestamp_micros,
                    self.next_lsn - 1,
                    self.last_timestamp_micros
                ))));
                continue;
            }
            // A replicated write was admitted by the leader; refusing it here would fork members.
            if let Some(limit) = self.max_stored_bytes.filter(|_| pending.fixed.is_none()) {
                let used = self.wal.total_bytes() + buf.len() as u64;
                if used + size as u64 > limit {
                    let _ = pending
                        .reply
                        .send(Err(StoreError::QuotaExceeded { used, limit }));
                    continue;
                }
            }
            if failed.is_none() && self.wal.needs_roll(buf.len() + size) {
                let rolled = self
                    .wal
                    .append(buf)
                    .and_then(|()| self.wal.roll(self.next_lsn));
                buf.clear();
                match rolled {
                    Ok(()) => {
                        if let Some(a) = accepted.iter().find(|a| a.seq == seq) {
                            // This group's records opened the segment just sealed.
                            let _ = self.seals.active_first_write_micros.compare_exchange(
                                0,
                                a.timestamp_micros,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            );
                        }
                        self.sealed();
                        (seq, segment_len) = self.wal.position();
                    }
                    Err(e) => failed = Some(e),
                }
            }
            let timestamp_micros = match pending.fixed {
                Some(fixed) => fixed.timestamp_micros,
                None => crate::clock::now_micros()
                    .max(self.last_timestamp_micros + 1)
                    .max(self.clock_floor.load(Ordering::SeqCst) + 1),
            };
            self.last_timestamp_micros = timestamp_micros;
            let record_offset = segment_len + buf.len() as u64;
            let refs: Vec<OpRef<'_>> = pending.ops.iter().map(WriteOp::as_ref).collect();
            let first = offsets.len();
            record::encode_with(
                buf,
                self.next_lsn,
                timestamp_micros,
                pending.meta.as_ref(),
                &refs,
                offsets,
            );
            for w in unique {
                overlay.entry(w.id).or_default().extend(w.finals);
            }
            let defines_index = pending.fixed.is_none()
                && pending
                    .ops
                    .iter()
                    .any(|op| op.namespace == crate::indexes::def::INDEXES_NAMESPACE);
            accepted.push(Accepted {
                pending,
                lsn: self.next_lsn,
                timestamp_micros,
                seq,
                record_offset,
                value_offsets: first..offsets.len(),
            });
            self.next_lsn += 1;
            if defines_index {
                // Later requests are checked against the index this one defines, which exists
                // only once it is applied: they wait for the next group.
                self.queue.requeue(group.collect());
                break;
            }
        }
        if accepted.is_empty() {
            return false;
        }
        let bytes = buf.len() as u64;
        let mut result = match failed {
            Some(e) => Err(e),
            None => self.wal.append(buf),
        };
        if result.is_ok() && self.fsync == FsyncMode::Always {
            let started = Instant::now();
            result = self.wal.sync();
            self.metrics
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "writing the log failed; refusing further writes");
            self.read_only.store(true, Ordering::SeqCst);
            for a in accepted {
                let _ = a.pending.reply.send(Err(StoreError::ReadOnly));
            }
            return false;
        }
        self.wal.files().note_records(
            accepted
                .iter()
                .map(|a| (a.lsn, a.timestamp_micros, a.seq, a.record_offset)),
        );
        let active = self.wal.position().0;
        if let Some(first) = accepted.iter().find(|a| a.seq == active) {
            // Only set when 0: the first record of the active segment defines the archive lag.
            let _ = self.seals.active_first_write_micros.compare_exchange(
                0,
                first.timestamp_micros,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        self.metrics.log_appended_bytes.inc_by(bytes);
        self.metrics.log_bytes.set(self.wal.total_bytes() as i64);
        self.metrics
            .commit_group_size
            .observe(accepted.len() as f64);
        let mut previous = Vec::new();
        let mut replies = Vec::with_capacity(accepted.len());
        {
            let mut index = self.index.write();
            for a in accepted {
                let record = Record {
                    lsn: a.lsn,
                    timestamp_micros: a.timestamp_micros,
                    ops: a
                        .pending
                        .ops
                        .iter()
                        .zip(&offsets[a.value_offsets.clone()])
                        .map(|(op, &off)| DecodedOp {
                            op: op.as_ref(),
                            value_offset: off as usize,
                        })
                        .collect(),
                    meta: a.pending.meta.as_ref(),
                    encoded_len: 0,
                };
                previous.clear();
                index.apply(&record, a.seq, a.record_offset, &mut previous);
                let versions = previous
                    .iter()
                    .enumerate()
                    .map(|(i, &prev)| {
                        (
                            VersionId {
                                lsn: a.lsn,
                                op: i as u32,
                            },
                            prev,
                        )
                    })
                    .collect();
                replies.push((
                    a.pending.reply,
                    Committed {
                        lsn: a.lsn,
                        timestamp_micros: a.timestamp_micros,
                        versions,
                    },
                ));
            }
        }
        for (reply, committed) in replies {
            let _ = reply.send(Ok(committed));
        }
        true
    }
}

/// The default fsync interval: at most this much acknowledged data is lost on power failure.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(100);
