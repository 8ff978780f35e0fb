//! Value indexes in memory: for each index a "current" map of live entries and a "history" of
//! closed intervals, kept exact as of every moment (the Datomic split: the present fast, the past
//! exact).
//!
//! An entry is (encoded value, key). `current` maps each live entry to the commit time (µs) it
//! became live; `history` holds, per entry, the closed intervals `[from, until)` during which it
//! was live. The entries matching a value as of `at` are the current ones with `since <= at`
//! plus the historical ones with `from <= at < until`. Commit times strictly increase with the
//! LSN, so these are LSN ranges too. Everything here is derived from the log, applied under the
//! primary index's write lock (see `store::index::Index::apply`), so replay on open and the
//! commit thread maintain it alike. No I/O: building from older history is `indexes::build`.
//!
//! While an index builds, writes after its definition are applied here as they come; the
//! first write to a key whose older state is not merged yet records a *cut* (its time), and the
//! build, merging that key's state as of the definition, closes its open entry at the cut.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;

use smallvec::SmallVec;

use super::def::{INDEXES_NAMESPACE, IndexDef, IndexKind, IndexStatus, Probe};
use super::encode::{self, Enc};
use crate::store::VersionId;

/// A key, shared by an index's maps.
pub type Key = Arc<str>;

/// Closed intervals `[from, until)` (µs) during which one entry was live.
type Intervals = SmallVec<[(i64, i64); 1]>;

/// Where an index's build stands.
#[derive(Debug)]
pub enum BuildState {
    /// Older history is being merged in; `cuts` holds each key's first write after the
    /// definition whose older state is not merged yet.
    Building {
        /// Versions merged so far.
        progress: Arc<AtomicU64>,
        /// Versions to merge in all.
        total: u64,
        /// Key → commit time of its first write after the definition.
        cuts: HashMap<Key, i64>,
    },
    /// Complete.
    Ready,
    /// Complete, but a unique index found duplicate live values at its definition.
    Failed(String),
}

/// One value index.
#[derive(Debug)]
pub struct ValueIndex {
    /// The definition.
    pub def: IndexDef,
    /// Distinguishes this index from a later one of the same name.
    pub id: u64,
    /// The definition's version: the build covers the versions before it.
    pub def_version: VersionId,
    /// Commit time of the definition.
    pub created_micros: i64,
    /// The field's path, split on dots.
    pub path: Vec<String>,
    /// Build progress.
    pub state: BuildState,
    current: BTreeMap<(Enc, Key), i64>,
    by_key: HashMap<Key, Enc>,
    history: BTreeMap<(Enc, Key), Intervals>,
    distinct: u64,
    /// The smallest key, to start range scans at a value without allocating.
    empty: Key,
}

/// A build the store runs off the write path: the older history of `namespace` for these indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildJob {
    /// The namespace.
    pub namespace: String,
    /// The index ids.
    pub ids: Vec<u64>,
}

/// A definition as the registry keeps it (value and text indexes alike).
#[derive(Debug, Clone)]
pub struct Defined {
    /// The definition.
    pub def: IndexDef,
    /// Commit time of its version.
    pub created_micros: i64,
    /// Its version.
    pub version: VersionId,
}

/// Every index of the store.
#[derive(Debug, Default)]
pub struct ValueIndexes {
    defs: BTreeMap<(String, String), Defined>,
    by_ns: HashMap<Box<str>, Vec<ValueIndex>>,
    next_id: u64,
    /// Builds wanted before a builder listens (during replay at open).
    pending: Vec<BuildJob>,
    builder: Option<Sender<BuildJob>>,
}

impl ValueIndex {
    fn new(
        def: IndexDef,
        id: u64,
        def_version: VersionId,
        created: i64,
        state: BuildState,
    ) -> Self {
        ValueIndex {
            path: encode::split_path(&def.field),
            def,
            id,
            def_version,
            created_micros: created,
            state,
            current: BTreeMap::new(),
            by_key: HashMap::new(),
            history: BTreeMap::new(),
            distinct: 0,
            empty: Key::from(""),
        }
    }

    /// Whether the index has every entry (built, whether or not uniqueness held).
    pub fn complete(&self) -> bool {
        !matches!(self.state, BuildState::Building { .. })
    }

