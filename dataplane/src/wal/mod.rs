//! The write-ahead log: an append-only sequence of checksummed segment files, the source of truth.
//!
//! Segments are named by sequence number and hold records with contiguous LSNs. Only the last
//! (active) segment is ever written; all others are sealed: fsynced, immutable, and therefore safe to
//! ship to object storage. Recovery treats the two differently: damage at the end of the active
//! segment is a torn write and is cut off, damage anywhere else is corruption and stops start-up.

pub mod faults;
pub mod record;
pub mod segment;
pub mod storage;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use thiserror::Error;

use record::{DecodeError, Record};
use segment::{HEADER_LEN, SegmentHeader};
use storage::{FileStorage, OpenMode, Storage, StorageFile};

/// Why the log could not be opened, read or written.
#[derive(Debug, Error)]
pub enum WalError {
    /// An operating-system I/O error, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Damage that is not a torn tail: start-up must stop rather than skip data.
    #[error("corrupt log segment {segment} at offset {offset}: {reason}")]
    Corrupt {
        /// Path of the damaged segment file.
        segment: PathBuf,
        /// Byte offset of the first bad record in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Wraps an `io::Error` with context.
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> WalError {
    let context = context.into();
    move |source| WalError::Io { context, source }
}

/// Open handles on every segment, shared by the writer and by readers of values.
#[derive(Debug, Default)]
pub struct SegmentFiles {
    files: RwLock<BTreeMap<u64, SegmentFile>>,
    seek: RwLock<SeekPoints>,
}

/// One record's position remembered for about every [`SEEK_INTERVAL`] bytes of log, so the change
/// feed starts reading near any LSN instead of at the start of a 64 MiB segment.
pub const SEEK_INTERVAL: u64 = 64 * 1024;

/// Sparse map from LSN to where its record starts.
#[derive(Debug, Default)]
struct SeekPoints {
    points: BTreeMap<u64, (u64, u64)>,
    /// (commit time, LSN) of every noted record, in log order: times only grow with LSNs, so a
    /// moment is found by binary search.
    times: Vec<(i64, u64)>,
    last: Option<(u64, u64)>,
}

/// One segment as readers see it.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    /// Sequence number.
    pub seq: u64,
    /// First LSN it holds.
    pub first_lsn: u64,
    /// Where it lives.
    pub path: PathBuf,
    /// The format its records are in (its header's version).
    pub version: u32,
    /// A read handle (positional reads only, so it is shared freely).
    pub file: Arc<dyn StorageFile>,
}

impl SegmentFiles {
    /// Reads `len` bytes at `offset` of segment `seq`.
    pub fn read_at(&self, seq: u64, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = self.file(seq)?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// [`read_at`](Self::read_at) only when no disk wait is needed (`WouldBlock` otherwise): what an
    /// async worker tries before handing the read to a thread that may block.
    pub fn read_at_nowait(&self, seq: u64, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = self.file(seq)?;
        let mut buf = vec![0; len];
        file.read_exact_at_nowait(&mut buf, offset)?;
        Ok(buf)
    }

    /// The read handle of segment `seq`.
    fn file(&self, seq: u64) -> io::Result<Arc<dyn StorageFile>> {
        self.files
            .read()
            .get(&seq)
            .map(|s| Arc::clone(&s.file))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("segment {seq} is not open"),
                )
            })
    }

    /// Every segment, in log order.
    pub fn list(&self) -> Vec<SegmentFile> {
        self.files.read().values().cloned().collect()
    }

    /// Notes where records start (LSN, commit time, segment, offset), keeping about one per
    /// [`SEEK_INTERVAL`] (and the first of every segment).
    pub fn note_records(&self, records: impl IntoIterator<Item = (u64, i64, u64, u64)>) {
        let mut seek = self.seek.write();
        for (lsn, micros, seq, offset) in records {
            let far = seek
                .last
                .is_none_or(|(s, o)| s != seq || offset >= o + SEEK_INTERVAL);
            if far {
                seek.points.insert(lsn, (seq, offset));
                seek.times.push((micros, lsn));
                seek.last = Some((seq, offset));
            }
        }
    }

    /// The LSN of the last noted record committed before `micros` (None when none was): the
    /// first record at or after `micros` lies less than [`SEEK_INTERVAL`] of log past it.
    pub fn seek_time(&self, micros: i64) -> Option<u64> {
        let seek = self.seek.read();
        let n = seek.times.partition_point(|&(t, _)| t < micros);
        n.checked_sub(1).map(|i| seek.times[i].1)
    }

    /// Where to start reading to reach record `lsn`: the nearest noted record at or before it,
    /// as (segment, offset); None when no record at or before it was noted.
    pub fn seek(&self, lsn: u64) -> Option<(u64, u64)> {
        self.seek
            .read()
            .points
            .range(..=lsn)
            .next_back()
            .map(|(_, &at)| at)
    }

    /// Registers a segment so readers can find it.
    fn insert(&self, seg: SegmentFile) {
        self.files.write().insert(seg.seq, seg);
    }
}

