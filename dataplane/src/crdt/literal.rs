//! Literals — `{"$counter": n}`, `{"$set": [...]}`, `{"$register": v}`, `{"$mvregister": v}` —
//! and the Rust types that serialize to them, so `json!({"count": Counter(1)})` writes a
//! counter field.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::counter::CounterState;
use super::map::{Field, MapState};
use super::mvregister::MvState;
use super::register::RegisterState;
use super::set::SetState;
use super::text;
use super::{CrdtError, Hlc, State};

/// The literal keys, each an object's only field.
const COUNTER: &str = "$counter";
const SET: &str = "$set";
const REGISTER: &str = "$register";
const MVREGISTER: &str = "$mvregister";

/// A counter literal: serializes to `{"$counter": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(pub i64);

/// A set literal over a sequence of elements: serializes to `{"$set": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<T>(pub T);

/// A last-writer-wins register literal: serializes to `{"$register": v}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register<T>(pub T);

/// A multi-value register literal: serializes to `{"$mvregister": v}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MvRegister<T>(pub T);

fn one_field<S: Serializer, T: Serialize + ?Sized>(
    s: S,
    key: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(key, value)?;
    map.end()
}

impl Serialize for Counter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        one_field(s, COUNTER, &self.0)
    }
}

impl<T: Serialize> Serialize for Set<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        one_field(s, SET, &self.0)
    }
}

impl<T: Serialize> Serialize for Register<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        one_field(s, REGISTER, &self.0)
    }
}

impl<T: Serialize> Serialize for MvRegister<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        one_field(s, MVREGISTER, &self.0)
    }
}

/// The CRDT a value describes: a literal, or an object with a literal somewhere among its
/// fields (a map whose plain fields are registers); None for plain JSON.
pub(crate) fn state_of(value: &Value, hlc: &Hlc) -> Result<Option<State>, CrdtError> {
    let Value::Object(obj) = value else {
        return Ok(None);
    };
    if let Some(state) = literal(obj, hlc)? {
        return Ok(Some(state));
    }
    let mut fields = BTreeMap::new();
    let mut any = false;
    for (name, v) in obj {
        let state = match state_of(v, hlc)? {
            Some(s) => {
                any = true;
                s
            }
            None => plain_register(v, hlc),
        };
        fields.insert(
            name.clone(),
            Field {
                at: hlc.clone(),
                state,
            },
        );
    }
    Ok(any.then(|| {
        State::Map(MapState {
            fields,
            removed: BTreeMap::new(),
        })
    }))
}

/// A register holding a plain value.
pub(crate) fn plain_register(v: &Value, hlc: &Hlc) -> State {
    State::Register(RegisterState {
        hlc: hlc.clone(),
        value: text::raw(v.to_string()),
    })
}

/// The state of an object that is itself a literal.
fn literal(obj: &serde_json::Map<String, Value>, hlc: &Hlc) -> Result<Option<State>, CrdtError> {
    let Some((key, v)) = obj
        .iter()
        .find(|(k, _)| [COUNTER, SET, REGISTER, MVREGISTER].contains(&k.as_str()))
    else {
        return Ok(None);
    };
    if obj.len() > 1 {
        return Err(CrdtError::InvalidValue(format!(
            "a {key} literal must be the object's only field"
        )));
    }
    let region = &hlc.region;
    Ok(Some(match key.as_str() {
        COUNTER => {
            let n = v.as_i64().ok_or_else(|| {
                CrdtError::InvalidValue(format!("{COUNTER} takes an integer, not {v}"))
            })?;
            let mut c = CounterState::default();
            c.add(region, n)?;
            State::Counter(c)
        }
        SET => {
            let items = v
                .as_array()
                .ok_or_else(|| CrdtError::InvalidValue(format!("{SET} takes an array, not {v}")))?;
            let mut s = SetState::default();
            // One dot per element, each past the last, so a later add's clock passes them all.
            for (i, item) in items.iter().enumerate() {
                s.add(
                    text::canonical(item),
                    (region.clone(), hlc.micros.saturating_add(i as i64)),
                );
            }
            State::Set(s)
        }
        REGISTER => plain_register(v, hlc),
        _ => {
            let mut m = MvState::default();
            m.set(text::canonical(v), (region.clone(), hlc.micros));
            State::Mvregister(m)
        }
    }))
}