    /// The status clients see.
    pub fn status(&self) -> IndexStatus {
        match &self.state {
            BuildState::Building {
                progress, total, ..
            } => IndexStatus::Building {
                indexed: progress.load(Ordering::Relaxed).min(*total),
                total: *total,
            },
            BuildState::Ready => IndexStatus::Ready,
            BuildState::Failed(reason) => IndexStatus::Failed {
                reason: reason.clone(),
            },
        }
    }

    /// Live entries now.
    pub fn entries(&self) -> u64 {
        self.current.len() as u64
    }

    /// Distinct live values now.
    pub fn distinct_values(&self) -> u64 {
        self.distinct
    }

    /// Whether any live entry holds `enc`.
    fn holds(&self, enc: &Enc) -> bool {
        self.current
            .range((
                Bound::Included((enc.clone(), Arc::clone(&self.empty))),
                Bound::Unbounded,
            ))
            .next()
            .is_some_and(|((e, _), _)| e == enc)
    }

    fn insert_current(&mut self, key: Key, enc: Enc, since: i64) {
        if !self.holds(&enc) {
            self.distinct += 1;
        }
        self.by_key.insert(Arc::clone(&key), enc.clone());
        self.current.insert((enc, key), since);
    }

    fn close(&mut self, enc: Enc, key: Key, from: i64, until: i64) {
        if from < until {
            self.history
                .entry((enc, key))
                .or_default()
                .push((from, until));
        }
    }

    /// Applies a write of `key` at `ts`: its new indexed value (None when deleted, missing or
    /// not a scalar).
    pub fn set(&mut self, key: &str, new: Option<Enc>, ts: i64) {
        if let (Some(old), Some(new)) = (self.by_key.get(key), &new)
            && old == new
        {
            return;
        }
        // The key's shared name, reused for its new entry.
        let mut name = None;
        match self.by_key.remove_entry(key) {
            Some((k, old)) => {
                let entry = (old, k);
                if let Some(since) = self.current.remove(&entry) {
                    let (old, k) = entry;
                    if !self.holds(&old) {
                        self.distinct -= 1;
                    }
                    name = Some(Arc::clone(&k));
                    self.close(old, k, since, ts);
                }
            }
            None => {
                if let BuildState::Building { cuts, .. } = &mut self.state
                    && !cuts.contains_key(key)
                {
                    cuts.insert(Key::from(key), ts);
                }
            }
        }
        if let Some(new) = new {
            self.insert_current(name.unwrap_or_else(|| Key::from(key)), new, ts);
        }
    }

    /// Merges what a build found of one key's older history: its closed intervals, and the
    /// entry live at the definition (closed at the key's cut, if it was written since).
    pub fn merge_key(&mut self, key: &Key, closed: Vec<(Enc, i64, i64)>, open: Option<(Enc, i64)>) {
        for (enc, from, until) in closed {
            self.close(enc, Arc::clone(key), from, until);
        }
        let Some((enc, since)) = open else { return };
        let cut = match &self.state {
            BuildState::Building { cuts, .. } => cuts.get(key).copied(),
            _ => None,
        };
        match cut {
            Some(until) => self.close(enc, Arc::clone(key), since, until),
            None => self.insert_current(Arc::clone(key), enc, since),
        }
    }

