//! The store's value indexes: creating and dropping them, their status, lookups by value (now or as
//! of a moment) and the unique check made where writes are ordered.
//!
//! Definitions are written through the store's own write path (keys of `_koru_indexes`), so
//! they are versioned, replicated and restored like data; the entries are derived from the log
//! (see [`crate::indexes::value`]). A lookup answers from an index only once it is ready; a
//! `get_by_index` over an index still building (or failed) scans the namespace instead, so its
//! answer is the same either way.

use serde_json::Value;

use super::{Document, Fetched, Store, WriteOp};
use crate::error::StoreError;
use crate::indexes::def::INDEXES_NAMESPACE;
use crate::indexes::encode;
use crate::indexes::value::BuildState;
use crate::indexes::{IndexDef, IndexInfo, IndexKind, IndexStatus, IndexType, Probe};
use crate::store::RangeGuard;

impl Store {
    /// Every index of a namespace (value and text), with status and counts, by name.
    pub fn indexes(&self, namespace: &str) -> Vec<IndexInfo> {
        let (defs, values): (Vec<_>, Vec<_>) = {
            let index = self.inner.index.read();
            let values = index.values();
            let defs = values.definitions(namespace);
            let infos = defs
                .iter()
                .map(|d| {
                    values
                        .get(namespace, &d.def.name)
                        .map(|ix| (ix.status(), ix.entries(), ix.distinct_values()))
                })
                .collect();
            (defs, infos)
        };
        defs.into_iter()
            .zip(values)
            .map(|(d, value)| {
                let (status, entries, distinct_values) = match (d.def.kind, value) {
                    (IndexKind::Value, Some(v)) => v,
                    _ => match self.text_status(namespace, &d.def.name) {
                        Some((status, count)) => (status, count, 0),
                        None => (
                            IndexStatus::Building {
                                indexed: 0,
                                total: 0,
                            },
                            0,
                            0,
                        ),
                    },
                };
                IndexInfo {
                    def: d.def,
                    status,
                    created_micros: d.created_micros,
                    entries,
                    distinct_values,
                }
            })
            .collect()
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
        let index = self.inner.index.read();
        let Some(ix) = index.values().get(namespace, name) else {
            return Ok(None);
        };
        if !matches!(ix.state, BuildState::Ready) {
            return Ok(None);
        }
        let mut keys = ix.lookup(probe, at);
        keys.truncate(limit);
        Ok(Some(keys))
    }

    /// How many live keys `probe` would find now, from the index's counts; None when `name` is
    /// not a ready value index.
    pub fn index_estimate(&self, namespace: &str, name: &str, probe: &Probe) -> Option<u64> {
        let index = self.inner.index.read();
        let ix = index.values().get(namespace, name)?;
        matches!(ix.state, BuildState::Ready).then(|| ix.estimate(probe))
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
        let (op, guard) = self.index_definition_write(&def)?;
        match self.write_guarded(vec![op], guard).await {
            Err(StoreError::Conflict { .. }) => Err(StoreError::IndexExists {
                namespace: def.namespace.clone(),
                name: def.name.clone(),
            }),
            other => other.map(|_| ()),
        }?;
        Ok(self
            .index(&def.namespace, &def.name)
            .unwrap_or_else(|| pending_info(&def)))
    }

    /// The write defining `def`, guarded so that two creations of one name cannot both win;
    /// `IndexExists` when the name is taken now.
    pub fn index_definition_write(
        &self,
        def: &IndexDef,
    ) -> Result<(WriteOp, RangeGuard), StoreError> {
        def.validate().map_err(StoreError::InvalidRequest)?;
        let key = def.key();
        if self.is_live(INDEXES_NAMESPACE, &key) {
            return Err(StoreError::IndexExists {
                namespace: def.namespace.clone(),
                name: def.name.clone(),
            });
        }
        let since_lsn = self
            .latest_version(INDEXES_NAMESPACE, &key)
            .map_or(0, |v| v.lsn);
        let text =
            serde_json::to_string(def).map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
        let value = serde_json::value::RawValue::from_string(text)
            .map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
        let guard = RangeGuard {
            namespace: INDEXES_NAMESPACE.into(),
            prefix: key.clone(),
            since_lsn,
            exact: true,
        };
        Ok((WriteOp::put(INDEXES_NAMESPACE, key, value), guard))
    }

