//! The journal under simulated power loss: whatever the cut leaves, it opens, and holds every
//! change acknowledged before the cut, and of the change in flight all or a prefix or nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::wal::storage::SimStorage;

const RAFT_DIR: &str = "/data/raft";
const TICK: Duration = Duration::from_millis(20);

fn open(disk: &SimStorage, chunk_bytes: u64) -> Result<Arc<Journal>, JournalError> {
    let options = Options {
        tick: TICK,
        chunk_bytes,
        ..Options::default()
    };
    Journal::open(Arc::new(disk.clone()), Path::new(RAFT_DIR), options)
}

/// What the journal holds, as the checks compare it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    vote: Option<Vec<u8>>,
    purged: Option<Id>,
    entries: Vec<(Id, Vec<u8>)>,
}

impl Model {
    fn of(journal: &Journal) -> Model {
        let state = journal.state();
        Model {
            vote: state.vote,
            purged: state.purged,
            entries: journal
                .read(0, u64::MAX)
                .unwrap()
                .into_iter()
                .map(|(id, p)| (id, p.to_vec()))
                .collect(),
        }
    }

    fn next_index(&self) -> u64 {
        match (self.entries.last(), self.purged) {
            (Some((id, _)), _) => id.1 + 1,
            (None, Some(id)) => id.1 + 1,
            (None, None) => 0,
        }
    }
}

/// One change and the model after it.
enum Op {
    Append(Vec<(Id, Vec<u8>)>),
    Vote(Vec<u8>),
    Truncate(u64),
    Purge(Id),
}

fn random_op(rng: &mut StdRng, model: &Model, term: &mut u64) -> Op {
    match rng.random_range(0..10) {
        0 => {
            *term += 1;
            Op::Vote(format!("{{\"term\":{term}}}").into_bytes())
        }
        1 if !model.entries.is_empty() => {
            let (first, last) = (model.entries[0].0.1, model.next_index() - 1);
            Op::Truncate(rng.random_range(first..=last))
        }
        2 if !model.entries.is_empty() => {
            let at = rng.random_range(0..model.entries.len());
            Op::Purge(model.entries[at].0)
        }
        _ => {
            let next = model.next_index();
            let n = rng.random_range(1..6);
            Op::Append(
                (next..next + n)
                    .map(|i| {
                        let len = rng.random_range(1..5000);
                        (((*term, 1), i), vec![(i % 251) as u8; len])
                    })
                    .collect(),
            )
        }
    }
}

/// The model after `op` in full, and after each prefix of its entries that may survive alone.
fn after(model: &Model, op: &Op) -> Vec<Model> {
    let mut next = model.clone();
    match op {
        Op::Append(entries) => {
            return (1..=entries.len())
                .map(|n| {
                    let mut m = model.clone();
                    m.entries.extend(entries[..n].iter().cloned());
                    m
                })
                .collect();
        }
        Op::Vote(vote) => next.vote = Some(vote.clone()),
        Op::Truncate(index) => next.entries.retain(|(id, _)| id.1 < *index),
        Op::Purge(id) => {
            next.entries.retain(|(e, _)| e.1 > id.1);
            next.purged = Some(*id);
        }
    }
    vec![next]
}

fn run(journal: &Journal, op: &Op) -> io::Result<()> {
    match op {
        Op::Append(entries) => {
            journal.append(entries.clone())?;
            let (tx, rx) = mpsc::sync_channel(1);
            journal.flush(
                true,
                Box::new(move |res| {
                    let _ = tx.send(res);
                }),
            );
            rx.recv().map_err(io::Error::other)?
        }
        Op::Vote(vote) => journal.save_vote(vote),
        Op::Truncate(index) => journal.truncate(*index),
        Op::Purge(id) => journal.purge(*id),
    }
}

/// Runs a seeded workload, cuts the power at a seeded call, and checks the restart.
fn power_loss_seed(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let chunk_bytes = rng.random_range(4_096..32_768);
    let mut disk = SimStorage::new();
    let mut acked = Model::default();
    let mut term = 1;
    for round in 0..3 {
        let journal = open(&disk, chunk_bytes)
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: start-up refused: {e}"));
        assert_eq!(
            Model::of(&journal),
            acked,
            "seed {seed} round {round}: after start-up"
        );
        journal
            .save_applied(format!("{{\"round\":{round}}}").into_bytes(), false)
            .unwrap();
        disk.fail_after(rng.random_range(1..200));
        let mut in_flight = Vec::new();
        for _ in 0..rng.random_range(5..60) {
            let op = random_op(&mut rng, &acked, &mut term);
            match run(&journal, &op) {
                Ok(()) => {
                    acked = after(&acked, &op).pop().unwrap_or_default();
                    // The full append is the last model `after` gives.
                }
                Err(_) => {
                    in_flight = after(&acked, &op);
                    break;
                }
            }
        }
        disk.power_off();
        drop(journal);
        disk = disk.power_loss(&mut |n| rng.random_range(0..n));
        let journal = open(&disk, chunk_bytes).unwrap_or_else(|e| {
            panic!(
                "seed {seed} round {round}: start-up refused: {e}\n{}",
                dump(&disk)
            )
        });
        let got = Model::of(&journal);
        assert!(
            got == acked || in_flight.contains(&got),
            "seed {seed} round {round}: the journal holds\n{:?}\nwhere it acknowledged\n{:?}",
            summary(&got),
            summary(&acked)
        );
        acked = got;
    }
}

