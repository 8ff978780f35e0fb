//! The PN counter: per region, the total of its increments and of its decrements.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CrdtError;

/// One region's totals; each only grows, so the merge takes the larger of each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    /// Sum of increments.
    #[serde(default)]
    p: u64,
    /// Sum of decrements.
    #[serde(default)]
    n: u64,
}

/// A counter's state: totals per region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct CounterState(BTreeMap<String, Totals>);

impl CounterState {
    /// The counter's value.
    pub(crate) fn value(&self) -> i128 {
        self.0
            .values()
            .map(|t| i128::from(t.p) - i128::from(t.n))
            .sum()
    }

    /// The value as JSON text.
    pub(crate) fn render(&self) -> String {
        self.value().to_string()
    }

    /// Adds `by` (negative: subtracts) to `region`'s totals.
    pub(crate) fn add(&mut self, region: &str, by: i64) -> Result<(), CrdtError> {
        let totals = self.0.entry(region.to_owned()).or_default();
        let (slot, amount) = if by >= 0 {
            (&mut totals.p, by.unsigned_abs())
        } else {
            (&mut totals.n, by.unsigned_abs())
        };
        *slot = slot
            .checked_add(amount)
            .ok_or_else(|| CrdtError::BadOperation("the counter would overflow".into()))?;
        Ok(())
    }

    /// The join: per region, the larger of each total.
    pub(crate) fn merge(mut self, other: CounterState) -> CounterState {
        for (region, t) in other.0 {
            let e = self.0.entry(region).or_default();
            e.p = e.p.max(t.p);
            e.n = e.n.max(t.n);
        }
        self
    }
}
