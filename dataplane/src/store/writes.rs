//! The store's write entry points: plain, guarded (compare-and-set over a key or range) and
//! replicated (fixed LSN and time) writes, async and blocking, each with the author and cause
//! its record stores; all queue to the commit thread.

use tokio::sync::oneshot;

use super::commit::Pending;
use super::{
    Committed, Fixed, Ordering, RangeGuard, Store, StoreError, VersionId, WriteMeta, WriteOp,
};

impl Store {
    /// Writes all operations atomically as one record; resolves once durable per the fsync mode.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<Committed, StoreError> {
        self.write_with(ops, WriteMeta::default()).await
    }

    /// `write`, recording `meta` (author and cause) in the record.
    pub async fn write_with(
        &self,
        ops: Vec<WriteOp>,
        meta: WriteMeta,
    ) -> Result<Committed, StoreError> {
        self.enqueue(ops, None, None, meta)?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// `write` of a replicated entry, at exactly `fixed`'s LSN and time (see [`Fixed`]).
    pub async fn write_fixed(
        &self,
        ops: Vec<WriteOp>,
        fixed: Fixed,
        meta: WriteMeta,
    ) -> Result<Committed, StoreError> {
        self.enqueue(ops, None, Some(fixed), meta)?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Queues a replicated write (see [`Store::write_fixed`]) and returns at once; the receiver
    /// resolves once it is durable. Writes queued back to back commit in one group.
    pub fn submit_fixed(
        &self,
        ops: Vec<WriteOp>,
        fixed: Fixed,
        meta: WriteMeta,
    ) -> Result<oneshot::Receiver<Result<Committed, StoreError>>, StoreError> {
        self.enqueue(ops, None, Some(fixed), meta)
    }

    /// `write`, committed only if no key in the guard's range was written after its LSN; else
    /// `StoreError::Conflict` and nothing is written.
    pub async fn write_guarded(
        &self,
        ops: Vec<WriteOp>,
        guard: RangeGuard,
    ) -> Result<Committed, StoreError> {
        self.write_guarded_with(ops, guard, WriteMeta::default())
            .await
    }

    /// `write_guarded`, recording `meta` (author and cause) in the record.
    pub async fn write_guarded_with(
        &self,
        ops: Vec<WriteOp>,
        guard: RangeGuard,
        meta: WriteMeta,
    ) -> Result<Committed, StoreError> {
        self.enqueue(ops, Some(guard), None, meta)?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// The guard of a compare-and-set of `op` over version `expected`: Err with the key's latest
    /// version (a delete counts; None when never written) when that is not `expected`. The commit
    /// thread checks the guard again where the write is ordered.
    pub fn guard_if_latest(
        &self,
        op: &WriteOp,
        expected: VersionId,
    ) -> Result<RangeGuard, Option<VersionId>> {
        let latest = self.latest_version(&op.namespace, &op.key);
        if latest != Some(expected) {
            return Err(latest);
        }
        Ok(RangeGuard {
            namespace: op.namespace.clone(),
            prefix: op.key.clone(),
            since_lsn: expected.lsn,
            exact: true,
        })
    }

    /// `write_guarded` for callers outside an async runtime.
    pub fn write_guarded_blocking(
        &self,
        ops: Vec<WriteOp>,
        guard: RangeGuard,
    ) -> Result<Committed, StoreError> {
        self.write_guarded_blocking_with(ops, guard, WriteMeta::default())
    }

    /// `write_guarded_with` for callers outside an async runtime.
    pub fn write_guarded_blocking_with(
        &self,
        ops: Vec<WriteOp>,
        guard: RangeGuard,
        meta: WriteMeta,
    ) -> Result<Committed, StoreError> {
        self.enqueue(ops, Some(guard), None, meta)?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    /// `write` for callers outside an async runtime.
    pub fn write_blocking(&self, ops: Vec<WriteOp>) -> Result<Committed, StoreError> {
        self.write_blocking_with(ops, WriteMeta::default())
    }

    /// `write_with` for callers outside an async runtime.
    pub fn write_blocking_with(
        &self,
        ops: Vec<WriteOp>,
        meta: WriteMeta,
    ) -> Result<Committed, StoreError> {
        self.enqueue(ops, None, None, meta)?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    fn enqueue(
        &self,
        ops: Vec<WriteOp>,
        guard: Option<RangeGuard>,
        fixed: Option<Fixed>,
        meta: WriteMeta,
    ) -> Result<oneshot::Receiver<Result<Committed, StoreError>>, StoreError> {
        self.validate(&ops)?;
        if self.inner.read_only.load(Ordering::SeqCst) {
            return Err(StoreError::ReadOnly);
        }
        let meta = meta.bounded();
        let (reply, rx) = oneshot::channel();
        self.inner
            .queue
            .submit(Pending {
                ops,
                guard,
                fixed,
                meta,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        self.inner.drive_inline();
        Ok(rx)
    }
}
