//! Converts a Raft log left by earlier versions (`<raft-dir>/log`, kept by the `raft-log` crate
//! on the operating system's files) into a journal, once, at start-up: written aside, fsynced,
//! renamed into place, and only then is the old log removed, so a crash at any point leaves
//! one whole copy.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use raft_log::codeq::{Decode, Encode};
use raft_log::{RaftLog, Types};

use super::record::{self, CHUNK_MAGIC, Id, Record, State};
use super::{DIR, JournalError, chunk_name};
use crate::wal::storage::{OpenMode, Storage};

/// The directory `raft-log` kept its chunks in.
const OLD_DIR: &str = "log";
/// Where a conversion writes before it is renamed into place.
const CONVERTING_DIR: &str = "journal.converting";

/// How `raft-log` stored our types: log ids as `((term, leader), index)`, payloads as bytes,
/// the vote as length-prefixed JSON, what was applied as JSON user data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OldTypes;

impl Types for OldTypes {
    type LogId = Id;
    type LogPayload = Vec<u8>;
    type Vote = OldVote;
    type Callback = std::sync::mpsc::SyncSender<Result<(), io::Error>>;
    type UserData = Vec<u8>;

    fn log_index(log_id: &Id) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Vec<u8>) -> u64 {
        payload.len() as u64
    }
}

/// An openraft vote as `raft-log` stored it: openraft's JSON, length-prefixed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd)]
pub struct OldVote(pub Vec<u8>);

impl Encode for OldVote {
    fn encode<W: Write>(&self, w: W) -> Result<usize, io::Error> {
        self.0.encode(w)
    }
}

impl Decode for OldVote {
    fn decode<R: Read>(r: R) -> Result<Self, io::Error> {
        Ok(OldVote(Vec::<u8>::decode(r)?))
    }
}

/// Opens the `raft-log` log in `dir` (tests write one as earlier versions did).
pub fn open_old(dir: &Path) -> io::Result<RaftLog<OldTypes>> {
    RaftLog::open(Arc::new(raft_log::Config::new(dir.display())))
}

/// Converts `<raft_dir>/log` into `<raft_dir>/journal` when only the former exists.
pub fn from_raft_log(storage: &dyn Storage, raft_dir: &Path) -> Result<(), JournalError> {
    let old = raft_dir.join(OLD_DIR);
    if !storage.is_os_files() || !old.is_dir() {
        return Ok(());
    }
    if !raft_dir.join(DIR).is_dir() {
        convert(storage, raft_dir, &old)?;
    }
    // Converted (now or by a start that stopped before this).
    std::fs::remove_dir_all(&old)?;
    storage.sync_dir(raft_dir)?;
    Ok(())
}

fn convert(storage: &dyn Storage, raft_dir: &Path, old: &Path) -> Result<(), JournalError> {
    let log = open_old(old)?;
    let state = log.log_state();
    let header = State {
        vote: state.vote().map(|v| v.0.clone()),
        committed: state.committed().copied(),
        applied: state.user_data.clone(),
        purged: state.purged().copied(),
        last: None,
    };
    let mut bytes = CHUNK_MAGIC.to_vec();
    record::encode(&Record::State(header), &mut bytes);
    for item in log.read(0, u64::MAX) {
        let (id, payload) = item?;
        record::encode(&Record::Entry(id, &payload), &mut bytes);
    }
    drop(log);
    let converting = raft_dir.join(CONVERTING_DIR);
    if converting.is_dir() {
        std::fs::remove_dir_all(&converting)?;
    }
    storage.create_dir_all(&converting)?;
    let file = storage.open(&converting.join(chunk_name(1)), OpenMode::CreateTruncate)?;
    file.append(&bytes)?;
    file.sync_data()?;
    storage.sync_dir(&converting)?;
    storage.rename(&converting, &raft_dir.join(DIR))?;
    storage.sync_dir(raft_dir)?;
    tracing::info!(
        dir = %raft_dir.display(),
        "converted the Raft log of an earlier version into a journal"
    );
    Ok(())
}

/// Writes `entries` and a vote into a `raft-log` log in `dir`, as earlier versions did.
#[cfg(test)]
pub fn write_old(dir: &Path, entries: Vec<(Id, Vec<u8>)>, vote: &[u8], applied: &[u8]) {
    use raft_log::api::raft_log_writer::RaftLogWriter;
    std::fs::create_dir_all(dir).unwrap();
    let mut log = open_old(dir).unwrap();
    log.append(entries).unwrap();
    log.save_vote(OldVote(vote.to_vec())).unwrap();
    log.save_user_data(Some(applied.to_vec())).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    log.flush(true, Some(tx)).unwrap();
    rx.recv().unwrap().unwrap();
}
