//! The unique check of value indexes, made where writes are ordered: in the commit thread (with
//! the requests accepted earlier in its group) and, on a replicated cluster, by every member as
//! it applies an entry (against the store as of the LSN before it, so all decide alike).
//!
//! A write is refused when, after it, a key it gives value `v` in a unique index's field would
//! share `v` with another live key. Only values the write assigns are checked, so the decision
//! depends on the log alone (not on whether a build has finished): values duplicated before
//! the index was defined do not block unrelated writes. A built index answers from its live
//! entries; one still building is checked by a scan of the namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use parking_lot::RwLock;

use super::WriteOp;
use super::index::Index;
use crate::error::StoreError;
use crate::indexes::def::{INDEXES_NAMESPACE, IndexDef, IndexKind, UniqueViolation};
use crate::indexes::encode::{self, Enc};
use crate::wal::record::OpKind;
use crate::wal::{SegmentFiles, io_err};

/// The final indexed value a write gives each key it writes, per unique index.
pub(crate) struct UniqueWrite {
    /// The index's id (0 for a check as of a moment, which has no overlay).
    pub id: u64,
    /// Key → its value after the write (None: deleted or not indexed).
    pub finals: BTreeMap<String, Option<Enc>>,
}

/// What requests accepted earlier in a commit group wrote to unique indexes, not in the index
/// yet: index id → key → its value.
pub(crate) type Overlay = HashMap<u64, HashMap<String, Option<Enc>>>;

/// One unique index a write touches.
struct Target {
    id: u64,
    namespace: String,
    name: String,
    path: Vec<String>,
    finals: BTreeMap<String, Option<Enc>>,
    /// Live holders of each value the write assigns, as the index or a scan has them.
    base: HashMap<Enc, Vec<String>>,
    /// Whether `base` still has to come from a scan.
    scan: bool,
}

/// Each key's final value under `path` after `ops` in `namespace` (later operations win).
fn finals(ops: &[WriteOp], namespace: &str, path: &[String]) -> BTreeMap<String, Option<Enc>> {
    let mut out = BTreeMap::new();
    for op in ops.iter().filter(|op| op.namespace == namespace) {
        let value = match (op.kind, &op.value) {
            (OpKind::Put, Some(v)) => encode::extract(v.get().as_bytes(), path),
            _ => None,
        };
        out.insert(op.key.clone(), value);
    }
    out
}

/// Checks `ops` against the unique indexes now (plus `overlay`); the writes to remember in the
/// overlay once the request is accepted.
pub(crate) fn check(
    index: &RwLock<Index>,
    files: &SegmentFiles,
    ops: &[WriteOp],
    overlay: &Overlay,
) -> Result<Vec<UniqueWrite>, StoreError> {
    let mut targets = Vec::new();
    {
        let index = index.read();
        let values = index.values();
        if values.is_empty() {
            // The common case: no value index at all, nothing to check or allocate.
            return Ok(Vec::new());
        }
        let mut seen: Vec<&str> = Vec::new();
        for op in ops {
            if op.kind != OpKind::Put || seen.contains(&op.namespace.as_str()) {
                continue;
            }
            seen.push(op.namespace.as_str());
            for ix in values
                .of_namespace(&op.namespace)
                .iter()
                .filter(|ix| ix.def.unique)
            {
                let finals = finals(ops, &op.namespace, &ix.path);
                let assigned: BTreeSet<&Enc> = finals.values().flatten().collect();
                if assigned.is_empty() {
                    continue;
                }
                let complete = ix.complete();
                let base = if complete {
                    assigned
                        .iter()
                        .map(|&e| {
                            (
                                e.clone(),
                                ix.holders(e).iter().map(|k| k.to_string()).collect(),
                            )
                        })
                        .collect()
                } else {
                    HashMap::new()
                };
                targets.push(Target {
                    id: ix.id,
                    namespace: op.namespace.clone(),
                    name: ix.def.name.clone(),
                    path: ix.path.clone(),
                    finals,
                    base,
                    scan: !complete,
                });
            }
        }
    }
    decide(index, files, targets, overlay, None)
}

