//! One namespace's keys and their versions, found by hash for point reads and writes and walked
//! in key order for listings.
//!
//! A point read is the hottest path of the store, and a `BTreeMap` descent over 100,000 keys costs
//! a dozen string comparisons that miss the cache. So each key's versions live in a slot of a
//! vector; a hash table maps the key to its slot (one probe), and an ordered map from the same
//! key to the same slot serves prefix listings, pagination and range scans without hashing. Keys
//! are never removed (a delete is a version), so slots never move and both maps always hold the
//! same keys.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use smallvec::SmallVec;

use super::index::{Version, Versions};

/// Keys of one namespace with their versions.
#[derive(Debug, Default)]
pub struct KeyTable {
    /// Each key's slot, by hash. std's keyed SipHash: clients choose keys, so a hasher without
    /// flooding resistance would let them aim many at one bucket; on a short key it costs tens
    /// of nanoseconds, far below the cache misses of a tree descent it replaces.
    by_hash: HashMap<Arc<str>, u32>,
    /// The same keys with the same slots, in order.
    by_order: BTreeMap<Arc<str>, u32>,
    /// Every key's versions, oldest first, by slot.
    slots: Vec<Versions>,
}

impl KeyTable {
    /// A key's versions.
    pub fn get(&self, key: &str) -> Option<&Versions> {
        let slot = *self.by_hash.get(key)?;
        self.slots.get(slot as usize)
    }

    /// Adds a version to a key (creating the key), returning the version it supersedes.
    pub fn push(&mut self, key: &str, version: Version) -> Option<Version> {
        if let Some(&slot) = self.by_hash.get(key)
            && let Some(versions) = self.slots.get_mut(slot as usize)
        {
            let last = versions.last().copied();
            versions.push(version);
            return last;
        }
        // More than u32::MAX keys in one namespace would not fit in memory anyway.
        let slot = self.slots.len() as u32;
        let key: Arc<str> = Arc::from(key);
        self.slots.push(SmallVec::from_buf([version]));
        self.by_hash.insert(Arc::clone(&key), slot);
        self.by_order.insert(key, slot);
        None
    }

    /// Keys from `start` on, in order, with their versions.
    pub fn range<'a>(
        &'a self,
        start: Bound<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a Versions)> + 'a {
        self.by_order
            .range::<str, _>((start, Bound::Unbounded))
            .filter_map(|(key, &slot)| Some((&**key, self.slots.get(slot as usize)?)))
    }

    /// Every key, in order, with its versions.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Versions)> + '_ {
        self.range(Bound::Unbounded)
    }

    /// How many keys the table holds (deleted ones too).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(lsn: u64) -> Version {
        Version {
            lsn,
            timestamp_micros: lsn as i64,
            seq: 1,
            value_offset: 0,
            value_len: 1,
            op: 0,
        }
    }

    /// Both maps hold the same keys, each pointing at its own slot, and every slot has a key.
    fn assert_consistent(table: &KeyTable) {
        assert_eq!(table.by_hash.len(), table.slots.len());
        assert_eq!(table.by_order.len(), table.slots.len());
        let mut seen = vec![false; table.slots.len()];
        for (key, &slot) in &table.by_order {
            assert_eq!(table.by_hash.get(&**key), Some(&slot), "{key}");
            assert!(!std::mem::replace(&mut seen[slot as usize], true), "{key}");
        }
    }

    #[test]
    fn point_lookups_and_ordered_walks_agree() {
        let mut table = KeyTable::default();
        let keys = ["b", "a", "c", "a", "ab", "b", "a"];
        for (i, key) in keys.iter().enumerate() {
            table.push(key, version(i as u64 + 1));
            assert_consistent(&table);
        }
        assert_eq!(table.len(), 4);
        let walked: Vec<(&str, Vec<u64>)> = table
            .iter()
            .map(|(k, v)| (k, v.iter().map(|v| v.lsn).collect()))
            .collect();
        assert_eq!(
            walked,
            [
                ("a", vec![2, 4, 7]),
                ("ab", vec![5]),
                ("b", vec![1, 6]),
                ("c", vec![3]),
            ]
        );
        for (key, versions) in table.iter() {
            assert_eq!(table.get(key), Some(versions));
        }
        assert_eq!(table.get("d"), None);
        let from_ab: Vec<&str> = table.range(Bound::Excluded("ab")).map(|(k, _)| k).collect();
        assert_eq!(from_ab, ["b", "c"]);
    }

    #[test]
    fn push_answers_the_superseded_version() {
        let mut table = KeyTable::default();
        assert_eq!(table.push("k", version(1)), None);
        assert_eq!(table.push("k", version(2)), Some(version(1)));
        assert_eq!(table.push("other", version(3)), None);
        assert_eq!(table.get("k").map(|v| v.len()), Some(2));
    }
}
