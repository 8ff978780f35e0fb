//! Checking a chain end to end: every link, and every signed digest of it. [`Walk`] is the pure
//! core; [`verify`] feeds it from the database page by page.

use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::ToSchema;

use super::chain::{BrokenLink, ChainKind, ChainVerifier, Record};
use super::digest::{self, Digest, DigestChecker, TrustedKeys};
use super::store::{self, Direction};
use super::{Filter, Link};
use crate::error::Result;

/// Events read per database round trip while verifying.
const PAGE: u32 = 1000;

/// The newest link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Head {
    /// Its seq.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// The result of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// Whether every link and every digest checked out.
    pub intact: bool,
    /// Events checked (up to the first broken link).
    pub events: u64,
    /// The last event checked.
    pub head: Option<Head>,
    /// Signed digests that matched the chain.
    pub digests_checked: u64,
    /// Whether the digests' signatures were checked (not just their hashes).
    pub signatures_checked: bool,
    /// Events after the newest matching digest, not yet covered by a signature.
    pub unsigned_events: i64,
    /// The first broken link, when the chain is not intact.
    pub broken: Option<BrokenLink>,
}

/// Which chain to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every event.
    Global,
    /// One organization's events.
    Org(String),
}

impl Scope {
    /// The scope name digests are stored under.
    pub fn digest_scope(&self) -> &str {
        match self {
            Scope::Global => digest::GLOBAL_SCOPE,
            Scope::Org(id) => id,
        }
    }

    fn kind(&self) -> ChainKind {
        match self {
            Scope::Global => ChainKind::Global,
            Scope::Org(_) => ChainKind::Org,
        }
    }
}

/// A chain walk in progress: links and digests, in seq order. No I/O.
#[derive(Debug)]
pub struct Walk {
    chain: ChainVerifier,
    digests: DigestChecker,
    kind: ChainKind,
    partial_start: bool,
    started: bool,
}

impl Walk {
    /// Walks a whole chain from seq 1, checking `digests` (signatures only with `keys`).
    pub fn new(kind: ChainKind, digests: Vec<Digest>, keys: Option<TrustedKeys>) -> Walk {
        Walk {
            chain: ChainVerifier::new(kind),
            digests: DigestChecker::new(digests, keys),
            kind,
            partial_start: false,
            started: false,
        }
    }

    /// Walks a chain that may start after seq 1 (an export filtered by time): the first link's
    /// `prev_hash` is taken as given.
    pub fn from_any_start(
        kind: ChainKind,
        digests: Vec<Digest>,
        keys: Option<TrustedKeys>,
    ) -> Walk {
        Walk {
            partial_start: true,
            ..Walk::new(kind, digests, keys)
        }
    }

    /// Checks the next link.
    pub fn push(&mut self, link: &Link, record: &Record) -> std::result::Result<(), BrokenLink> {
        if !self.started && self.partial_start && link.seq > 1 {
            self.chain = ChainVerifier::starting_at(self.kind, link.seq, &link.prev_hash);
            self.digests.skip_before(link.seq);
        }
        self.started = true;
        self.chain
            .push(link.seq, &link.prev_hash, &link.hash, record)?;
        self.digests.on_link(link.seq, &link.hash, &record.id)
    }

    /// The result after the last link.
    pub fn finish(self) -> Verification {
        let head_seq = self.chain.head_seq();
        match self.digests.finish(head_seq) {
            Ok(()) => self.result(None),
            Err(broken) => self.result(Some(broken)),
        }
    }

    /// The result when `broken` stopped the walk.
    pub fn fail(self, broken: BrokenLink) -> Verification {
        self.result(Some(broken))
    }

    fn result(self, broken: Option<BrokenLink>) -> Verification {
        let head = (self.chain.count() > 0).then(|| Head {
            seq: self.chain.head_seq(),
            hash: self.chain.head_hash().to_string(),
        });
        let unsigned_events = match &head {
            Some(h) => {
                h.seq
                    - self
                        .digests
                        .last_signed()
                        .max(h.seq - self.chain.count() as i64)
            }
            None => 0,
        };
        Verification {
            intact: broken.is_none(),
            events: self.chain.count(),
            head,
            digests_checked: self.digests.checked(),
            signatures_checked: self.digests.signatures_checked(),
            unsigned_events,
            broken,
        }
    }
}

/// Verifies chain `scope` in the database: every link, and the digests' hashes, and their
/// signatures when `keys` is given.
pub async fn verify(
    db: &AnyPool,
    scope: &Scope,
    keys: Option<TrustedKeys>,
) -> Result<Verification> {
    let digests = digest::list(db, scope.digest_scope(), i64::MIN, i64::MAX).await?;
    let mut walk = Walk::new(scope.kind(), digests, keys);
    let filter = Filter::default();
    let mut cursor = 0;
    loop {
        let page: Vec<(Link, Record)> = match scope {
            Scope::Global => store::global_events(db, &filter, cursor, PAGE)
                .await?
                .into_iter()
                .map(|e| (e.global, e.record))
                .collect(),
            Scope::Org(id) => {
                store::org_events(db, id, &filter, Some(cursor), Direction::Newer, PAGE)
                    .await?
                    .into_iter()
                    .map(|e| (e.link(), e.record))
                    .collect()
            }
        };
        let full = page.len() == PAGE as usize;
        for (link, record) in &page {
            cursor = link.seq;
            if let Err(broken) = walk.push(link, record) {
                return Ok(walk.fail(broken));
            }
        }
        if !full {
            break;
        }
    }
    Ok(walk.finish())
}
