//! The hash chains, as plain functions: the canonical bytes an event's hash covers, and a
//! streaming verifier that finds the first broken link. No I/O, so the server, the CLI and a
//! customer's copy of an export all check a chain with exactly this code.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

/// The `prev_hash` of the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Domain tag of the global chain's hashes.
pub const GLOBAL_TAG: &str = "koru-audit-global/v1";
/// Domain tag of an organization chain's hashes.
pub const ORG_TAG: &str = "koru-audit-org/v1";

/// What happened: the part of an event that both chains hash. Never holds secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Record {
    /// Event id.
    pub id: String,
    /// When the request finished, ms since the epoch.
    pub time: i64,
    /// `user:<id>`, `token:<id>`, `email:<attempted address>` (sign-up and login), or null.
    pub actor: Option<String>,
    /// The organization the request addressed, or null.
    pub org_id: Option<String>,
    /// The client's address, when known.
    pub source_ip: Option<String>,
    /// Method and route template, e.g. `POST /api/v1/orgs/{org}/tokens`.
    pub action: String,
    /// The concrete path (never the query string).
    pub target: String,
    /// `success`, or `failure:<HTTP status>`.
    pub outcome: String,
    /// The request id, echoed in the `x-request-id` response header.
    pub request_id: String,
}

/// Which chain a link belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    /// The one chain over every event.
    Global,
    /// The chain of one organization's events.
    Org,
}

impl ChainKind {
    fn tag(self) -> &'static str {
        match self {
            ChainKind::Global => GLOBAL_TAG,
            ChainKind::Org => ORG_TAG,
        }
    }
}

/// Appends `0x01 ‖ u32 big-endian length ‖ bytes`: unambiguous for any content.
fn field(out: &mut Vec<u8>, value: &str) {
    out.push(1);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// Appends a field, or the single byte `0x00` for null.
fn optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => field(out, v),
        None => out.push(0),
    }
}

/// The bytes a link's hash covers: tag, seq, prev_hash, then the record's fields in declaration
/// order (integers as decimal strings).
pub fn canonical_bytes(kind: ChainKind, seq: i64, prev_hash: &str, record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    field(&mut out, kind.tag());
    field(&mut out, &seq.to_string());
    field(&mut out, prev_hash);
    field(&mut out, &record.id);
    field(&mut out, &record.time.to_string());
    optional(&mut out, record.actor.as_deref());
    optional(&mut out, record.org_id.as_deref());
    optional(&mut out, record.source_ip.as_deref());
    field(&mut out, &record.action);
    field(&mut out, &record.target);
    field(&mut out, &record.outcome);
    field(&mut out, &record.request_id);
    out
}

/// The lower-case hex SHA-256 of a link.
pub fn link_hash(kind: ChainKind, seq: i64, prev_hash: &str, record: &Record) -> String {
    hex::encode(Sha256::digest(canonical_bytes(
        kind, seq, prev_hash, record,
    )))
}

/// The first place a chain stops holding together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BrokenLink {
    /// Position in the chain checked (the organization's seq for an organization chain).
    pub seq: i64,
    /// The event there, when there is one.
    pub event_id: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.event_id {
            Some(id) => write!(
                f,
                "broken link at seq {} (event id {id}): {}",
                self.seq, self.reason
            ),
            None => write!(f, "broken link at seq {}: {}", self.seq, self.reason),
        }
    }
}

/// Walks a chain in seq order and remembers where it is, so chains of any length are checked
/// page by page.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    kind: ChainKind,
    next_seq: i64,
    prev_hash: String,
    count: u64,
}

impl ChainVerifier {
    /// A verifier expecting the chain from its first event.
    pub fn new(kind: ChainKind) -> ChainVerifier {
        ChainVerifier {
            kind,
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            count: 0,
        }
    }

    /// A verifier for a chain known from `seq` on, trusting that event's `prev_hash` (exports
    /// filtered by time start in the middle of a chain).
    pub fn starting_at(kind: ChainKind, seq: i64, prev_hash: &str) -> ChainVerifier {
        ChainVerifier {
            kind,
            next_seq: seq,
            prev_hash: prev_hash.to_string(),
            count: 0,
        }
    }

    /// Checks the next link: its position, that it names the previous link's hash, and that its
    /// own hash covers its contents.
    pub fn push(
        &mut self,
        seq: i64,
        prev_hash: &str,
        hash: &str,
        record: &Record,
    ) -> Result<(), BrokenLink> {
        let broken = |reason: String| BrokenLink {
            seq,
            event_id: Some(record.id.clone()),
            reason,
        };
        if seq != self.next_seq {
            return Err(broken(format!(
                "expected seq {}, found {seq}: events are missing or out of order",
                self.next_seq
            )));
        }
        if prev_hash != self.prev_hash {
            return Err(broken(format!(
                "prev_hash {prev_hash} is not the hash {} of seq {}",
                self.prev_hash,
                seq - 1
            )));
        }
        let expected = link_hash(self.kind, seq, prev_hash, record);
        if expected != hash {
            return Err(broken(format!(
                "stored hash {hash} does not match the event's contents (they hash to {expected}): the event was altered"
            )));
        }
        self.next_seq = seq + 1;
        self.prev_hash = hash.to_string();
        self.count += 1;
        Ok(())
    }

