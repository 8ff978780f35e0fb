//! How aggregations and joins compare JSON values: a hashable key where numbers meet by value
//! (`1` and `1.0` are one group and join each other), a total order for sorting groups, and the
//! order `min`/`max` use.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A JSON value as a hash key. Integral numbers are one integer whatever their spelling, so
/// `1`, `1.0` and `1e0` meet; other values meet only when equal as JSON. Strings are borrowed
/// from the value keyed, so looking a key up costs no allocation; `into_owned` keeps one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ValueKey<'a> {
    /// `null`, or a missing field.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integral number (i64, u64, or an integral float inside ±2^64).
    Int(i128),
    /// A non-integral number, by its bits (JSON has no NaN, and -0.0 is integral).
    Float(u64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array or object, by its JSON text.
    Json(String),
}

/// Floats at or beyond this magnitude are keyed by their bits, not as integers.
const INTEGRAL_FLOAT_LIMIT: f64 = 18_446_744_073_709_551_616.0; // 2^64

impl<'a> ValueKey<'a> {
    /// The key of a value; a missing value is `Null`.
    pub(crate) fn of(value: Option<&'a Value>) -> ValueKey<'a> {
        match value {
            None | Some(Value::Null) => ValueKey::Null,
            Some(Value::Bool(b)) => ValueKey::Bool(*b),
            Some(Value::Number(n)) => number_key(n),
            Some(Value::String(s)) => ValueKey::Str(Cow::Borrowed(s)),
            Some(other) => ValueKey::Json(other.to_string()),
        }
    }

    /// The key of a value a join may match on: strings, numbers and booleans; None for null,
    /// missing, arrays and objects, which never match.
    pub(crate) fn scalar(value: Option<&'a Value>) -> Option<ValueKey<'a>> {
        match value? {
            Value::Bool(_) | Value::Number(_) | Value::String(_) => Some(ValueKey::of(value)),
            _ => None,
        }
    }

    /// The key owning its string.
    pub(crate) fn into_owned(self) -> ValueKey<'static> {
        match self {
            ValueKey::Null => ValueKey::Null,
            ValueKey::Bool(b) => ValueKey::Bool(b),
            ValueKey::Int(i) => ValueKey::Int(i),
            ValueKey::Float(f) => ValueKey::Float(f),
            ValueKey::Str(s) => ValueKey::Str(Cow::Owned(s.into_owned())),
            ValueKey::Json(j) => ValueKey::Json(j),
        }
    }

    /// Rough bytes this key holds on the heap, for memory budgets.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            ValueKey::Str(s) => s.len(),
            ValueKey::Json(s) => s.len(),
            _ => 0,
        }
    }
}

fn number_key(n: &Number) -> ValueKey<'static> {
    if let Some(i) = n.as_i64() {
        ValueKey::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        ValueKey::Int(i128::from(u))
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f.fract() == 0.0 && f.abs() < INTEGRAL_FLOAT_LIMIT {
            // Exact: an integral f64 below 2^64 in magnitude converts to i128 without loss.
            ValueKey::Int(f as i128)
        } else {
            ValueKey::Float(f.to_bits())
        }
    }
}

/// An integer number as i128, None for floats.
pub(crate) fn integer(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Numbers by value: integers exactly, anything with a float as f64.
pub(crate) fn cmp_numbers(a: &Number, b: &Number) -> Ordering {
    match (integer(a), integer(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
    }
}

/// The order `min` and `max` use: numbers by value before strings, strings by bytes; None for
/// values they skip (null, booleans, arrays, objects).
pub(crate) fn cmp_min_max(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(cmp_numbers(x, y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Number(_), Value::String(_)) => Some(Ordering::Less),
        (Value::String(_), Value::Number(_)) => Some(Ordering::Greater),
        _ => None,
    }
}

/// A total order over JSON values, for listing groups: null, booleans, numbers, strings,
/// arrays, objects; within a kind by value (arrays and objects by their JSON text).
pub(crate) fn total_order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
            a.to_string().cmp(&b.to_string())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Rough bytes a value holds on the heap, for memory budgets.
pub(crate) fn approx_bytes(value: &Value) -> usize {
    const SLOT: usize = std::mem::size_of::<Value>();
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(|v| SLOT + approx_bytes(v)).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| k.len() + 2 * SLOT + approx_bytes(v))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_meet_by_value() {
        let key = |v: Value| ValueKey::of(Some(&v)).into_owned();
        assert_eq!(key(json!(1)), key(json!(1.0)));
        assert_eq!(key(json!(-0.0)), key(json!(0)));
        assert_eq!(key(json!(u64::MAX)), ValueKey::Int(i128::from(u64::MAX)));
        assert_ne!(key(json!(1.5)), key(json!(1)));
        assert_ne!(key(json!("1")), key(json!(1)));
        assert_eq!(ValueKey::of(None), key(Value::Null));
        assert_eq!(ValueKey::scalar(Some(&Value::Null)), None);
        assert_eq!(ValueKey::scalar(Some(&json!([1]))), None);
        assert_eq!(
            ValueKey::scalar(Some(&json!(true))),
            Some(ValueKey::Bool(true))
        );
    }

    #[test]
    fn orders_for_min_max_and_listing() {
        assert_eq!(cmp_min_max(&json!(2), &json!(10)), Some(Ordering::Less));
        assert_eq!(cmp_min_max(&json!(2.5), &json!(2)), Some(Ordering::Greater));
        assert_eq!(cmp_min_max(&json!(99), &json!("a")), Some(Ordering::Less));
        assert_eq!(cmp_min_max(&json!(true), &json!(1)), None);
        assert_eq!(
            cmp_numbers(&Number::from(i64::MAX), &Number::from(i64::MAX as u64 + 1)),
            Ordering::Less,
            "integers compare exactly, past f64's precision"
        );
        let mut values = vec![json!("b"), json!(2), Value::Null, json!(true), json!(1.5)];
        values.sort_by(total_order);
        assert_eq!(
            values,
            vec![Value::Null, json!(true), json!(1.5), json!(2), json!("b")]
        );
    }
}
