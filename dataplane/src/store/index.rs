//! The in-memory index: for every (namespace, key), its versions in commit order, pointing into the log.
//!
//! Values are not held here, only where they live, so memory grows by a fixed 32 bytes per version
//! (plus the key itself once per key). The index is plain data with no I/O so it is tested directly.

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;

use crate::indexes::def::INDEXES_NAMESPACE;
use crate::indexes::value::{Key, ValueIndexes};
use crate::wal::record::{OpKind, Record};

/// Identifies one version: the record's LSN and the operation's position inside the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionId {
    /// LSN of the record that wrote the version.
    pub lsn: u64,
    /// Position of the operation inside that record.
    pub op: u32,
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.lsn, self.op)
    }
}

impl std::str::FromStr for VersionId {
    type Err = String;

    /// Reads `<lsn>.<op>` as [`Display`](fmt::Display) writes it, also in double quotes (as an
    /// HTTP entity tag).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(s);
        bare.split_once('.')
            .and_then(|(lsn, op)| {
                Some(VersionId {
                    lsn: lsn.parse().ok().filter(|&l| l > 0)?,
                    op: op.parse().ok().filter(|&o| o < TOMBSTONE)?,
                })
            })
            .ok_or_else(|| format!("{s:?} is not a version id (such as \"12.0\")"))
    }
}

/// One version of a key, as the index keeps it (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// LSN of the record that wrote it.
    pub lsn: u64,
    /// Commit time, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
    /// Segment holding the value.
    pub seq: u32,
    /// Offset of the value's first byte in the segment file.
    pub value_offset: u32,
    /// Length of the value's JSON text; 0 for tombstones.
    pub value_len: u32,
    /// Position of the operation inside its record.
    pub op: u32,
}

/// Marker in `value_len`'s place: versions with this op bit set are tombstones.
const TOMBSTONE: u32 = 1 << 31;

impl Version {
    /// The version's identifier.
    pub fn id(&self) -> VersionId {
        VersionId {
            lsn: self.lsn,
            op: self.op & !TOMBSTONE,
        }
    }

    /// Whether this version is a delete.
    pub fn is_tombstone(&self) -> bool {
        self.op & TOMBSTONE != 0
    }
}

/// A key's versions, oldest first; one version stays inline without a heap allocation.
pub type Versions = smallvec::SmallVec<[Version; 1]>;

/// Keys of one namespace: by hash for point reads, ordered so prefix listing and pagination are
/// range scans.
#[derive(Debug, Default)]
pub struct Namespace {
    keys: super::keys::KeyTable,
    live_keys: usize,
    versions: u64,
    /// LSN of the newest version in the namespace, so a guard over it is O(1) while it is quiet.
    last_lsn: u64,
}

/// The whole index.
#[derive(Debug, Default)]
pub struct Index {
    namespaces: HashMap<Box<str>, Namespace>,
    applied_lsn: u64,
    /// Commit time (µs) of the last applied record.
    last_timestamp_micros: i64,
    /// Commit time of the first record applied: where the store's history begins.
    first_timestamp_micros: Option<i64>,
    /// The value indexes, maintained with every record applied.
    values: ValueIndexes,
    /// Who wrote each record and why.
    authors: super::authors::Authors,
}

/// One key of a key range with its version current at a moment and its latest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeKey {
    /// The key.
    pub key: String,
    /// The version current at the moment asked for, tombstones included; None before the first.
    pub then: Option<Version>,
    /// The latest version, tombstones included.
    pub now: Version,
}

/// The version of a key current at `timestamp_micros` (the last one written at or before it).
fn version_at(versions: &[Version], timestamp_micros: i64) -> Option<(usize, &Version)> {
    let n = versions
        .partition_point(|v| v.timestamp_micros <= timestamp_micros)
        .checked_sub(1)?;
    Some((n, versions.get(n)?))
}

/// What applying one operation found: the version it superseded.
pub type Previous = Option<VersionId>;

/// Counts for the status endpoint and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    /// Keys whose latest version is not a tombstone.
    pub live_keys: usize,
    /// Versions of all keys, tombstones included.
    pub versions: u64,
    /// Namespaces holding at least one live key.
    pub namespaces: usize,
    /// LSN of the last applied record.
    pub applied_lsn: u64,
}

