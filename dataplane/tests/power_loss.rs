//! Power loss at the I/O layer: the store runs on a simulated disk (`SimStorage`) that keeps only
//! what fsyncs made durable, plus what a real disk may keep of the rest (a prefix of each file's
//! later writes, the last one perhaps torn, and of each directory's later entry changes). A random
//! workload (puts, deletes, compare-and-set, batches) runs, the power is cut at a random disk call,
//! the store starts again on what survived, and its log is checked against what was acknowledged:
//!
//! - start-up never fails on what a power loss leaves;
//! - the log is a gap-free sequence of the writes issued, each whole or absent, in commit order,
//!   and everything verified before a crash is still there after the next one;
//! - with `--fsync always` every acknowledged write is there at its LSN with its exact operations;
//!   with `interval=<ms>` every write acknowledged before the oldest change still waiting for
//!   an fsync is there (later ones may be missing, nothing else may), and no change waits for its
//!   fsync much longer than the interval.
//!
//! Seeded and reproducible: the workload and what survives come from the seed (the commit and
//! fsync threads' timing does not, in the threaded runs); a failure names its seed.
//! `KORU_SIM_SEED=<n>` runs one seed, `KORU_SIM_SEEDS=<n>` runs n per property (`make simulate`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use koru_dataplane::FsyncMode;
use koru_dataplane::db::{BatchWrite, BlockingDb, DbError, Options};
use koru_dataplane::wal::storage::SimStorage;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use common::seeds::sim_seeds;

/// The data directory on the simulated volume ("/" is its mount point).
const DIR: &str = "/data";

/// One operation as the change feed shows it.
#[derive(Clone, PartialEq, Eq)]
struct Op {
    delete: bool,
    namespace: String,
    key: String,
    value: Option<String>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are long; their write id and length say which one it is.
        match &self.value {
            None => write!(f, "delete {}/{}", self.namespace, self.key),
            Some(v) => write!(
                f,
                "put {}/{} {}… ({} bytes)",
                self.namespace,
                self.key,
                &v[..v.len().min(16)],
                v.len()
            ),
        }
    }
}

/// A write the workload issued: one record's operations and what became of it.
#[derive(Debug, Clone)]
struct Issued {
    ops: Vec<Op>,
    /// The LSN it was acknowledged at.
    acked: Option<u64>,
    /// The disk's call count when the acknowledgement arrived.
    ack_call: u64,
    /// Refused before it reached the log.
    refused: bool,
}

/// How a property runs the store.
#[derive(Debug, Clone, Copy)]
struct Mode {
    fsync: FsyncMode,
    /// The single-threaded commit: every disk call happens on the client's thread, in the
    /// seed's order, so the whole run is reproducible.
    inline: bool,
    /// Client threads writing at once (threaded commit only).
    writers: usize,
}

/// `always` with the single-threaded commit: the reproducible mode.
const ALWAYS_INLINE: Mode = Mode {
    fsync: FsyncMode::Always,
    inline: true,
    writers: 1,
};

/// What all seeds of a property did.
#[derive(Debug, Default)]
struct Totals {
    seeds: u64,
    crashes: u64,
    acked: u64,
    /// Writes that were not acknowledged (or not yet fsynced) yet survived.
    unacked_kept: u64,
}

