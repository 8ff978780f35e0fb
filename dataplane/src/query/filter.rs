//! Filters and sort orders over JSON values: the v1 filter, sort and limit of `POST /api/v1/{ns}/query`.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A comparison of one field against a value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Filter {
    /// Dotted path to the field.
    pub field: String,
    /// One of eq, ne, gt, gte, lt, lte, contains, exists.
    pub op: String,
    /// The operand (ignored by `exists`).
    #[serde(default)]
    pub value: Value,
}

/// The sort order of results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sort {
    /// Dotted path to the field.
    pub field: String,
    /// Largest first when true.
    #[serde(default)]
    pub descending: bool,
}

/// The operators a filter may use.
pub const OPERATORS: [&str; 8] = ["eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists"];

impl Filter {
    /// Refuses unknown operators up front so a typo is an error, not an empty result.
    pub fn validate(&self) -> Result<(), String> {
        if OPERATORS.contains(&self.op.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "unknown filter operator {:?}: use one of {}",
                self.op,
                OPERATORS.join(", ")
            ))
        }
    }

    /// Reads the filter kdelta's remote client sends for `--filter 'age > 30'` as what it means.
    ///
    /// That client puts the whole expression in `value` with `op: "eq"` and the first word as
    /// `field`, so against koru-delta's own server such filters never match. An `eq` whose string
    /// value is `<field> <op> <operand>` (op one of `>= <= != = > <`) is taken as that comparison;
    /// the operand is parsed as kdelta parses it (quoted string, boolean, integer, float, or bare
    /// string).
    pub fn from_kdelta_expression(self) -> Filter {
        let Value::String(expr) = &self.value else {
            return self;
        };
        let Some(rest) = (self.op == "eq")
            .then(|| expr.trim_start().strip_prefix(self.field.as_str()))
            .flatten()
        else {
            return self;
        };
        let rest = rest.trim_start();
        let ops = [
            (">=", "gte"),
            ("<=", "lte"),
            ("!=", "ne"),
            ("=", "eq"),
            (">", "gt"),
            ("<", "lt"),
        ];
        let Some((operand, op)) = ops
            .iter()
            .find_map(|(sym, op)| rest.strip_prefix(sym).map(|o| (o.trim(), *op)))
        else {
            return self;
        };
        let value = if operand.len() >= 2 && operand.starts_with('"') && operand.ends_with('"') {
            serde_json::from_str(operand).unwrap_or_else(|_| Value::String(operand.to_string()))
        } else if let Ok(b) = operand.parse::<bool>() {
            Value::Bool(b)
        } else if let Ok(i) = operand.parse::<i64>() {
            Value::from(i)
        } else if let Ok(f) = operand.parse::<f64>() {
            serde_json::Number::from_f64(f)
                .map_or_else(|| Value::String(operand.to_string()), Value::Number)
        } else {
            Value::String(operand.to_string())
        };
        Filter {
            field: self.field,
            op: op.to_string(),
            value,
        }
    }

    /// Whether a value passes the filter.
    pub fn matches(&self, doc: &Value) -> bool {
        let field = field(doc, &self.field);
        let ord = || field.and_then(|f| compare(f, &self.value));
        match self.op.as_str() {
            "eq" => field == Some(&self.value),
            "ne" => field != Some(&self.value),
            "gt" => ord() == Some(Ordering::Greater),
            "gte" => matches!(ord(), Some(Ordering::Greater | Ordering::Equal)),
            "lt" => ord() == Some(Ordering::Less),
            "lte" => matches!(ord(), Some(Ordering::Less | Ordering::Equal)),
            "contains" => field.is_some_and(|f| contains(f, &self.value)),
            "exists" => field.is_some_and(|f| !f.is_null()),
            _ => false,
        }
    }
}

/// The value at a dotted path, if there is one.
pub fn field<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(doc, |current, part| match current {
            Value::Object(map) => map.get(part),
            Value::Array(items) => items.get(part.parse::<usize>().ok()?),
            _ => None,
        })
}

