//! The budgets a query runs within, so a query past them is refused with a reason instead of
//! taking the server's memory: documents read, bytes held, groups, bytes answered.

use super::error::{Limit, QueryError};

/// Default most documents one query reads (scanned, or fetched as index candidates).
pub const DEFAULT_MAX_SCAN: usize = 5_000_000;
/// Default most bytes of one query's answer.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;
/// Default most groups of one aggregation.
pub const DEFAULT_MAX_GROUPS: usize = 100_000;
/// Default most bytes of documents one query holds at once (matched rows awaiting sort, joined
/// documents).
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 256 * 1024 * 1024;

/// The budgets of every query a store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most documents read.
    pub max_scan: usize,
    /// Most bytes of the answer's rows.
    pub max_result_bytes: usize,
    /// Most groups.
    pub max_groups: usize,
    /// Most bytes of documents held at once.
    pub max_memory_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_scan: DEFAULT_MAX_SCAN,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_groups: DEFAULT_MAX_GROUPS,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
        }
    }
}

/// One query's spending against its limits.
#[derive(Debug)]
pub struct Budget {
    /// The limits.
    pub limits: QueryLimits,
    /// Documents read so far.
    pub scanned: usize,
    /// Bytes held now.
    pub held: usize,
}

impl Budget {
    /// A fresh budget.
    pub fn new(limits: QueryLimits) -> Budget {
        Budget {
            limits,
            scanned: 0,
            held: 0,
        }
    }

    /// Counts one more document read.
    pub fn read_one(&mut self) -> Result<(), QueryError> {
        self.scanned += 1;
        if self.scanned > self.limits.max_scan {
            return Err(QueryError::limit(
                Limit::Scan,
                format!(
                    "the query read more than {} documents",
                    self.limits.max_scan
                ),
                "narrow the filter on an indexed field, or create an index on the field it filters by",
            ));
        }
        Ok(())
    }

    /// Counts `bytes` more held in memory.
    pub fn hold(&mut self, bytes: usize) -> Result<(), QueryError> {
        self.held = self.held.saturating_add(bytes);
        if self.held > self.limits.max_memory_bytes {
            return Err(QueryError::limit(
                Limit::Memory,
                format!(
                    "the query held more than {} bytes of documents",
                    self.limits.max_memory_bytes
                ),
                "add a limit, a narrower filter, or aggregate instead of listing documents",
            ));
        }
        Ok(())
    }

    /// Gives back `bytes` no longer held.
    pub fn release(&mut self, bytes: usize) {
        self.held = self.held.saturating_sub(bytes);
    }

    /// Checks a group count.
    pub fn groups(&self, groups: usize) -> Result<(), QueryError> {
        if groups > self.limits.max_groups {
            return Err(QueryError::limit(
                Limit::Groups,
                format!(
                    "the aggregation made more than {} groups",
                    self.limits.max_groups
                ),
                "group by fewer or coarser fields, or filter first",
            ));
        }
        Ok(())
    }
}
