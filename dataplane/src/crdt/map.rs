//! The map: named fields, each a CRDT (a plain field is a register), with deletes recorded as
//! clocks so a field written after its delete (by HLC) comes back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::text;
use super::{Hlc, State};

/// One field: its state and the clock of its last change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Field {
    /// The clock of the field's last operation.
    pub(crate) at: Hlc,
    /// Its state.
    #[serde(rename = "s")]
    pub(crate) state: State,
}

/// A map's state: the fields (kept after a delete, hidden) and each field's latest delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MapState {
    /// The fields by name.
    #[serde(rename = "f")]
    pub(crate) fields: BTreeMap<String, Field>,
    /// When each deleted field was last deleted.
    #[serde(rename = "x", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) removed: BTreeMap<String, Hlc>,
}

impl MapState {
    /// Whether `name` is a live field: present and changed after its last delete.
    pub(crate) fn visible(&self, name: &str) -> bool {
        match (self.fields.get(name), self.removed.get(name)) {
            (Some(f), Some(deleted)) => f.at > *deleted,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Records a delete of `name` at `at`.
    pub(crate) fn delete(&mut self, name: &str, at: Hlc) {
        let e = self.removed.entry(name.to_owned()).or_insert(at.clone());
        if at > *e {
            *e = at;
        }
    }

    /// The highest clock anywhere in the map.
    pub(crate) fn max_clock(&self) -> i64 {
        let fields = self
            .fields
            .values()
            .map(|f| f.at.micros.max(f.state.max_clock()));
        let removed = self.removed.values().map(|h| h.micros);
        fields.chain(removed).max().unwrap_or(0)
    }

    /// The live fields as a JSON object, each rendered.
    pub(crate) fn render(&self) -> String {
        let mut out = String::from("{");
        for (name, field) in &self.fields {
            if !self.visible(name) {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&text::string(name));
            out.push(':');
            out.push_str(&field.state.render());
        }
        out.push('}');
        out
    }

    /// The join: fields merge by name, deletes keep the later clock.
    pub(crate) fn merge(mut self, other: MapState) -> MapState {
        for (name, theirs) in other.fields {
            let merged = match self.fields.remove(&name) {
                Some(mine) => merge_field(mine, theirs),
                None => theirs,
            };
            self.fields.insert(name, merged);
        }
        for (name, at) in other.removed {
            self.delete(&name, at);
        }
        self
    }
}

/// Two regions' versions of one field. Of one type, the states merge; of different types
/// (created concurrently as different CRDTs), the type of higher rank wins whole, which keeps
/// the merge a join.
fn merge_field(a: Field, b: Field) -> Field {
    match a.state.rank().cmp(&b.state.rank()) {
        std::cmp::Ordering::Greater => a,
        std::cmp::Ordering::Less => b,
        std::cmp::Ordering::Equal => {
            let at = a.at.clone().max(b.at.clone());
            // Equal ranks are equal types, which always merge.
            match a.state.clone().merge(b.state) {
                Ok(state) => Field { at, state },
                Err(_) => a,
            }
        }
    }
}