/// Where one stored value lives in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment sequence number.
    pub seq: u64,
    /// Offset of the record in that segment file.
    pub record_offset: u64,
}

/// The writer of the active segment.
#[derive(Debug)]
pub struct Wal {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    active: Arc<dyn StorageFile>,
    active_seq: u64,
    active_first_lsn: u64,
    active_len: u64,
    segment_size: u64,
    total_bytes: u64,
    files: Arc<SegmentFiles>,
    faults: Option<Arc<faults::Faults>>,
}

/// What recovery found, besides the records it replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// LSN the next record gets.
    pub next_lsn: u64,
    /// Timestamp of the last record, or 0 for an empty log.
    pub last_timestamp_micros: i64,
    /// Bytes of torn tail cut off the active segment.
    pub truncated_bytes: u64,
    /// Number of segments.
    pub segments: usize,
}

impl Wal {
    /// Opens the log in `dir` on the file system, replaying every record through `apply` in
    /// LSN order.
    ///
    /// `apply` receives each record and where it lives; it must be idempotent per LSN.
    pub fn open(
        dir: &Path,
        segment_size: u64,
        apply: impl FnMut(&Record<'_>, Location),
    ) -> Result<(Wal, RecoveryReport), WalError> {
        Wal::open_on(Arc::new(FileStorage), dir, segment_size, apply)
    }

    /// [`Wal::open`] on any [`Storage`].
    pub fn open_on(
        storage: Arc<dyn Storage>,
        dir: &Path,
        segment_size: u64,
        mut apply: impl FnMut(&Record<'_>, Location),
    ) -> Result<(Wal, RecoveryReport), WalError> {
        storage
            .create_dir_all_durable(dir)
            .map_err(io_err(format!("creating {}", dir.display())))?;
        let seqs = list_segments(&*storage, dir)?;
        let files = Arc::new(SegmentFiles::default());
        let mut next_lsn = 1;
        let mut last_ts = 0;
        let mut truncated_bytes = 0;
        let mut total_bytes = 0;
        let mut buf = Vec::new();
        for (i, &seq) in seqs.iter().enumerate() {
            let path = dir.join(segment::file_name(seq));
            let is_last = i + 1 == seqs.len();
            let mode = if is_last {
                OpenMode::ReadWrite
            } else {
                OpenMode::Read
            };
            let file = storage
                .open(&path, mode)
                .map_err(io_err(format!("opening {}", path.display())))?;
            buf = file
                .read_all()
                .map_err(io_err(format!("reading {}", path.display())))?;
            let corrupt = |offset: u64, reason: String| WalError::Corrupt {
                segment: path.clone(),
                offset,
                reason,
            };
            let header = segment::decode_header(&buf).map_err(|r| corrupt(0, r))?;
            if header.seq != seq {
                return Err(corrupt(
                    0,
                    format!(
                        "header names segment {} but the file is segment {seq}",
                        header.seq
                    ),
                ));
            }
            if header.first_lsn != next_lsn {
                return Err(corrupt(
                    0,
                    format!(
                        "segment starts at LSN {} but LSN {next_lsn} was expected",
                        header.first_lsn
                    ),
                ));
            }
            let mut pos = HEADER_LEN;
            while pos < buf.len() {
                let failure = match record::decode_version(&buf[pos..], header.version) {
                    Ok(rec) if rec.lsn != next_lsn => {
                        format!("record has LSN {} but LSN {next_lsn} was expected", rec.lsn)
                    }
                    Ok(rec) if rec.timestamp_micros < last_ts => {
                        "record timestamp goes backwards".to_string()
                    }
                    Ok(rec) => {
                        files.note_records([(rec.lsn, rec.timestamp_micros, seq, pos as u64)]);
                        apply(
                            &rec,
                            Location {
                                seq,
                                record_offset: pos as u64,
                            },
                        );
                        next_lsn += 1;
                        last_ts = rec.timestamp_micros;
                        pos += rec.encoded_len;
                        continue;
                    }
                    Err(e) => e.to_string(),
                };
                if !is_last || later_record_exists(&buf[pos + 1..], next_lsn, header.version) {
                    return Err(corrupt(pos as u64, failure));
                }
                let cut = (buf.len() - pos) as u64;
                tracing::warn!(
                    segment = %path.display(),
                    offset = pos,
                    bytes = cut,
                    reason = %failure,
                    "torn tail in the active log segment: truncating {cut} bytes at offset {pos}"
                );
                file.set_len(pos as u64)
                    .map_err(io_err(format!("truncating {}", path.display())))?;
                file.sync_all()
                    .map_err(io_err(format!("syncing {}", path.display())))?;
                truncated_bytes = cut;
                buf.truncate(pos);
            }
            total_bytes += buf.len() as u64;
            files.insert(SegmentFile {
                seq,
                first_lsn: header.first_lsn,
                path: path.clone(),
                version: header.version,
                file,
            });
        }
        let mut seqs = seqs;
        let listed = files.list();
        if let Some(last) = listed.last()
            && last.version != segment::FORMAT_VERSION
        {
            // One file never mixes formats: an older active segment is sealed as it is (or, while
            // it holds no record, replaced by an empty one of this format) and writing goes on in
            // a new one.
            let empty = buf.len() == HEADER_LEN;
            let header = SegmentHeader::new(if empty { last.seq } else { last.seq + 1 }, next_lsn);
            if !empty {
                last.file
                    .sync_all()
                    .map_err(io_err(format!("syncing {}", last.path.display())))?;
                total_bytes += HEADER_LEN as u64;
                seqs.push(header.seq);
            }
            let (_, path) = segment::create(&*storage, dir, header).map_err(io_err(format!(
                "starting a format {} segment in {}",
                segment::FORMAT_VERSION,
                dir.display()
            )))?;
            let read = storage
                .open(&path, OpenMode::Read)
                .map_err(io_err(format!("opening {}", path.display())))?;
            tracing::info!(
                segment = header.seq,
                old_format = last.version,
                "the active log segment was in an older format: writing on in a new segment"
            );
            files.insert(SegmentFile {
                seq: header.seq,
                first_lsn: next_lsn,
                path,
                version: segment::FORMAT_VERSION,
                file: read,
            });
            buf.truncate(HEADER_LEN);
        }
        let active_first_lsn = files.list().last().map_or(1, |s| s.first_lsn);
        let (active, active_seq, active_len) = match seqs.last() {
            Some(&seq) => {
                let path = dir.join(segment::file_name(seq));
                let file = storage
                    .open(&path, OpenMode::Append)
                    .map_err(io_err(format!("opening {}", path.display())))?;
                (file, seq, buf.len() as u64)
            }
            None => {
                let header = SegmentHeader::new(1, 1);
                let (file, path) = segment::create(&*storage, dir, header).map_err(io_err(
                    format!("creating the first segment in {}", dir.display()),
                ))?;
                let read = storage
                    .open(&path, OpenMode::Read)
                    .map_err(io_err(format!("opening {}", path.display())))?;
                files.insert(SegmentFile {
                    seq: 1,
                    first_lsn: 1,
                    path,
                    version: segment::FORMAT_VERSION,
                    file: read,
                });
                total_bytes = HEADER_LEN as u64;
                (file, 1, HEADER_LEN as u64)
            }
        };
        let report = RecoveryReport {
            next_lsn,
            last_timestamp_micros: last_ts,
            truncated_bytes,
            segments: seqs.len().max(1),
        };
        let wal = Wal {
            storage,
            dir: dir.to_path_buf(),
            active,
            active_seq,
            active_first_lsn,
            active_len,
            segment_size,
            total_bytes,
            files,
            faults: None,
        };
        Ok((wal, report))
    }

    /// The shared handles readers use.
    pub fn files(&self) -> Arc<SegmentFiles> {
        Arc::clone(&self.files)
    }

    /// Sequence number and current length of the active segment: where the next append lands.
    pub fn position(&self) -> (u64, u64) {
        (self.active_seq, self.active_len)
    }

    /// LSN of the first record of the active segment (the next LSN while it is empty).
    pub fn first_lsn_of_active(&self) -> u64 {
        self.active_first_lsn
    }

    /// Bytes in all segments.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Whether `additional` more bytes would overflow the active segment (an empty one takes anything).
    pub fn needs_roll(&self, additional: usize) -> bool {
        self.active_len > HEADER_LEN as u64
            && self.active_len + additional as u64 > self.segment_size
    }

    /// Arms fault injection on this writer (tests only).
    pub fn set_faults(&mut self, faults: Option<Arc<faults::Faults>>) {
        self.faults = faults;
    }

    /// Appends bytes to the active segment in one write.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(n) = self.faults.as_ref().and_then(|f| f.take_short_write()) {
            self.active.append(&bytes[..n.min(bytes.len())])?;
            return Err(io::Error::other("injected short write"));
        }
        self.active.append(bytes)?;
        self.active_len += bytes.len() as u64;
        self.total_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(e) = self.faults.as_ref().and_then(|f| f.take_sync_failure()) {
            return Err(e);
        }
        self.active.sync_data()
    }

