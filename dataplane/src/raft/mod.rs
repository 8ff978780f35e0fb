//! Replication: a multi-member cluster is one Raft group (openraft). Every write becomes a Raft
//! entry; once a majority holds it, each member applies it to its store as the same record (same
//! LSN, same commit time), so every member keeps the same history.
//!
//! [`log`] is the Raft log and vote as openraft sees them, kept in the member's [`journal`] (on
//! the store's storage seam), [`state`] the state machine over the [`Store`],
//! [`network`] the client side of the member-to-member RPCs (served by `http::raft`), and
//! [`replica`] the handle the API uses to write and to read linearizably.

// openraft's storage traits fix the error type (`StorageError`, a large enum).
pub mod codec;
pub mod directory;
pub mod journal;
#[allow(clippy::result_large_err)]
pub mod log;
pub mod network;
pub mod replica;
#[allow(clippy::result_large_err)]
pub mod state;
pub mod vote_hold;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::store::{Committed, VersionId, WriteOp};
use crate::wal::record::OpKind;

pub use replica::{Replica, ReplicaError};

/// Entries applied between two snapshots unless `--raft-snapshot-entries` says otherwise.
pub const DEFAULT_SNAPSHOT_ENTRIES: u64 = 10_000;

/// A member's id within its cluster (the StatefulSet ordinal plus one, by convention).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The Raft types of a KoruDelta cluster.
    pub TypeConfig:
        D = Request,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// What a Raft entry asks every member to do, in log order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Write one record.
    Write(Command),
    /// Several writes that reached the leader together, proposed as one entry (one Raft log
    /// append and fsync for all of them); each is written as its own record, in order.
    Writes(Vec<Command>),
    /// The group's first entry when its first member already held records: see [`Base`].
    Base(Base),
    /// Seal the active log segment here, so every member's segments hold the same records
    /// (and archive to the same objects).
    Seal,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Write(c) => c.fmt(f),
            Request::Writes(cs) => write!(f, "{} writes", cs.len()),
            Request::Base(b) => write!(f, "base of {} records", b.lsn),
            Request::Seal => f.write_str("seal"),
        }
    }
}

/// Records 1..=`lsn` predate the group: its first member held them (a single node turned into
/// a cluster, or a restored data directory). Every member must hold exactly them before it
/// applies anything after; a member with an empty store copies them from `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// LSN of the last pre-existing record.
    pub lsn: u64,
    /// Its commit time (µs).
    pub last_micros: i64,
    /// Address of the member that holds them (the first member).
    pub source: String,
}

/// One atomic write, as replicated: the operations and the leader's clock when it proposed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The proposing leader's clock (µs since the epoch); the applied commit time is this or
    /// one microsecond after the previous record, whichever is later, on every member alike.
    pub proposed_micros: i64,
    /// The operations, applied as one record.
    pub ops: Vec<CommandOp>,
    /// Written only if no key of this range was written after its LSN (a rewind): every member
    /// checks it against the same history, so all decide alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<crate::store::RangeGuard>,
    /// Who wrote it and why, so every member writes the same author and cause (absent in
    /// entries of older members: unknown, `write`).
    #[serde(flatten)]
    pub meta: crate::store::WriteMeta,
}

/// One operation of a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOp {
    /// Whether this is a delete (tombstone) rather than a put.
    pub delete: bool,
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// The value's JSON text; None for deletes.
    pub value: Option<String>,
}

impl Command {
    /// Roughly how many bytes the command takes in an entry, for sizing batches.
    pub fn size(&self) -> usize {
        self.ops
            .iter()
            .map(|op| {
                32 + op.namespace.len() + op.key.len() + op.value.as_ref().map_or(0, String::len)
            })
            .sum()
    }

    /// The command for a write request by `meta`'s author, proposed at `proposed_micros`.
    pub fn new(ops: &[WriteOp], proposed_micros: i64, meta: crate::store::WriteMeta) -> Command {
        Command {
            proposed_micros,
            guard: None,
            meta,
            ops: ops
                .iter()
                .map(|op| CommandOp {
                    delete: op.kind == OpKind::Delete,
                    namespace: op.namespace.clone(),
                    key: op.key.clone(),
                    value: op.value.as_ref().map(|v| v.get().to_owned()),
                })
                .collect(),
        }
    }

    /// Back to store operations; a value that is not JSON text is a malformed command.
    pub fn write_ops(&self) -> Result<Vec<WriteOp>, String> {
        self.ops
            .iter()
            .map(|op| {
                let value = op
                    .value
                    .clone()
                    .map(RawValue::from_string)
                    .transpose()
                    .map_err(|e| format!("a replicated value is not JSON: {e}"))?;
                Ok(WriteOp {
                    kind: if op.delete {
                        OpKind::Delete
                    } else {
                        OpKind::Put
                    },
                    namespace: op.namespace.clone(),
                    key: op.key.clone(),
                    value,
                })
            })
            .collect()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "write of {} operation(s)", self.ops.len())
    }
}

/// What applying a [`Command`] produced on the member that applied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Written as the record with this LSN and time; per operation, the version it superseded.
    Written {
        /// LSN of the record.
        lsn: u64,
        /// Its commit time (µs).
        timestamp_micros: i64,
        /// Per operation: the (LSN, operation) of the superseded version, if any.
        previous: Vec<Option<(u64, u32)>>,
    },
    /// Refused by the store's checks (the same on every member, so nothing diverges).
    Refused {
        /// Why.
        message: String,
    },
    /// A Raft-internal entry (blank or membership change): nothing for the store.
    Nothing,
    /// What each write of a [`Request::Writes`] applied to, in order.
    Batch(Vec<Applied>),
    /// A guarded write whose range was written after its LSN: nothing written (see
    /// [`Command::guard`]).
    Conflict,
    /// A write that would give a second live key a value of a unique index: nothing written
    /// (decided alike by every member; see `store::unique`).
    UniqueViolation(crate::indexes::def::UniqueViolation),
}

