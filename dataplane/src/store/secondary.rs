//! The store's value indexes: creating and dropping them, their status, lookups by value (now or as
//! of a moment) and the unique check made where writes are ordered.
//!
//! CONTRACT STUB (issue 18): the signatures are fixed; the bodies are the value-index helper's.

use serde_json::Value;

use super::{Document, Store};
use crate::error::StoreError;
use crate::indexes::{IndexDef, IndexInfo, IndexType, Probe};

impl Store {
    /// Every index of a namespace (value and text), with status and counts, by name.
    pub fn indexes(&self, namespace: &str) -> Vec<IndexInfo> {
        let _ = namespace;
        Vec::new()
    }

    /// One index of a namespace, if defined.
    pub fn index(&self, namespace: &str, name: &str) -> Option<IndexInfo> {
        self.indexes(namespace)
            .into_iter()
            .find(|i| i.def.name == name)
    }

    /// Keys whose indexed value matched `probe` as of `at` (now when None), ascending, at most
    /// `limit`; None when `name` is not a ready value index of the namespace.
    pub fn index_lookup(
        &self,
        namespace: &str,
        name: &str,
        probe: &Probe,
        at: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let _ = (namespace, name, probe, at, limit);
        Ok(None)
    }

    /// How many live keys `probe` would find now, from the index's counts; None when `name` is
    /// not a ready value index.
    pub fn index_estimate(&self, namespace: &str, name: &str, probe: &Probe) -> Option<u64> {
        let _ = (namespace, name, probe);
        None
    }

    /// Defines an index (the roadmap's `create_index("users", "email", IndexType::Unique)`);
    /// it is built online and used once ready.
    pub async fn create_index(
        &self,
        namespace: &str,
        field: &str,
        kind: IndexType,
    ) -> Result<IndexInfo, StoreError> {
        self.create_index_def(IndexDef::new(namespace, field, kind))
            .await
    }

    /// Defines an index from a full definition; `IndexExists` if the name is taken.
    pub async fn create_index_def(&self, def: IndexDef) -> Result<IndexInfo, StoreError> {
        let _ = def;
        Err(StoreError::InvalidRequest(
            "indexes are not built yet".into(),
        ))
    }

    /// Drops an index; `NoSuchIndex` if it is not defined.
    pub async fn drop_index(&self, namespace: &str, name: &str) -> Result<(), StoreError> {
        let _ = (namespace, name);
        Err(StoreError::InvalidRequest(
            "indexes are not built yet".into(),
        ))
    }

    /// The live documents whose indexed field equals `value` now (the roadmap's `get_by_index`).
    pub async fn get_by_index(
        &self,
        namespace: &str,
        index: &str,
        value: impl Into<Value>,
    ) -> Result<Vec<Document>, StoreError> {
        self.get_by_index_at(namespace, index, &value.into(), None)
    }

    /// `get_by_index` as of `at` (now when None), without an async runtime.
    pub fn get_by_index_at(
        &self,
        namespace: &str,
        index: &str,
        value: &Value,
        at: Option<i64>,
    ) -> Result<Vec<Document>, StoreError> {
        let _ = (namespace, index, value, at);
        Err(StoreError::InvalidRequest(
            "indexes are not built yet".into(),
        ))
    }
}
