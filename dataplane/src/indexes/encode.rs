//! The order-preserving encoding of indexed values, and reading one field out of a stored value
//! without parsing the rest of it.
//!
//! An encoded value is a tag byte then the value's bytes, so byte order is value order within a
//! kind and kinds sort `null < false < true < numbers < strings`. Numbers are encoded by their
//! `f64` value (1 and 1.0 meet; integers beyond 2^53 may meet their neighbours), so an index gives
//! candidates and callers recheck the exact value. Arrays and objects are not indexed (a path
//! may walk into an array by a numeric segment, `items.0.sku`, as filters read paths).

use std::fmt;
use std::ops::Bound;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// An encoded scalar.
pub type Enc = Box<[u8]>;

const TAG_NULL: u8 = 0x01;
const TAG_FALSE: u8 = 0x02;
const TAG_TRUE: u8 = 0x03;
const TAG_NUMBER: u8 = 0x04;
const TAG_STRING: u8 = 0x05;

/// Encodes a number so that byte order is numeric order (-0.0 is 0.0).
pub fn encode_number(n: f64) -> Enc {
    let n = if n == 0.0 { 0.0 } else { n };
    let bits = n.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    let mut out = Vec::with_capacity(9);
    out.push(TAG_NUMBER);
    out.extend_from_slice(&ordered.to_be_bytes());
    out.into_boxed_slice()
}

/// Encodes a string.
pub fn encode_str(s: &str) -> Enc {
    let mut out = Vec::with_capacity(1 + s.len());
    out.push(TAG_STRING);
    out.extend_from_slice(s.as_bytes());
    out.into_boxed_slice()
}

fn encode_tag(tag: u8) -> Enc {
    Box::new([tag])
}

