//! The conflict lists: every write that lost a last-writer-wins decision, one internal key per
//! conflict (so two decisions never overwrite each other's entry, and re-applying a page writes
//! the same key again instead of a second entry).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::CONFLICTS_NS;
use crate::crdt::Hlc;
use crate::store::WriteOp;

/// One side of a conflict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    /// The region that wrote it.
    pub region: String,
    /// Its clock, RFC 3339 time and region.
    pub hlc: HlcOut,
    /// Its value as reads render it; null for a delete.
    pub value: Box<RawValue>,
}

/// An HLC as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HlcOut {
    /// Its time, RFC 3339 with microseconds.
    pub time: String,
    /// Its microseconds since the epoch (the exact order).
    pub micros: i64,
    /// The region that wrote.
    pub region: String,
}

/// One entry of `GET /api/v1/{ns}/{key}/conflicts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conflict {
    /// When this region decided it.
    pub detected_at: String,
    /// The write kept.
    pub winner: Side,
    /// The write that lost.
    pub loser: Side,
}

/// A side from a stored value (None for a delete) and its clock.
pub fn side(value: Option<&str>, hlc: &Hlc) -> Side {
    let rendered = match value {
        Some(v) if crate::crdt::is_crdt(v) => crate::crdt::render(v).ok(),
        Some(v) => Some(v.to_owned()),
        None => None,
    }
    .unwrap_or_else(|| "null".to_owned());
    Side {
        region: hlc.region.clone(),
        hlc: HlcOut {
            time: crate::clock::rfc3339(hlc.micros),
            micros: hlc.micros,
            region: hlc.region.clone(),
        },
        value: RawValue::from_string(rendered)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default()),
    }
}

/// The key prefix of one user key's conflicts (lengths first, so no two keys share a prefix).
pub fn prefix(namespace: &str, key: &str) -> String {
    format!("{}:{namespace}/{}:{key}/", namespace.len(), key.len())
}

/// The write recording `conflict` on `namespace`/`key`, decided for the peer record at
/// `origin` LSN `lsn`, operation `op`: the same decision always lands on the same key.
pub fn record(
    namespace: &str,
    key: &str,
    origin: &str,
    lsn: u64,
    op: usize,
    conflict: &Conflict,
) -> Option<WriteOp> {
    let text = serde_json::to_string(conflict).ok()?;
    let value = RawValue::from_string(text).ok()?;
    Some(WriteOp::put(
        CONFLICTS_NS,
        format!("{}{origin}/{lsn:020}.{op}", prefix(namespace, key)),
        value,
    ))
}

/// A key's conflicts, oldest decision first.
pub fn list(
    store: &crate::Store,
    namespace: &str,
    key: &str,
) -> Result<Vec<Conflict>, crate::StoreError> {
    let prefix = prefix(namespace, key);
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (keys, next) = store.keys(CONFLICTS_NS, &prefix, cursor.as_deref(), 1000);
        for k in keys {
            if let Some(found) = store.get(CONFLICTS_NS, &k)?
                && let Some(text) = found.value
                && let Ok(c) = serde_json::from_str::<Conflict>(&text)
            {
                out.push(c);
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    out.sort_by(|a, b| a.detected_at.cmp(&b.detected_at));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_different_keys_never_nest() {
        assert_ne!(prefix("a/b", "c"), prefix("a", "b/c"));
        assert!(!prefix("a", "b/").starts_with(&prefix("a", "b")));
    }
}
