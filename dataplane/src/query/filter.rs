//! Filters and sort orders over JSON values: the v1 leaf filter, the v2 filter tree
//! (`and`/`or`/`not`), and the field names of joined queries (`users:status`).

use std::cmp::Ordering;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A comparison of one field against a value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Filter {
    /// Dotted path to the field.
    pub field: String,
    /// One of [`OPERATORS`].
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
pub const OPERATORS: [&str; 10] = [
    "eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists", "in", "prefix",
];

impl Filter {
    /// A leaf filter.
    pub fn new(field: impl Into<String>, op: &str, value: impl Into<Value>) -> Filter {
        Filter {
            field: field.into(),
            op: op.to_string(),
            value: value.into(),
        }
    }

    /// Refuses unknown operators and operands of the wrong kind up front, so a typo is an error,
    /// not an empty result.
    pub fn validate(&self) -> Result<(), String> {
        if !OPERATORS.contains(&self.op.as_str()) {
            return Err(format!(
                "unknown filter operator {:?}: use one of {}",
                self.op,
                OPERATORS.join(", ")
            ));
        }
        match (self.op.as_str(), &self.value) {
            ("in", Value::Array(_)) | ("prefix", Value::String(_)) => Ok(()),
            ("in", _) => Err(format!(
                "filter on {:?}: \"in\" takes an array of values",
                self.field
            )),
            ("prefix", _) => Err(format!(
                "filter on {:?}: \"prefix\" takes a string",
                self.field
            )),
            _ => Ok(()),
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
        self.matches_field(field(doc, &self.field))
    }

    /// Whether the filter passes for the field's value (None: the field is missing).
    pub fn matches_field(&self, field: Option<&Value>) -> bool {
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
            "in" => field
                .is_some_and(|f| matches!(&self.value, Value::Array(items) if items.contains(f))),
            "prefix" => {
                matches!((field, &self.value), (Some(Value::String(s)), Value::String(p)) if s.starts_with(p.as_str()))
            }
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

/// Constructors for the leaves the roadmap's snippets use (`Filter::eq("users:status", "premium")`).
impl Filter {
    /// `field == value`.
    pub fn eq(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::new(field, "eq", value)
    }

    /// `field != value` (a missing field passes).
    pub fn ne(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::new(field, "ne", value)
    }

    /// `field > value`.
    pub fn gt(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::new(field, "gt", value)
    }

    /// `field >= value`.
    pub fn gte(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::new(field, "gte", value)
    }

    /// `field < value`.
    pub fn lt(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::new(field, "lt", value)
    }

    /// `field <= value`.
    pub fn lte(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::new(field, "lte", value)
    }

    /// `field` equals one of `values`.
    pub fn is_in(field: impl Into<String>, values: impl IntoIterator<Item = Value>) -> Filter {
        Filter::new(field, "in", Value::Array(values.into_iter().collect()))
    }

    /// `field` is a string starting with `prefix`.
    pub fn prefix(field: impl Into<String>, prefix: &str) -> Filter {
        Filter::new(field, "prefix", prefix)
    }

    /// `field` is present and not null.
    pub fn exists(field: impl Into<String>) -> Filter {
        Filter::new(field, "exists", Value::Null)
    }
}

/// Deepest nesting of `and`/`or`/`not` a filter may have.
pub const MAX_FILTER_DEPTH: usize = 32;

/// Most leaves one filter may hold.
pub const MAX_FILTER_LEAVES: usize = 1024;

/// A filter tree: a v1 leaf `{"field","op","value"}`, or `{"and": [...]}`, `{"or": [...]}`,
/// `{"not": {...}}`. An empty `and` passes everything, an empty `or` nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FilterExpr {
    /// One comparison.
    Leaf(Filter),
    /// Every branch passes.
    And {
        /// The branches.
        and: Vec<FilterExpr>,
    },
    /// Some branch passes.
    Or {
        /// The branches.
        or: Vec<FilterExpr>,
    },
    /// The branch fails.
    Not {
        /// The branch.
        not: Box<FilterExpr>,
    },
}

impl From<Filter> for FilterExpr {
    fn from(f: Filter) -> Self {
        FilterExpr::Leaf(f)
    }
}

impl<'de> Deserialize<'de> for FilterExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        FilterExpr::from_json(Value::deserialize(d)?, 0).map_err(serde::de::Error::custom)
    }
}

impl FilterExpr {
    /// Every branch.
    pub fn and(branches: impl IntoIterator<Item = FilterExpr>) -> FilterExpr {
        FilterExpr::And {
            and: branches.into_iter().collect(),
        }
    }

    /// Any branch.
    pub fn or(branches: impl IntoIterator<Item = FilterExpr>) -> FilterExpr {
        FilterExpr::Or {
            or: branches.into_iter().collect(),
        }
    }

    /// The negation of `branch`.
    pub fn negate(branch: impl Into<FilterExpr>) -> FilterExpr {
        FilterExpr::Not {
            not: Box::new(branch.into()),
        }
    }

    /// This filter and `other` (flattening nested `and`s, so repeated `.filter` calls stay flat).
    pub fn and_also(self, other: FilterExpr) -> FilterExpr {
        match self {
            FilterExpr::And { mut and } => {
                and.push(other);
                FilterExpr::And { and }
            }
            first => FilterExpr::and([first, other]),
        }
    }

    /// Reads a filter from JSON with messages a client can act on.
    fn from_json(v: Value, depth: usize) -> Result<FilterExpr, String> {
        if depth > MAX_FILTER_DEPTH {
            return Err(format!(
                "filter nested deeper than {MAX_FILTER_DEPTH} levels"
            ));
        }
        let Value::Object(mut map) = v else {
            return Err("a filter is an object: {\"field\", \"op\", \"value\"} or {\"and\"|\"or\": [...]} or {\"not\": {...}}".into());
        };
        let branches = |v: Value| -> Result<Vec<FilterExpr>, String> {
            match v {
                Value::Array(items) => items
                    .into_iter()
                    .map(|b| FilterExpr::from_json(b, depth + 1))
                    .collect(),
                _ => Err("\"and\" and \"or\" take an array of filters".into()),
            }
        };
        let tree_keys = ["and", "or", "not"]
            .iter()
            .filter(|k| map.contains_key(**k))
            .count();
        if tree_keys > 1 || (tree_keys == 1 && map.len() > 1) {
            return Err(
                "a filter node holds exactly one of \"and\", \"or\", \"not\" and nothing else"
                    .into(),
            );
        }
        if let Some(v) = map.remove("and") {
            return Ok(FilterExpr::And { and: branches(v)? });
        }
        if let Some(v) = map.remove("or") {
            return Ok(FilterExpr::Or { or: branches(v)? });
        }
        if let Some(v) = map.remove("not") {
            return Ok(FilterExpr::negate(FilterExpr::from_json(v, depth + 1)?));
        }
        serde_json::from_value::<Filter>(Value::Object(map))
            .map(FilterExpr::Leaf)
            .map_err(|e| format!("invalid filter: {e}"))
    }

    /// Checks every leaf and the tree's size.
    pub fn validate(&self) -> Result<(), String> {
        let mut leaves = 0usize;
        let mut result = Ok(());
        self.for_each_leaf(&mut |leaf| {
            leaves += 1;
            if result.is_ok() {
                result = leaf.validate();
            }
        });
        result?;
        if leaves > MAX_FILTER_LEAVES {
            return Err(format!(
                "filter holds {leaves} comparisons; at most {MAX_FILTER_LEAVES} are allowed"
            ));
        }
        Ok(())
    }

    /// Calls `f` on every leaf, left to right.
    pub fn for_each_leaf<'a>(&'a self, f: &mut impl FnMut(&'a Filter)) {
        match self {
            FilterExpr::Leaf(leaf) => f(leaf),
            FilterExpr::And { and: items } | FilterExpr::Or { or: items } => {
                items.iter().for_each(|i| i.for_each_leaf(f));
            }
            FilterExpr::Not { not } => not.for_each_leaf(f),
        }
    }

    /// The same tree with every leaf replaced by `f(leaf)`.
    pub fn map_leaves(self, f: &impl Fn(Filter) -> Filter) -> FilterExpr {
        match self {
            FilterExpr::Leaf(leaf) => FilterExpr::Leaf(f(leaf)),
            FilterExpr::And { and } => FilterExpr::And {
                and: and.into_iter().map(|i| i.map_leaves(f)).collect(),
            },
            FilterExpr::Or { or } => FilterExpr::Or {
                or: or.into_iter().map(|i| i.map_leaves(f)).collect(),
            },
            FilterExpr::Not { not } => FilterExpr::negate(not.map_leaves(f)),
        }
    }

    /// Whether the tree passes when each field name is read through `lookup`.
    pub fn matches_by<'v>(&self, lookup: &dyn Fn(&str) -> Option<&'v Value>) -> bool {
        match self {
            FilterExpr::Leaf(leaf) => leaf.matches_field(lookup(&leaf.field)),
            FilterExpr::And { and } => and.iter().all(|i| i.matches_by(lookup)),
            FilterExpr::Or { or } => or.iter().any(|i| i.matches_by(lookup)),
            FilterExpr::Not { not } => !not.matches_by(lookup),
        }
    }

    /// Whether one document passes (field names are dotted paths in it).
    pub fn matches(&self, doc: &Value) -> bool {
        self.matches_by(&|name| field(doc, name))
    }

    /// Whether a query's row passes, its fields named as [`resolve`] reads them.
    pub fn matches_in(&self, sources: &Sources<'_>) -> bool {
        self.matches_by(&|name| resolve(sources, name))
    }

    /// Whether a group row (`having`) passes: a name is first an output's or group field's exact
    /// name (`sum_amount`, `address.city`), then a dotted path into the row.
    pub fn matches_row(&self, row: &Map<String, Value>) -> bool {
        self.matches_by(&|name| row_field(row, name))
    }
}