/// Encodes a scalar JSON value; None for arrays and objects, which are not indexed.
pub fn encode_value(v: &Value) -> Option<Enc> {
    match v {
        Value::Null => Some(encode_tag(TAG_NULL)),
        Value::Bool(false) => Some(encode_tag(TAG_FALSE)),
        Value::Bool(true) => Some(encode_tag(TAG_TRUE)),
        Value::Number(n) => n.as_f64().map(encode_number),
        Value::String(s) => Some(encode_str(s)),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// The JSON text of an encoded value, for messages.
pub fn decode_to_json(enc: &[u8]) -> String {
    match enc.split_first() {
        Some((&TAG_NULL, _)) => "null".into(),
        Some((&TAG_FALSE, _)) => "false".into(),
        Some((&TAG_TRUE, _)) => "true".into(),
        Some((&TAG_NUMBER, rest)) if rest.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(rest);
            let ordered = u64::from_be_bytes(b);
            let bits = if ordered >> 63 == 1 {
                ordered & !(1 << 63)
            } else {
                !ordered
            };
            serde_json::Number::from_f64(f64::from_bits(bits))
                .map_or_else(|| "null".into(), |n| n.to_string())
        }
        Some((&TAG_STRING, rest)) => {
            Value::String(String::from_utf8_lossy(rest).into_owned()).to_string()
        }
        _ => "null".into(),
    }
}

/// The encoded range a probe's bounds cover, limited to the kind of the bounds (a range over
/// numbers finds no strings). None when the bounds are of no indexable kind or of two kinds.
pub fn range_bounds(
    lower: &Bound<Value>,
    upper: &Bound<Value>,
) -> Option<(Bound<Enc>, Bound<Enc>)> {
    fn kind(v: &Value) -> Option<u8> {
        match v {
            Value::Null => Some(TAG_NULL),
            Value::Bool(_) => Some(TAG_FALSE),
            Value::Number(_) => Some(TAG_NUMBER),
            Value::String(_) => Some(TAG_STRING),
            _ => None,
        }
    }
    let bound_kind = |b: &Bound<Value>| match b {
        Bound::Included(v) | Bound::Excluded(v) => Some(kind(v)),
        Bound::Unbounded => None,
    };
    let k = match (bound_kind(lower), bound_kind(upper)) {
        (None, None) => return None,
        (Some(a), Some(b)) if a != b => return None,
        (Some(k), _) | (_, Some(k)) => k?,
    };
    // Booleans share a kind: false and true.
    let (first, last) = match k {
        TAG_FALSE => (TAG_FALSE, TAG_TRUE),
        t => (t, t),
    };
    let enc = |b: &Bound<Value>| -> Option<Bound<Enc>> {
        Some(match b {
            Bound::Included(v) => Bound::Included(encode_value(v)?),
            Bound::Excluded(v) => Bound::Excluded(encode_value(v)?),
            Bound::Unbounded => Bound::Unbounded,
        })
    };
    let lo = match enc(lower)? {
        Bound::Unbounded => Bound::Included(encode_tag(first)),
        b => b,
    };
    let hi = match enc(upper)? {
        Bound::Unbounded => Bound::Excluded(encode_tag(last + 1)),
        b => b,
    };
    Some((lo, hi))
}

/// The encoded prefix a string prefix probe scans from.
pub fn prefix_bytes(prefix: &str) -> Enc {
    encode_str(prefix)
}

/// The encoded value of the field at `path` (already split on dots) in the JSON text `json`;
/// None when the field is missing, not a scalar, or the text is not JSON.
pub fn extract(json: &[u8], path: &[String]) -> Option<Enc> {
    if let Some(rendered) = rendered_crdt(json) {
        return extract(rendered.as_bytes(), path);
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    PathSeed { path }.deserialize(&mut de).ok().flatten()
}

/// A stored CRDT state as the plain JSON reads answer, so indexes see what queries see; None
/// for a plain value (or a state that does not parse, indexed as nothing).
fn rendered_crdt(json: &[u8]) -> Option<String> {
    if !json.starts_with(crate::crdt::STORED_PREFIX.as_bytes()) {
        return None;
    }
    let text = std::str::from_utf8(json).ok()?;
    Some(crate::crdt::render(text).unwrap_or_else(|_| "null".into()))
}

/// Reads the value at a path, skipping everything else without building it.
struct PathSeed<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<Enc>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Enc>, D::Error> {
        d.deserialize_any(PathVisitor { path: self.path })
    }
}

struct PathVisitor<'p> {
    path: &'p [String],
}

impl PathVisitor<'_> {
    /// A scalar is the answer only at the end of the path.
    fn scalar(&self, enc: Enc) -> Option<Enc> {
        self.path.is_empty().then_some(enc)
    }
}