    /// The write dropping index `name` of `namespace`; `NoSuchIndex` when it is not defined.
    pub fn index_drop_write(&self, namespace: &str, name: &str) -> Result<WriteOp, StoreError> {
        let key = crate::indexes::def::def_key(namespace, name);
        if !self.is_live(INDEXES_NAMESPACE, &key) {
            return Err(StoreError::NoSuchIndex {
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        Ok(WriteOp::delete(INDEXES_NAMESPACE, key))
    }

    /// Drops an index; `NoSuchIndex` if it is not defined.
    pub async fn drop_index(&self, namespace: &str, name: &str) -> Result<(), StoreError> {
        let op = self.index_drop_write(namespace, name)?;
        self.write(vec![op]).await.map(|_| ())
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
        self.documents_by_index(namespace, index, &Probe::Eq(value.clone()), at)
    }

    /// The documents live as of `at` (now when None) whose field under value index `index`
    /// matches `probe` (numbers compare by value), in key order: from the index when it is
    /// ready, else by a scan of the namespace, with the same answer.
    pub fn documents_by_index(
        &self,
        namespace: &str,
        index: &str,
        probe: &Probe,
        at: Option<i64>,
    ) -> Result<Vec<Document>, StoreError> {
        self.fetch_by_index(namespace, index, probe, at)?
            .into_iter()
            .map(|(key, f)| document(key, f))
            .collect()
    }

    /// [`Store::documents_by_index`] with each version's stored text, unparsed.
    pub fn fetch_by_index(
        &self,
        namespace: &str,
        index: &str,
        probe: &Probe,
        at: Option<i64>,
    ) -> Result<Vec<(String, Fetched)>, StoreError> {
        let no_such = || StoreError::NoSuchIndex {
            namespace: namespace.into(),
            name: index.into(),
        };
        let (path, ready) = {
            let ix = self.inner.index.read();
            let defs = ix.values().definitions(namespace);
            let def = defs
                .iter()
                .find(|d| d.def.name == index)
                .ok_or_else(no_such)?;
            if def.def.kind != IndexKind::Value {
                return Err(StoreError::InvalidRequest(format!(
                    "index {index:?} of namespace {namespace:?} is a text index; search it with a query's text_search"
                )));
            }
            let vi = ix.values().get(namespace, index).ok_or_else(no_such)?;
            (vi.path.clone(), matches!(vi.state, BuildState::Ready))
        };
        let wanted = crate::indexes::value::ProbeMatcher::new(probe);
        // A key's value may change between the lookup and the read: each document is rechecked.
        let matches = |f: &Fetched| {
            f.value.as_ref().is_some_and(|text| {
                encode::extract(text.as_bytes(), &path).is_some_and(|e| wanted.matches(&e))
            })
        };
        let mut found = Vec::new();
        if ready {
            let keys = self
                .index_lookup(namespace, index, probe, at, usize::MAX)?
                .unwrap_or_default();
            for key in keys {
                let fetched = match at {
                    Some(t) => self.get_at(namespace, &key, t)?,
                    None => self.get(namespace, &key)?,
                };
                if let Some(f) = fetched.filter(|f| matches(f)) {
                    found.push((key, f));
                }
            }
            return Ok(found);
        }
        // Not built yet: the same answer by a scan.
        for (key, version) in self.snapshot(namespace, at) {
            let fetched = self.fetch(version, None)?;
            if matches(&fetched) {
                found.push((key, fetched));
            }
        }
        Ok(found)
    }

    /// Refuses `ops` with `UniqueViolation` if they would give a second live key a value of a
    /// unique index, as a write ordered right now: what a replicated member checks as it
    /// applies an entry, once every entry before it is in the store.
    pub fn check_unique(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        super::unique::check(
            &self.inner.index,
            &self.inner.files,
            ops,
            &Default::default(),
        )
        .map(|_| ())
    }

    /// [`Store::check_unique`] as a write right after LSN `lsn`, whatever the store holds after
    /// it (a member applying an entry again after a crash decides as it did the first time).
    pub fn check_unique_after(&self, ops: &[WriteOp], lsn: u64) -> Result<(), StoreError> {
        if lsn == 0 {
            return Ok(());
        }
        let Some(record) = self.changes_page(lsn - 1, 1, 1)?.into_iter().next() else {
            return Ok(());
        };
        super::unique::check_at(
            &self.inner.index,
            &self.inner.files,
            ops,
            record.timestamp_micros,
        )
    }

    /// Whether operations (namespace, is a put) put into a namespace with a unique index now, or define an index: a
    /// replicated member then applies the entries before them first, so the check sees them.
    pub fn unique_relevant<'a>(&self, ops: impl IntoIterator<Item = (&'a str, bool)>) -> bool {
        let index = self.inner.index.read();
        ops.into_iter().any(|(namespace, put)| {
            namespace == INDEXES_NAMESPACE
                || (put
                    && index
                        .values()
                        .of_namespace(namespace)
                        .iter()
                        .any(|ix| ix.def.unique))
        })
    }
}

/// The info of an index this member has not applied yet (a follower behind the leader).
pub fn pending_info(def: &IndexDef) -> IndexInfo {
    IndexInfo {
        def: def.clone(),
        status: IndexStatus::Building {
            indexed: 0,
            total: 0,
        },
        created_micros: 0,
        entries: 0,
        distinct_values: 0,
    }
}

fn document(key: String, f: Fetched) -> Result<Document, StoreError> {
    let text = f.value.as_deref().unwrap_or("null");
    let value = serde_json::from_str(text).map_err(|e| StoreError::InvalidValue(e.to_string()))?;
    Ok(Document {
        key,
        version: f.version,
        timestamp_micros: f.timestamp_micros,
        value,
    })
}