/// A group row's field: the exact name first (outputs and `group_by` fields are stored under
/// their full names), then a dotted path.
pub fn row_field<'a>(row: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    row.get(name).or_else(|| {
        let (first, rest) = name.split_once('.')?;
        field(row.get(first)?, rest)
    })
}

/// The documents one row of a query reads from: the queried namespace's and, in a join, the
/// joined namespace's (None when a left join found no match).
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The queried namespace.
    pub namespace: &'a str,
    /// Its document.
    pub doc: &'a Value,
    /// The joined namespace and its document, in a join.
    pub joined: Option<(&'a str, Option<&'a Value>)>,
}

impl<'a> Sources<'a> {
    /// One document of `namespace`, no join.
    pub fn single(namespace: &'a str, doc: &'a Value) -> Sources<'a> {
        Sources {
            namespace,
            doc,
            joined: None,
        }
    }
}

/// Reads a field name of a query: `users:status` is `status` in the joined `users` document,
/// `orders:amount` or plain `amount` is `amount` in the queried `orders` document. Namespaces
/// cannot hold `:`, so a name whose part before the first `:` names neither namespace is a plain
/// path (v1 filters on fields such as `"a:b"` keep working).
pub fn resolve<'a>(sources: &Sources<'a>, name: &str) -> Option<&'a Value> {
    if let Some((ns, path)) = name.split_once(':') {
        if ns == sources.namespace {
            return field(sources.doc, path);
        }
        if let Some((joined, doc)) = sources.joined
            && ns == joined
        {
            return field(doc?, path);
        }
    }
    field(sources.doc, name)
}

