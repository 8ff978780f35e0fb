//! Conflict-free replicated data types: counters, add-wins sets, maps, last-writer-wins and
//! multi-value registers, ordered by hybrid logical clocks, whose states merge without loss
//! whichever order and however often regions exchange them.
//!
//! A CRDT value is stored as a version's JSON text like any value, in a canonical envelope that
//! begins with [`STORED_PREFIX`] (`{"$crdt":{"<type>":{…}}}`), so a read tells it from a plain
//! value by its first bytes and renders it as plain JSON (a number, an array, an object) — see
//! [`render`]. Users cannot write that envelope themselves: a value whose object has a top-level
//! `$crdt` field is refused.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The first bytes of every stored CRDT value.
pub const STORED_PREFIX: &str = "{\"$crdt\":";

/// A hybrid logical clock reading: commit-time microseconds (which the store keeps strictly
/// increasing and raises past every remote time it applies) and the region that wrote, which
/// breaks ties. Ordered by time, then region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// Microseconds since the Unix epoch, as the store's commit times.
    #[serde(rename = "t")]
    pub micros: i64,
    /// The region that made the write.
    #[serde(rename = "r")]
    pub region: String,
}

/// Why a CRDT operation or state was refused.
#[derive(Debug, thiserror::Error)]
pub enum CrdtError {
    /// The stored text claims to be a CRDT but does not parse as one.
    #[error("malformed CRDT state: {0}")]
    Malformed(String),
    /// Two states of different types cannot merge, nor an operation apply to another type.
    #[error("{key_type} value cannot take {wanted}")]
    TypeMismatch {
        /// The stored value's type.
        key_type: String,
        /// What the operation or the other state needs.
        wanted: String,
    },
}

impl CrdtError {
    /// The HTTP API's error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            CrdtError::Malformed(_) => "malformed_crdt",
            CrdtError::TypeMismatch { .. } => "crdt_type_mismatch",
        }
    }
}

/// The stored envelope's contents, one variant per type.
#[derive(Debug, Clone, Serialize, Deserialize)]
// Externally tagged (`{"register":{…}}`): serde buffers internally tagged content, which
// `RawValue` (kept byte for byte) cannot go through.
#[serde(rename_all = "snake_case")]
enum State {
    /// Last writer (by HLC) wins.
    Register {
        /// When and where the value was written.
        hlc: Hlc,
        /// The value.
        value: Box<RawValue>,
    },
}

/// How a CRDT is stored.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    #[serde(rename = "$crdt")]
    crdt: State,
}

/// Whether stored JSON text is a CRDT state rather than a plain value.
pub fn is_crdt(stored: &str) -> bool {
    stored.starts_with(STORED_PREFIX)
}

fn parse(stored: &str) -> Result<State, CrdtError> {
    serde_json::from_str::<Stored>(stored)
        .map(|s| s.crdt)
        .map_err(|e| CrdtError::Malformed(e.to_string()))
}

fn store(state: State) -> String {
    // Serializing our own types to a String cannot fail.
    serde_json::to_string(&Stored { crdt: state }).unwrap_or_default()
}

/// The plain JSON a read answers for a stored CRDT state.
pub fn render(stored: &str) -> Result<String, CrdtError> {
    match parse(stored)? {
        State::Register { value, .. } => Ok(value.get().to_owned()),
    }
}

/// The join of two stored states of the same type: commutative, associative and idempotent.
pub fn merge(local: &str, remote: &str) -> Result<String, CrdtError> {
    match (parse(local)?, parse(remote)?) {
        (State::Register { hlc: a, value: va }, State::Register { hlc: b, value: vb }) => {
            Ok(store(if b > a {
                State::Register { hlc: b, value: vb }
            } else {
                State::Register { hlc: a, value: va }
            }))
        }
    }
}

/// A last-writer-wins register holding `value` written at `hlc`: how a region stores a plain
/// value that came from another region, so that later conflicts compare clocks.
pub fn register(value: &RawValue, hlc: &Hlc) -> String {
    store(State::Register {
        hlc: hlc.clone(),
        value: value.to_owned(),
    })
}

/// The clock of a stored register (None for other types).
pub fn register_hlc(stored: &str) -> Option<Hlc> {
    match parse(stored).ok()? {
        State::Register { hlc, .. } => Some(hlc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).unwrap()
    }

    #[test]
    fn a_register_renders_its_value_and_the_later_clock_wins_either_way_round() {
        let early = register(
            &raw("1"),
            &Hlc {
                micros: 5,
                region: "b".into(),
            },
        );
        let late = register(
            &raw("{\"a\":2}"),
            &Hlc {
                micros: 6,
                region: "a".into(),
            },
        );
        assert!(is_crdt(&early) && !is_crdt("{\"a\":1}"));
        assert_eq!(render(&late).unwrap(), "{\"a\":2}");
        assert_eq!(merge(&early, &late).unwrap(), late);
        assert_eq!(merge(&late, &early).unwrap(), late);
        assert_eq!(merge(&late, &late).unwrap(), late);
        assert_eq!(register_hlc(&late).unwrap().micros, 6);
    }
}