    /// The keys matching `probe` as of `at` (now when None), ascending.
    pub fn lookup(&self, probe: &Probe, at: Option<i64>) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let m = ProbeMatcher::new(probe);
        for (lo, hi) in &m.ranges {
            self.collect(lo, hi, m.prefix.as_deref(), at, &mut |k| {
                keys.push(k.to_string())
            });
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Pushes the keys of entries within the bounds (and starting with `prefix`) live at `at`.
    fn collect(
        &self,
        lo: &Bound<Enc>,
        hi: &Bound<Enc>,
        prefix: Option<&[u8]>,
        at: Option<i64>,
        out: &mut dyn FnMut(&Key),
    ) {
        let start = match lo {
            Bound::Included(e) | Bound::Excluded(e) => (e.clone(), Arc::clone(&self.empty)),
            Bound::Unbounded => (Enc::default(), Arc::clone(&self.empty)),
        };
        let within = |e: &Enc| {
            let above = match lo {
                Bound::Excluded(l) => e > l,
                _ => true,
            };
            let below = match hi {
                Bound::Included(h) => e <= h,
                Bound::Excluded(h) => e < h,
                Bound::Unbounded => true,
            };
            (above, below && prefix.is_none_or(|p| e.starts_with(p)))
        };
        for ((e, k), since) in self
            .current
            .range((Bound::Included(start.clone()), Bound::Unbounded))
        {
            match within(e) {
                (_, false) => break,
                (false, true) => continue,
                (true, true) => {
                    if at.is_none_or(|t| *since <= t) {
                        out(k);
                    }
                }
            }
        }
        let Some(t) = at else { return };
        for ((e, k), intervals) in self
            .history
            .range((Bound::Included(start), Bound::Unbounded))
        {
            match within(e) {
                (_, false) => break,
                (false, true) => continue,
                (true, true) => {
                    if intervals
                        .iter()
                        .any(|&(from, until)| from <= t && t < until)
                    {
                        out(k);
                    }
                }
            }
        }
    }

    /// How many live entries `probe` finds now.
    pub fn estimate(&self, probe: &Probe) -> u64 {
        let m = ProbeMatcher::new(probe);
        let mut n = 0u64;
        for (lo, hi) in &m.ranges {
            self.collect(lo, hi, m.prefix.as_deref(), None, &mut |_| n += 1);
        }
        n
    }

    /// The live keys holding `enc` now.
    pub fn holders(&self, enc: &Enc) -> Vec<Key> {
        self.current
            .range((
                Bound::Included((enc.clone(), Arc::clone(&self.empty))),
                Bound::Unbounded,
            ))
            .take_while(|((e, _), _)| e == enc)
            .map(|((_, k), _)| Arc::clone(k))
            .collect()
    }

    /// Rough bytes held per live entry and per closed interval, for reports.
    pub fn heap_estimate(&self) -> usize {
        let entry = |e: &Enc, k: &Key| e.len() + k.len() + 16;
        let current: usize = self.current.keys().map(|(e, k)| entry(e, k) + 56).sum();
        let by_key: usize = self.by_key.values().map(|e| e.len() + 48).sum();
        let history: usize = self
            .history
            .iter()
            .map(|((e, k), i)| entry(e, k) + 40 + i.len() * 16)
            .sum();
        current + by_key + history
    }
}

/// A probe as encoded ranges (and a string prefix), to scan an index or test one value.
#[derive(Debug, Clone)]
pub struct ProbeMatcher {
    ranges: Vec<(Bound<Enc>, Bound<Enc>)>,
    prefix: Option<Enc>,
}

impl ProbeMatcher {
    /// The ranges `probe` covers (none when it can match nothing indexable).
    pub fn new(probe: &Probe) -> ProbeMatcher {
        let point = |e: Enc| (Bound::Included(e.clone()), Bound::Included(e));
        let (ranges, prefix) = match probe {
            Probe::Eq(v) => (
                encode::encode_value(v).map(point).into_iter().collect(),
                None,
            ),
            Probe::In(vs) => {
                let mut encs: Vec<Enc> = vs.iter().filter_map(encode::encode_value).collect();
                encs.sort();
                encs.dedup();
                (encs.into_iter().map(point).collect(), None)
            }
            Probe::Range { lower, upper } => (
                encode::range_bounds(lower, upper).into_iter().collect(),
                None,
            ),
            Probe::Prefix(p) => {
                let e = encode::prefix_bytes(p);
                (
                    vec![(Bound::Included(e.clone()), Bound::Unbounded)],
                    Some(e),
                )
            }
        };
        ProbeMatcher { ranges, prefix }
    }

    /// Whether an encoded value matches.
    pub fn matches(&self, e: &Enc) -> bool {
        self.prefix.as_ref().is_none_or(|p| e.starts_with(p))
            && self
                .ranges
                .iter()
                .any(|(lo, hi)| (lo.as_ref(), hi.as_ref()).contains(e))
    }
}

impl ValueIndexes {
    /// Applies one operation of a record: a definition when it is one, else the indexes of its
    /// namespace. `prior_versions` is how many versions the definition's namespace holds before it.
    pub fn apply_op(
        &mut self,
        namespace: &str,
        key: &str,
        value: Option<&[u8]>,
        version: VersionId,
        ts: i64,
        prior_versions: impl FnOnce(&str) -> u64,
    ) {
        if namespace == INDEXES_NAMESPACE {
            self.apply_definition(key, value, version, ts, prior_versions);
            return;
        }
        let Some(list) = self.by_ns.get_mut(namespace) else {
            return;
        };
        let news = match (value, list.len()) {
            (None, n) => vec![None; n],
            (Some(v), 1) => vec![encode::extract(v, &list[0].path)],
            (Some(v), _) => {
                let paths: Vec<&[String]> = list.iter().map(|ix| ix.path.as_slice()).collect();
                encode::extract_all(v, &paths)
            }
        };
        for (ix, new) in list.iter_mut().zip(news) {
            ix.set(key, new, ts);
        }
    }

