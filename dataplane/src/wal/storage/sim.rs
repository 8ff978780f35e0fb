//! [`Storage`] on a simulated disk that knows what was made durable, so tests can cut the power.
//!
//! Every file keeps the bytes its last fsync made durable and the writes since; every directory
//! keeps the entries its last directory fsync made durable and the changes since. A power loss
//! ([`SimStorage::power_loss`]) builds a new disk from what a real one may hold afterwards: the
//! durable state, plus a prefix of each file's later writes (the last one possibly cut short or
//! its last sector torn) and a prefix of each directory's later entry changes. The choices come
//! from the caller's `pick`, so a seed reproduces them. [`SimStorage::fail_after`] cuts the power
//! in the middle of the store's work: that call and every later one fail, as in a machine that
//! stopped there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::{LockError, LockGuard, MemoryLocks, OpenMode, Storage, StorageFile, read_slice};

/// The unit a disk writes atomically: a torn write damages at most the last one it touched.
pub const SECTOR: usize = 512;

/// A simulated disk; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    disk: Arc<Mutex<Disk>>,
    /// Locks are the running process's, not the disk's: a power loss releases them.
    locks: MemoryLocks,
}

/// Chooses a number in `0..n` (`n` ≥ 1): the seeded source of a power loss's outcome.
pub type Pick<'a> = &'a mut dyn FnMut(u64) -> u64;

#[derive(Debug, Default, Clone)]
struct Disk {
    /// Every directory that exists now, by its path now; the roots ("/" and "") always do.
    dirs: BTreeMap<PathBuf, Dir>,
    /// Directories removed since they were created, by id: a power loss may bring them back.
    removed_dirs: HashMap<u64, Dir>,
    /// File contents by inode.
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Calls that change the disk so far.
    calls: u64,
    /// The call at which the power goes (counted like `calls`).
    fail_at: Option<u64>,
    /// The disk as the power left it, once it went.
    lost: Option<Box<Disk>>,
}

#[derive(Debug, Default, Clone)]
struct Dir {
    /// What its parent's entry names (0 for a root): a rename moves the directory, not its id.
    id: u64,
    now: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
    /// Entry changes since the last directory fsync; each group is atomic (a rename).
    pending: Vec<Vec<(String, Option<Node>)>>,
    /// The call and time of the oldest of them.
    since: Option<(u64, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    /// A directory, by its [`Dir::id`].
    Dir(u64),
}

#[derive(Debug, Default, Clone)]
struct Inode {
    now: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last fsync, in order.
    pending: Vec<Write>,
    /// The call and time of the oldest of them.
    since: Option<(u64, Instant)>,
}

#[derive(Debug, Clone)]
enum Write {
    Append(Vec<u8>),
    SetLen(usize),
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn power_lost() -> io::Error {
    io::Error::other("the simulated disk lost power")
}

/// Whether `dir` is a root, which always exists.
fn is_root(dir: &Path) -> bool {
    dir.parent().is_none() || dir.as_os_str().is_empty()
}

/// The directory holding `path` and the name in it.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path without a name"))?;
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((parent, name.to_string_lossy().into_owned()))
}

impl SimStorage {
    /// An empty disk.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    /// Cuts the power at the `calls`-th call from now that changes the disk (1 = the next one):
    /// an append being written then may land in part, a sync then does not complete, and that
    /// call and all later ones fail.
    pub fn fail_after(&self, calls: u64) {
        let mut disk = self.disk.lock();
        disk.fail_at = Some(disk.calls + calls.max(1));
    }

    /// Calls that changed the disk so far (appends, syncs, creations, renames, removals).
    pub fn calls(&self) -> u64 {
        self.disk.lock().calls
    }

    /// The call and time of the oldest change not yet made durable by an fsync (of its file or
    /// directory), on the disk as it stands or as the power left it; None when all are. Every
    /// change of an earlier call survives any power loss.
    pub fn oldest_unsynced(&self) -> Option<(u64, Instant)> {
        let disk = self.disk.lock();
        let disk = disk.lost.as_deref().unwrap_or(&*disk);
        let files = disk
            .dirs
            .values()
            .flat_map(|d| d.now.values())
            .filter_map(|n| match n {
                Node::File(ino) => disk.inodes[ino].since,
                Node::Dir(_) => None,
            });
        let dirs = disk.dirs.values().filter_map(|d| d.since);
        files.chain(dirs).min_by_key(|(call, _)| *call)
    }

