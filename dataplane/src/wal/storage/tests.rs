//! The file and memory storages behave alike on what the log does with them.

use std::path::Path;

use super::*;

/// Creates, appends, reads, renames, lists and removes through `storage` under `root`.
fn exercise(storage: &dyn Storage, root: &Path) {
    let dir = root.join("wal");
    storage.create_dir_all(&dir).unwrap();
    let tmp = dir.join("a.tmp");
    let f = storage.open(&tmp, OpenMode::CreateTruncate).unwrap();
    f.append(b"hello ").unwrap();
    f.sync_all().unwrap();
    drop(f);
    storage.rename(&tmp, &dir.join("a")).unwrap();
    storage.sync_dir(&dir).unwrap();
    let a = storage.open(&dir.join("a"), OpenMode::Append).unwrap();
    a.append(b"world").unwrap();
    a.sync_data().unwrap();
    let r = storage.open(&dir.join("a"), OpenMode::Read).unwrap();
    assert_eq!(r.read_all().unwrap(), b"hello world");
    let mut buf = [0u8; 5];
    r.read_exact_at(&mut buf, 6).unwrap();
    assert_eq!(&buf, b"world");
    assert_eq!(r.read_at(&mut buf, 11).unwrap(), 0);
    assert!(r.read_exact_at(&mut buf, 8).is_err());
    // Just written, so in memory or the page cache: a read that may not wait sees the same bytes
    // (or, on a file system without RWF_NOWAIT, says it would wait, never anything else).
    let mut quick = [0u8; 5];
    match r.read_exact_at_nowait(&mut quick, 6) {
        Ok(()) => assert_eq!(&quick, b"world"),
        Err(e) => {
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            // CI's file system (ext4) has RWF_NOWAIT: there the read must be the one tested.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "a just-written file would block: no RWF_NOWAIT here"
            );
            eprintln!("SKIPPED the no-wait read check: this file system has no RWF_NOWAIT");
        }
    }
    assert!(r.read_exact_at_nowait(&mut quick, 8).is_err());
    let w = storage.open(&dir.join("a"), OpenMode::ReadWrite).unwrap();
    w.set_len(5).unwrap();
    assert_eq!(r.len().unwrap(), 5);
    assert_eq!(storage.list_dir(&dir).unwrap(), vec!["a".to_string()]);
    storage.remove_file(&dir.join("a")).unwrap();
    assert!(storage.list_dir(&dir).unwrap().is_empty());
    assert!(storage.open(&dir.join("a"), OpenMode::Read).is_err());
    assert!(storage.list_dir(&root.join("missing")).is_err());
    // Directories move whole, and only empty ones are removed.
    storage.create_dir_all(&root.join("moving/inner")).unwrap();
    let f = storage
        .open(&root.join("moving/inner/f"), OpenMode::CreateTruncate)
        .unwrap();
    f.append(b"x").unwrap();
    storage
        .rename(&root.join("moving"), &root.join("moved"))
        .unwrap();
    let f = storage
        .open(&root.join("moved/inner/f"), OpenMode::Read)
        .unwrap();
    assert_eq!(f.read_all().unwrap(), b"x");
    assert!(storage.list_dir(&root.join("moving")).is_err());
    assert!(storage.remove_dir(&root.join("moved")).is_err());
    storage.remove_file(&root.join("moved/inner/f")).unwrap();
    storage.remove_dir(&root.join("moved/inner")).unwrap();
    storage.remove_dir(&root.join("moved")).unwrap();
    assert!(storage.list_dir(&root.join("moved")).is_err());
}

#[test]
fn files_and_memory_agree() {
    let tmp = tempfile::tempdir().unwrap();
    exercise(&FileStorage, tmp.path());
    exercise(&MemoryStorage::new(), Path::new("/data"));
    exercise(&MemoryStorage::new(), Path::new("data"));
}

#[test]
fn memory_reads_never_wait() {
    let storage = MemoryStorage::new();
    storage.create_dir_all(Path::new("/m")).unwrap();
    let f = storage
        .open(Path::new("/m/f"), OpenMode::CreateTruncate)
        .unwrap();
    f.append(b"cached").unwrap();
    let mut buf = [0u8; 4];
    f.read_exact_at_nowait(&mut buf, 2).unwrap();
    assert_eq!(&buf, b"ched");
}

#[test]
fn memory_locks_are_exclusive_until_dropped() {
    let storage = MemoryStorage::new();
    storage.create_dir_all(Path::new("d")).unwrap();
    let guard = storage.lock(Path::new("d/LOCK")).unwrap();
    assert!(matches!(
        storage.clone().lock(Path::new("d/LOCK")),
        Err(LockError::Held)
    ));
    drop(guard);
    assert!(storage.lock(Path::new("d/LOCK")).is_ok());
}

#[test]
fn memory_files_outlive_their_handles() {
    let storage = MemoryStorage::new();
    storage.create_dir_all(Path::new("/v")).unwrap();
    let f = storage
        .open(Path::new("/v/f"), OpenMode::CreateTruncate)
        .unwrap();
    f.append(b"kept").unwrap();
    drop(f);
    let again = storage.clone();
    let f = again.open(Path::new("/v/f"), OpenMode::Read).unwrap();
    assert_eq!(f.read_all().unwrap(), b"kept");
    assert_eq!(storage.used_bytes(), 4);
}
