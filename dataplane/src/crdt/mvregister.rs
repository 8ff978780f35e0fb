//! The multi-value register: a write replaces the values it observed, and writes made
//! concurrently in different regions are all kept until one observes them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::set::survivors;
use super::text::{self, Context, Dot};

/// A multi-value register's state: each kept value by the dot of its write, and the context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Wire", try_from = "Wire")]
pub(crate) struct MvState {
    values: BTreeMap<Dot, String>,
    ctx: Context,
}

/// How it is stored: `{"e": [{"d": [region, clock], "v": value}, …], "c": {region: clock}}`.
#[derive(Serialize, Deserialize)]
struct Wire {
    e: Vec<WireEntry>,
    c: Context,
}

#[derive(Serialize, Deserialize)]
struct WireEntry {
    d: Dot,
    v: Box<RawValue>,
}

impl From<MvState> for Wire {
    fn from(s: MvState) -> Wire {
        Wire {
            e: s.values
                .into_iter()
                .map(|(d, v)| WireEntry { d, v: text::raw(v) })
                .collect(),
            c: s.ctx,
        }
    }
}

impl TryFrom<Wire> for MvState {
    type Error = serde_json::Error;

    fn try_from(w: Wire) -> Result<MvState, serde_json::Error> {
        let mut values = BTreeMap::new();
        for e in w.e {
            let value: serde_json::Value = serde_json::from_str(e.v.get())?;
            values.insert(e.d, text::canonical(&value));
        }
        Ok(MvState { values, ctx: w.c })
    }
}

impl MvState {
    /// Writes `value` (canonical text) with the new dot `dot`, replacing every value seen.
    pub(crate) fn set(&mut self, value: String, dot: Dot) {
        text::see(&mut self.ctx, &dot);
        self.values = BTreeMap::from([(dot, value)]);
    }

    /// The highest clock in the context.
    pub(crate) fn max_clock(&self) -> i64 {
        self.ctx.values().copied().max().unwrap_or(0)
    }

    /// The kept values as a JSON array, distinct and sorted by their text.
    pub(crate) fn render(&self) -> String {
        let items: BTreeSet<&str> = self.values.values().map(String::as_str).collect();
        format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
    }

    /// The join: as the set's, over the writes' dots.
    pub(crate) fn merge(self, other: MvState) -> MvState {
        let a: BTreeSet<Dot> = self.values.keys().cloned().collect();
        let b: BTreeSet<Dot> = other.values.keys().cloned().collect();
        let keep = survivors(&a, &self.ctx, &b, &other.ctx);
        let mut values = self.values;
        values.extend(other.values);
        values.retain(|d, _| keep.contains(d));
        MvState {
            values,
            ctx: text::join(self.ctx, other.ctx),
        }
    }
}
