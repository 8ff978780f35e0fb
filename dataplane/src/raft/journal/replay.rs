//! Start-up: the chunks read in order into the journal's state, the newest one cut where a
//! power loss ended what was written, damage anywhere else refused.

use super::record::{self, Bad, CHUNK_MAGIC, Record};
use super::{Chunk, Inner, JournalError, chunk_name};
use crate::wal::storage::OpenMode;

impl Inner {
    /// Reads every chunk in order and rebuilds the state; cuts the newest chunk where what was
    /// written ends.
    pub(super) fn replay(&mut self) -> Result<(), JournalError> {
        let mut seqs: Vec<u64> = self
            .storage
            .list_dir(&self.dir)?
            .iter()
            .filter_map(|name| name.strip_suffix(".chunk")?.parse().ok())
            .collect();
        seqs.sort_unstable();
        for (n, &seq) in seqs.iter().enumerate() {
            let newest = n + 1 == seqs.len();
            let path = self.dir.join(chunk_name(seq));
            let file = self.storage.open(&path, OpenMode::ReadWrite)?;
            let bytes = file.read_all()?;
            let end = self
                .replay_chunk(seq, &bytes, newest)
                .map_err(|e| JournalError::Damaged(format!("{}: {e}", path.display())))?;
            let mut last_index = None;
            for slot in self.entries.iter().rev().take_while(|s| s.chunk == seq) {
                last_index = last_index.max(Some(slot.id.1));
            }
            if end < bytes.len() {
                // What a power loss left after the last fsync: cut, so it is never mistaken for
                // damage once a newer chunk follows.
                file.set_len(end as u64)?;
                file.sync_data()?;
            }
            self.chunks.insert(seq, Chunk { file, last_index });
        }
        if let Some(hole) = self.hole {
            return Err(JournalError::Damaged(format!(
                "entries up to {hole} are missing and were never purged"
            )));
        }
        Ok(())
    }

    /// Applies the records of one chunk; returns where they end.
    fn replay_chunk(&mut self, seq: u64, bytes: &[u8], newest: bool) -> Result<usize, String> {
        if bytes.is_empty() {
            return Ok(0);
        }
        if !bytes.starts_with(CHUNK_MAGIC) {
            // The header is fsynced before anything is written after it: an unreadable one in
            // the newest chunk is a creation that a power loss cut short, holding nothing yet.
            return if newest {
                Ok(0)
            } else {
                Err("no chunk header".into())
            };
        }
        let mut at = CHUNK_MAGIC.len();
        while at < bytes.len() {
            let (record, len) = match record::decode(&bytes[at..]) {
                Ok(decoded) => decoded,
                Err(_) if newest => break,
                Err(Bad::Short) => return Err(format!("a record cut short at byte {at}")),
                Err(Bad::Damaged) => return Err(format!("a damaged record at byte {at}")),
            };
            self.apply(seq, at, record)
                .map_err(|e| format!("{e} (the record at byte {at})"))?;
            at += len;
        }
        Ok(at.min(bytes.len()))
    }

    /// Applies one replayed record.
    fn apply(&mut self, seq: u64, at: usize, record: Record<'_>) -> Result<(), String> {
        match record {
            Record::State(state) => {
                if state.purged > self.state.purged
                    && let Some(purged) = state.purged
                {
                    self.purge(purged);
                }
                if let Some(last) = state.last {
                    if self.next_index().is_none_or(|next| next <= last.1) {
                        // Entries up to `last` were in chunks that were removed, which only a
                        // purge past them does; its record follows.
                        self.truncate(0);
                        self.hole = Some(last.1);
                    } else {
                        self.truncate(last.1 + 1);
                    }
                }
                self.state.vote = state.vote;
                self.state.committed = state.committed;
                self.state.applied = state.applied;
            }
            Record::Entry(id, payload) => {
                let next = self.next_index().unwrap_or(id.1);
                if id.1 > next || self.state.purged.is_some_and(|p| id.1 <= p.1) {
                    return Err(format!("entry {} where {next} is next", id.1));
                }
                // Written after a truncation that the leader's log overrode.
                self.truncate(id.1);
                let at = (at + record::ENTRY_PAYLOAD_AT) as u64;
                self.push(id, seq, at, payload.into());
            }
            Record::Vote(vote) => self.state.vote = Some(vote.to_vec()),
            Record::Committed(id) => self.state.committed = Some(id),
            Record::Applied(applied) => self.state.applied = Some(applied.to_vec()),
            Record::Truncate(index) => self.truncate(index),
            Record::Purge(id) => self.purge(id),
        }
        Ok(())
    }
}
