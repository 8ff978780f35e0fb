//! Read budgets: how much of a long answer (a key's history, the change feed) one page may hold,
//! decided from sizes the index already knows, before any value is read.

use super::index::{Version, VersionId};

/// Default most bytes of values one read answer holds (`--max-read-bytes`).
pub const DEFAULT_MAX_READ_BYTES: usize = 8 * 1024 * 1024;

/// What one history entry costs beyond its value: ids, timestamp and JSON syntax, rounded up.
pub const HISTORY_ENTRY_OVERHEAD: usize = 128;

/// What one change-feed operation costs beyond its record's bytes: its id and JSON syntax.
pub const CHANGE_OP_OVERHEAD: usize = 64;

/// A page of a key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage<T> {
    /// The versions of the page, oldest first.
    pub versions: Vec<T>,
    /// The version just before the page's first (its `previous_version`), if any.
    pub previous: Option<VersionId>,
    /// Whether versions follow the page.
    pub more: bool,
}

/// Picks the versions after `after` that fit in `budget` bytes and `limit` entries, oldest first.
///
/// A page always holds at least one version when any follows `after`, so a value larger than the
/// budget is still readable and paging always advances.
pub fn history_page(
    versions: &[Version],
    after: Option<VersionId>,
    limit: usize,
    budget: usize,
) -> HistoryPage<Version> {
    let start = after.map_or(0, |after| versions.partition_point(|v| v.id() <= after));
    let mut used = 0usize;
    let mut end = start;
    for v in &versions[start..] {
        let cost = entry_cost(v);
        if end > start && (end - start >= limit || used.saturating_add(cost) > budget) {
            break;
        }
        used = used.saturating_add(cost);
        end += 1;
    }
    HistoryPage {
        versions: versions[start..end].to_vec(),
        previous: start.checked_sub(1).map(|p| versions[p].id()),
        more: end < versions.len(),
    }
}

/// Bytes one history entry adds to an answer.
fn entry_cost(v: &Version) -> usize {
    let value = if v.is_tombstone() {
        4 // null
    } else {
        v.value_len as usize
    };
    value + HISTORY_ENTRY_OVERHEAD
}

/// Whether a change-feed page that already holds `used` bytes in `taken` records may take one
/// more of `cost` bytes: the first always fits, so the feed always advances.
pub fn change_fits(taken: usize, used: usize, cost: usize, budget: usize) -> bool {
    taken == 0 || used.saturating_add(cost) <= budget
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(lsn: u64, value_len: u32) -> Version {
        Version {
            lsn,
            timestamp_micros: lsn as i64,
            seq: 1,
            value_offset: 0,
            value_len,
            op: 0,
        }
    }

    fn ids(page: &HistoryPage<Version>) -> Vec<u64> {
        page.versions.iter().map(|v| v.lsn).collect()
    }

    #[test]
    fn a_history_within_the_budget_is_one_page() {
        let all: Vec<_> = (1..=5).map(|l| version(l, 10)).collect();
        let page = history_page(&all, None, usize::MAX, 10_000);
        assert_eq!(ids(&page), [1, 2, 3, 4, 5]);
        assert!(!page.more);
        assert_eq!(page.previous, None);
    }

    #[test]
    fn pages_stop_at_the_budget_and_resume_after_the_cursor() {
        let all: Vec<_> = (1..=10).map(|l| version(l, 872)).collect();
        // Each entry costs 1,000 bytes: three fit in 3,500.
        let first = history_page(&all, None, usize::MAX, 3_500);
        assert_eq!(ids(&first), [1, 2, 3]);
        assert!(first.more);
        let next = history_page(&all, Some(first.versions[2].id()), usize::MAX, 3_500);
        assert_eq!(ids(&next), [4, 5, 6]);
        assert_eq!(next.previous, Some(all[2].id()));
        let last = history_page(&all, Some(all[8].id()), usize::MAX, 3_500);
        assert_eq!(ids(&last), [10]);
        assert!(!last.more);
        let past = history_page(&all, Some(all[9].id()), usize::MAX, 3_500);
        assert!(past.versions.is_empty() && !past.more);
    }

    #[test]
    fn the_count_limit_also_ends_a_page() {
        let all: Vec<_> = (1..=10).map(|l| version(l, 1)).collect();
        let page = history_page(&all, None, 4, usize::MAX);
        assert_eq!(ids(&page), [1, 2, 3, 4]);
        assert!(page.more);
    }

    #[test]
    fn a_value_over_the_budget_still_gets_a_page_of_its_own() {
        let all = vec![version(1, 5_000), version(2, 5_000)];
        let page = history_page(&all, None, usize::MAX, 1_000);
        assert_eq!(ids(&page), [1]);
        assert!(page.more);
        assert!(change_fits(0, 0, 5_000, 1_000));
        assert!(!change_fits(1, 600, 500, 1_000));
        assert!(change_fits(1, 500, 500, 1_000));
    }

    #[test]
    fn a_cursor_between_versions_resumes_at_the_next_one() {
        let all = vec![version(3, 1), version(7, 1), version(9, 1)];
        let page = history_page(&all, Some(VersionId { lsn: 5, op: 0 }), 10, 10_000);
        assert_eq!(ids(&page), [7, 9]);
        assert_eq!(page.previous, Some(all[0].id()));
    }
}