impl Index {
    /// Applies a record whose operation `i` has its value at `value_offsets[i]` of segment `seq`.
    ///
    /// Records at or below the applied LSN are ignored, so replaying the log twice is harmless.
    /// Pushes the superseded version of each operation onto `previous`.
    pub fn apply(
        &mut self,
        record: &Record<'_>,
        seq: u64,
        record_offset: u64,
        previous: &mut Vec<Previous>,
    ) {
        if record.lsn <= self.applied_lsn {
            return;
        }
        self.first_timestamp_micros
            .get_or_insert(record.timestamp_micros);
        self.authors.note(record.lsn, record.meta);
        for (i, op) in record.ops.iter().enumerate() {
            let tombstone = op.op.kind == OpKind::Delete;
            let version = Version {
                lsn: record.lsn,
                timestamp_micros: record.timestamp_micros,
                seq: seq as u32,
                value_offset: (record_offset + op.value_offset as u64) as u32,
                value_len: op.op.value.len() as u32,
                op: i as u32 | if tombstone { TOMBSTONE } else { 0 },
            };
            previous.push(self.push(op.op.namespace, op.op.key, version));
            if self.values.indexes_namespace(op.op.namespace)
                || op.op.namespace == INDEXES_NAMESPACE
            {
                let namespaces = &self.namespaces;
                self.values.apply_op(
                    op.op.namespace,
                    op.op.key,
                    (!tombstone).then_some(op.op.value),
                    version.id(),
                    record.timestamp_micros,
                    |ns| namespaces.get(ns).map_or(0, |n| n.versions),
                );
            }
        }
        self.applied_lsn = record.lsn;
        self.last_timestamp_micros = record.timestamp_micros;
    }

    /// Adds one version to a key, keeping the live-key count right.
    fn push(&mut self, namespace: &str, key: &str, version: Version) -> Previous {
        let ns = match self.namespaces.get_mut(namespace) {
            Some(ns) => ns,
            None => self.namespaces.entry(namespace.into()).or_default(),
        };
        let now_live = !version.is_tombstone();
        ns.versions += 1;
        ns.last_lsn = ns.last_lsn.max(version.lsn);
        let last = ns.keys.push(key, version);
        let (was_live, previous) = (
            last.is_some_and(|v| !v.is_tombstone()),
            last.map(|v| v.id()),
        );
        match (was_live, now_live) {
            (false, true) => ns.live_keys += 1,
            (true, false) => ns.live_keys -= 1,
            _ => {}
        }
        previous
    }

    /// The latest version of a key, tombstones included.
    pub fn latest(&self, namespace: &str, key: &str) -> Option<(Version, Previous)> {
        let versions = self.namespaces.get(namespace)?.keys.get(key)?;
        let n = versions.len();
        Some((versions[n - 1], n.checked_sub(2).map(|p| versions[p].id())))
    }

    /// The version current at `timestamp_micros` (the last one written at or before it).
    pub fn at(
        &self,
        namespace: &str,
        key: &str,
        timestamp_micros: i64,
    ) -> Option<(Version, Previous)> {
        let versions = self.namespaces.get(namespace)?.keys.get(key)?;
        let (n, current) = version_at(versions, timestamp_micros)?;
        Some((*current, n.checked_sub(1).map(|p| versions[p].id())))
    }

    /// All versions of a key, oldest first.
    pub fn history(&self, namespace: &str, key: &str) -> Option<&[Version]> {
        Some(self.namespaces.get(namespace)?.keys.get(key)?.as_slice())
    }

