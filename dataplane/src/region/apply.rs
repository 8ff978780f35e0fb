//! Applying a page of a peer's feed: for each remote operation, a decision (merge, last writer
//! by HLC, or nothing) against what this region holds, then one atomic write of every change,
//! the conflicts recorded and the new watermark.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::conflicts::{self, Conflict};
use super::{REGION_NS, WATERMARK_PREFIX, replicated};
use crate::crdt::{self, Hlc};
use crate::store::{RangeGuard, Store, WriteOp};
use crate::{StoreError, clock};

/// How far ahead of this region's clock a peer's commit time may be before the link refuses it.
pub const MAX_FUTURE_MICROS: i64 = 60_000_000;

/// One record of a peer's feed.
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteRecord {
    /// Its LSN at the peer.
    pub lsn: u64,
    /// Its commit time at the peer, RFC 3339.
    pub timestamp: String,
    /// Its operations.
    pub ops: Vec<RemoteOp>,
}

/// One operation of a peer's record, its value as stored there.
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteOp {
    /// `put` or `delete`.
    pub op: String,
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// The stored text; absent for deletes.
    #[serde(default)]
    pub value: Option<Box<RawValue>>,
}

/// A page of a peer's feed (`GET /api/v1/changes?raw=true&origin=local`).
#[derive(Debug, Clone, Deserialize)]
pub struct RemotePage {
    /// The records after the watermark that the peer wrote itself.
    pub changes: Vec<RemoteRecord>,
    /// The new watermark.
    pub next_since: u64,
    /// The peer's last LSN.
    pub last_lsn: u64,
    /// See the feed.
    #[serde(default)]
    pub closed_time: Option<String>,
}

/// The watermark stored with every applied page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watermark {
    /// The peer's last LSN covered.
    pub lsn: u64,
    /// The commit time of the peer's last record applied, RFC 3339.
    #[serde(default)]
    pub time: Option<String>,
}

/// Why a page could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The peer sent something unusable (a bad time, a clock too far ahead).
    #[error("{0}")]
    Link(String),
    /// Writing here failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a key holds here, as a decision sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The stored text; None for a delete.
    pub value: Option<String>,
    /// Its clock.
    pub hlc: Hlc,
}

/// The outcome of one remote operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing changes (a duplicate, or an older delete of an absent key).
    Nothing,
    /// Store this (None: a delete) with this clock; `loser` lost to it.
    Write {
        /// The new stored text.
        value: Option<String>,
        /// Its clock.
        hlc: Hlc,
        /// What this replaced, when that is a conflict.
        loser: Option<Held>,
    },
    /// The local version stays; the remote write lost to it.
    Keep {
        /// The remote write.
        loser: Held,
    },
}

/// Decides one remote write (`remote.value` None: a delete) against what is held here.
pub fn decide(held: Option<&Held>, remote: Held, peer: &str) -> Decision {
    let Some(held) = held else {
        return match remote.value {
            None => Decision::Nothing,
            Some(_) => Decision::Write {
                value: stored_form(remote.value, &remote.hlc),
                hlc: remote.hlc,
                loser: None,
            },
        };
    };
    // Two states of a merging type: the join, which loses nothing.
    if let (Some(l), Some(r)) = (&held.value, &remote.value)
        && crdt::is_crdt(l)
        && crdt::is_crdt(r)
        && crdt::register_hlc(l).is_none()
        && crdt::register_hlc(r).is_none()
    {
        return match crdt::merge(l, r) {
            Ok(merged) if &merged != l => Decision::Write {
                value: Some(merged),
                hlc: remote.hlc,
                loser: None,
            },
            Ok(_) => Decision::Nothing,
            // Types that cannot merge fall back to the last writer.
            Err(_) => lww(held, remote, peer),
        };
    }
    lww(held, remote, peer)
}

fn lww(held: &Held, remote: Held, peer: &str) -> Decision {
    if remote.hlc == held.hlc {
        return Decision::Nothing;
    }
    if remote.hlc > held.hlc {
        // The peer superseding its own earlier write is its history, not a conflict.
        let loser = (held.hlc.region != peer).then(|| held.clone());
        Decision::Write {
            value: stored_form(remote.value, &remote.hlc),
            hlc: remote.hlc,
            loser,
        }
    } else {
        Decision::Keep { loser: remote }
    }
}

/// A plain value from a peer is kept as a register, so its clock travels with it.
fn stored_form(value: Option<String>, hlc: &Hlc) -> Option<String> {
    value.map(|v| match crdt::is_crdt(&v) {
        true => v,
        false => RawValue::from_string(v.clone())
            .map(|raw| crdt::register(&raw, hlc))
            .unwrap_or(v),
    })
}