/// Every record in every chunk, for a failure's message.
fn dump(disk: &SimStorage) -> String {
    let dir = Path::new(RAFT_DIR).join(DIR);
    let mut names = disk.list_dir(&dir).unwrap_or_default();
    names.sort();
    let mut out = String::new();
    for name in names {
        let Ok(file) = disk.open(&dir.join(&name), OpenMode::Read) else {
            continue;
        };
        let bytes = file.read_all().unwrap_or_default();
        out += &format!("{name} ({} bytes):", bytes.len());
        let mut at = CHUNK_MAGIC.len().min(bytes.len());
        while let Ok((record, len)) = record::decode(&bytes[at..]) {
            out += &match record {
                Record::Entry(id, _) => format!(" E{}", id.1),
                Record::State(s) => format!(
                    " S(p{:?} l{:?})",
                    s.purged.map(|i| i.1),
                    s.last.map(|i| i.1)
                ),
                Record::Truncate(i) => format!(" T{i}"),
                Record::Purge(id) => format!(" P{}", id.1),
                Record::Vote(_) => " V".into(),
                Record::Committed(_) => " C".into(),
                Record::Applied(_) => " A".into(),
            };
            at += len;
        }
        out += "\n";
    }
    out
}

fn summary(model: &Model) -> String {
    let ids: Vec<Id> = model.entries.iter().map(|(id, _)| *id).collect();
    format!(
        "vote {:?} purged {:?} entries {ids:?}",
        model.vote.as_deref().map(String::from_utf8_lossy),
        model.purged
    )
}

#[test]
fn every_acknowledged_change_survives_any_power_loss() {
    let seeds: u64 = std::env::var("KORU_JOURNAL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    for seed in 0..seeds {
        power_loss_seed(seed);
    }
}

#[test]
fn chunks_roll_and_purged_ones_are_removed() {
    let disk = SimStorage::new();
    let journal = open(&disk, 4_096).unwrap();
    let entries: Vec<(Id, Vec<u8>)> = (0..100).map(|i| (((1, 1), i), vec![7; 300])).collect();
    for chunk in entries.chunks(5) {
        run(&journal, &Op::Append(chunk.to_vec())).unwrap();
    }
    let chunks = |disk: &SimStorage| disk.list_dir(&Path::new(RAFT_DIR).join(DIR)).unwrap().len();
    let before = chunks(&disk);
    assert!(before > 5, "{before} files");
    journal.purge(((1, 1), 90)).unwrap();
    let after_purge = chunks(&disk);
    assert!(after_purge < 4, "{after_purge} files after the purge");
    journal.save_vote(b"{\"v\":9}").unwrap();
    drop(journal);
    let journal = open(&disk, 4_096).unwrap();
    let got = Model::of(&journal);
    assert_eq!(got.purged, Some(((1, 1), 90)));
    assert_eq!(got.vote.as_deref(), Some(&b"{\"v\":9}"[..]));
    assert_eq!(got.entries, entries[91..].to_vec());
}

#[test]
fn damage_in_a_sealed_chunk_is_refused_not_cut() {
    let disk = SimStorage::new();
    let journal = open(&disk, 4_096).unwrap();
    for i in 0..40 {
        run(&journal, &Op::Append(vec![(((1, 1), i), vec![3; 300])])).unwrap();
    }
    drop(journal);
    let dir = Path::new(RAFT_DIR).join(DIR);
    let mut names = disk.list_dir(&dir).unwrap();
    names.sort();
    let sealed = dir.join(&names[0]);
    let file = disk.open(&sealed, OpenMode::ReadWrite).unwrap();
    let mut bytes = file.read_all().unwrap();
    bytes[100] ^= 0xff;
    file.set_len(0).unwrap();
    file.append(&bytes).unwrap();
    let err = open(&disk, 4_096).expect_err("refused");
    assert!(matches!(err, JournalError::Damaged(_)), "{err:?}");
}
