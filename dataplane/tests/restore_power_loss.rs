//! A restore cut by a power loss at any disk call: the data directory a restart finds is either
//! absent (or still the empty one the restore was given) or the whole backup, record for record,
//! never a part of it; a restore that reported success survives any power loss after it; and a
//! restore run again after the cut succeeds.
//!
//! The backup is a real archive (the archiver and a base backup of a store on disk, in a local
//! backup directory); the restore writes its data directory on a simulated disk
//! ([`SimStorage`]), whose power is cut at a seeded call and which keeps a seeded part of what
//! was not fsynced. `KORU_SIM_SEEDS=N` runs more seeds; a failure names its seed.

mod common;

use std::path::Path;
use std::sync::Arc;

use koru_dataplane::backup::restore::{RestoreRequest, restore_on};
use koru_dataplane::backup::{BackupUrl, Target};
use koru_dataplane::db::Options;
use koru_dataplane::wal::storage::{SimStorage, Storage};
use koru_dataplane::{BlockingDb, Store, StoreConfig};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use common::seeds::sim_seeds;
use common::stores::base_backup;

/// Where the restore puts the data directory on the simulated disk.
const DATA_DIR: &str = "/volume/data";

/// The records of a store, as comparable text (LSN, time and operations).
fn records(store: &Store) -> Vec<String> {
    store
        .changes_since(0, usize::MAX)
        .expect("reading the log")
        .into_iter()
        .map(|c| format!("{c:?}"))
        .collect()
}

/// A store with writes over several segments, archived, and a base backup of it: the backup's
/// directory, its id, and the records it holds.
fn archived_store(dir: &Path) -> (std::path::PathBuf, String, Vec<String>) {
    let mut options = Options::new(dir.join("source"));
    options.store.segment_size = 4096;
    let db = BlockingDb::open(options).expect("the source store");
    for i in 0..120 {
        let value = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 7 % 300));
        db.put("ns", &format!("k{}", i % 17), &value, None)
            .expect("a write");
    }
    let store = db.store().expect("the store");
    let backups = dir.join("backups");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let manifest = runtime.block_on(base_backup(&store, &BackupUrl::File(backups.clone())));
    let expected: Vec<String> = records(&store)
        .into_iter()
        .take(manifest.last_lsn as usize)
        .collect();
    assert!(
        manifest.segments.len() > 3,
        "{} segments",
        manifest.segments.len()
    );
    (backups, manifest.id, expected)
}

fn request(backups: &Path, id: &str) -> RestoreRequest {
    RestoreRequest {
        from: BackupUrl::File(backups.to_path_buf()),
        backup: Some(id.to_string()),
        target: Target::End,
        data_dir: DATA_DIR.into(),
    }
}

/// The records of the data directory on `disk`; None when there is none to speak of.
fn restored(disk: &SimStorage) -> Result<Option<Vec<String>>, String> {
    let entries = disk.list_dir(Path::new(DATA_DIR)).unwrap_or_default();
    if entries.is_empty() {
        return Ok(None);
    }
    let (store, _) = Store::open(
        StoreConfig::new(DATA_DIR).with_storage(Arc::new(disk.clone())),
        Arc::default(),
    )
    .map_err(|e| format!("the restored data directory does not open: {e}"))?;
    let got = records(&store);
    store.close();
    Ok(Some(got))
}

#[test]
fn a_restore_cut_by_power_loss_leaves_the_whole_backup_or_none_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (backups, id, expected) = archived_store(tmp.path());
    let req = request(&backups, &id);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // How many disk calls a whole restore makes: the cuts fall among them (and once after).
    let whole = SimStorage::new();
    runtime
        .block_on(restore_on(Arc::new(whole.clone()), &req))
        .expect("an uncut restore");
    let calls = whole.calls();
    assert_eq!(restored(&whole).unwrap().as_ref(), Some(&expected));
    let mut failures = Vec::new();
    let mut cut_short = 0;
    for seed in sim_seeds(300) {
        let mut rng = StdRng::seed_from_u64(seed);
        let disk = SimStorage::new();
        if rng.random_bool(0.3) {
            // Restored into the empty directory it was given.
            disk.create_dir_all_durable(Path::new(DATA_DIR)).unwrap();
        }
        disk.fail_after(rng.random_range(1..=calls + 1));
        let result = runtime.block_on(restore_on(Arc::new(disk.clone()), &req));
        cut_short += u64::from(result.is_err());
        disk.power_off();
        let after = disk.power_loss(&mut |n| rng.random_range(0..n));
        let check = match (restored(&after), &result) {
            (Err(e), _) => Err(e),
            (Ok(None), Ok(_)) => Err("the restore succeeded, and a power loss took it".into()),
            (Ok(Some(got)), _) if got != expected => Err(format!(
                "a data directory with {} records where the backup has {}",
                got.len(),
                expected.len()
            )),
            (Ok(_), _) => Ok(()),
        };
        // Whatever the cut left, running the restore again (as an operator would) succeeds.
        let check = check.and_then(|()| {
            if restored(&after)?.is_some() {
                return Ok(());
            }
            runtime
                .block_on(restore_on(Arc::new(after.clone()), &req))
                .map_err(|e| format!("the restore run again failed: {e}"))?;
            match restored(&after)? {
                Some(got) if got == expected => Ok(()),
                _ => Err("the restore run again left no whole data directory".into()),
            }
        });
        if let Err(e) = check {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    eprintln!(
        "restore under power loss: {} cuts among {calls} disk calls, {cut_short} cut the restore short",
        sim_seeds(300).len()
    );
    assert!(
        failures.is_empty(),
        "run one again with KORU_SIM_SEED=<seed>:\n{}",
        failures.join("\n")
    );
}