/// The clock of a remote operation: a register's own, else its record's commit time and origin.
pub fn remote_hlc(value: Option<&str>, micros: i64, peer: &str) -> Hlc {
    value.and_then(crdt::register_hlc).unwrap_or(Hlc {
        micros,
        region: peer.to_owned(),
    })
}

/// The key of a delete's clock, kept beside the delete (same record) when a peer's delete won.
pub fn tombstone_key(namespace: &str, key: &str) -> String {
    format!("tombstone/{}", conflicts::prefix(namespace, key))
}

/// What a key holds here now: its latest version with the version's clock (a register's own;
/// a delete's tombstone when written in the same record; else commit time and this region).
pub fn held(
    store: &Store,
    region: &str,
    namespace: &str,
    key: &str,
) -> Result<Option<Held>, StoreError> {
    let Some((version, value)) = store.latest_raw(namespace, key)? else {
        return Ok(None);
    };
    Ok(Some(held_version(
        store, region, namespace, key, version, value,
    )))
}

/// [`held`] for a given version.
pub fn held_version(
    store: &Store,
    region: &str,
    namespace: &str,
    key: &str,
    version: crate::store::Version,
    value: Option<String>,
) -> Held {
    let own = Hlc {
        micros: version.timestamp_micros,
        region: region.to_owned(),
    };
    let hlc = match &value {
        Some(v) => crdt::register_hlc(v).unwrap_or(own),
        None => tombstone(store, namespace, key, version.lsn).unwrap_or(own),
    };
    Held { value, hlc }
}

fn tombstone(store: &Store, namespace: &str, key: &str, lsn: u64) -> Option<Hlc> {
    let (v, text) = store
        .latest_raw(REGION_NS, &tombstone_key(namespace, key))
        .ok()??;
    if v.lsn != lsn {
        return None;
    }
    serde_json::from_str(&text?).ok()
}

/// The writes of one page: every key's final state, conflicts, tombstones and the watermark.
/// Empty when the page changes nothing here (the caller then only moves its watermark in memory).
pub struct Plan {
    /// The ops to write atomically (the watermark last), or empty.
    pub ops: Vec<WriteOp>,
    /// A namespace-wide guard when every user write is in one namespace.
    pub guard: Option<RangeGuard>,
    /// User operations that changed something here.
    pub applied: u64,
    /// The namespaces of the user writes, sorted.
    pub namespaces: Vec<String>,
}

/// Which of a page's writes a plan makes. A page writing several namespaces is applied a
/// namespace at a time, each write guarded against local writes of its namespace (a local
/// write landing between the plan and an unguarded write would be overwritten: a counter
/// increment lost); only the last part moves the watermark, the others store it unchanged
/// (which marks their records as applied from the peer). A restart between parts applies the
/// earlier ones again, which decides the same (merges and clock decisions are idempotent).
#[derive(Debug, Clone)]
pub enum Part {
    /// Every namespace of the page.
    Whole,
    /// One namespace's writes; `last` moves the watermark.
    Namespace {
        /// The namespace.
        name: String,
        /// Whether this is the page's last part.
        last: bool,
    },
}

/// Plans a page from `peer` against the store as of now.
pub fn plan(
    store: &Store,
    region: &str,
    peer: &str,
    page: &RemotePage,
) -> Result<Plan, ApplyError> {
    plan_part(store, region, peer, page, &Part::Whole)
}