    /// Whether no value index exists at all.
    pub fn is_empty(&self) -> bool {
        self.by_ns.is_empty()
    }

    /// Whether any value index exists on `namespace` (writes to others are not parsed).
    pub fn indexes_namespace(&self, namespace: &str) -> bool {
        self.by_ns.contains_key(namespace)
    }

    fn apply_definition(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        version: VersionId,
        ts: i64,
        prior_versions: impl FnOnce(&str) -> u64,
    ) {
        let Some((ns, name)) = key.split_once('/') else {
            return;
        };
        self.remove(ns, name);
        let Some(def) = value
            .and_then(|v| serde_json::from_slice::<IndexDef>(v).ok())
            .filter(|d| d.namespace == ns && d.name == name)
        else {
            return;
        };
        self.defs.insert(
            (ns.to_string(), name.to_string()),
            Defined {
                def: def.clone(),
                created_micros: ts,
                version,
            },
        );
        if def.kind != IndexKind::Value {
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let total = prior_versions(ns);
        let state = if total == 0 {
            BuildState::Ready
        } else {
            BuildState::Building {
                progress: Arc::default(),
                total,
                cuts: HashMap::new(),
            }
        };
        self.by_ns
            .entry(ns.into())
            .or_default()
            .push(ValueIndex::new(def, id, version, ts, state));
        if total > 0 {
            let job = BuildJob {
                namespace: ns.to_string(),
                ids: vec![id],
            };
            let unsent = match &self.builder {
                Some(tx) => tx.send(job).err().map(|e| e.0),
                None => Some(job),
            };
            if let Some(job) = unsent {
                match self
                    .pending
                    .iter_mut()
                    .find(|j| j.namespace == job.namespace)
                {
                    Some(j) => j.ids.extend(job.ids),
                    None => self.pending.push(job),
                }
            }
        }
    }

    fn remove(&mut self, ns: &str, name: &str) {
        self.defs.remove(&(ns.to_string(), name.to_string()));
        if let Some(list) = self.by_ns.get_mut(ns) {
            list.retain(|ix| ix.def.name != name);
            if list.is_empty() {
                self.by_ns.remove(ns);
            }
        }
    }

    /// The definitions of a namespace's indexes (value and text), by name.
    pub fn definitions(&self, namespace: &str) -> Vec<Defined> {
        self.defs
            .range((namespace.to_string(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// One value index.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&ValueIndex> {
        self.by_ns
            .get(namespace)?
            .iter()
            .find(|ix| ix.def.name == name)
    }

    /// One value index by id, to merge a build into.
    pub fn get_by_id_mut(&mut self, namespace: &str, id: u64) -> Option<&mut ValueIndex> {
        self.by_ns
            .get_mut(namespace)?
            .iter_mut()
            .find(|ix| ix.id == id)
    }

    /// A namespace's value indexes.
    pub fn of_namespace(&self, namespace: &str) -> &[ValueIndex] {
        self.by_ns.get(namespace).map_or(&[], Vec::as_slice)
    }

    /// Builds wanted during replay; later ones go straight to the builder.
    pub fn take_pending(&mut self) -> Vec<BuildJob> {
        std::mem::take(&mut self.pending)
    }

    /// Where later builds are sent.
    pub fn set_builder(&mut self, tx: Sender<BuildJob>) {
        self.builder = Some(tx);
    }

    /// Ends a build: ready, or failed with the reason.
    pub fn finish(&mut self, namespace: &str, id: u64, failure: Option<String>) {
        if let Some(ix) = self.get_by_id_mut(namespace, id) {
            ix.state = match failure {
                Some(reason) => BuildState::Failed(reason),
                None => BuildState::Ready,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v(lsn: u64) -> VersionId {
        VersionId { lsn, op: 0 }
    }

    fn def(unique: bool) -> Vec<u8> {
        serde_json::to_vec(&IndexDef {
            namespace: "u".into(),
            name: "email".into(),
            field: "email".into(),
            kind: IndexKind::Value,
            unique,
        })
        .unwrap()
    }

    fn put(ix: &mut ValueIndexes, key: &str, email: &str, lsn: u64) {
        let doc = json!({ "email": email }).to_string();
        ix.apply_op(
            "u",
            key,
            Some(doc.as_bytes()),
            v(lsn),
            lsn as i64 * 10,
            |_| 0,
        );
    }

    fn eq(ix: &ValueIndexes, value: &str, at: Option<i64>) -> Vec<String> {
        ix.get("u", "email")
            .unwrap()
            .lookup(&Probe::Eq(json!(value)), at)
    }

    #[test]
    fn lookups_answer_now_and_as_of_any_moment() {
        let mut ix = ValueIndexes::default();
        ix.apply_op(
            INDEXES_NAMESPACE,
            "u/email",
            Some(&def(false)),
            v(1),
            10,
            |_| 0,
        );
        assert!(ix.get("u", "email").unwrap().complete());
        put(&mut ix, "a", "x@", 2);
        put(&mut ix, "b", "x@", 3);
        put(&mut ix, "a", "y@", 4);
        ix.apply_op("u", "b", None, v(5), 50, |_| 0);
        put(&mut ix, "b", "x@", 6);
        assert_eq!(eq(&ix, "x@", None), ["b"]);
        assert_eq!(eq(&ix, "x@", Some(19)), Vec::<String>::new());
        assert_eq!(eq(&ix, "x@", Some(20)), ["a"]);
        assert_eq!(eq(&ix, "x@", Some(35)), ["a", "b"]);
        assert_eq!(eq(&ix, "x@", Some(40)), ["b"]);
        assert_eq!(eq(&ix, "x@", Some(50)), Vec::<String>::new());
        assert_eq!(eq(&ix, "x@", Some(60)), ["b"]);
        assert_eq!(eq(&ix, "y@", Some(45)), ["a"]);
        let index = ix.get("u", "email").unwrap();
        assert_eq!((index.entries(), index.distinct_values()), (2, 2));
        assert_eq!(index.lookup(&Probe::Prefix("x".into()), None), ["b"]);
        assert_eq!(
            index.lookup(
                &Probe::In(vec![json!("x@"), json!("y@"), json!(1)]),
                Some(35)
            ),
            ["a", "b"]
        );
        let range = Probe::Range {
            lower: Bound::Excluded(json!("x@")),
            upper: Bound::Unbounded,
        };
        assert_eq!(index.lookup(&range, None), ["a"]);
        // Dropped, the index is gone; defined again, it starts over.
        ix.apply_op(INDEXES_NAMESPACE, "u/email", None, v(7), 70, |_| 0);
        assert!(ix.get("u", "email").is_none());
        assert!(!ix.indexes_namespace("u"));
    }

    #[test]
    fn a_build_merges_older_state_closed_at_each_keys_cut() {
        let mut ix = ValueIndexes::default();
        // Defined over a namespace holding 3 versions: a build is wanted.
        ix.apply_op(
            INDEXES_NAMESPACE,
            "u/email",
            Some(&def(true)),
            v(4),
            40,
            |_| 3,
        );
        assert_eq!(ix.take_pending().len(), 1);
        assert!(!ix.get("u", "email").unwrap().complete());
        // After the definition: a is rewritten, c is new.
        put(&mut ix, "a", "z@", 5);
        put(&mut ix, "c", "x@", 6);
        let id = ix.get("u", "email").unwrap().id;
        let index = ix.get_by_id_mut("u", id).unwrap();
        // What the build found: a held x@ from 10, b held y@ from 20.
        let enc = |s: &str| encode::encode_str(s);
        index.merge_key(&Key::from("a"), vec![], Some((enc("x@"), 10)));
        index.merge_key(
            &Key::from("b"),
            vec![(enc("w@"), 20, 30)],
            Some((enc("y@"), 30)),
        );
        ix.finish("u", id, None);
        assert_eq!(eq(&ix, "x@", Some(45)), ["a"]);
        assert_eq!(eq(&ix, "x@", None), ["c"]);
        assert_eq!(eq(&ix, "z@", None), ["a"]);
        assert_eq!(eq(&ix, "y@", None), ["b"]);
        assert_eq!(eq(&ix, "w@", Some(25)), ["b"]);
        assert_eq!(eq(&ix, "w@", Some(30)), Vec::<String>::new());
        let index = ix.get("u", "email").unwrap();
        assert_eq!((index.entries(), index.distinct_values()), (3, 3));
        assert_eq!(index.status(), IndexStatus::Ready);
    }
}
