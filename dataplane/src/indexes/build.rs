//! Building a value index from the history before its definition, off the write path.
//!
//! The versions to index (every version of every key of the namespace before the definition)
//! never change, so they are copied out of the primary index once, their values read from the
//! log and parsed without any lock, and the result merged in chunks of keys under the write lock
//! (a few milliseconds each, so writes are never held up for long). Writes after the definition
//! are applied by the index itself as they commit (see [`super::value`]); the merge closes a
//! key's older entry at its first later write. The same path builds the indexes found in the
//! log at open, before the store takes writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use super::encode::{self, Enc};
use super::value::{BuildJob, BuildState, Key};
use crate::error::StoreError;
use crate::store::index::Index;
use crate::store::{Version, VersionId};
use crate::wal::{SegmentFiles, io_err};

/// Keys merged per hold of the write lock.
const CHUNK_KEYS: usize = 512;

/// One index being built.
struct Target {
    id: u64,
    path: Vec<String>,
    before: VersionId,
    unique: bool,
    progress: Arc<AtomicU64>,
    /// Unique indexes: the key holding each value live at the definition.
    seen: HashMap<Enc, Key>,
    failure: Option<String>,
}

/// What one key's older history gives one index: closed intervals and the entry live at the
/// definition.
type KeyResult = (Key, Vec<(Enc, i64, i64)>, Option<(Enc, i64)>);

/// Builds the indexes of `job`, pausing `pause` between chunks (tests slow builds down with it).
pub fn run(
    index: &RwLock<Index>,
    files: &SegmentFiles,
    job: &BuildJob,
    pause: Option<Duration>,
) -> Result<(), StoreError> {
    let ns = job.namespace.as_str();
    let (mut targets, keys) = {
        let index = index.read();
        let targets: Vec<Target> = job
            .ids
            .iter()
            .filter_map(|&id| {
                let ix = index
                    .values()
                    .of_namespace(ns)
                    .iter()
                    .find(|ix| ix.id == id)?;
                let BuildState::Building { progress, .. } = &ix.state else {
                    return None;
                };
                Some(Target {
                    id,
                    path: ix.path.clone(),
                    before: ix.def_version,
                    unique: ix.def.unique,
                    progress: Arc::clone(progress),
                    seen: HashMap::new(),
                    failure: None,
                })
            })
            .collect();
        let Some(before) = targets.iter().map(|t| t.before).max() else {
            return Ok(());
        };
        (targets, index.versions_before(ns, before))
    };
    for chunk in keys.chunks(CHUNK_KEYS) {
        let mut results: Vec<Vec<KeyResult>> = targets.iter().map(|_| Vec::new()).collect();
        let mut counted = vec![0u64; targets.len()];
        for (key, versions) in chunk {
            let mut values = Vec::with_capacity(versions.len());
            for v in versions {
                values.push(read_value(files, v)?);
            }
            for (t, target) in targets.iter_mut().enumerate() {
                let (r, n) = key_history(target, key, versions, &values);
                counted[t] += n;
                if let Some(r) = r {
                    results[t].push(r);
                }
            }
        }
        {
            let mut index = index.write();
            let values = index.values_mut();
            targets = targets
                .into_iter()
                .zip(results.into_iter().zip(counted))
                .filter_map(|(target, (results, n))| {
                    // Dropped (or redefined) meanwhile: nothing to finish.
                    let ix = values.get_by_id_mut(ns, target.id)?;
                    for (key, closed, open) in results {
                        ix.merge_key(&key, closed, open);
                    }
                    target.progress.fetch_add(n, Ordering::Relaxed);
                    Some(target)
                })
                .collect();
        }
        if targets.is_empty() {
            return Ok(());
        }
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    let mut index = index.write();
    for t in targets {
        index.values_mut().finish(ns, t.id, t.failure);
    }
    Ok(())
}

/// A version's value text (None for a delete).
fn read_value(files: &SegmentFiles, v: &Version) -> Result<Option<Vec<u8>>, StoreError> {
    if v.is_tombstone() {
        return Ok(None);
    }
    let bytes = files
        .read_at(
            u64::from(v.seq),
            u64::from(v.value_offset),
            v.value_len as usize,
        )
        .map_err(io_err(format!("reading a value from segment {}", v.seq)))?;
    Ok(Some(bytes))
}

/// One key's entries in one index, from its versions before the index's definition; and how
/// many versions that was.
fn key_history(
    target: &mut Target,
    key: &Key,
    versions: &[Version],
    values: &[Option<Vec<u8>>],
) -> (Option<KeyResult>, u64) {
    let mut closed = Vec::new();
    let mut open: Option<(Enc, i64)> = None;
    let mut n = 0;
    for (v, value) in versions.iter().zip(values) {
        if v.id() >= target.before {
            break;
        }
        n += 1;
        let new = value
            .as_deref()
            .and_then(|text| encode::extract(text, &target.path));
        let ts = v.timestamp_micros;
        match (open.take(), new) {
            (Some((old, since)), Some(new)) if old == new => open = Some((old, since)),
            (old, new) => {
                if let Some((old, since)) = old
                    && since < ts
                {
                    closed.push((old, since, ts));
                }
                open = new.map(|e| (e, ts));
            }
        }
    }
    if n == 0 {
        return (None, 0);
    }
    if target.unique
        && target.failure.is_none()
        && let Some((enc, _)) = &open
    {
        match target.seen.get(enc) {
            Some(first) => {
                target.failure = Some(format!(
                    "value {} is held by keys {:?} and {:?} at the index's creation; make the \
                     values unique, then drop and create the index again",
                    encode::decode_to_json(enc),
                    first,
                    key
                ));
            }
            None => {
                target.seen.insert(enc.clone(), Arc::clone(key));
            }
        }
    }
    (Some((Arc::clone(key), closed, open)), n)
}