/// Plans a part of a page from `peer` against the store as of now.
pub fn plan_part(
    store: &Store,
    region: &str,
    peer: &str,
    page: &RemotePage,
    part: &Part,
) -> Result<Plan, ApplyError> {
    let since_lsn = store.last_applied().0;
    let now = clock::now_micros();
    let detected_at = clock::rfc3339(now);
    let mut state: BTreeMap<(String, String), Option<Held>> = BTreeMap::new();
    // Every state a key takes, in order: each is a version of its history here too.
    let mut changed: Vec<((String, String), Held)> = Vec::new();
    let mut extra = Vec::new();
    let mut applied = 0;
    let mut last_time = None;
    // Idempotent by (origin, LSN): what the stored watermark covers was applied with it.
    let stored = stored_watermark(store, peer)?;
    let covered = stored.as_ref().map_or(0, |w| w.lsn);
    for rec in page.changes.iter().filter(|r| r.lsn > covered) {
        let micros = clock::parse_micros(&rec.timestamp)
            .map_err(|e| ApplyError::Link(format!("record {}: bad timestamp: {e}", rec.lsn)))?;
        if micros > now + MAX_FUTURE_MICROS {
            return Err(ApplyError::Link(format!(
                "record {} is committed {} s ahead of this region's clock",
                rec.lsn,
                (micros - now) / 1_000_000
            )));
        }
        last_time = Some(rec.timestamp.clone());
        for (i, op) in rec.ops.iter().enumerate() {
            let other_part = matches!(part, Part::Namespace { name, .. } if *name != op.namespace);
            if !replicated(&op.namespace) || other_part {
                continue;
            }
            let id = (op.namespace.clone(), op.key.clone());
            if !state.contains_key(&id) {
                state.insert(id.clone(), held(store, region, &op.namespace, &op.key)?);
            }
            let value = match op.op.as_str() {
                "delete" => None,
                _ => op.value.as_ref().map(|v| v.get().to_owned()),
            };
            let remote = Held {
                hlc: remote_hlc(value.as_deref(), micros, peer),
                value,
            };
            let current = state.get(&id).and_then(Option::as_ref);
            let (winner, loser) = match decide(current, remote.clone(), peer) {
                Decision::Nothing => continue,
                Decision::Write { value, hlc, loser } => {
                    let now_held = Held { value, hlc };
                    state.insert(id.clone(), Some(now_held.clone()));
                    changed.push((id.clone(), now_held.clone()));
                    applied += 1;
                    (now_held, loser)
                }
                Decision::Keep { loser } => (current.cloned().unwrap_or(remote), Some(loser)),
            };
            if let Some(loser) = loser {
                let conflict = Conflict {
                    detected_at: detected_at.clone(),
                    winner: conflicts::side(winner.value.as_deref(), &winner.hlc),
                    loser: conflicts::side(loser.value.as_deref(), &loser.hlc),
                };
                if let Some(w) = conflicts::record(&id.0, &id.1, peer, rec.lsn, i, &conflict)
                    && w.key.len() <= crate::names::MAX_KEY_LEN
                {
                    extra.push(w);
                }
            }
        }
    }
    if (changed.is_empty() && extra.is_empty()) || page.next_since <= covered {
        return Ok(Plan {
            ops: Vec::new(),
            guard: None,
            applied: 0,
            namespaces: Vec::new(),
        });
    }
    let mut ops = Vec::with_capacity(changed.len() * 2 + extra.len() + 1);
    let mut namespaces: Vec<&str> = changed.iter().map(|((ns, _), _)| ns.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    for ((ns, key), held) in &changed {
        match &held.value {
            Some(v) => ops.push(WriteOp::put(ns.clone(), key.clone(), raw(v.clone())?)),
            None => {
                ops.push(WriteOp::delete(ns.clone(), key.clone()));
                let hlc = serde_json::to_string(&held.hlc).unwrap_or_default();
                ops.push(WriteOp::put(REGION_NS, tombstone_key(ns, key), raw(hlc)?));
            }
        }
    }
    ops.extend(extra);
    let watermark = match (part, stored) {
        (Part::Namespace { last: false, .. }, stored) => stored.unwrap_or(Watermark {
            lsn: covered,
            time: None,
        }),
        _ => Watermark {
            lsn: page.next_since,
            time: last_time,
        },
    };
    ops.push(WriteOp::put(
        REGION_NS,
        format!("{WATERMARK_PREFIX}{peer}"),
        raw(serde_json::to_string(&watermark).unwrap_or_default())?,
    ));
    let guard = match namespaces.as_slice() {
        [one] => Some(RangeGuard {
            namespace: (*one).to_owned(),
            prefix: String::new(),
            since_lsn,
            exact: false,
        }),
        _ => None,
    };
    let namespaces = namespaces.into_iter().map(str::to_owned).collect();
    Ok(Plan {
        ops,
        guard,
        applied,
        namespaces,
    })
}

fn raw(text: String) -> Result<Box<RawValue>, ApplyError> {
    RawValue::from_string(text).map_err(|e| ApplyError::Link(format!("not JSON: {e}")))
}

/// The stored watermark of `peer`, if any.
pub fn stored_watermark(store: &Store, peer: &str) -> Result<Option<Watermark>, StoreError> {
    Ok(store
        .latest_raw(REGION_NS, &format!("{WATERMARK_PREFIX}{peer}"))?
        .and_then(|(_, text)| serde_json::from_str(&text?).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hlc(t: i64, r: &str) -> Hlc {
        Hlc {
            micros: t,
            region: r.into(),
        }
    }

    fn plain(v: &str, t: i64, r: &str) -> Held {
        Held {
            value: Some(v.into()),
            hlc: hlc(t, r),
        }
    }

    #[test]
    fn the_later_clock_wins_and_the_loser_is_kept_whichever_side_it_is() {
        let local = plain("1", 10, "a");
        match decide(Some(&local), plain("2", 11, "b"), "b") {
            Decision::Write { value, loser, .. } => {
                assert_eq!(crdt::render(&value.unwrap()).unwrap(), "2");
                assert_eq!(loser, Some(local.clone()));
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(
            decide(Some(&local), plain("2", 9, "b"), "b"),
            Decision::Keep {
                loser: plain("2", 9, "b")
            }
        );
        // Same time: the region name breaks the tie, so both regions pick the same winner.
        assert!(matches!(
            decide(Some(&local), plain("2", 10, "b"), "b"),
            Decision::Write { .. }
        ));
    }

    #[test]
    fn a_peer_superseding_itself_is_no_conflict_and_duplicates_change_nothing() {
        let from_b = plain("1", 10, "b");
        assert!(matches!(
            decide(Some(&from_b), plain("2", 12, "b"), "b"),
            Decision::Write { loser: None, .. }
        ));
        assert_eq!(
            decide(Some(&from_b), from_b.clone(), "b"),
            Decision::Nothing
        );
        let delete = Held {
            value: None,
            hlc: hlc(5, "b"),
        };
        assert_eq!(decide(None, delete.clone(), "b"), Decision::Nothing);
        assert!(matches!(
            decide(Some(&plain("1", 4, "a")), delete, "b"),
            Decision::Write {
                value: None,
                loser: Some(_),
                ..
            }
        ));
    }

    fn page(json: &str) -> RemotePage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_page_applied_twice_changes_nothing_the_second_time() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(
            crate::StoreConfig::new(dir.path()),
            std::sync::Arc::default(),
        )
        .unwrap();
        let p = page(
            r#"{"changes":[{"lsn":4,"timestamp":"2026-01-01T00:00:00Z","ops":[
                {"op":"put","namespace":"app","key":"k","value":1},
                {"op":"put","namespace":"_koru_secret","key":"k","value":1}]},
              {"lsn":5,"timestamp":"2026-01-01T00:00:01Z","ops":[
                {"op":"put","namespace":"app","key":"k","value":2}]}],
              "next_since":6,"last_lsn":6}"#,
        );
        let first = plan(&store, "a", "b", &p).unwrap();
        assert_eq!(first.applied, 2);
        // Two versions of the key and the watermark; the internal namespace stays behind.
        assert_eq!(first.ops.len(), 3);
        store.write_blocking(first.ops).unwrap();
        let history = store.history_raw("app", "k").unwrap();
        assert_eq!(history.len(), 2);
        assert!(store.latest_raw("_koru_secret", "k").unwrap().is_none());
        assert_eq!(stored_watermark(&store, "b").unwrap().unwrap().lsn, 6);
        // A restart that read the page again (say, before it read the watermark).
        let again = plan(&store, "a", "b", &p).unwrap();
        assert!(again.ops.is_empty() && again.applied == 0);
        let held = held(&store, "a", "app", "k").unwrap().unwrap();
        assert_eq!(held.hlc, hlc(1_767_225_601_000_000, "b"));
    }

    #[test]
    fn a_page_in_two_namespaces_is_planned_a_guarded_namespace_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(
            crate::StoreConfig::new(dir.path()),
            std::sync::Arc::default(),
        )
        .unwrap();
        let p = page(
            r#"{"changes":[{"lsn":4,"timestamp":"2026-01-01T00:00:00Z","ops":[
                {"op":"put","namespace":"app","key":"k","value":1},
                {"op":"put","namespace":"other","key":"k","value":2}]}],
              "next_since":5,"last_lsn":5}"#,
        );
        let whole = plan(&store, "a", "b", &p).unwrap();
        assert_eq!(whole.namespaces, ["app", "other"]);
        assert!(whole.guard.is_none());
        let part = |name: &str, last| Part::Namespace {
            name: name.into(),
            last,
        };
        let first = plan_part(&store, "a", "b", &p, &part("app", false)).unwrap();
        assert_eq!(first.guard.as_ref().unwrap().namespace, "app");
        // Its key and the watermark as it was: the record counts as applied from b.
        assert_eq!(first.ops.len(), 2);
        store.write_blocking(first.ops).unwrap();
        assert_eq!(stored_watermark(&store, "b").unwrap().unwrap().lsn, 0);
        let last = plan_part(&store, "a", "b", &p, &part("other", true)).unwrap();
        assert_eq!(last.guard.as_ref().unwrap().namespace, "other");
        store.write_blocking(last.ops).unwrap();
        assert_eq!(stored_watermark(&store, "b").unwrap().unwrap().lsn, 5);
        assert!(plan(&store, "a", "b", &p).unwrap().ops.is_empty());
    }

    #[test]
    fn a_remote_register_keeps_its_own_clock() {
        let v = RawValue::from_string("7".into()).unwrap();
        let reg = crdt::register(&v, &hlc(3, "c"));
        assert_eq!(remote_hlc(Some(&reg), 99, "b"), hlc(3, "c"));
        assert_eq!(remote_hlc(Some("7"), 99, "b"), hlc(99, "b"));
    }
}