    /// Namespaces with at least one live key, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .namespaces
            .iter()
            .filter(|(_, ns)| ns.live_keys > 0)
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// Up to `limit` live keys of a namespace starting with `prefix`, after `cursor`, in order;
    /// the second value says whether more follow.
    pub fn keys(
        &self,
        namespace: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, bool) {
        let Some(ns) = self.namespaces.get(namespace) else {
            return (Vec::new(), false);
        };
        let start = match cursor {
            Some(c) if c >= prefix => Bound::Excluded(c),
            _ => Bound::Included(prefix),
        };
        let mut keys = Vec::new();
        let live = ns
            .keys
            .range(start)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, v)| v.last().is_some_and(|v| !v.is_tombstone()));
        for (key, _) in live {
            if keys.len() == limit {
                return (keys, true);
            }
            keys.push(key.to_string());
        }
        (keys, false)
    }

    /// Keys of a namespace whose latest version is a value.
    pub fn live_keys(&self, namespace: &str) -> usize {
        self.namespaces.get(namespace).map_or(0, |ns| ns.live_keys)
    }

    /// Each key of a namespace with its version current at `at` (latest when None), skipping deleted keys.
    pub fn snapshot(&self, namespace: &str, at: Option<i64>) -> Vec<(String, Version)> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        ns.keys
            .iter()
            .filter_map(|(key, versions)| {
                let v = match at {
                    None => versions.last()?,
                    Some(t) => version_at(versions, t)?.1,
                };
                (!v.is_tombstone()).then(|| (key.to_string(), *v))
            })
            .collect()
    }

    /// Every namespace that ever held a key (deleted ones too), sorted: what a snapshot of a past
    /// moment walks.
    pub fn all_namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.namespaces.keys().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// Up to `limit` keys of a namespace after `after`, in order, that were live as of record
    /// `lsn`, each with its version then; the second value says whether keys follow. At most
    /// `limit * 4` keys are looked at, so pages stay short where most keys were deleted.
    pub fn page_at_lsn(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
        lsn: u64,
    ) -> (Vec<(String, Version)>, Option<String>) {
        let Some(ns) = self.namespaces.get(namespace) else {
            return (Vec::new(), None);
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        let mut looked: Option<&str> = None;
        let keys = ns.keys.range(start);
        for (count, (key, versions)) in keys.enumerate() {
            if out.len() >= limit || count >= limit.saturating_mul(4) {
                return (out, looked.map(str::to_string));
            }
            looked = Some(key);
            let n = versions.partition_point(|v| v.lsn <= lsn);
            if let Some(v) = n.checked_sub(1).map(|i| versions[i])
                && !v.is_tombstone()
            {
                out.push((key.to_string(), v));
            }
        }
        (out, None)
    }

    /// Every key of a namespace starting with `prefix`, in order, with its version current at
    /// `timestamp_micros` and its latest one; None when the namespace never held a key.
    pub fn range_at(
        &self,
        namespace: &str,
        prefix: &str,
        timestamp_micros: i64,
    ) -> Option<Vec<RangeKey>> {
        let ns = self.namespaces.get(namespace)?;
        let keys = ns
            .keys
            .range(Bound::Included(prefix))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(key, versions)| {
                Some(RangeKey {
                    key: key.to_string(),
                    then: version_at(versions, timestamp_micros).map(|(_, v)| *v),
                    now: *versions.last()?,
                })
            })
            .collect();
        Some(keys)
    }

    /// Whether any key of `namespace` starting with `prefix` (only the key `prefix` itself
    /// when `exact`) has a version newer than `lsn`.
    pub fn changed_since(&self, namespace: &str, prefix: &str, exact: bool, lsn: u64) -> bool {
        self.changed_between(namespace, prefix, exact, lsn, u64::MAX)
    }

    /// Whether any key of `namespace` starting with `prefix` (only the key `prefix` itself
    /// when `exact`) has a version with an LSN in `(after, upto]`: a guard checked as of LSN
    /// `upto`, even when later records exist.
    pub fn changed_between(
        &self,
        namespace: &str,
        prefix: &str,
        exact: bool,
        after: u64,
        upto: u64,
    ) -> bool {
        let Some(ns) = self.namespaces.get(namespace) else {
            return false;
        };
        let one = exact.then(|| ns.keys.get(prefix)).flatten();
        let range = (!exact).then(|| {
            ns.keys
                .range(Bound::Included(prefix))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, versions)| versions)
        });
        ns.last_lsn > after
            && one
                .into_iter()
                .chain(range.into_iter().flatten())
                .any(|versions| {
                    let first_after = versions.partition_point(|v| v.lsn <= after);
                    versions.get(first_after).is_some_and(|v| v.lsn <= upto)
                })
    }

    /// Who wrote record `lsn` and why.
    pub fn meta(&self, lsn: u64) -> super::authors::WriteMeta {
        self.authors.get(lsn)
    }

    /// Per namespace (user ones, sorted, those with a live key): live keys and versions.
    pub fn namespace_stats(&self) -> Vec<(String, u64, u64)> {
        let mut out: Vec<(String, u64, u64)> = self
            .namespaces
            .iter()
            .filter(|(name, ns)| {
                ns.live_keys > 0 && !name.starts_with(crate::names::INTERNAL_PREFIX)
            })
            .map(|(name, ns)| (name.to_string(), ns.live_keys as u64, ns.versions))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Commit time of the first record: the store holds no history before it.
    pub fn first_timestamp_micros(&self) -> Option<i64> {
        self.first_timestamp_micros
    }

    /// Counts for status and metrics, over user namespaces only (internal ones hold views).
    pub fn stats(&self) -> IndexStats {
        let mut stats = IndexStats {
            applied_lsn: self.applied_lsn,
            ..IndexStats::default()
        };
        for (name, ns) in &self.namespaces {
            if name.starts_with(crate::names::INTERNAL_PREFIX) {
                continue;
            }
            stats.live_keys += ns.live_keys;
            stats.versions += ns.versions;
            stats.namespaces += usize::from(ns.live_keys > 0);
        }
        stats
    }

    /// The value indexes.
    pub fn values(&self) -> &ValueIndexes {
        &self.values
    }

    /// The value indexes, to merge a build or hand them a builder.
    pub fn values_mut(&mut self) -> &mut ValueIndexes {
        &mut self.values
    }

    /// Every key of a namespace with its versions before `before`, in key order (keys without
    /// any left out): what an index build reads.
    pub fn versions_before(&self, namespace: &str, before: VersionId) -> Vec<(Key, Vec<Version>)> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        ns.keys
            .iter()
            .filter_map(|(key, versions)| {
                let n = versions.partition_point(|v| v.id() < before);
                (n > 0).then(|| (Key::from(key), versions[..n].to_vec()))
            })
            .collect()
    }

    /// LSN of the last applied record.
    pub fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    /// Commit time (µs) of the last applied record, 0 for an empty index.
    pub fn last_timestamp_micros(&self) -> i64 {
        self.last_timestamp_micros
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::{DecodedOp, OpRef};

    fn record<'a>(lsn: u64, ts: i64, ops: &[(OpKind, &'a str, &'a str)]) -> Record<'a> {
        Record {
            lsn,
            timestamp_micros: ts,
            ops: ops
                .iter()
                .map(|&(kind, namespace, key)| DecodedOp {
                    op: OpRef {
                        kind,
                        namespace,
                        key,
                        value: if kind == OpKind::Put { b"1" } else { b"" },
                    },
                    value_offset: 40,
                })
                .collect(),
            meta: Default::default(),
            encoded_len: 0,
        }
    }

    fn apply(index: &mut Index, rec: &Record<'_>) -> Vec<Previous> {
        let mut prev = Vec::new();
        index.apply(rec, 1, 0, &mut prev);
        prev
    }

    #[test]
    fn versions_are_32_bytes() {
        assert_eq!(std::mem::size_of::<Version>(), 32);
    }

    #[test]
    fn tracks_history_time_travel_and_tombstones() {
        let mut ix = Index::default();
        assert_eq!(
            apply(&mut ix, &record(1, 100, &[(OpKind::Put, "ns", "a")])),
            vec![None]
        );
        assert_eq!(
            apply(
                &mut ix,
                &record(
                    2,
                    200,
                    &[(OpKind::Put, "ns", "a"), (OpKind::Put, "ns", "b")]
                )
            ),
            vec![Some(VersionId { lsn: 1, op: 0 }), None]
        );
        apply(&mut ix, &record(3, 300, &[(OpKind::Delete, "ns", "a")]));
        let (latest, prev) = ix.latest("ns", "a").unwrap();
        assert!(latest.is_tombstone());
        assert_eq!(prev, Some(VersionId { lsn: 2, op: 0 }));
        assert_eq!(
            ix.at("ns", "a", 250).unwrap().0.id(),
            VersionId { lsn: 2, op: 0 }
        );
        assert_eq!(
            ix.at("ns", "a", 100).unwrap().0.id(),
            VersionId { lsn: 1, op: 0 }
        );
        assert!(ix.at("ns", "a", 99).is_none());
        assert_eq!(ix.history("ns", "a").unwrap().len(), 3);
        assert_eq!(ix.keys("ns", "", None, 10), (vec!["b".to_string()], false));
        assert_eq!(ix.snapshot("ns", Some(250)).len(), 2);
        assert_eq!(
            ix.stats(),
            IndexStats {
                live_keys: 1,
                versions: 4,
                namespaces: 1,
                applied_lsn: 3
            }
        );
    }

    #[test]
    fn replaying_an_applied_record_changes_nothing() {
        let mut ix = Index::default();
        let rec = record(1, 100, &[(OpKind::Put, "ns", "a")]);
        apply(&mut ix, &rec);
        assert!(apply(&mut ix, &rec).is_empty());
        assert_eq!(ix.stats().versions, 1);
    }

    #[test]
    fn key_listing_pages_with_prefix_and_cursor() {
        let mut ix = Index::default();
        let names = ["user:1", "user:2", "user:3", "order:1"];
        for (i, k) in names.iter().enumerate() {
            apply(
                &mut ix,
                &record(i as u64 + 1, i as i64, &[(OpKind::Put, "ns", k)]),
            );
        }
        let (page, more) = ix.keys("ns", "user:", None, 2);
        assert_eq!(
            (page.clone(), more),
            (vec!["user:1".to_string(), "user:2".to_string()], true)
        );
        assert_eq!(
            ix.keys("ns", "user:", Some(&page[1]), 2),
            (vec!["user:3".to_string()], false)
        );
        assert_eq!(ix.namespaces(), vec!["ns".to_string()]);
    }

    #[test]
    fn key_ranges_pair_each_key_then_and_now_and_guard_by_lsn() {
        let mut ix = Index::default();
        assert_eq!(ix.first_timestamp_micros(), None);
        apply(&mut ix, &record(1, 100, &[(OpKind::Put, "ns", "u:a")]));
        apply(
            &mut ix,
            &record(
                2,
                200,
                &[(OpKind::Put, "ns", "u:b"), (OpKind::Put, "ns", "v:a")],
            ),
        );
        apply(&mut ix, &record(3, 300, &[(OpKind::Delete, "ns", "u:a")]));
        assert_eq!(ix.first_timestamp_micros(), Some(100));
        let range = ix.range_at("ns", "u:", 150).unwrap();
        let keys: Vec<_> = range.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["u:a", "u:b"]);
        assert_eq!(range[0].then.map(|v| v.lsn), Some(1));
        assert!(range[0].now.is_tombstone());
        assert_eq!(range[1].then, None, "u:b came after the moment");
        assert_eq!(ix.range_at("ns", "w:", 150), Some(Vec::new()));
        assert_eq!(ix.range_at("other", "", 150), None);

        assert!(ix.changed_since("ns", "u:", false, 2));
        assert!(!ix.changed_since("ns", "v:", false, 2));
        assert!(
            !ix.changed_since("ns", "", false, 3),
            "nothing after the last record"
        );
        assert!(ix.changed_since("ns", "", false, 0));
        assert!(!ix.changed_since("other", "", false, 0));
        // One key only: `u:` itself holds nothing, though keys starting with it changed.
        assert!(!ix.changed_since("ns", "u:", true, 0));
        assert!(ix.changed_since("ns", "u:a", true, 0));
        assert!(!ix.changed_between("ns", "u:a", true, 0, 0));
    }

    #[test]
    fn point_reads_and_listings_agree_through_writes_and_replay() {
        // Keys written in a scrambled order, some deleted and written again, all in one
        // namespace: every point read must match what the ordered walks see, also after a
        // replay of the same records into a fresh index (a restart).
        let mut records = Vec::new();
        let names: Vec<String> = (0..200).map(|i| format!("k{}", (i * 37) % 101)).collect();
        for (i, key) in names.iter().enumerate() {
            let kind = if i % 7 == 3 {
                OpKind::Delete
            } else {
                OpKind::Put
            };
            records.push((i as u64 + 1, i as i64 * 10, kind, key.as_str()));
        }
        let check = |ix: &Index| {
            let snapshot = ix.snapshot("ns", None);
            let (listed, _) = ix.keys("ns", "", None, usize::MAX);
            let snapshot_keys: Vec<&String> = snapshot.iter().map(|(k, _)| k).collect();
            assert_eq!(snapshot_keys, listed.iter().collect::<Vec<_>>());
            assert!(listed.windows(2).all(|w| w[0] < w[1]), "in key order");
            for (key, v) in &snapshot {
                assert_eq!(ix.latest("ns", key).map(|(l, _)| l), Some(*v));
            }
            let range = ix.range_at("ns", "", i64::MAX).unwrap_or_default();
            assert_eq!(range.len(), 101, "every key ever written, deleted ones too");
            for k in &range {
                let history = ix.history("ns", &k.key).unwrap_or_default();
                assert_eq!(history.last(), Some(&k.now));
                assert_eq!(ix.latest("ns", &k.key).map(|(l, _)| l), Some(k.now));
            }
        };
        let mut ix = Index::default();
        for &(lsn, ts, kind, key) in &records {
            apply(&mut ix, &record(lsn, ts, &[(kind, "ns", key)]));
        }
        check(&ix);
        let mut replayed = Index::default();
        for &(lsn, ts, kind, key) in &records {
            apply(&mut replayed, &record(lsn, ts, &[(kind, "ns", key)]));
            // Replaying twice (a restart over a log read again) changes nothing.
            assert!(apply(&mut replayed, &record(lsn, ts, &[(kind, "ns", key)])).is_empty());
        }
        check(&replayed);
        assert_eq!(ix.stats(), replayed.stats());
    }
}