    /// Events checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The seq of the last event checked (0 before the first).
    pub fn head_seq(&self) -> i64 {
        self.next_seq - 1
    }

    /// The hash of the last event checked (the genesis hash before the first).
    pub fn head_hash(&self) -> &str {
        &self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: i64) -> Record {
        Record {
            id: format!("e{n}"),
            time: 1_700_000_000_000 + n,
            actor: Some("user:u1".into()),
            org_id: if n % 2 == 0 { Some("o1".into()) } else { None },
            source_ip: None,
            action: "POST /api/v1/orgs/{org}/tokens".into(),
            target: "/api/v1/orgs/o1/tokens".into(),
            outcome: "success".into(),
            request_id: format!("r{n}"),
        }
    }

    fn chain(n: i64) -> Vec<(i64, String, String, Record)> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let r = record(seq);
                let hash = link_hash(ChainKind::Global, seq, &prev, &r);
                let link = (seq, prev.clone(), hash.clone(), r);
                prev = hash;
                link
            })
            .collect()
    }

    fn verify(links: &[(i64, String, String, Record)]) -> Result<u64, BrokenLink> {
        let mut v = ChainVerifier::new(ChainKind::Global);
        for (seq, prev, hash, r) in links {
            v.push(*seq, prev, hash, r)?;
        }
        Ok(v.count())
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn an_altered_field_breaks_exactly_its_link() {
        let mut links = chain(5);
        links[2].3.target = "x".into();
        let broken = verify(&links).unwrap_err();
        assert_eq!((broken.seq, broken.event_id.as_deref()), (3, Some("e3")));
        assert!(broken.reason.contains("altered"), "{}", broken.reason);
    }

    #[test]
    fn a_rehashed_alteration_breaks_the_next_link() {
        let mut links = chain(5);
        links[2].3.actor = None;
        links[2].2 = link_hash(ChainKind::Global, 3, &links[2].1, &links[2].3);
        let broken = verify(&links).unwrap_err();
        assert_eq!(broken.seq, 4);
        assert!(broken.reason.contains("prev_hash"), "{}", broken.reason);
    }

    #[test]
    fn a_deleted_event_is_a_gap() {
        let mut links = chain(5);
        links.remove(1);
        let broken = verify(&links).unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(
            broken.reason.contains("expected seq 2"),
            "{}",
            broken.reason
        );
    }

    #[test]
    fn null_and_empty_fields_hash_differently_and_chains_are_domain_separated() {
        let mut a = record(1);
        let mut b = record(1);
        a.source_ip = None;
        b.source_ip = Some(String::new());
        assert_ne!(
            link_hash(ChainKind::Global, 1, GENESIS_HASH, &a),
            link_hash(ChainKind::Global, 1, GENESIS_HASH, &b)
        );
        assert_ne!(
            link_hash(ChainKind::Global, 1, GENESIS_HASH, &a),
            link_hash(ChainKind::Org, 1, GENESIS_HASH, &a)
        );
        // Moving a boundary between two fields changes the bytes.
        let mut c = record(1);
        c.action = "POST /a".into();
        c.target = "b".into();
        let mut d = record(1);
        d.action = "POST /".into();
        d.target = "ab".into();
        assert_ne!(
            canonical_bytes(ChainKind::Org, 1, GENESIS_HASH, &c),
            canonical_bytes(ChainKind::Org, 1, GENESIS_HASH, &d)
        );
    }

    #[test]
    fn the_encoding_is_pinned() {
        // Customers reimplement this encoding; it must never change silently.
        let r = Record {
            id: "i".into(),
            time: 7,
            actor: None,
            org_id: Some("o".into()),
            source_ip: None,
            action: "a".into(),
            target: "t".into(),
            outcome: "success".into(),
            request_id: "r".into(),
        };
        let bytes = canonical_bytes(ChainKind::Org, 1, "p", &r);
        let mut expected = Vec::new();
        for part in [ORG_TAG, "1", "p", "i", "7"] {
            expected.push(1u8);
            expected.extend_from_slice(&(part.len() as u32).to_be_bytes());
            expected.extend_from_slice(part.as_bytes());
        }
        expected.push(0);
        expected.extend_from_slice(&[1, 0, 0, 0, 1, b'o']);
        expected.push(0);
        for part in ["a", "t", "success", "r"] {
            expected.push(1u8);
            expected.extend_from_slice(&(part.len() as u32).to_be_bytes());
            expected.extend_from_slice(part.as_bytes());
        }
        assert_eq!(bytes, expected);
        assert_eq!(
            link_hash(ChainKind::Org, 1, "p", &r),
            hex::encode(Sha256::digest(&expected))
        );
    }
}
