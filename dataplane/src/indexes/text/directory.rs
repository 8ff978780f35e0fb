//! The text indexes' tantivy directory: tantivy's mmap'd reads, and writes without fsync.
//!
//! A text index is derived data that the log rebuilds, so it needs no durability of its own:
//! tantivy's directory fsyncs every new segment file and the directory on each commit, which
//! took about 70 ms per commit here, most of the delay before a write is searchable. A process
//! crash loses nothing (the page cache survives); after a power failure, a file missing its end
//! fails its checksum when the index is opened, and the index is rebuilt from the log.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, TerminatingWrite,
    WatchCallback, WatchHandle, WritePtr,
};

/// An [`MmapDirectory`] whose writes are not fsynced.
#[derive(Debug, Clone)]
pub(crate) struct UnsyncedDirectory {
    inner: MmapDirectory,
    root: PathBuf,
}

impl UnsyncedDirectory {
    /// The directory at `root`, which must exist.
    pub fn open(root: &Path) -> tantivy::Result<UnsyncedDirectory> {
        let inner = MmapDirectory::open(root)
            .map_err(|e| tantivy::TantivyError::InvalidArgument(e.to_string()))?;
        Ok(UnsyncedDirectory {
            inner,
            root: root.to_path_buf(),
        })
    }
}

/// A file written without a final fsync.
struct UnsyncedFile(File);

impl Write for UnsyncedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl TerminatingWrite for UnsyncedFile {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        self.0.flush()
    }
}

impl Directory for UnsyncedDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.root.join(path))
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    OpenWriteError::FileAlreadyExists(path.to_path_buf())
                } else {
                    OpenWriteError::wrap_io_error(e, path.to_path_buf())
                }
            })?;
        Ok(BufWriter::new(Box::new(UnsyncedFile(file))))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        // Written aside and renamed over: readers see the old file or the new one, whole.
        let target = self.root.join(path);
        let mut aside = target.clone().into_os_string();
        aside.push(".koru-tmp");
        let aside = PathBuf::from(aside);
        std::fs::write(&aside, data)?;
        std::fs::rename(&aside, &target)
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}
