//! [`Storage`] in memory: a volume that lives as long as any clone of it, so a store closed and
//! opened again on the same volume sees what it wrote (a restart), with no file system at all.
//! What the browser build runs on, and what tests use for speed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{LockError, LockGuard, MemoryLocks, OpenMode, Storage, StorageFile, read_slice};

/// A memory volume; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    volume: Arc<Mutex<Volume>>,
    locks: MemoryLocks,
}

#[derive(Debug, Default)]
struct Volume {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, Arc<MemFile>>,
}

impl MemoryStorage {
    /// An empty volume.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Bytes held in all files (for tests and the browser's figures).
    pub fn used_bytes(&self) -> u64 {
        let volume = self.volume.lock();
        volume
            .files
            .values()
            .map(|f| f.data.read().len() as u64)
            .sum()
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

impl Volume {
    /// Fails unless the directory holding `path` exists (a root-less relative path is in ".").
    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() && !self.dirs.contains(p) => Err(not_found(p)),
            _ => Ok(()),
        }
    }
}

impl Storage for MemoryStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut volume = self.volume.lock();
        for d in dir.ancestors().filter(|d| !d.as_os_str().is_empty()) {
            if volume.files.contains_key(d) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a file", d.display()),
                ));
            }
            volume.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let volume = self.volume.lock();
        if !volume.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &&PathBuf| p.parent() == Some(dir);
        let name = |p: &PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let files = volume.files.keys().filter(in_dir).map(name);
        let dirs = volume.dirs.iter().filter(in_dir).map(name);
        Ok(files.chain(dirs).collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut volume = self.volume.lock();
        if mode == OpenMode::CreateTruncate {
            volume.check_parent(path)?;
            if volume.dirs.contains(path) {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a directory", path.display()),
                ));
            }
            let file = volume
                .files
                .entry(path.to_path_buf())
                .or_insert_with(|| Arc::new(MemFile::default()));
            file.data.write().clear();
            return Ok(Arc::clone(file) as Arc<dyn StorageFile>);
        }
        let file = volume.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(Arc::clone(file) as Arc<dyn StorageFile>)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut volume = self.volume.lock();
        volume.check_parent(to)?;
        if volume.dirs.contains(from) {
            if volume.dirs.contains(to) || volume.files.contains_key(to) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", to.display()),
                ));
            }
            let moved = |p: &PathBuf| to.join(p.strip_prefix(from).unwrap_or(p));
            let dirs: Vec<PathBuf> = volume
                .dirs
                .iter()
                .filter(|p| p.starts_with(from))
                .cloned()
                .collect();
            for d in dirs {
                volume.dirs.remove(&d);
                volume.dirs.insert(moved(&d));
            }
            let files: Vec<PathBuf> = volume
                .files
                .keys()
                .filter(|p| p.starts_with(from))
                .cloned()
                .collect();
            for f in files {
                let file = volume.files.remove(&f).expect("listed");
                volume.files.insert(moved(&f), file);
            }
            return Ok(());
        }
        let file = volume.files.remove(from).ok_or_else(|| not_found(from))?;
        volume.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut volume = self.volume.lock();
        if !volume.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let inside = |p: &Path| p.parent() == Some(dir);
        if volume.files.keys().any(|p| inside(p)) || volume.dirs.iter().any(|p| inside(p)) {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not an empty directory", dir.display()),
            ));
        }
        volume.dirs.remove(dir);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut volume = self.volume.lock();
        volume
            .files
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // Memory is as durable as it gets: there is nothing to flush.
        if dir.as_os_str().is_empty() || self.volume.lock().dirs.contains(dir) {
            Ok(())
        } else {
            Err(not_found(dir))
        }
    }

    fn lock(&self, path: &Path) -> Result<LockGuard, LockError> {
        self.volume.lock().check_parent(path)?;
        self.locks.take(path)
    }

    fn is_os_files(&self) -> bool {
        false
    }
}

/// One file's bytes.
#[derive(Debug, Default)]
struct MemFile {
    data: RwLock<Vec<u8>>,
}

impl StorageFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(read_slice(&self.data.read(), buf, offset))
    }

    fn read_at_nowait(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // Memory never waits for a disk.
        self.read_at(buf, offset)
    }

    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        self.data.write().extend_from_slice(bytes);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.data.read().len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.data.write().resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
}
