//! Canonical JSON text of values, and the dots and causal contexts that the set and the
//! multi-value register share.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

/// One write's identity: the region that made it and its clock there. A region's dots grow
/// with its clock, so a context can summarise them by the highest per region.
pub(crate) type Dot = (String, i64);

/// The dots a state has seen: per region, every dot up to this clock.
pub(crate) type Context = BTreeMap<String, i64>;

/// Whether `ctx` has seen `dot`.
pub(crate) fn covers(ctx: &Context, dot: &Dot) -> bool {
    ctx.get(&dot.0).is_some_and(|&s| s >= dot.1)
}

/// The union of two contexts.
pub(crate) fn join(mut a: Context, b: Context) -> Context {
    for (region, s) in b {
        let e = a.entry(region).or_insert(s);
        *e = (*e).max(s);
    }
    a
}

/// Records `dot` as seen.
pub(crate) fn see(ctx: &mut Context, dot: &Dot) {
    let e = ctx.entry(dot.0.clone()).or_insert(dot.1);
    *e = (*e).max(dot.1);
}

/// The JSON text of `v` with object keys sorted, so equal values have equal text whatever
/// order their keys came in.
pub(crate) fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<_> = map.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, item)) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&string(k));
                out.push(':');
                write(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A JSON string literal.
pub(crate) fn string(s: &str) -> String {
    // Serializing a str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

/// Text this module produced (always valid JSON) as a raw value.
pub(crate) fn raw(text: String) -> Box<RawValue> {
    // `Box<RawValue>`'s default is `null`, never reached for text we wrote.
    RawValue::from_string(text).unwrap_or_default()
}
