//! The byte layout of the Raft journal: a chunk header, then checksummed records, each one
//! change of the log (an entry, the vote, a truncation, …). Described in `dataplane/FORMAT.md`.

use serde::{Deserialize, Serialize};

/// The first bytes of every chunk file.
pub const CHUNK_MAGIC: &[u8; 8] = b"KORAFT01";
/// Bytes before a record's body: body length (u32) and CRC32C of the body (u32).
pub const FRAME_LEN: usize = 8;
/// Largest body a reader accepts; anything larger is damage, not an allocation to attempt.
pub const MAX_BODY: usize = 256 * 1024 * 1024;

/// A log id as stored: `((term, leader), index)`, ordered as openraft orders log ids.
pub type Id = ((u64, u64), u64);

/// Everything a chunk's readers need before its first change: written first in each chunk, so
/// older chunks can go once their entries are purged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The vote, as openraft's JSON.
    pub vote: Option<Vec<u8>>,
    /// The commit hint.
    pub committed: Option<Id>,
    /// What the state machine applied (JSON, see `raft::log::AppliedMeta`).
    pub applied: Option<Vec<u8>>,
    /// The last purged entry.
    pub purged: Option<Id>,
    /// The last entry (or the purged one standing in for it).
    pub last: Option<Id>,
}

/// One change of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// The chunk's starting state.
    State(State),
    /// An entry appended after the last one.
    Entry(Id, &'a [u8]),
    /// A new vote (openraft's JSON).
    Vote(&'a [u8]),
    /// A new commit hint.
    Committed(Id),
    /// What the state machine applied.
    Applied(&'a [u8]),
    /// Entries from this index on are gone.
    Truncate(u64),
    /// Entries up to and including this one are gone.
    Purge(Id),
}

const STATE: u8 = 1;
const ENTRY: u8 = 2;
const VOTE: u8 = 3;
const COMMITTED: u8 = 4;
const APPLIED: u8 = 5;
const TRUNCATE: u8 = 6;
const PURGE: u8 = 7;

/// Bytes an entry's payload starts at inside its framed record.
pub const ENTRY_PAYLOAD_AT: usize = FRAME_LEN + 1 + 24;

fn put_id(out: &mut Vec<u8>, ((term, leader), index): Id) {
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(&leader.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
}

/// Appends `record`, framed, to `out`.
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LEN]);
    match record {
        Record::State(state) => {
            out.push(STATE);
            // A State is written once per chunk; MessagePack of a struct cannot fail.
            out.extend_from_slice(&rmp_serde::to_vec(state).unwrap_or_default());
        }
        Record::Entry(id, payload) => {
            out.push(ENTRY);
            put_id(out, *id);
            out.extend_from_slice(payload);
        }
        Record::Vote(vote) => {
            out.push(VOTE);
            out.extend_from_slice(vote);
        }
        Record::Committed(id) => {
            out.push(COMMITTED);
            put_id(out, *id);
        }
        Record::Applied(applied) => {
            out.push(APPLIED);
            out.extend_from_slice(applied);
        }
        Record::Truncate(index) => {
            out.push(TRUNCATE);
            out.extend_from_slice(&index.to_le_bytes());
        }
        Record::Purge(id) => {
            out.push(PURGE);
            put_id(out, *id);
        }
    }
    let body = &out[start + FRAME_LEN..];
    let (len, crc) = (body.len() as u32, crc32c::crc32c(body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + FRAME_LEN].copy_from_slice(&crc.to_le_bytes());
}

/// Why the bytes at an offset are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Fewer bytes than the frame says: the end of what was written.
    Short,
    /// A length or checksum that does not hold, or a body that does not parse.
    Damaged,
}

/// The record framed at the start of `bytes`, and its framed length.
pub fn decode(bytes: &[u8]) -> Result<(Record<'_>, usize), Bad> {
    let Some(frame) = bytes.get(..FRAME_LEN) else {
        return Err(Bad::Short);
    };
    let len = u32::from_le_bytes(frame[..4].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(frame[4..].try_into().unwrap_or_default());
    if len == 0 || len > MAX_BODY {
        return Err(Bad::Damaged);
    }
    let Some(body) = bytes.get(FRAME_LEN..FRAME_LEN + len) else {
        return Err(Bad::Short);
    };
    if crc32c::crc32c(body) != crc {
        return Err(Bad::Damaged);
    }
    let rest = &body[1..];
    let id = |b: &[u8]| -> Result<Id, Bad> {
        let n = |i: usize| {
            b.get(i * 8..i * 8 + 8)
                .map(|x| u64::from_le_bytes(x.try_into().unwrap_or_default()))
                .ok_or(Bad::Damaged)
        };
        Ok(((n(0)?, n(1)?), n(2)?))
    };
    let record = match body[0] {
        STATE => Record::State(rmp_serde::from_slice(rest).map_err(|_| Bad::Damaged)?),
        ENTRY if rest.len() >= 24 => Record::Entry(id(rest)?, &rest[24..]),
        VOTE => Record::Vote(rest),
        COMMITTED if rest.len() == 24 => Record::Committed(id(rest)?),
        APPLIED => Record::Applied(rest),
        TRUNCATE if rest.len() == 8 => {
            Record::Truncate(u64::from_le_bytes(rest.try_into().unwrap_or_default()))
        }
        PURGE if rest.len() == 24 => Record::Purge(id(rest)?),
        _ => return Err(Bad::Damaged),
    };
    Ok((record, FRAME_LEN + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips_and_any_cut_is_short() {
        let state = State {
            vote: Some(b"{\"v\":1}".to_vec()),
            committed: Some(((2, 1), 7)),
            applied: None,
            purged: Some(((1, 1), 3)),
            last: Some(((2, 1), 9)),
        };
        let records = [
            Record::State(state),
            Record::Entry(((3, 2), 10), b"payload"),
            Record::Vote(b"{}"),
            Record::Committed(((3, 2), 10)),
            Record::Applied(b"{\"applied\":null}"),
            Record::Truncate(8),
            Record::Purge(((1, 1), 4)),
        ];
        for record in records {
            let mut out = Vec::new();
            encode(&record, &mut out);
            assert_eq!(decode(&out), Ok((record.clone(), out.len())));
            for cut in 0..out.len() {
                assert_eq!(
                    decode(&out[..cut]).err(),
                    Some(Bad::Short),
                    "{record:?} at {cut}"
                );
            }
            let mut flipped = out.clone();
            *flipped.last_mut().unwrap() ^= 1;
            assert_eq!(decode(&flipped).err(), Some(Bad::Damaged));
        }
        let mut entry = Vec::new();
        encode(&Record::Entry(((1, 1), 1), b"xyz"), &mut entry);
        assert_eq!(&entry[ENTRY_PAYLOAD_AT..], b"xyz");
    }

    #[test]
    fn zeros_are_not_a_record() {
        assert_eq!(decode(&[0; 64]).err(), Some(Bad::Damaged));
    }
}
