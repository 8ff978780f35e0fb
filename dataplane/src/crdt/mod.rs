//! Conflict-free replicated data types: counters, add-wins sets, maps, last-writer-wins and
//! multi-value registers, ordered by hybrid logical clocks, whose states merge without loss
//! whichever order and however often regions exchange them.
//!
//! A CRDT value is stored as a version's JSON text like any value, in a canonical envelope that
//! begins with [`STORED_PREFIX`] (`{"$crdt":{"<type>":{…}}}`), so a read tells it from a plain
//! value by its first bytes and renders it as plain JSON (a number, an array, an object) — see
//! [`render`]. Users cannot write that envelope themselves: a value whose object has a top-level
//! `$crdt` field is refused. Users create CRDTs with literals ([`from_user`]) and change them with
//! operations ([`apply`]); regions exchange whole states and [`merge`] them.

mod counter;
mod literal;
mod map;
mod mvregister;
mod ops;
mod register;
mod set;
mod text;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use literal::{Counter, MvRegister, Register, Set};
pub use ops::Operation;

/// The first bytes of every stored CRDT value.
pub const STORED_PREFIX: &str = "{\"$crdt\":";

/// The region name the embedded database writes counter and set entries under unless its
/// options name one.
pub const LOCAL_REGION: &str = "local";

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
    /// An operation met a plain (non-CRDT) value.
    #[error("the stored value is plain JSON, not a CRDT; write a literal first")]
    NotACrdt,
    /// An operation is malformed (unknown op, missing field, bad path, overflow).
    #[error("bad operation: {0}")]
    BadOperation(String),
    /// A value uses a literal wrongly or carries the reserved top-level `$crdt` field.
    #[error("invalid value: {0}")]
    InvalidValue(String),
}

impl CrdtError {
    /// The HTTP API's error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            CrdtError::Malformed(_) => "malformed_crdt",
            CrdtError::TypeMismatch { .. } => "crdt_type_mismatch",
            CrdtError::NotACrdt => "not_a_crdt",
            CrdtError::BadOperation(_) => "bad_request",
            CrdtError::InvalidValue(_) => "invalid_value",
        }
    }

    fn mismatch(key_type: &str, wanted: impl Into<String>) -> CrdtError {
        CrdtError::TypeMismatch {
            key_type: key_type.to_owned(),
            wanted: wanted.into(),
        }
    }
}

/// The stored envelope's contents, one variant per type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Externally tagged (`{"register":{…}}`): serde buffers internally tagged content, which
// `RawValue` (kept byte for byte) cannot go through.
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    /// Last writer (by HLC) wins.
    Register(register::RegisterState),
    /// Concurrent values are all kept.
    Mvregister(mvregister::MvState),
    /// Per-region increments and decrements.
    Counter(counter::CounterState),
    /// Add-wins observed-remove set.
    Set(set::SetState),
    /// Fields, each a CRDT.
    Map(map::MapState),
}

impl State {
    /// The type's name as errors and the envelope call it.
    fn type_name(&self) -> &'static str {
        match self {
            State::Register(_) => "register",
            State::Mvregister(_) => "mvregister",
            State::Counter(_) => "counter",
            State::Set(_) => "set",
            State::Map(_) => "map",
        }
    }

    /// A fixed order of the types, which a map uses to settle a field two regions created
    /// with different types (the higher rank wins) so its merge stays a join.
    fn rank(&self) -> u8 {
        match self {
            State::Register(_) => 0,
            State::Mvregister(_) => 1,
            State::Counter(_) => 2,
            State::Set(_) => 3,
            State::Map(_) => 4,
        }
    }

    /// The highest clock reading the state holds (0 when none): a new operation's clock is
    /// past it, so it orders after everything the state has seen.
    fn max_clock(&self) -> i64 {
        match self {
            State::Register(r) => r.hlc.micros,
            State::Mvregister(m) => m.max_clock(),
            State::Counter(_) => 0,
            State::Set(s) => s.max_clock(),
            State::Map(m) => m.max_clock(),
        }
    }

    /// Plain JSON text for reads.
    fn render(&self) -> String {
        match self {
            State::Register(r) => r.value.get().to_owned(),
            State::Mvregister(m) => m.render(),
            State::Counter(c) => c.render(),
            State::Set(s) => s.render(),
            State::Map(m) => m.render(),
        }
    }

    /// The join with a state of the same type.
    fn merge(self, other: State) -> Result<State, CrdtError> {
        Ok(match (self, other) {
            (State::Register(a), State::Register(b)) => State::Register(a.merge(b)),
            (State::Mvregister(a), State::Mvregister(b)) => State::Mvregister(a.merge(b)),
            (State::Counter(a), State::Counter(b)) => State::Counter(a.merge(b)),
            (State::Set(a), State::Set(b)) => State::Set(a.merge(b)),
            (State::Map(a), State::Map(b)) => State::Map(a.merge(b)),
            (a, b) => return Err(CrdtError::mismatch(a.type_name(), b.type_name())),
        })
    }
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