    /// Cuts the power now, unless it is already gone: later calls fail, and
    /// [`power_loss`](Self::power_loss) works from the disk as it stands.
    pub fn power_off(&self) {
        let mut disk = self.disk.lock();
        if disk.lost.is_none() {
            disk.cut();
        }
    }

    /// Whether the power has gone.
    pub fn is_dead(&self) -> bool {
        self.disk.lock().lost.is_some()
    }

    /// The disk a restart finds after a power loss now (or where [`fail_after`](Self::fail_after)
    /// cut it): what was durable, and what `pick` chooses of the rest.
    pub fn power_loss(&self, pick: Pick<'_>) -> SimStorage {
        let disk = self.disk.lock();
        let at_loss = disk.lost.as_deref().unwrap_or(&*disk);
        SimStorage {
            disk: Arc::new(Mutex::new(at_loss.survivor(pick))),
            locks: MemoryLocks::default(),
        }
    }

    /// Bytes in the file `path` now (tests).
    pub fn file_len(&self, path: &Path) -> Option<usize> {
        let disk = self.disk.lock();
        let ino = disk.file_at(path).ok()?;
        Some(disk.inodes[&ino].now.len())
    }
}

impl Disk {
    /// Counts a call that changes the disk: Err once the power is gone, Ok(true) when it goes
    /// with this call (which may then only leave pending changes), Ok(false) otherwise.
    fn tick(&mut self) -> io::Result<bool> {
        if self.lost.is_some() {
            return Err(power_lost());
        }
        self.calls += 1;
        Ok(self.fail_at == Some(self.calls))
    }

    /// Cuts the power now: the disk as it stands is what a power loss works from.
    fn cut(&mut self) -> io::Error {
        let mut frozen = self.clone();
        frozen.lost = None;
        self.lost = Some(Box::new(frozen));
        power_lost()
    }

    fn check_alive(&self) -> io::Result<()> {
        if self.lost.is_some() {
            Err(power_lost())
        } else {
            Ok(())
        }
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        is_root(dir) || self.dirs.contains_key(dir)
    }