/// Splits a field name into its namespace (None: the queried one) and its path, as [`resolve`]
/// reads it for a query of `namespace` joined with `joined`.
pub fn split_name<'n>(
    name: &'n str,
    namespace: &str,
    joined: Option<&str>,
) -> (Option<&'n str>, &'n str) {
    match name.split_once(':') {
        Some((ns, path)) if ns == namespace => (None, path),
        Some((ns, path)) if Some(ns) == joined => (Some(ns), path),
        _ => (None, name),
    }
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
    fn trees_parse_validate_and_match() {
        let f: FilterExpr = serde_json::from_value(json!({"and": [
            {"field": "age", "op": "gte", "value": 18},
            {"or": [{"field": "city", "op": "in", "value": ["Oslo", "Rome"]},
                    {"not": {"field": "name", "op": "prefix", "value": "A"}}]}
        ]}))
        .unwrap();
        assert!(f.validate().is_ok());
        assert!(f.matches(&json!({"age": 20, "city": "Oslo", "name": "Ann"})));
        assert!(f.matches(&json!({"age": 20, "city": "Paris", "name": "Bob"})));
        assert!(!f.matches(&json!({"age": 20, "city": "Paris", "name": "Ann"})));
        assert!(!f.matches(&json!({"age": 17, "city": "Oslo"})));
        let leaf: FilterExpr =
            serde_json::from_value(json!({"field": "a", "op": "eq", "value": 1})).unwrap();
        assert_eq!(leaf, FilterExpr::Leaf(Filter::eq("a", 1)));
        assert_eq!(serde_json::to_value(&f).unwrap()["and"][0]["op"], "gte");
        for bad in [
            json!({"and": [], "or": []}),
            json!({"and": {}}),
            json!([1]),
            json!({"op": "eq"}),
        ] {
            assert!(serde_json::from_value::<FilterExpr>(bad).is_err());
        }
        let deep = (0..40).fold(
            json!({"field": "a", "op": "exists"}),
            |f, _| json!({"not": f}),
        );
        assert!(serde_json::from_value::<FilterExpr>(deep).is_err());
        assert!(
            FilterExpr::Leaf(Filter::new("a", "in", 1))
                .validate()
                .is_err()
        );
        assert!(
            FilterExpr::Leaf(Filter::new("a", "prefix", 1))
                .validate()
                .is_err()
        );
        assert!(FilterExpr::and([]).matches(&json!({})));
        assert!(!FilterExpr::or([]).matches(&json!({})));
    }

    #[test]
    fn names_resolve_across_a_join() {
        let order = json!({"amount": 120, "user_id": "u1"});
        let user = json!({"status": "premium"});
        let s = Sources {
            namespace: "orders",
            doc: &order,
            joined: Some(("users", Some(&user))),
        };
        assert_eq!(resolve(&s, "users:status"), Some(&json!("premium")));
        assert_eq!(resolve(&s, "orders:amount"), Some(&json!(120)));
        assert_eq!(resolve(&s, "amount"), Some(&json!(120)));
        assert_eq!(resolve(&s, "other:amount"), None);
        let f = FilterExpr::from(Filter::eq("users:status", "premium"))
            .and_also(Filter::gt("orders:amount", 100).into());
        assert!(f.matches_in(&s));
        let unmatched = Sources {
            joined: Some(("users", None)),
            ..s
        };
        assert!(!f.matches_in(&unmatched));
        assert_eq!(
            split_name("users:a.b", "orders", Some("users")),
            (Some("users"), "a.b")
        );
        assert_eq!(split_name("orders:a", "orders", Some("users")), (None, "a"));
        let mut row = Map::new();
        row.insert("address.city".into(), json!("Oslo"));
        row.insert("sum_amount".into(), json!(10));
        assert!(FilterExpr::from(Filter::eq("address.city", "Oslo")).matches_row(&row));
        assert!(FilterExpr::from(Filter::gt("sum_amount", 5)).matches_row(&row));
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
