//! `PATCH /api/v1/{ns}/{key}`: CRDT operations, applied to the key's stored state and written
//! with a compare-and-set on the version read, so concurrent operations never lose one another.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::value::RawValue;

use super::error::{ApiPath, JsonBody};
use super::json::{self, JsonBytes};
use super::kv::{if_match, tagged};
use super::{ApiError, AppState, blocking};
use crate::db::DbError;
use crate::error::StoreError;
use crate::patch::{self, PATCH_ATTEMPTS};
use crate::rewind::{GuardedWrite, RewindError};
use crate::store::{Committed, RangeGuard, WriteMeta, WriteOp};

/// `PATCH /api/v1/{ns}/{key}` with one operation or an array of them (applied atomically):
/// answers as `PUT` does, plus `value`, the new state rendered. With `If-Match`, only over that
/// version (412 `version_mismatch` otherwise); without, tried again when another write of the
/// key comes between the read and the write.
pub async fn patch(
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
    author: super::meta::Author,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Box<RawValue>>,
) -> Result<Response, ApiError> {
    // A CRDT operation merges into the stored state: its record says so.
    let meta = author.because(crate::store::Cause::Merge);
    let ops = crate::crdt::parse_ops(body.get()).map_err(StoreError::from)?;
    let expected = if_match(&headers)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(replica) = &state.replica {
            // This member must hold at least what the state is read from.
            replica.read_barrier(None).await?;
        }
        let (store, ns, k, o) = (
            state.store.clone(),
            namespace.clone(),
            key.clone(),
            ops.clone(),
        );
        let region = state.region.name.clone();
        let plan =
            blocking::read(move || Ok(patch::plan_patch(&store, &ns, &k, &o, &region, expected)?))
                .await?;
        match write_guarded(&state, plan.op, plan.guard, meta.clone()).await? {
            Err(()) if expected.is_none() && attempt < PATCH_ATTEMPTS => {
                // Contending writers back off by a random, growing pause so one gets through.
                let cap = 200u64 << attempt.min(6);
                let pause: u64 = rand::random_range(0..cap);
                tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
                continue;
            }
            Err(()) => {
                let e = patch::patch_conflict(&state.store, &namespace, &key, expected, plan.read);
                return Err(ApiError::from(e));
            }
            Ok(committed) => {
                let (version, previous) = committed.versions[0];
                let JsonBytes(mut body) =
                    json::written(version, committed.timestamp_micros, previous);
                // The written answer is an object: its closing brace makes way for `value`.
                body.pop();
                body.extend_from_slice(b",\"value\":");
                body.extend_from_slice(plan.rendered.as_bytes());
                body.push(b'}');
                return Ok(tagged(version, JsonBytes(body)));
            }
        }
    }
}

/// Writes `op` by `meta`'s author unless its key changed after the guard's LSN (`Ok(Err(()))`
/// then): through Raft on a replicated member (forwarded to the leader from a follower), else
/// to the store.
async fn write_guarded(
    state: &AppState,
    op: WriteOp,
    guard: RangeGuard,
    meta: WriteMeta,
) -> Result<Result<Committed, ()>, ApiError> {
    let written = match &state.replica {
        None => state.store.write_guarded_with(vec![op], guard, meta).await,
        Some(replica) => {
            state.check_replicated(std::slice::from_ref(&op))?;
            match replica.write_guarded(vec![op], guard, meta).await {
                Ok(committed) => Ok(committed),
                Err(RewindError::Store(e)) => Err(e),
                Err(e) => return Err(e.into()),
            }
        }
    };
    match written {
        Err(StoreError::Conflict { .. }) => Ok(Err(())),
        Err(e) => Err(ApiError::from(DbError::Store(e))),
        Ok(c) => Ok(Ok(c)),
    }
}
