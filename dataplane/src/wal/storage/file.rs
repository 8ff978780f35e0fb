//! [`Storage`] on the operating system's files: what the server runs on.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::{LockError, LockGuard, OpenMode, Storage, StorageFile};

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileStorage;

impl Storage for FileStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        fs::read_dir(dir)?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::Append => options.read(true).append(true),
            OpenMode::CreateTruncate => options.write(true).create(true).truncate(true),
        };
        Ok(Arc::new(OsFile(options.open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> Result<LockGuard, LockError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // An flock: the OS releases it when the process dies, however it dies.
        match file.try_lock() {
            Ok(()) => Ok(LockGuard::new(file)),
            Err(fs::TryLockError::WouldBlock) => Err(LockError::Held),
            Err(fs::TryLockError::Error(e)) => Err(LockError::Io(e)),
        }
    }

    fn is_os_files(&self) -> bool {
        true
    }
}

/// An open operating-system file.
#[derive(Debug)]
struct OsFile(File);

impl StorageFile for OsFile {
    #[cfg(unix)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
    }

    #[cfg(not(unix))]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let _ = (buf, offset);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "positional reads need a Unix system",
        ))
    }

    #[cfg(target_os = "linux")]
    fn read_at_nowait(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use rustix::io::{Errno, ReadWriteFlags, preadv2};
        match preadv2(
            &self.0,
            &mut [io::IoSliceMut::new(buf)],
            offset,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(n) => Ok(n),
            // Not cached, or a file system (or kernel) without RWF_NOWAIT: the caller's
            // blocking path reads it.
            Err(e) if e == Errno::AGAIN || e == Errno::OPNOTSUPP || e == Errno::NOSYS => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.0).write_all(bytes)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}
