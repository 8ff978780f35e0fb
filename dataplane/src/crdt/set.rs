//! The add-wins observed-remove set: each element carries the dots of the adds that put it
//! there, and the causal context records every dot seen, so a remove takes away only the adds
//! it observed and a concurrent add survives it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::text::{self, Context, Dot};

/// A set's state: element (canonical JSON text) → its live dots, and the context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Wire", try_from = "Wire")]
pub(crate) struct SetState {
    elems: BTreeMap<String, BTreeSet<Dot>>,
    ctx: Context,
}

/// How a set is stored: `{"e": [{"v": value, "d": [[region, clock], …]}, …], "c": {region: clock}}`.
#[derive(Serialize, Deserialize)]
struct Wire {
    e: Vec<WireElem>,
    c: Context,
}

#[derive(Serialize, Deserialize)]
struct WireElem {
    v: Box<RawValue>,
    d: BTreeSet<Dot>,
}

impl From<SetState> for Wire {
    fn from(s: SetState) -> Wire {
        Wire {
            e: s.elems
                .into_iter()
                .map(|(v, d)| WireElem { v: text::raw(v), d })
                .collect(),
            c: s.ctx,
        }
    }
}

impl TryFrom<Wire> for SetState {
    type Error = serde_json::Error;

    fn try_from(w: Wire) -> Result<SetState, serde_json::Error> {
        let mut elems = BTreeMap::new();
        for e in w.e {
            let value: serde_json::Value = serde_json::from_str(e.v.get())?;
            elems.insert(text::canonical(&value), e.d);
        }
        Ok(SetState { elems, ctx: w.c })
    }
}

impl SetState {
    /// Adds `value` (canonical text) with the new dot `dot`, replacing the adds it observed.
    pub(crate) fn add(&mut self, value: String, dot: Dot) {
        text::see(&mut self.ctx, &dot);
        self.elems.insert(value, BTreeSet::from([dot]));
    }

    /// Removes `value` (canonical text): the adds seen so far; the context keeps their dots.
    pub(crate) fn remove(&mut self, value: &str) {
        self.elems.remove(value);
    }

    /// The highest clock in the context.
    pub(crate) fn max_clock(&self) -> i64 {
        self.ctx.values().copied().max().unwrap_or(0)
    }

    /// The elements as a JSON array, sorted by their text.
    pub(crate) fn render(&self) -> String {
        let items: Vec<&str> = self.elems.keys().map(String::as_str).collect();
        format!("[{}]", items.join(","))
    }

    /// The join: a dot stays if both sides hold it, or one side holds it and the other has
    /// not seen it (an add the other never observed); the contexts unite.
    pub(crate) fn merge(self, other: SetState) -> SetState {
        let mut elems = BTreeMap::new();
        let keys: BTreeSet<&String> = self.elems.keys().chain(other.elems.keys()).collect();
        let empty = BTreeSet::new();
        for k in keys {
            let a = self.elems.get(k).unwrap_or(&empty);
            let b = other.elems.get(k).unwrap_or(&empty);
            let dots = survivors(a, &self.ctx, b, &other.ctx);
            if !dots.is_empty() {
                elems.insert(k.clone(), dots);
            }
        }
        SetState {
            elems,
            ctx: text::join(self.ctx, other.ctx),
        }
    }
}

/// The dots of one element (or entry) that survive merging `a` (seen `ca`) with `b` (seen `cb`).
pub(crate) fn survivors(
    a: &BTreeSet<Dot>,
    ca: &Context,
    b: &BTreeSet<Dot>,
    cb: &Context,
) -> BTreeSet<Dot> {
    let mut out: BTreeSet<Dot> = a.intersection(b).cloned().collect();
    out.extend(a.iter().filter(|d| !text::covers(cb, d)).cloned());
    out.extend(b.iter().filter(|d| !text::covers(ca, d)).cloned());
    out
}