/// Checks `ops` as a write right after the record at `at` (its commit time, µs): the unique
/// indexes defined then, the values live then, by scans. What a member applying an entry again
/// after a crash decides, exactly as it decided the first time.
pub(crate) fn check_at(
    index: &RwLock<Index>,
    files: &SegmentFiles,
    ops: &[WriteOp],
    at: i64,
) -> Result<(), StoreError> {
    let defs = index.read().snapshot(INDEXES_NAMESPACE, Some(at));
    let mut targets = Vec::new();
    for (_, version) in defs {
        let Some(text) = read(files, &version)? else {
            continue;
        };
        let Ok(def) = serde_json::from_slice::<IndexDef>(&text) else {
            continue;
        };
        if !def.unique || def.kind != IndexKind::Value {
            continue;
        }
        let path = encode::split_path(&def.field);
        let finals = finals(ops, &def.namespace, &path);
        if finals.values().all(Option::is_none) {
            continue;
        }
        targets.push(Target {
            id: 0,
            namespace: def.namespace,
            name: def.name,
            path,
            finals,
            base: HashMap::new(),
            scan: true,
        });
    }
    decide(index, files, targets, &Overlay::new(), Some(at)).map(|_| ())
}

fn read(files: &SegmentFiles, v: &super::Version) -> Result<Option<Vec<u8>>, StoreError> {
    if v.is_tombstone() {
        return Ok(None);
    }
    files
        .read_at(
            u64::from(v.seq),
            u64::from(v.value_offset),
            v.value_len as usize,
        )
        .map(Some)
        .map_err(|e| io_err(format!("reading a value from segment {}", v.seq))(e).into())
}

/// Fills in scanned holders, then refuses the first assigned value another live key holds.
fn decide(
    index: &RwLock<Index>,
    files: &SegmentFiles,
    mut targets: Vec<Target>,
    overlay: &Overlay,
    at: Option<i64>,
) -> Result<Vec<UniqueWrite>, StoreError> {
    for t in targets.iter_mut().filter(|t| t.scan) {
        let wanted: HashSet<&Enc> = t.finals.values().flatten().collect();
        let snapshot = index.read().snapshot(&t.namespace, at);
        for (key, version) in snapshot {
            let Some(text) = read(files, &version)? else {
                continue;
            };
            if let Some(e) = encode::extract(&text, &t.path)
                && wanted.contains(&e)
            {
                t.base.entry(e).or_default().push(key);
            }
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let earlier = overlay.get(&t.id);
        // A key's value after this write: this write's, else an earlier one's in the group,
        // else what the index (or scan) holds.
        let value_of = |key: &str, base: Option<&Enc>| -> Option<Enc> {
            match (t.finals.get(key), earlier.and_then(|o| o.get(key))) {
                (Some(v), _) | (None, Some(v)) => v.clone(),
                (None, None) => base.cloned(),
            }
        };
        for (key, value) in &t.finals {
            let Some(v) = value else { continue };
            let mut holders: BTreeSet<&str> = BTreeSet::new();
            for h in t.base.get(v).into_iter().flatten() {
                if value_of(h, Some(v)).as_ref() == Some(v) {
                    holders.insert(h);
                }
            }
            for (h, hv) in earlier.into_iter().flatten() {
                if hv.as_ref() == Some(v) && value_of(h, None).as_ref() == Some(v) {
                    holders.insert(h);
                }
            }
            if let Some(other) = holders.iter().copied().find(|h| h != key).or_else(|| {
                t.finals
                    .iter()
                    .find(|(k, kv)| *k != key && kv.as_ref() == Some(v))
                    .map(|(k, _)| k.as_str())
            }) {
                return Err(StoreError::UniqueViolation(UniqueViolation {
                    namespace: t.namespace,
                    index: t.name,
                    value: encode::decode_to_json(v),
                    existing: other.to_string(),
                }));
            }
        }
        out.push(UniqueWrite {
            id: t.id,
            finals: t.finals,
        });
    }
    Ok(out)
}