    /// A shared handle on the active segment, for fsyncing it from another thread.
    pub fn active_handle(&self) -> Arc<dyn StorageFile> {
        Arc::clone(&self.active)
    }

    /// Seals the active segment (fsync) and starts segment `seq + 1` whose first record is `first_lsn`.
    pub fn roll(&mut self, first_lsn: u64) -> io::Result<()> {
        self.active.sync_data()?;
        let header = SegmentHeader::new(self.active_seq + 1, first_lsn);
        let (file, path) = segment::create(&*self.storage, &self.dir, header)?;
        let read = self.storage.open(&path, OpenMode::Read)?;
        self.files.insert(SegmentFile {
            seq: header.seq,
            first_lsn,
            path,
            version: header.version,
            file: read,
        });
        tracing::debug!(sealed = self.active_seq, "log segment sealed");
        self.active = file;
        self.active_seq = header.seq;
        self.active_first_lsn = first_lsn;
        self.active_len = HEADER_LEN as u64;
        self.total_bytes += HEADER_LEN as u64;
        Ok(())
    }
}

/// Lists segment sequence numbers in `dir`, removing leftovers of interrupted segment creation.
fn list_segments(storage: &dyn Storage, dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut seqs = Vec::new();
    let names = storage
        .list_dir(dir)
        .map_err(io_err(format!("listing {}", dir.display())))?;
    let mut removed = false;
    for name in names {
        if name.ends_with(".wal.tmp") {
            // A segment whose creation was interrupted never held a record.
            let path = dir.join(&name);
            storage
                .remove_file(&path)
                .map_err(io_err(format!("removing {}", path.display())))?;
            removed = true;
        } else if let Some(seq) = segment::parse_file_name(&name) {
            seqs.push(seq);
        }
    }
    if removed {
        // Harmless if lost (the next start removes it again), but a log left with changes no
        // fsync covers would keep its directory dirty until the next roll.
        storage
            .sync_dir(dir)
            .map_err(io_err(format!("syncing {}", dir.display())))?;
    }
    seqs.sort_unstable();
    for pair in seqs.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(WalError::Corrupt {
                segment: dir.join(segment::file_name(pair[0] + 1)),
                offset: 0,
                reason: "segment is missing from the log".into(),
            });
        }
    }
    if let Some(&first) = seqs.first()
        && first != 1
    {
        return Err(WalError::Corrupt {
            segment: dir.join(segment::file_name(1)),
            offset: 0,
            reason: "the first segment is missing (archived logs are restored with `restore`)"
                .into(),
        });
    }
    Ok(seqs)
}

/// Whether a valid record with an LSN at or after `lsn` starts anywhere in `rest`.
///
/// A torn write can only damage the end of the log, so finding an intact later record means the
/// damage is in the middle: data after it was acknowledged and must not be cut off silently.
fn later_record_exists(rest: &[u8], lsn: u64, version: u32) -> bool {
    (0..rest.len()).any(|at| {
        let tail = &rest[at..];
        // Cheap filters first so a long run of garbage does not cost a checksum per byte.
        tail.len() >= record::FRAME_HEADER_LEN + record::BODY_HEADER_LEN
            && (lsn..lsn + (1 << 20)).contains(&record::read_u64(tail, record::FRAME_HEADER_LEN))
            && !matches!(
                record::decode_version(tail, version),
                Err(DecodeError::Checksum { .. }
                    | DecodeError::Malformed(_)
                    | DecodeError::Truncated { .. })
            )
    })
}
