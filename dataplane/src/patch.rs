//! CRDT operations against the store: read a key's stored state, apply operations to it, and
//! the compare-and-set write that makes the result land only over the state it was made from.
//! The embedded API ([`crate::db`]) and the HTTP `PATCH` route both plan their writes here.

use crate::db::{DbError, check_names, raw};
use crate::store::{RangeGuard, VersionId};
use crate::{Store, StoreError, WriteOp, clock};

/// How many times a CRDT operation without `if_match` is tried again after another write of
/// its key came between its read and its write.
pub const PATCH_ATTEMPTS: usize = 32;

/// A CRDT operation planned against the key's state as read: the write, the guard that makes
/// it a compare-and-set over that state, and what it renders as.
pub struct PatchPlan {
    /// The put of the new state.
    pub op: WriteOp,
    /// Broken by any write of the key after the read.
    pub guard: RangeGuard,
    /// The version read (None when the key was never written).
    pub read: Option<VersionId>,
    /// The new state rendered as plain JSON (the HTTP answer's `value`).
    pub rendered: String,
}

/// Reads the key's stored state and applies `ops` to it as made in `region` now; with
/// `expected`, only when that is the version read.
pub fn plan_patch(
    store: &Store,
    namespace: &str,
    key: &str,
    ops: &[crate::crdt::Operation],
    region: &str,
    expected: Option<VersionId>,
) -> Result<PatchPlan, DbError> {
    check_names(namespace, key)?;
    // Taken before the read: a write of the key after it breaks the guard.
    let (since_lsn, _) = store.last_applied();
    let found = store.latest_raw(namespace, key)?;
    let read = found.as_ref().map(|(v, _)| v.id());
    if let Some(expected) = expected
        && read != Some(expected)
    {
        return Err(DbError::mismatch(
            &WriteOp::delete(namespace, key),
            expected,
            read,
        ));
    }
    let hlc = crate::crdt::Hlc {
        micros: clock::now_micros(),
        region: region.to_owned(),
    };
    let current = found.and_then(|(_, text)| text);
    let state = crate::crdt::apply(current.as_deref(), ops, &hlc).map_err(StoreError::from)?;
    let rendered = crate::crdt::render(&state).map_err(StoreError::from)?;
    Ok(PatchPlan {
        op: WriteOp::put(namespace, key, raw(&state)?),
        guard: RangeGuard {
            namespace: namespace.to_owned(),
            prefix: key.to_owned(),
            since_lsn: read.map_or(since_lsn, |v| v.lsn),
            exact: true,
        },
        read,
        rendered,
    })
}

/// The error of an operation whose key changed under it: with `if_match`, the version
/// mismatch a `PUT` answers; without, after every attempt, the store's conflict.
pub fn patch_conflict(
    store: &Store,
    namespace: &str,
    key: &str,
    expected: Option<VersionId>,
    read: Option<VersionId>,
) -> DbError {
    let latest = store.latest_version(namespace, key);
    match expected {
        Some(expected) => DbError::mismatch(&WriteOp::delete(namespace, key), expected, latest),
        None => DbError::Store(StoreError::Conflict {
            namespace: namespace.to_owned(),
            prefix: key.to_owned(),
            since_lsn: read.map_or(0, |v| v.lsn),
        }),
    }
}