impl Applied {
    /// The written record as the store's [`Committed`], or the refusal.
    pub fn into_committed(self) -> Result<Committed, String> {
        match self {
            Applied::Written {
                lsn,
                timestamp_micros,
                previous,
            } => Ok(Committed {
                lsn,
                timestamp_micros,
                versions: previous
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        (
                            VersionId { lsn, op: i as u32 },
                            p.map(|(lsn, op)| VersionId { lsn, op }),
                        )
                    })
                    .collect(),
            }),
            Applied::Refused { message } => Err(message),
            Applied::Nothing => Err("the entry held no write".into()),
            Applied::Batch(_) => Err("the entry held several writes".into()),
            Applied::Conflict => Err("the guarded range was written after the plan".into()),
            Applied::UniqueViolation(violation) => Err(violation.to_string()),
        }
    }
}

/// The members of a cluster: id → `host:port` of its peer listener (`--peer-listen`, where the
/// Raft RPCs are served).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peers(pub BTreeMap<NodeId, String>);

/// Why a `--peers` list is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid --peers {input:?}: {reason}")]
pub struct PeersError {
    /// The list as given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl FromStr for Peers {
    type Err = PeersError;

    /// Parses `1=host:port,2=host:port,…`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Peers::parse(s, None)
    }
}

/// Whether `addr` looks like `host:port`.
fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// The address `template` gives member `id`: `{id}` replaced by the id.
pub fn address_from_template(template: &str, id: NodeId) -> String {
    template.replace("{id}", &id.to_string())
}

impl Peers {
    /// Parses `id=host:port,…`; with a `template` (`--peer-template`, e.g.
    /// `koru-{id}.koru-peers.ns.svc:8080`) an entry may be a bare id whose address it gives.
    pub fn parse(s: &str, template: Option<&str>) -> Result<Peers, PeersError> {
        let err = |reason: String| PeersError {
            input: s.to_owned(),
            reason,
        };
        let mut peers = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = match (part.split_once('='), template) {
                (Some((id, addr)), _) => (id.trim(), addr.trim().to_owned()),
                (None, Some(template)) => (part, String::new() + template),
                (None, None) => {
                    return Err(err(format!(
                        "{part:?} is not <id>=<host:port> (bare ids need --peer-template)"
                    )));
                }
            };
            let id: NodeId = id
                .parse()
                .map_err(|_| err(format!("{id:?} is not a member id (a whole number)")))?;
            let addr = if part.contains('=') {
                addr
            } else {
                address_from_template(&addr, id)
            };
            if !is_host_port(&addr) {
                return Err(err(format!("{addr:?} is not host:port")));
            }
            if peers.insert(id, addr).is_some() {
                return Err(err(format!("member {id} is listed twice")));
            }
        }
        if peers.is_empty() {
            return Err(err("no members listed".into()));
        }
        Ok(Peers(peers))
    }
}

impl fmt::Display for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(id, a)| format!("{id}={a}")).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_name_what_is_wrong() {
        let p: Peers = "1=a:1, 2=b.svc:7000,3=[::1]:9".parse().unwrap();
        assert_eq!(p.0.len(), 3);
        assert_eq!(p.0[&2], "b.svc:7000");
        assert_eq!(p.to_string(), "1=a:1,2=b.svc:7000,3=[::1]:9");
        let t: Peers = Peers::parse("0, 2=x:5", Some("db-{id}.peers:80")).unwrap();
        assert_eq!(t.to_string(), "0=db-0.peers:80,2=x:5");
        assert!(Peers::parse("0", Some("no-port")).is_err());
        for (bad, why) in [
            ("", "no members"),
            ("1", "need --peer-template"),
            ("-1=a:1", "member id"),
            ("x=a:1", "member id"),
            ("1=a", "host:port"),
            ("1=a:70000", "host:port"),
            ("1=a:1,1=b:2", "twice"),
        ] {
            let e = bad.parse::<Peers>().unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn commands_round_trip_to_store_operations() {
        let ops = vec![
            WriteOp::put(
                "ns",
                "k",
                RawValue::from_string("{\"a\":1}".into()).unwrap(),
            ),
            WriteOp::delete("ns", "gone"),
        ];
        let meta =
            crate::store::WriteMeta::by(Some("ada".into())).because(crate::store::Cause::Rewind);
        let cmd = Command::new(&ops, 42, meta.clone());
        let json = serde_json::to_string(&cmd).unwrap();
        let back: Command = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.meta, meta,
            "every member writes the same author and cause"
        );
        let old: Command = serde_json::from_str(r#"{"proposed_micros":1,"ops":[]}"#).unwrap();
        assert_eq!(old.meta, crate::store::WriteMeta::default());
        let again = back.write_ops().unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].value.as_ref().unwrap().get(), "{\"a\":1}");
        assert_eq!(again[1].kind, OpKind::Delete);
        let applied = Applied::Written {
            lsn: 7,
            timestamp_micros: 9,
            previous: vec![Some((3, 0)), None],
        };
        let c = applied.into_committed().unwrap();
        assert_eq!(c.versions[0].0, VersionId { lsn: 7, op: 0 });
        assert_eq!(c.versions[0].1, Some(VersionId { lsn: 3, op: 0 }));
    }
}
