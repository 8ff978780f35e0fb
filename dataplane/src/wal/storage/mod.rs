//! The storage seam under the log: every file and directory operation the store makes on its
//! data directory goes through [`Storage`], so the same store runs on real files, in memory
//! (the browser build, tests) or on a simulated disk that drops what was never fsynced.
//!
//! The trait is deliberately small and explicit about durability: writes, file fsyncs,
//! directory fsyncs, creations, renames and removals are each one call, so an implementation
//! can record exactly what a power loss would keep.

mod file;
mod memory;
pub mod sim;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub use file::FileStorage;
pub use memory::MemoryStorage;
pub use sim::SimStorage;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Positional reads only; the file must exist.
    Read,
    /// Reads, appends and truncation of an existing file.
    ReadWrite,
    /// Appends at the end of an existing file (and positional reads).
    Append,
    /// Creates the file, or empties it when it exists, for writing.
    CreateTruncate,
}

/// A directory of files the store reads and writes: real ones, memory, or a simulation.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents when missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Creates `dir` and its missing parents so that they survive a power loss: like a file's
    /// creation, a new directory is durable only once the directory holding it is fsynced, and
    /// without that a restart may find the data directory without its log.
    fn create_dir_all_durable(&self, dir: &Path) -> io::Result<()> {
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && self.list_dir(d).is_err())
            .collect();
        self.create_dir_all(dir)?;
        for created in missing.into_iter().rev() {
            self.sync_dir(created.parent().unwrap_or(Path::new("")))?;
        }
        Ok(())
    }

    /// Names of the entries directly in `dir` (files and directories), in no order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Opens `path` as `mode` says; creating a file is an entry in its directory that is durable
    /// only after [`Storage::sync_dir`].
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;

    /// Renames `from` to `to` within one directory, durable only after [`Storage::sync_dir`]
    /// of it: a file (replacing `to`), or a directory with everything in it (`to` must not
    /// exist).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the empty directory `dir`, durable only after [`Storage::sync_dir`] of its parent.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;

    /// Removes `dir` and everything in it (durable as [`Storage::remove_dir`] is).
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        for name in self.list_dir(dir)? {
            let path = dir.join(name);
            if self.list_dir(&path).is_ok() {
                self.remove_dir_all(&path)?;
            } else {
                self.remove_file(&path)?;
            }
        }
        self.remove_dir(dir)
    }

    /// Removes the file `path`, durable only after [`Storage::sync_dir`].
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Makes creations, renames and removals of entries in `dir` durable (`""`: the working
    /// directory, which holds a relative path's first component).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes the exclusive lock `path` for as long as the guard lives; [`LockError::Held`] at
    /// once when someone else holds it.
    fn lock(&self, path: &Path) -> Result<LockGuard, LockError>;

    /// Whether paths name real operating-system files: parts that need them (tantivy's text
    /// indexes, the archiver) only run then.
    fn is_os_files(&self) -> bool;
}

/// One open file of a [`Storage`]; shared between the writer, the fsync thread and readers,
/// so every method takes `&self` (reads are positional).
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file (0 there).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Reads like [`read_at`](Self::read_at) only when that needs no wait for a disk (the bytes
    /// are in memory or the page cache); `WouldBlock` otherwise, and by default (storage that
    /// cannot tell), so callers on an async worker fall back to a thread that may block.
    fn read_at_nowait(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let _ = (buf, offset);
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Appends all of `bytes` at the end of the file (not durable until a sync).
    fn append(&self, bytes: &[u8]) -> io::Result<()>;

    /// The file's current length.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Cuts the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`, failing with `UnexpectedEof` past the end.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        read_exact_with(buf, offset, |buf, offset| self.read_at(buf, offset))
    }

    /// [`read_exact_at`](Self::read_exact_at) without waiting for a disk: `WouldBlock` when any
    /// part of the range is not in memory (see [`read_at_nowait`](Self::read_at_nowait)).
    fn read_exact_at_nowait(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        read_exact_with(buf, offset, |buf, offset| self.read_at_nowait(buf, offset))
    }

    /// Reads the whole file.
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len()?).map_err(io::Error::other)?;
        let mut buf = vec![0; len];
        let mut filled = 0;
        // The file may shrink under us only if another writer truncates it, which the store never does.
        while filled < len {
            match self.read_at(&mut buf[filled..], filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it.
    #[error("the lock is held by another user")]
    Held,
    /// The lock file could not be opened or locked.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Holds a [`Storage::lock`] until dropped.
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send + Sync>);

impl LockGuard {
    /// A guard releasing whatever `held` releases when dropped.
    pub fn new(held: impl Send + Sync + 'static) -> LockGuard {
        LockGuard(Box::new(held))
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

/// Locks kept in memory, for storages without a file system (a set of held paths).
#[derive(Debug, Clone, Default)]
struct MemoryLocks(Arc<parking_lot::Mutex<std::collections::BTreeSet<std::path::PathBuf>>>);

impl MemoryLocks {
    /// Takes `path` until the guard drops; [`LockError::Held`] while another guard holds it.
    fn take(&self, path: &Path) -> Result<LockGuard, LockError> {
        if !self.0.lock().insert(path.to_path_buf()) {
            return Err(LockError::Held);
        }
        Ok(LockGuard::new(MemoryUnlock {
            locks: self.clone(),
            path: path.to_path_buf(),
        }))
    }
}

/// Releases a [`MemoryLocks`] lock when dropped.
struct MemoryUnlock {
    locks: MemoryLocks,
    path: std::path::PathBuf,
}

impl Drop for MemoryUnlock {
    fn drop(&mut self) {
        self.locks.0.lock().remove(&self.path);
    }
}

/// Copies what `data` holds at `offset` into `buf`: a positional read of bytes in memory.
fn read_slice(data: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

/// A sequential reader over a [`StorageFile`] with its own position, for `BufReader`.
#[derive(Debug)]
pub struct FileCursor {
    file: Arc<dyn StorageFile>,
    pos: u64,
}

impl FileCursor {
    /// Starts reading `file` at `pos`.
    pub fn new(file: Arc<dyn StorageFile>, pos: u64) -> FileCursor {
        FileCursor { file, pos }
    }
}

impl io::Read for FileCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Fills `buf` from `offset` with repeated positional reads (short reads are allowed anywhere),
/// failing with `UnexpectedEof` past the end.
fn read_exact_with(
    mut buf: &mut [u8],
    mut offset: u64,
    mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