impl<'de> Visitor<'de> for PathVisitor<'_> {
    type Value = Option<Enc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.scalar(encode_tag(TAG_NULL)))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.scalar(encode_tag(if v { TAG_TRUE } else { TAG_FALSE })))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.scalar(encode_number(v as f64)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.scalar(encode_number(v as f64)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.scalar(encode_number(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.scalar(encode_str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A numeric segment walks into an array, as filters read paths (`items.0.sku`).
        let want = self
            .path
            .split_first()
            .and_then(|(first, rest)| Some((first.parse::<usize>().ok()?, rest)));
        let mut found = None;
        let mut i = 0usize;
        loop {
            match want {
                Some((w, rest)) if w == i => {
                    match seq.next_element_seed(PathSeed { path: rest })? {
                        Some(v) => found = v,
                        None => break,
                    }
                }
                _ => {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                }
            }
            i += 1;
        }
        Ok(found)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(first))? {
            if matches {
                // The last of duplicate keys wins, as when the value is parsed whole.
                found = map.next_value_seed(PathSeed { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Whether an object key equals the wanted one (escaped keys included).
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// The encoded values of several fields of one JSON text, read in one pass (the indexes of a
/// namespace share the parse of each value written to it); None where [`extract`] gives None.
pub fn extract_all(json: &[u8], paths: &[&[String]]) -> Vec<Option<Enc>> {
    if let Some(rendered) = rendered_crdt(json) {
        return extract_all(rendered.as_bytes(), paths);
    }
    let mut out = vec![None; paths.len()];
    let mut de = serde_json::Deserializer::from_slice(json);
    let seed = Multi {
        paths: paths.iter().copied().enumerate().collect(),
        out: &mut out,
    };
    if seed.deserialize(&mut de).is_err() {
        return vec![None; paths.len()];
    }
    out
}

/// Reads the values at several paths (slot, rest of its path) into `out`.
struct Multi<'p, 'o> {
    paths: Vec<(usize, &'p [String])>,
    out: &'o mut [Option<Enc>],
}

impl<'de> DeserializeSeed<'de> for Multi<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Multi<'_, '_> {
    fn scalar(self, enc: Enc) {
        for &(slot, rest) in &self.paths {
            if rest.is_empty() {
                self.out[slot] = Some(enc.clone());
            }
        }
    }
}

impl<'de> Visitor<'de> for Multi<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.scalar(encode_tag(TAG_NULL));
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(encode_tag(if v { TAG_TRUE } else { TAG_FALSE }));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.scalar(encode_number(v as f64));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.scalar(encode_number(v as f64));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.scalar(encode_number(v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.scalar(encode_str(v));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Multi { paths, out } = self;
        let mut i = 0usize;
        loop {
            let matched: Vec<(usize, &[String])> = paths
                .iter()
                .filter(|(_, rest)| rest.first().and_then(|s| s.parse::<usize>().ok()) == Some(i))
                .map(|&(slot, rest)| (slot, &rest[1..]))
                .collect();
            let more = if matched.is_empty() {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else {
                let inner = Multi {
                    paths: matched,
                    out: &mut *out,
                };
                seq.next_element_seed(inner)?.is_some()
            };
            if !more {
                break;
            }
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Multi { paths, out } = self;
        while let Some(matched) = map.next_key_seed(KeyIn(&paths))? {
            if matched.is_empty() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            // The last of duplicate keys wins, as when the value is parsed whole.
            let inner: Vec<(usize, &[String])> = matched
                .into_iter()
                .map(|i| {
                    let (slot, rest) = paths[i];
                    out[slot] = None;
                    (slot, &rest[1..])
                })
                .collect();
            map.next_value_seed(Multi {
                paths: inner,
                out: &mut *out,
            })?;
        }
        Ok(())
    }
}

/// Which of the paths (positions) an object key is the first segment of.
struct KeyIn<'a, 'p>(&'a [(usize, &'p [String])]);

impl<'de> DeserializeSeed<'de> for KeyIn<'_, '_> {
    type Value = Vec<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIn<'_, '_> {
    type Value = Vec<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Vec<usize>, E> {
        Ok(self
            .0
            .iter()
            .enumerate()
            .filter(|(_, (_, rest))| rest.first().is_some_and(|s| s == v))
            .map(|(i, _)| i)
            .collect())
    }
}

/// A field's dotted path, split.
pub fn split_path(field: &str) -> Vec<String> {
    field.split('.').map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use std::ops::RangeBounds;

    use super::*;
    use serde_json::json;

    fn path(p: &str) -> Vec<String> {
        split_path(p)
    }

    #[test]
    fn encoding_orders_values_and_numbers_meet_by_value() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(-1e300),
            json!(-2.5),
            json!(-1),
            json!(0),
            json!(0.5),
            json!(1),
            json!(2),
            json!(1e300),
            json!(""),
            json!("a"),
            json!("ab"),
            json!("b"),
        ];
        let encoded: Vec<Enc> = values.iter().map(|v| encode_value(v).unwrap()).collect();
        for w in encoded.windows(2) {
            assert!(w[0] < w[1], "{:?} !< {:?}", w[0], w[1]);
        }
        assert_eq!(encode_value(&json!(1)), encode_value(&json!(1.0)));
        assert_eq!(encode_value(&json!(-0.0)), encode_value(&json!(0)));
        assert_eq!(encode_value(&json!([1])), None);
        for v in &values {
            let back: Value =
                serde_json::from_str(&decode_to_json(&encode_value(v).unwrap())).unwrap();
            assert_eq!(encode_value(&back), encode_value(v), "{v}");
        }
    }

    #[test]
    fn fields_are_read_by_dotted_path_without_the_rest() {
        let doc = br#"{"a": {"b": "x\"y", "c": [1, {"d": 2}]}, "n": 3.0, "e": "\u00e9", "o": {}, "a.b": 9, "t": true}"#;
        assert_eq!(extract(doc, &path("a.b")), Some(encode_str("x\"y")));
        assert_eq!(extract(doc, &path("n")), encode_value(&json!(3)));
        assert_eq!(extract(doc, &path("e")), Some(encode_str("é")));
        assert_eq!(extract(doc, &path("t")), encode_value(&json!(true)));
        assert_eq!(extract(doc, &path("a.c")), None, "arrays are not indexed");
        assert_eq!(
            extract(doc, &path("a.c.0")),
            encode_value(&json!(1)),
            "but their items are"
        );
        assert_eq!(extract(doc, &path("a.c.1.d")), encode_value(&json!(2)));
        assert_eq!(extract(doc, &path("a.c.2")), None);
        assert_eq!(extract(doc, &path("o")), None, "objects are not indexed");
        assert_eq!(extract(doc, &path("missing")), None);
        assert_eq!(extract(doc, &path("n.deeper")), None);
        assert_eq!(extract(b"[1,2]", &path("a")), None);
        assert_eq!(extract(b"\"top\"", &path("a")), None);
        assert_eq!(
            extract(br#"{"k": 1, "k": 2}"#, &path("k")),
            encode_value(&json!(2))
        );
        assert_eq!(
            extract(br#"{"\u006b": null}"#, &path("k")),
            encode_value(&json!(null))
        );
        let paths = [
            path("a.b"),
            path("n"),
            path("a.c"),
            path("missing"),
            path("t"),
            path("a.c.1.d"),
            path("a.c.0"),
        ];
        let refs: Vec<&[String]> = paths.iter().map(Vec::as_slice).collect();
        let all = extract_all(doc, &refs);
        let one: Vec<_> = paths.iter().map(|p| extract(doc, p)).collect();
        assert_eq!(all, one);
        assert_eq!(
            extract_all(br#"{"k": 1, "k": [2]}"#, &[&path("k")]),
            vec![None],
            "the last duplicate wins"
        );
    }

    #[test]
    fn range_bounds_stay_within_their_kind() {
        let (lo, hi) = range_bounds(&Bound::Included(json!(2)), &Bound::Unbounded).unwrap();
        let inside = |v: Value| {
            let e = encode_value(&v).unwrap();
            (lo.as_ref(), hi.as_ref()).contains(&e)
        };
        assert!(inside(json!(2)) && inside(json!(1e10)));
        assert!(!inside(json!(1.5)) && !inside(json!("a")) && !inside(json!(true)));
        let (lo, hi) = range_bounds(&Bound::Unbounded, &Bound::Excluded(json!("m"))).unwrap();
        let e = |v: Value| encode_value(&v).unwrap();
        assert!((lo.as_ref(), hi.as_ref()).contains(&e(json!(""))));
        assert!(!(lo.as_ref(), hi.as_ref()).contains(&e(json!("m"))));
        assert!(!(lo.as_ref(), hi.as_ref()).contains(&e(json!(5))));
        assert!(range_bounds(&Bound::Included(json!(1)), &Bound::Included(json!("z"))).is_none());
        assert!(range_bounds(&Bound::Unbounded, &Bound::Unbounded).is_none());
    }
}