    fn file_at(&self, path: &Path) -> io::Result<u64> {
        let (parent, name) = split(path)?;
        match self.dirs.get(&parent).and_then(|d| d.now.get(&name)) {
            Some(Node::File(ino)) => Ok(*ino),
            Some(Node::Dir(_)) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    /// Records a change of `parent`'s entries (pending until its directory fsync).
    fn change_entries(&mut self, parent: &Path, changes: Vec<(String, Option<Node>)>) {
        if is_root(parent) {
            // Roots stand for the volume's mount point: their own entries are always durable.
            let dir = self.dirs.entry(parent.to_path_buf()).or_default();
            for (name, node) in changes {
                apply_entry(&mut dir.now, &name, node);
                apply_entry(&mut dir.durable, &name, node);
            }
            return;
        }
        let calls = self.calls;
        let dir = self.dirs.get_mut(parent).expect("parent checked");
        for (name, node) in &changes {
            apply_entry(&mut dir.now, name, *node);
        }
        dir.since.get_or_insert((calls, Instant::now()));
        dir.pending.push(changes);
    }

    /// The disk after a power loss: durable state plus what `pick` keeps of the pending state.
    fn survivor(&self, pick: Pick<'_>) -> Disk {
        // Each directory's entries, by id: durable ones plus a prefix of the later changes.
        let mut kept_entries: HashMap<u64, BTreeMap<String, Node>> = HashMap::new();
        let mut roots = Vec::new();
        let all = self.dirs.iter().map(|(p, d)| (Some(p), d));
        for (path, dir) in all.chain(self.removed_dirs.values().map(|d| (None, d))) {
            let mut entries = dir.durable.clone();
            let keep = choose(pick, dir.pending.len() + 1);
            for group in &dir.pending[..keep] {
                for (name, node) in group {
                    apply_entry(&mut entries, name, *node);
                }
            }
            match path {
                Some(path) if is_root(path) => roots.push((path.clone(), entries)),
                _ => {
                    kept_entries.insert(dir.id, entries);
                }
            }
        }
        // Only what is reachable from a root through kept entries exists afterwards.
        let mut out = Disk::default();
        let mut queue: Vec<(PathBuf, u64, BTreeMap<String, Node>)> = roots
            .into_iter()
            .map(|(path, entries)| (path, 0, entries))
            .collect();
        let mut inodes = BTreeSet::new();
        while let Some((path, id, entries)) = queue.pop() {
            for (name, node) in &entries {
                match node {
                    Node::Dir(child) => {
                        let child_entries = kept_entries.get(child).cloned().unwrap_or_default();
                        queue.push((path.join(name), *child, child_entries));
                    }
                    Node::File(ino) => {
                        inodes.insert(*ino);
                    }
                }
            }
            out.dirs.insert(
                path,
                Dir {
                    id,
                    now: entries.clone(),
                    durable: entries,
                    ..Dir::default()
                },
            );
        }
        for ino in inodes {
            let bytes = self.inodes[&ino].survivor(&mut *pick);
            out.inodes.insert(
                ino,
                Inode {
                    now: bytes.clone(),
                    durable: bytes,
                    ..Inode::default()
                },
            );
        }
        out.next_inode = self.next_inode;
        out
    }

    /// A new id for a file or directory.
    fn next_id(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }
}

/// A number in `0..n` from `pick`, which is only asked when there is a choice.
fn choose(pick: Pick<'_>, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    // `pick` promises a number below n; a careless one cannot make the model index out of range.
    (pick(n as u64) as usize).min(n - 1)
}

fn apply_entry(entries: &mut BTreeMap<String, Node>, name: &str, node: Option<Node>) {
    match node {
        Some(node) => {
            entries.insert(name.to_owned(), node);
        }
        None => {
            entries.remove(name);
        }
    }
}

impl Inode {
    /// Records a write not yet durable, made by call `call`.
    fn write(&mut self, write: Write, call: u64) {
        Inode::apply(&mut self.now, &write);
        self.since.get_or_insert((call, Instant::now()));
        self.pending.push(write);
    }

    fn apply(bytes: &mut Vec<u8>, write: &Write) {
        match write {
            Write::Append(b) => bytes.extend_from_slice(b),
            Write::SetLen(len) => bytes.resize(*len, 0),
        }
    }

    /// The bytes a power loss leaves: the durable ones, the writes after them up to one `pick`
    /// chooses, part of the next append, and perhaps its last sector torn.
    fn survivor(&self, pick: Pick<'_>) -> Vec<u8> {
        let mut bytes = self.durable.clone();
        let whole = choose(pick, self.pending.len() + 1);
        for write in &self.pending[..whole] {
            Inode::apply(&mut bytes, write);
        }
        let Some(Write::Append(next)) = self.pending.get(whole) else {
            return bytes;
        };
        let start = bytes.len();
        let landed = choose(pick, next.len() + 1);
        bytes.extend_from_slice(&next[..landed]);
        // One time in four, the last sector the append reached holds garbage past what landed
        // whole (a sector torn as the power went), never reaching back into earlier writes.
        if landed > 0 && pick(4) == 0 {
            let end = bytes.len();
            let torn_from = ((end - 1) / SECTOR * SECTOR).max(start);
            let torn_end = (torn_from + SECTOR).min(start + next.len());
            bytes.truncate(torn_from);
            let zeros = pick(2) == 0;
            for _ in torn_from..torn_end {
                bytes.push(if zeros { 0 } else { pick(256) as u8 });
            }
        }
        bytes
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !disk.dir_exists(d))
            .map(Path::to_path_buf)
            .collect();
        for d in missing.into_iter().rev() {
            let fails = disk.tick()?;
            let (parent, name) = split(&d)?;
            if let Some(Node::File(_)) = disk.dirs.get(&parent).and_then(|p| p.now.get(&name)) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a file", d.display()),
                ));
            }
            let id = disk.next_id();
            disk.dirs.insert(
                d.clone(),
                Dir {
                    id,
                    ..Dir::default()
                },
            );
            disk.change_entries(&parent, vec![(name, Some(Node::Dir(id)))]);
            if fails {
                return Err(disk.cut());
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.disk.lock();
        disk.check_alive()?;
        match disk.dirs.get(dir) {
            Some(d) => Ok(d.now.keys().cloned().collect()),
            None if is_root(dir) => Ok(Vec::new()),
            None => Err(not_found(dir)),
        }
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut disk = self.disk.lock();
        disk.check_alive()?;
        let ino = if mode == OpenMode::CreateTruncate {
            let (parent, name) = split(path)?;
            if !disk.dir_exists(&parent) {
                return Err(not_found(&parent));
            }
            let fails = disk.tick()?;
            let ino = match disk.file_at(path) {
                Ok(ino) => {
                    let calls = disk.calls;
                    let inode = disk.inodes.get_mut(&ino).expect("entry has an inode");
                    inode.write(Write::SetLen(0), calls);
                    ino
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let ino = disk.next_id();
                    disk.inodes.insert(ino, Inode::default());
                    disk.change_entries(&parent, vec![(name, Some(Node::File(ino)))]);
                    ino
                }
                Err(e) => return Err(e),
            };
            if fails {
                return Err(disk.cut());
            }
            ino
        } else {
            disk.file_at(path)?
        };
        Ok(Arc::new(SimFile {
            disk: Arc::clone(&self.disk),
            ino,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.check_alive()?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let node = match disk.file_at(from) {
            Ok(ino) => Node::File(ino),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
                if disk.dir_exists(to) || disk.file_at(to).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists", to.display()),
                    ));
                }
                Node::Dir(disk.dirs[from].id)
            }
            Err(e) => return Err(e),
        };
        if from_dir != to_dir {
            // Journaling file systems make such renames atomic across directories; the store
            // never needs one, so the model does not pretend to know what survives.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated disk renames within one directory only",
            ));
        }
        let fails = disk.tick()?;
        if let Node::Dir(_) = node {
            // The directory and everything under it are found at the new path from now on.
            let moved: Vec<PathBuf> = disk
                .dirs
                .keys()
                .filter(|p| p.starts_with(from))
                .cloned()
                .collect();
            for old in moved {
                let dir = disk.dirs.remove(&old).expect("listed");
                let rest = old.strip_prefix(from).expect("under from");
                disk.dirs.insert(to.join(rest), dir);
            }
        }
        disk.change_entries(&from_dir, vec![(from_name, None), (to_name, Some(node))]);
        if fails {
            return Err(disk.cut());
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.check_alive()?;
        let Some(d) = disk.dirs.get(dir) else {
            return Err(not_found(dir));
        };
        if is_root(dir) || !d.now.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not an empty directory", dir.display()),
            ));
        }
        let (parent, name) = split(dir)?;
        let fails = disk.tick()?;
        let removed = disk.dirs.remove(dir).expect("checked");
        disk.removed_dirs.insert(removed.id, removed);
        disk.change_entries(&parent, vec![(name, None)]);
        if fails {
            return Err(disk.cut());
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.check_alive()?;
        disk.file_at(path)?;
        let (parent, name) = split(path)?;
        let fails = disk.tick()?;
        disk.change_entries(&parent, vec![(name, None)]);
        if fails {
            return Err(disk.cut());
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.check_alive()?;
        if !disk.dir_exists(dir) {
            return Err(not_found(dir));
        }
        if disk.tick()? {
            return Err(disk.cut());
        }
        if let Some(d) = disk.dirs.get_mut(dir) {
            d.durable = d.now.clone();
            d.pending.clear();
            d.since = None;
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> Result<LockGuard, LockError> {
        {
            let disk = self.disk.lock();
            disk.check_alive()?;
            let (parent, _) = split(path)?;
            if !disk.dir_exists(&parent) {
                return Err(not_found(&parent).into());
            }
        }
        self.locks.take(path)
    }

    fn is_os_files(&self) -> bool {
        false
    }
}

/// An open file of a [`SimStorage`].
#[derive(Debug)]
struct SimFile {
    disk: Arc<Mutex<Disk>>,
    ino: u64,
}

impl SimFile {
    fn sync(&self) -> io::Result<()> {
        let mut disk = self.disk.lock();
        if disk.tick()? {
            return Err(disk.cut());
        }
        let inode = disk.inodes.get_mut(&self.ino).expect("open file");
        inode.durable = inode.now.clone();
        inode.pending.clear();
        inode.since = None;
        Ok(())
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let disk = self.disk.lock();
        disk.check_alive()?;
        Ok(read_slice(&disk.inodes[&self.ino].now, buf, offset))
    }

    fn read_at_nowait(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.read_at(buf, offset)
    }

    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk.lock();
        let fails = disk.tick()?;
        let calls = disk.calls;
        let inode = disk.inodes.get_mut(&self.ino).expect("open file");
        inode.write(Write::Append(bytes.to_vec()), calls);
        if fails {
            return Err(disk.cut());
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let disk = self.disk.lock();
        disk.check_alive()?;
        Ok(disk.inodes[&self.ino].now.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let mut disk = self.disk.lock();
        let fails = disk.tick()?;
        let calls = disk.calls;
        let inode = disk.inodes.get_mut(&self.ino).expect("open file");
        inode.write(Write::SetLen(len), calls);
        if fails {
            return Err(disk.cut());
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Always keeps everything, or always nothing.
    fn all(n: u64) -> u64 {
        n - 1
    }
    fn none(_: u64) -> u64 {
        0
    }

    fn read(storage: &SimStorage, path: &str) -> io::Result<Vec<u8>> {
        storage.open(Path::new(path), OpenMode::Read)?.read_all()
    }

    #[test]
    fn only_what_was_synced_survives_when_nothing_else_lands() {
        let disk = SimStorage::new();
        disk.create_dir_all(Path::new("/d")).unwrap();
        disk.sync_dir(Path::new("/")).unwrap();
        let f = disk
            .open(Path::new("/d/a"), OpenMode::CreateTruncate)
            .unwrap();
        f.append(b"durable").unwrap();
        f.sync_data().unwrap();
        f.append(b" and not").unwrap();
        // The file's entry was never made durable: nothing of it survives.
        let lost = disk.power_loss(&mut none);
        assert!(read(&lost, "/d/a").is_err());
        disk.sync_dir(Path::new("/d")).unwrap();
        let kept = disk.power_loss(&mut none);
        assert_eq!(read(&kept, "/d/a").unwrap(), b"durable");
        let everything = disk.power_loss(&mut all);
        assert_eq!(read(&everything, "/d/a").unwrap(), b"durable and not");
    }

    #[test]
    fn a_directory_not_made_durable_in_its_parent_vanishes_with_its_files() {
        let disk = SimStorage::new();
        disk.create_dir_all(Path::new("/data/wal")).unwrap();
        let f = disk
            .open(Path::new("/data/wal/s"), OpenMode::CreateTruncate)
            .unwrap();
        f.append(b"x").unwrap();
        f.sync_all().unwrap();
        disk.sync_dir(Path::new("/data/wal")).unwrap();
        let lost = disk.power_loss(&mut none);
        assert!(lost.list_dir(Path::new("/data/wal")).is_err());
        disk.sync_dir(Path::new("/data")).unwrap();
        let kept = disk.power_loss(&mut none);
        assert_eq!(read(&kept, "/data/wal/s").unwrap(), b"x");
    }

    #[test]
    fn a_rename_survives_whole_or_not_at_all() {
        let disk = SimStorage::new();
        disk.create_dir_all(Path::new("/d")).unwrap();
        let f = disk
            .open(Path::new("/d/t.tmp"), OpenMode::CreateTruncate)
            .unwrap();
        f.append(b"h").unwrap();
        f.sync_all().unwrap();
        disk.sync_dir(Path::new("/d")).unwrap();
        disk.rename(Path::new("/d/t.tmp"), Path::new("/d/t"))
            .unwrap();
        let before = disk.power_loss(&mut none);
        assert_eq!(before.list_dir(Path::new("/d")).unwrap(), vec!["t.tmp"]);
        let after = disk.power_loss(&mut all);
        assert_eq!(after.list_dir(Path::new("/d")).unwrap(), vec!["t"]);
    }

    #[test]
    fn a_directory_rename_survives_whole_with_its_files_or_not_at_all() {
        let disk = SimStorage::new();
        disk.create_dir_all_durable(Path::new("/p/.d.tmp/wal"))
            .unwrap();
        let f = disk
            .open(Path::new("/p/.d.tmp/wal/s"), OpenMode::CreateTruncate)
            .unwrap();
        f.append(b"seg").unwrap();
        f.sync_all().unwrap();
        disk.sync_dir(Path::new("/p/.d.tmp/wal")).unwrap();
        disk.rename(Path::new("/p/.d.tmp"), Path::new("/p/d"))
            .unwrap();
        assert_eq!(read(&disk, "/p/d/wal/s").unwrap(), b"seg");
        assert!(disk.list_dir(Path::new("/p/.d.tmp")).is_err());
        let before = disk.power_loss(&mut none);
        assert_eq!(before.list_dir(Path::new("/p")).unwrap(), vec![".d.tmp"]);
        assert_eq!(read(&before, "/p/.d.tmp/wal/s").unwrap(), b"seg");
        let after = disk.power_loss(&mut all);
        assert_eq!(after.list_dir(Path::new("/p")).unwrap(), vec!["d"]);
        assert_eq!(read(&after, "/p/d/wal/s").unwrap(), b"seg");
        // A removal not made durable may be undone, with what the directory held durably.
        disk.remove_file(Path::new("/p/d/wal/s")).unwrap();
        assert!(disk.remove_dir(Path::new("/p/d")).is_err(), "not empty");
        disk.remove_dir(Path::new("/p/d/wal")).unwrap();
        let undone = disk.power_loss(&mut none);
        assert_eq!(read(&undone, "/p/.d.tmp/wal/s").unwrap(), b"seg");
        disk.sync_dir(Path::new("/p/d")).unwrap();
        disk.sync_dir(Path::new("/p")).unwrap();
        let done = disk.power_loss(&mut none);
        assert!(done.list_dir(Path::new("/p/d")).unwrap().is_empty());
    }

    #[test]
    fn a_torn_sector_never_reaches_back_into_synced_bytes() {
        let disk = SimStorage::new();
        let f = disk
            .open(Path::new("/f"), OpenMode::CreateTruncate)
            .unwrap();
        f.append(&[7; 700]).unwrap();
        f.sync_data().unwrap();
        f.append(&[9; 1000]).unwrap();
        // Keep no whole write, 400 bytes of the next, and tear with random bytes.
        let mut choices = vec![0, 400, 0, 1].into_iter();
        let mut pick = |_: u64| choices.next().unwrap_or(3);
        let torn = disk.power_loss(&mut pick);
        let bytes = read(&torn, "/f").unwrap();
        assert_eq!(&bytes[..700], &[7; 700][..]);
        // The append's last sector (bytes 1024..1100 of the file) reached its end: garbage there.
        assert_eq!(bytes.len(), 1024 + 512);
        assert_eq!(&bytes[700..1024], &[9; 324][..]);
    }

    #[test]
    fn after_the_cut_every_call_fails_and_the_image_is_from_the_cut() {
        let disk = SimStorage::new();
        let f = disk
            .open(Path::new("/f"), OpenMode::CreateTruncate)
            .unwrap();
        f.append(b"one").unwrap();
        f.sync_data().unwrap();
        disk.fail_after(2);
        f.append(b"two").unwrap();
        assert!(f.sync_data().is_err(), "the power went on the sync");
        assert!(f.append(b"three").is_err());
        assert!(disk.is_dead());
        let image = disk.power_loss(&mut all);
        assert_eq!(read(&image, "/f").unwrap(), b"onetwo");
        assert_eq!(
            disk.power_loss(&mut none).file_len(Path::new("/f")),
            Some(3)
        );
    }
}