/// Runs `property` for each seed, failing with every failing seed named.
fn check_seeds(name: &str, default: u64, mode: Mode) {
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut failures = Vec::new();
    for seed in sim_seeds(default) {
        totals.seeds += 1;
        if let Err(e) = run_seed(seed, mode, &mut totals) {
            failures.push(format!("seed {seed}: {e}"));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    eprintln!(
        "{name}: {} seeds, {} power losses, {} acknowledged writes checked, {} unacknowledged \
         writes kept, in {:.1?}",
        totals.seeds,
        totals.crashes,
        totals.acked,
        totals.unacked_kept,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{name} failed (run one again with KORU_SIM_SEED=<seed>):\n{}",
        failures.join("\n")
    );
}

fn open(disk: &SimStorage, mode: Mode, segment_size: u64) -> Result<BlockingDb, DbError> {
    let mut options = Options::new(DIR)
        .fsync(mode.fsync)
        .storage(Arc::new(disk.clone()));
    options.store.segment_size = segment_size;
    options.store.inline_commit = mode.inline;
    BlockingDb::open(options)
}

/// A put's value: unique per write, sometimes larger than a disk sector or a small segment.
fn value(rng: &mut StdRng, id: u64) -> String {
    let pad = match rng.random_range(0..10) {
        0 => 2_000 + rng.random_range(0..3_000),
        1..=3 => 200 + rng.random_range(0..600),
        _ => rng.random_range(0..40),
    };
    format!(r#"{{"w":{id},"pad":"{}"}}"#, "x".repeat(pad))
}

/// The next write: a put, a delete of a live key, or a batch of both.
fn next_write(rng: &mut StdRng, id: u64, live: &dyn Fn(&str, &str) -> bool) -> Vec<Op> {
    let count = if rng.random_bool(0.2) {
        rng.random_range(2..6)
    } else {
        1
    };
    let mut ops: Vec<Op> = Vec::new();
    for _ in 0..count {
        let namespace = ["users", "orders"][rng.random_range(0..2)].to_string();
        let key = format!("k{}", rng.random_range(0..12));
        if ops.iter().any(|o| o.namespace == namespace && o.key == key) {
            continue;
        }
        let delete = live(&namespace, &key) && rng.random_bool(0.15);
        let value = (!delete).then(|| value(rng, id));
        ops.push(Op {
            delete,
            namespace,
            key,
            value,
        });
    }
    ops
}

/// Issues `ops` as one record, a single write only over `if_match`: the LSN it was acknowledged at.
fn write(db: &BlockingDb, ops: &[Op], if_match: Option<&str>) -> Result<u64, DbError> {
    let lsn_of = |version: &str| -> u64 {
        version
            .split('.')
            .next()
            .and_then(|l| l.parse().ok())
            .expect("a version id is <lsn>.<op>")
    };
    match ops {
        [op] if op.delete => Ok(lsn_of(
            &db.delete(&op.namespace, &op.key, if_match)?.version_id,
        )),
        [op] => Ok(lsn_of(
            &db.put(
                &op.namespace,
                &op.key,
                op.value.as_deref().expect("a put has a value"),
                if_match,
            )?
            .version_id,
        )),
        _ => {
            let writes = ops
                .iter()
                .map(|op| match &op.value {
                    Some(value) => BatchWrite::Put {
                        namespace: op.namespace.clone(),
                        key: op.key.clone(),
                        value: value.clone(),
                    },
                    None => BatchWrite::Delete {
                        namespace: op.namespace.clone(),
                        key: op.key.clone(),
                    },
                })
                .collect();
            Ok(db.batch_put(writes)?.lsn)
        }
    }
}

/// The log as the store reads it back: (LSN, operations) in order.
fn recovered(db: &BlockingDb) -> Result<Vec<(u64, Vec<Op>)>, String> {
    let store = db.store().map_err(|e| e.to_string())?;
    let changes = store
        .changes_since(0, usize::MAX)
        .map_err(|e| format!("reading the log back: {e}"))?;
    Ok(changes
        .into_iter()
        .map(|c| {
            let ops = c
                .ops
                .into_iter()
                .map(|o| Op {
                    delete: o.delete,
                    namespace: o.namespace,
                    key: o.key,
                    value: o.value,
                })
                .collect();
            (c.lsn, ops)
        })
        .collect())
}

/// What one run of a seed carries from crash to crash.
struct Run {
    /// The log verified so far, in LSN order.
    verified: Vec<Vec<Op>>,
    /// Writes issued since the last verification.
    issued: Vec<Issued>,
}

impl Run {
    /// Checks the log a restart found. `unsynced` is the disk's oldest change still waiting for
    /// an fsync when the power went (call, time); None when nothing waited (as after a clean
    /// close), `clean` after one.
    fn verify(
        &mut self,
        log: Vec<(u64, Vec<Op>)>,
        mode: Mode,
        unsynced: Option<(u64, Instant)>,
        clean: bool,
        lost_at: Instant,
        totals: &mut Totals,
    ) -> Result<(), String> {
        if let (FsyncMode::Interval(every), Some((_, since))) = (mode.fsync, unsynced) {
            let waited = lost_at.duration_since(since);
            if waited > every + Duration::from_secs(2) {
                return Err(format!(
                    "a write waited {waited:?} for its fsync with an interval of {every:?}"
                ));
            }
        }
        if clean && unsynced.is_some() {
            return Err("a clean close left changes that no fsync made durable".into());
        }
        for (i, (lsn, _)) in log.iter().enumerate() {
            if *lsn != i as u64 + 1 {
                return Err(format!("the log has LSN {lsn} at position {}", i + 1));
            }
        }
        if log.len() < self.verified.len() {
            return Err(format!(
                "the log lost verified records: {} before, {} now",
                self.verified.len(),
                log.len()
            ));
        }
        for (i, ops) in self.verified.iter().enumerate() {
            if &log[i].1 != ops {
                return Err(format!("record {} changed after it was verified", i + 1));
            }
        }
        // Each later record is a write issued since, whole, at most once: first the writes
        // acknowledged at an LSN the log reaches (deletes are alike, so an unacknowledged one
        // must not take an acknowledged one's record), then the others.
        let later = &log[self.verified.len()..];
        let mut used = vec![false; self.issued.len()];
        let mut claimed = vec![false; later.len()];
        for (i, w) in self.issued.iter().enumerate() {
            let Some(lsn) = w.acked else { continue };
            let Some(at) = (lsn as usize).checked_sub(self.verified.len() + 1) else {
                return Err(format!(
                    "write acknowledged at LSN {lsn} is below the verified log"
                ));
            };
            if let Some((_, ops)) = later.get(at) {
                if ops != &w.ops {
                    return Err(format!(
                        "record {lsn} is {ops:?}, not the write acknowledged at it: {:?}",
                        w.ops
                    ));
                }
                used[i] = true;
                claimed[at] = true;
            }
        }
        for ((lsn, ops), _) in later.iter().zip(&claimed).filter(|(_, c)| !**c) {
            let found =
                self.issued.iter().enumerate().position(|(i, w)| {
                    !used[i] && !w.refused && w.acked.is_none() && &w.ops == ops
                });
            match found {
                Some(i) => used[i] = true,
                None => return Err(format!("record {lsn} is no write issued: {ops:?}")),
            }
        }
        for (i, w) in self.issued.iter().enumerate() {
            let Some(lsn) = w.acked else {
                totals.unacked_kept += u64::from(used[i]);
                continue;
            };
            totals.acked += 1;
            let must = match (mode.fsync, unsynced) {
                (FsyncMode::Always, _) | (_, None) => true,
                // Its record reached the disk before the acknowledgement: durable if every
                // change of that call or earlier is.
                (FsyncMode::Interval(_), Some((oldest, _))) => w.ack_call < oldest,
                (FsyncMode::Off, _) => false,
            };
            if must && !used[i] {
                return Err(format!(
                    "acknowledged write {lsn} ({:?}) is missing after the power loss",
                    w.ops
                ));
            }
            if !must && used[i] {
                totals.unacked_kept += 1;
            }
        }
        self.verified = log.into_iter().map(|(_, ops)| ops).collect();
        self.issued.clear();
        Ok(())
    }
}

/// One seed: a few rounds of writes each cut short by a power loss, then a round that ends
/// with a clean close before the power goes.
fn run_seed(seed: u64, mode: Mode, totals: &mut Totals) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let segment_size = [4096, 8192, 65536][rng.random_range(0..3)];
    let mut disk = SimStorage::new();
    let mut run = Run {
        verified: Vec::new(),
        issued: Vec::new(),
    };
    let mut db = open(&disk, mode, segment_size).map_err(|e| format!("first start-up: {e}"))?;
    let rounds = rng.random_range(1..=3);
    for round in 0..=rounds {
        let clean = round == rounds;
        if !clean {
            // The power goes somewhere in the next few hundred disk calls, or after the round
            // if the workload ends first.
            disk.fail_after(rng.random_range(1..400));
        }
        let issued = Mutex::new(Vec::<Issued>::new());
        let ids = AtomicU64::new(seed * 1_000_000 + round * 10_000);
        let writes = rng.random_range(5..120);
        let workload = |rng: &mut StdRng| {
            for _ in 0..writes {
                if disk.is_dead() {
                    break;
                }
                let id = ids.fetch_add(1, Ordering::SeqCst);
                let store = db.store().ok();
                let live = |ns: &str, key: &str| store.as_ref().is_some_and(|s| s.is_live(ns, key));
                let ops = next_write(rng, id, &live);
                if ops.is_empty() {
                    continue;
                }
                // Recorded before it is sent: a write cut short may still be in the log.
                let at = {
                    let mut issued = issued.lock();
                    issued.push(Issued {
                        ops: ops.clone(),
                        acked: None,
                        ack_call: 0,
                        refused: false,
                    });
                    issued.len() - 1
                };
                // Some single writes are compare-and-set over the version read just before
                // (another writer may come between: then it is refused).
                let if_match = (ops.len() == 1 && rng.random_bool(0.3))
                    .then(|| db.get(&ops[0].namespace, &ops[0].key).ok())
                    .flatten()
                    .map(|entry| entry.version_id);
                match write(&db, &ops, if_match.as_deref()) {
                    Ok(lsn) => {
                        let mut issued = issued.lock();
                        issued[at].acked = Some(lsn);
                        issued[at].ack_call = disk.calls();
                    }
                    // Refused before the log (a key another writer deleted or changed
                    // meanwhile): the check finds it nowhere in the log.
                    Err(DbError::NotFound { .. } | DbError::VersionMismatch { .. }) => {
                        issued.lock()[at].refused = true;
                    }
                    Err(_) if disk.is_dead() => break,
                    Err(e) => panic!("a write failed with the power on: {e}"),
                }
                if matches!(mode.fsync, FsyncMode::Interval(_)) && rng.random_bool(0.05) {
                    std::thread::sleep(Duration::from_millis(rng.random_range(1..15)));
                }
            }
        };
        if mode.writers <= 1 {
            workload(&mut rng);
        } else {
            let seeds: Vec<u64> = (0..mode.writers).map(|_| rng.random()).collect();
            std::thread::scope(|s| {
                for seed in seeds {
                    let workload = &workload;
                    s.spawn(move || workload(&mut StdRng::seed_from_u64(seed)));
                }
            });
        }
        if clean {
            db.close();
        }
        disk.power_off();
        let lost_at = Instant::now();
        let unsynced = disk.oldest_unsynced();
        totals.crashes += 1;
        drop(db);
        disk = disk.power_loss(&mut |n| rng.random_range(0..n));
        run.issued.extend(issued.into_inner());
        db = open(&disk, mode, segment_size)
            .map_err(|e| format!("start-up after power loss {} failed: {e}", round + 1))?;
        let log = recovered(&db)?;
        run.verify(log, mode, unsynced, clean, lost_at, totals)?;
    }
    Ok(())
}

#[test]
fn fsync_always_keeps_every_acknowledged_write_reproducibly() {
    check_seeds("always, single-threaded commit", 600, ALWAYS_INLINE);
}

#[test]
fn fsync_always_with_the_commit_thread_and_concurrent_writers() {
    check_seeds(
        "always, commit thread, 3 writers",
        100,
        Mode {
            fsync: FsyncMode::Always,
            inline: false,
            writers: 3,
        },
    );
}

#[test]
fn fsync_interval_loses_only_writes_after_the_last_fsync() {
    check_seeds(
        "interval=5, commit and fsync threads",
        100,
        Mode {
            fsync: "interval=5".parse().unwrap(),
            inline: false,
            writers: 2,
        },
    );
}

/// Seeds that found bugs (the single-threaded runs are reproducible; a change to the workload
/// generator changes what a seed does, so each entry names seeds that fail without its fix
/// under the generator as it is now):
/// - 0, 3, 5, 6, 7 (`always`): the log's directory was created without an fsync of the data
///   directory, so a power loss soon after the first start took the whole log with it,
///   acknowledged writes included (fixed with `Storage::create_dir_all_durable`; found as
///   seeds 1, 2, 6, 7, 8 before compare-and-set joined the workload).
#[test]
fn seeds_that_found_bugs() {
    let mode = ALWAYS_INLINE;
    for seed in [0, 3, 5, 6, 7] {
        let mut totals = Totals::default();
        if let Err(e) = run_seed(seed, mode, &mut totals) {
            panic!("seed {seed}: {e}");
        }
        assert!(totals.acked > 0, "seed {seed} checked no write");
    }
}

#[test]
fn a_write_acknowledged_just_after_the_first_start_survives_the_power_going() {
    let disk = SimStorage::new();
    let mode = ALWAYS_INLINE;
    let db = open(&disk, mode, 4096).unwrap();
    let written = db.put("users", "alice", r#"{"n":1}"#, None).unwrap();
    disk.power_off();
    drop(db);
    // Nothing that was waiting for an fsync lands.
    let after = disk.power_loss(&mut |_| 0);
    let db = open(&after, mode, 4096).unwrap();
    let entry = db.get("users", "alice").expect("the acknowledged write");
    assert_eq!(entry.value.get(), r#"{"n":1}"#);
    assert_eq!(entry.version_id, written.version_id);
}

#[test]
fn a_clean_close_leaves_nothing_waiting_for_an_fsync_even_after_a_cut_roll() {
    use koru_dataplane::wal::storage::{OpenMode, Storage};
    let disk = SimStorage::new();
    let mode = ALWAYS_INLINE;
    let db = open(&disk, mode, 4096).unwrap();
    db.put("users", "alice", r#"{"n":1}"#, None).unwrap();
    db.close();
    drop(db);
    // What a power loss in the middle of a roll leaves: the next segment's temporary file,
    // its creation durable, its rename not.
    let tmp = std::path::Path::new("/data/wal").join(format!(
        "{}.tmp",
        koru_dataplane::wal::segment::file_name(2)
    ));
    disk.open(&tmp, OpenMode::CreateTruncate).unwrap();
    disk.sync_dir(std::path::Path::new("/data/wal")).unwrap();
    let db = open(&disk, mode, 4096).unwrap();
    db.close();
    drop(db);
    assert!(
        disk.list_dir(std::path::Path::new("/data/wal"))
            .unwrap()
            .iter()
            .all(|name| !name.ends_with(".tmp")),
        "start-up removes the leftover"
    );
    assert_eq!(
        disk.oldest_unsynced().map(|(call, _)| call),
        None,
        "the leftover's removal was never made durable"
    );
}