/// Any stored value's text as reads answer it: a CRDT state rendered, a plain value unchanged.
pub fn as_read(stored: String) -> Result<String, CrdtError> {
    if is_crdt(&stored) {
        render(&stored)
    } else {
        Ok(stored)
    }
}

/// The plain JSON a read answers for a stored CRDT state.
pub fn render(stored: &str) -> Result<String, CrdtError> {
    Ok(parse(stored)?.render())
}

/// The join of two stored states of the same type: commutative, associative and idempotent.
pub fn merge(local: &str, remote: &str) -> Result<String, CrdtError> {
    Ok(store(parse(local)?.merge(parse(remote)?)?))
}

/// A last-writer-wins register holding `value` written at `hlc`: how a region stores a plain
/// value that came from another region, so that later conflicts compare clocks.
pub fn register(value: &RawValue, hlc: &Hlc) -> String {
    store(State::Register(register::RegisterState {
        hlc: hlc.clone(),
        value: value.to_owned(),
    }))
}

/// The clock of a stored register (None for other types).
pub fn register_hlc(stored: &str) -> Option<Hlc> {
    match parse(stored).ok()? {
        State::Register(r) => Some(r.hlc),
        _ => None,
    }
}

/// The type name of a stored state (`counter`, `set`, …), None for a plain value.
pub fn type_of(stored: &str) -> Option<&'static str> {
    if !is_crdt(stored) {
        return None;
    }
    parse(stored).ok().map(|s| s.type_name())
}

/// What a user's value becomes when written: the stored CRDT state when it holds literals
/// (`{"$counter": 1}`, or an object with literal fields), None when it is plain JSON stored as
/// given. A top-level `$crdt` field, or a literal used wrongly, is `invalid_value`. `hlc` is the
/// write's clock (its region names the counter and set entries).
pub fn from_user(value: &str, hlc: &Hlc) -> Result<Option<String>, CrdtError> {
    // Literals and the reserved field are object keys starting with `$` (perhaps escaped as
    // `\u0024`): most values have none, and are not parsed again here.
    if !value.contains("\"$") && !value.contains("\\u0024") {
        return Ok(None);
    }
    let parsed: serde_json::Value =
        serde_json::from_str(value).map_err(|e| CrdtError::InvalidValue(e.to_string()))?;
    if parsed.get("$crdt").is_some() {
        return Err(CrdtError::InvalidValue(
            "the top-level field \"$crdt\" is reserved for stored CRDT states".into(),
        ));
    }
    Ok(literal::state_of(&parsed, hlc)?.map(store))
}

/// The state after applying `ops` in order to `current` (the stored text; None for an absent
/// or deleted key, which the first operation creates). Each operation takes the clock
/// `max(hlc.micros, the state's highest clock + 1)` so clocks only move forward.
pub fn apply(current: Option<&str>, ops: &[Operation], hlc: &Hlc) -> Result<String, CrdtError> {
    let mut state = match current {
        None => None,
        Some(text) if is_crdt(text) => Some(parse(text)?),
        Some(_) => return Err(CrdtError::NotACrdt),
    };
    for op in ops {
        let micros = state
            .as_ref()
            .map_or(hlc.micros, |s| hlc.micros.max(s.max_clock() + 1));
        let clock = Hlc {
            micros,
            region: hlc.region.clone(),
        };
        state = Some(ops::apply(state, op, &clock)?);
    }
    state
        .map(store)
        .ok_or_else(|| CrdtError::BadOperation("no operations given".into()))
}

/// The operations of a `PATCH` body: one operation object or an array of them.
pub fn parse_ops(json: &str) -> Result<Vec<Operation>, CrdtError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<Operation>),
        One(Operation),
    }
    let ops = match serde_json::from_str::<OneOrMany>(json) {
        Ok(OneOrMany::Many(v)) => v,
        Ok(OneOrMany::One(op)) => vec![op],
        // Untagged errors say nothing useful: parse again for the real reason.
        Err(_) => match json.trim_start().starts_with('[') {
            true => serde_json::from_str::<Vec<Operation>>(json),
            false => serde_json::from_str::<Operation>(json).map(|op| vec![op]),
        }
        .map_err(|e| CrdtError::BadOperation(e.to_string()))?,
    };
    if ops.is_empty() {
        return Err(CrdtError::BadOperation("no operations given".into()));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests;
