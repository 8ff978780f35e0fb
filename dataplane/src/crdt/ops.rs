//! Operations on a stored CRDT (the `PATCH` body): what each does to each type, along a dotted
//! field path into maps.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::literal::{plain_register, state_of};
use super::map::{Field, MapState};
use super::text;
use super::{CrdtError, Hlc, State};

/// One operation. `path` is a dotted field path into a map, absent for a top-level CRDT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// Adds `by` (default 1) to a counter.
    Increment {
        /// The field, for a counter inside a map.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The amount.
        #[serde(default = "one")]
        by: i64,
    },
    /// Subtracts `by` (default 1) from a counter.
    Decrement {
        /// The field, for a counter inside a map.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The amount.
        #[serde(default = "one")]
        by: i64,
    },
    /// Adds `value` to a set.
    Add {
        /// The field, for a set inside a map.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The element.
        value: Value,
    },
    /// Removes `value` from a set (the adds this region has seen).
    Remove {
        /// The field, for a set inside a map.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The element.
        value: Value,
    },
    /// Writes a register (or multi-value register), or creates a field: a plain value is a
    /// register, a literal a nested CRDT.
    Set {
        /// The field, for a map.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The value.
        value: Value,
    },
    /// Deletes a map's field.
    DeleteField {
        /// The field.
        path: String,
    },
}

fn one() -> i64 {
    1
}

/// The state after `op` at clock `clock` (already past every clock in `state`).
pub(crate) fn apply(state: Option<State>, op: &Operation, clock: &Hlc) -> Result<State, CrdtError> {
    let path = match op {
        Operation::Increment { path, .. }
        | Operation::Decrement { path, .. }
        | Operation::Add { path, .. }
        | Operation::Remove { path, .. }
        | Operation::Set { path, .. } => path.as_deref(),
        Operation::DeleteField { path } => Some(path.as_str()),
    };
    let segments = match path {
        None => Vec::new(),
        Some(p) => {
            let s: Vec<&str> = p.split('.').collect();
            if s.iter().any(|s| s.is_empty()) {
                return Err(CrdtError::BadOperation(format!("bad path {p:?}")));
            }
            s
        }
    };
    if let Operation::DeleteField { .. } = op {
        let Some((last, parents)) = segments.split_last() else {
            return Err(CrdtError::BadOperation("delete_field needs a path".into()));
        };
        return along(state, parents, false, clock, &|s, _| {
            let mut map = as_map(s, "delete_field")?;
            map.delete(last, clock.clone());
            Ok(State::Map(map))
        });
    }
    along(state, &segments, false, clock, &|s, hidden| {
        leaf(s, hidden, op, clock)
    })
}

/// A map to change: the state's, or a new one.
fn as_map(state: Option<State>, wanted: &str) -> Result<MapState, CrdtError> {
    match state {
        None => Ok(MapState::default()),
        Some(State::Map(m)) => Ok(m),
        Some(other) => Err(CrdtError::mismatch(other.type_name(), wanted)),
    }
}

type Leaf<'a> = dyn Fn(Option<State>, bool) -> Result<State, CrdtError> + 'a;

/// Applies `f` to the state at `path` (maps created on the way), stamping each field on the
/// way with `clock`. `hidden` tells `f` the field had been deleted.
fn along(
    state: Option<State>,
    path: &[&str],
    hidden: bool,
    clock: &Hlc,
    f: &Leaf<'_>,
) -> Result<State, CrdtError> {
    let Some((name, rest)) = path.split_first() else {
        return f(state, hidden);
    };
    let mut map = as_map(state, "a field path")?;
    let field_hidden = !map.visible(name) && map.fields.contains_key(*name);
    let current = map.fields.remove(*name).map(|f| f.state);
    let state = along(current, rest, field_hidden, clock, f)?;
    map.fields.insert(
        (*name).to_owned(),
        Field {
            at: clock.clone(),
            state,
        },
    );
    Ok(State::Map(map))
}

fn leaf(
    state: Option<State>,
    hidden: bool,
    op: &Operation,
    clock: &Hlc,
) -> Result<State, CrdtError> {
    let dot = || (clock.region.clone(), clock.micros);
    match op {
        Operation::Increment { by, .. } | Operation::Decrement { by, .. } => {
            let by = match op {
                Operation::Decrement { .. } => by
                    .checked_neg()
                    .ok_or_else(|| CrdtError::BadOperation("by is out of range".into()))?,
                _ => *by,
            };
            let mut c = match state {
                None => Default::default(),
                Some(State::Counter(c)) => c,
                Some(other) => return Err(CrdtError::mismatch(other.type_name(), "increment")),
            };
            c.add(&clock.region, by)?;
            Ok(State::Counter(c))
        }
        Operation::Add { value, .. } | Operation::Remove { value, .. } => {
            let adding = matches!(op, Operation::Add { .. });
            let mut s = match state {
                None => Default::default(),
                Some(State::Set(s)) => s,
                Some(other) => {
                    let wanted = if adding { "add" } else { "remove" };
                    return Err(CrdtError::mismatch(other.type_name(), wanted));
                }
            };
            if adding {
                s.add(text::canonical(value), dot());
            } else {
                s.remove(&text::canonical(value));
            }
            Ok(State::Set(s))
        }
        Operation::Set { value, .. } => match (state, state_of(value, clock)?) {
            (None, Some(new)) => Ok(new),
            (None | Some(State::Register(_)), None) => Ok(plain_register(value, clock)),
            (Some(State::Mvregister(mut m)), None) => {
                m.set(text::canonical(value), dot());
                Ok(State::Mvregister(m))
            }
            (Some(other), None) => Err(CrdtError::mismatch(other.type_name(), "set a plain value")),
            // A deleted field of the same type merges what it held, so nothing it had is lost.
            (Some(old), Some(new)) if hidden && old.type_name() == new.type_name() => {
                old.merge(new)
            }
            // Only a move up the types' order keeps every region's merge a join.
            (Some(old), Some(new))
                if new.rank() > old.rank() && (hidden || matches!(old, State::Register(_))) =>
            {
                Ok(new)
            }
            (Some(old), Some(new)) => Err(CrdtError::mismatch(
                old.type_name(),
                format!("set a {} literal", new.type_name()),
            )),
        },
        // Handled by `apply`.
        Operation::DeleteField { .. } => {
            Err(CrdtError::BadOperation("delete_field needs a path".into()))
        }
    }
}