/// Orders two JSON values of the same kind; null sorts first; other mixes are unordered.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => Some(Ordering::Less),
        (_, Value::Null) => Some(Ordering::Greater),
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Substring for strings, membership for arrays, key presence for objects.
fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::String(s), Value::String(n)) => s.contains(n.as_str()),
        (Value::Array(items), n) => items.contains(n),
        (Value::Object(map), Value::String(k)) => map.contains_key(k),
        _ => false,
    }
}

/// Sorts documents by a field: present values in order, documents missing the field last.
pub fn sort<T>(items: &mut [T], by: &Sort, doc: impl Fn(&T) -> &Value) {
    items.sort_by(|a, b| {
        let ord = match (field(doc(a), &by.field), field(doc(b), &by.field)) {
            (Some(x), Some(y)) => compare(x, y).unwrap_or(Ordering::Equal),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if by.descending { ord.reverse() } else { ord }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(field: &str, op: &str, value: Value) -> Filter {
        Filter {
            field: field.into(),
            op: op.into(),
            value,
        }
    }

    #[test]
    fn operators_follow_koru_delta_semantics() {
        let doc = json!({"age": 30, "name": "Alice", "tags": ["a", "b"], "addr": {"city": "Oslo"}, "none": null});
        assert!(filter("age", "eq", json!(30)).matches(&doc));
        assert!(filter("age", "ne", json!(31)).matches(&doc));
        assert!(filter("missing", "ne", json!(1)).matches(&doc));
        assert!(filter("age", "gt", json!(29.5)).matches(&doc));
        assert!(filter("age", "gte", json!(30)).matches(&doc));
        assert!(!filter("age", "lt", json!(30)).matches(&doc));
        assert!(filter("age", "lte", json!(30)).matches(&doc));
        assert!(
            !filter("age", "gt", json!("29")).matches(&doc),
            "mixed kinds are unordered"
        );
        assert!(filter("name", "contains", json!("lic")).matches(&doc));
        assert!(filter("tags", "contains", json!("b")).matches(&doc));
        assert!(filter("addr", "contains", json!("city")).matches(&doc));
        assert!(filter("addr.city", "eq", json!("Oslo")).matches(&doc));
        assert!(filter("tags.1", "eq", json!("b")).matches(&doc));
        assert!(filter("age", "exists", Value::Null).matches(&doc));
        assert!(!filter("none", "exists", Value::Null).matches(&doc));
        assert!(filter("age", "like", Value::Null).validate().is_err());
    }

    #[test]
    fn reads_kdelta_filter_expressions() {
        let k = |expr: &str| {
            filter(expr.split_whitespace().next().unwrap(), "eq", json!(expr))
                .from_kdelta_expression()
        };
        assert_eq!(k("age > 30"), filter("age", "gt", json!(30)));
        assert_eq!(k("age >= 2.5"), filter("age", "gte", json!(2.5)));
        assert_eq!(k("name = \"Bob\""), filter("name", "eq", json!("Bob")));
        assert_eq!(k("name != Bob"), filter("name", "ne", json!("Bob")));
        assert_eq!(k("active = true"), filter("active", "eq", json!(true)));
        let plain = filter("name", "eq", json!("Bob"));
        assert_eq!(
            plain.clone().from_kdelta_expression(),
            plain,
            "ordinary filters are untouched"
        );
        let gt = filter("age", "gt", json!("age > 3"));
        assert_eq!(
            gt.clone().from_kdelta_expression(),
            gt,
            "only eq carries expressions"
        );
    }

    #[test]
    fn sorts_with_missing_fields_last() {
        let mut docs = vec![json!({"n": 2}), json!({}), json!({"n": 1}), json!({"n": 3})];
        sort(
            &mut docs,
            &Sort {
                field: "n".into(),
                descending: false,
            },
            |d| d,
        );
        assert_eq!(
            docs,
            vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3}), json!({})]
        );
        sort(
            &mut docs,
            &Sort {
                field: "n".into(),
                descending: true,
            },
            |d| d,
        );
        assert_eq!(docs[0], json!({}));
    }
}
