//! The planner: for a filter tree, the cheapest way in — a ready value index (one probe, or a
//! union of probes when every branch of an `or` has one) or a scan of the namespace — by the
//! rows each would read. Pure: the caller passes the indexes and an estimator, so this is tested
//! without a store. Whatever it picks yields CANDIDATES: the engine always rechecks the filter.

use std::ops::Bound;

use serde::Serialize;
use serde_json::{Value, json};

use super::filter::{Filter, FilterExpr, split_name};
use crate::indexes::Probe;

/// A scan reading more documents than this is flagged in the plan with a suggested index.
pub const SCAN_WARNING_ROWS: u64 = 10_000;

/// A ready value index the planner may use: its name and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usable {
    /// The index's name.
    pub name: String,
    /// Its dotted field path.
    pub field: String,
}

/// One index probe.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexProbe {
    /// The index.
    pub index: String,
    /// What it is asked.
    pub probe: Probe,
}

/// How the documents are reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Every live document of the namespace.
    Scan,
    /// The keys one or more index probes return (several: their union).
    Index(Vec<IndexProbe>),
}

/// A plan the planner considered and did not take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// "index" or "scan".
    pub access: &'static str,
    /// The index, for index plans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Rows it would have read (None: unknown).
    pub estimated_rows: Option<u64>,
    /// Why not.
    pub why: String,
}

/// The chosen plan, before it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The way in.
    pub access: Access,
    /// Rows it is expected to read.
    pub estimated_rows: u64,
    /// The others.
    pub rejected: Vec<Rejected>,
    /// The field a scan would be spared by indexing, when the filter names one.
    pub suggest: Option<String>,
}

/// What the planner knows about the namespace.
pub struct Catalog<'a> {
    /// The queried namespace (its fields may be written `ns:field`).
    pub namespace: &'a str,
    /// The joined namespace, whose fields no index of this namespace covers.
    pub joined: Option<&'a str>,
    /// Its ready value indexes.
    pub indexes: &'a [Usable],
    /// Live documents now.
    pub live: u64,
    /// Estimated keys a probe finds (None: the index cannot say).
    pub estimate: &'a dyn Fn(&str, &Probe) -> Option<u64>,
}

/// Index access for part of a filter: probes and the rows they would read.
#[derive(Debug, Clone)]
struct IndexChoice {
    probes: Vec<IndexProbe>,
    rows: u64,
}

impl Catalog<'_> {
    /// The index on a leaf's field (a field of the queried namespace only).
    fn index_for(&self, name: &str) -> Option<&Usable> {
        let (ns, path) = split_name(name, self.namespace, self.joined);
        if ns.is_some() {
            return None;
        }
        self.indexes.iter().find(|i| i.field == path)
    }

    fn option(&self, index: &Usable, probe: Probe) -> Option<IndexChoice> {
        let rows = (self.estimate)(&index.name, &probe)?;
        Some(IndexChoice {
            probes: vec![IndexProbe {
                index: index.name.clone(),
                probe,
            }],
            rows,
        })
    }

    /// The cheapest index access answering a superset of `expr`'s matches, noting what was
    /// passed over in `rejected`.
    fn best(&self, expr: &FilterExpr, rejected: &mut Vec<Rejected>) -> Option<IndexChoice> {
        match expr {
            FilterExpr::Leaf(leaf) => {
                let index = self.index_for(&leaf.field)?;
                let probe = leaf_probe(leaf, None)?;
                self.option(index, probe)
            }
            FilterExpr::And { and } => {
                let mut options: Vec<IndexChoice> = Vec::new();
                // Ranges on one field meet into one probe (`lt`/`lte` alone is not indexable:
                // a null sorts below every value, so it matches them; with a lower bound it
                // does not).
                let mut lowers: Vec<&Filter> = Vec::new();
                for branch in and {
                    if let FilterExpr::Leaf(l) = branch
                        && matches!(l.op.as_str(), "gt" | "gte")
                    {
                        lowers.push(l);
                    }
                }
                // Bounded ranges first, so on a tie they win over their lone lower bound.
                for branch in and {
                    if let FilterExpr::Leaf(l) = branch
                        && matches!(l.op.as_str(), "lt" | "lte")
                    {
                        for lower in &lowers {
                            if lower.field == l.field
                                && let Some(index) = self.index_for(&l.field)
                                && let Some(probe) = leaf_probe(lower, Some(l))
                                && let Some(o) = self.option(index, probe)
                            {
                                options.push(o);
                            }
                        }
                    }
                }
                for branch in and {
                    if let Some(o) = self.best(branch, rejected) {
                        options.push(o);
                    }
                }
                options.sort_by_key(|o| o.rows);
                let mut options = options.into_iter();
                let best = options.next()?;
                for other in options {
                    rejected.push(Rejected {
                        access: "index",
                        index: Some(names(&other.probes)),
                        estimated_rows: Some(other.rows),
                        why: format!(
                            "another condition's index reads fewer rows ({}); this one is rechecked",
                            best.rows
                        ),
                    });
                }
                Some(best)
            }
            FilterExpr::Or { or } => {
                if or.is_empty() {
                    return None;
                }
                let mut union = IndexChoice {
                    probes: Vec::new(),
                    rows: 0,
                };
                for branch in or {
                    let o = self.best(branch, rejected)?;
                    union.probes.extend(o.probes);
                    union.rows = union.rows.saturating_add(o.rows);
                }
                Some(union)
            }
            FilterExpr::Not { .. } => None,
        }
    }
}

/// The probe answering a superset of a leaf's matches (with an upper bound from a second leaf
/// on the same field), or None when an index cannot: operands must be scalars, and `ne`,
/// `contains`, `exists` and lone `lt`/`lte` match documents an index does not find.
pub fn leaf_probe(leaf: &Filter, upper: Option<&Filter>) -> Option<Probe> {
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    match leaf.op.as_str() {
        "eq" if scalar(&leaf.value) => Some(Probe::Eq(leaf.value.clone())),
        "in" => match &leaf.value {
            Value::Array(items) if items.iter().all(scalar) => Some(Probe::In(items.clone())),
            _ => None,
        },
        "prefix" => leaf.value.as_str().map(|p| Probe::Prefix(p.to_string())),
        "gt" | "gte" if scalar(&leaf.value) => {
            let lower = if leaf.op == "gt" {
                Bound::Excluded(leaf.value.clone())
            } else {
                Bound::Included(leaf.value.clone())
            };
            let upper = match upper {
                Some(u) if scalar(&u.value) && same_kind(&u.value, &leaf.value) => {
                    if u.op == "lt" {
                        Bound::Excluded(u.value.clone())
                    } else {
                        Bound::Included(u.value.clone())
                    }
                }
                Some(_) => return None,
                None => Bound::Unbounded,
            };
            Some(Probe::Range { lower, upper })
        }
        _ => None,
    }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn names(probes: &[IndexProbe]) -> String {
    let mut names: Vec<&str> = probes.iter().map(|p| p.index.as_str()).collect();
    names.dedup();
    names.join(",")
}

/// The first field of the queried namespace a filter compares, to suggest indexing it.
fn suggestion(
    filter: Option<&FilterExpr>,
    namespace: &str,
    joined: Option<&str>,
) -> Option<String> {
    let mut found = None;
    filter?.for_each_leaf(&mut |leaf| {
        if found.is_none()
            && let (None, path) = split_name(&leaf.field, namespace, joined)
        {
            found = Some(path.to_string());
        }
    });
    found
}

/// Chooses between the indexes and a scan for `filter`.
pub fn choose(filter: Option<&FilterExpr>, catalog: &Catalog<'_>) -> Plan {
    let mut rejected = Vec::new();
    let suggest = suggestion(filter, catalog.namespace, catalog.joined);
    let best = filter.and_then(|f| catalog.best(f, &mut rejected));
    match best {
        Some(o) if o.rows < catalog.live => {
            rejected.push(Rejected {
                access: "scan",
                index: None,
                estimated_rows: Some(catalog.live),
                why: format!("reads every live document ({})", catalog.live),
            });
            Plan {
                access: Access::Index(o.probes),
                estimated_rows: o.rows,
                rejected,
                suggest,
            }
        }
        other => {
            if let Some(o) = other {
                rejected.push(Rejected {
                    access: "index",
                    index: Some(names(&o.probes)),
                    estimated_rows: Some(o.rows),
                    why: "reads no fewer rows than a scan".into(),
                });
            } else if filter.is_some() && catalog.indexes.is_empty() {
                rejected.push(Rejected {
                    access: "index",
                    index: None,
                    estimated_rows: None,
                    why: "the namespace has no ready value index".into(),
                });
            } else if filter.is_some() {
                rejected.push(Rejected {
                    access: "index",
                    index: None,
                    estimated_rows: None,
                    why: "no ready index covers the filter (an index serves eq, in, prefix, \
                          gt/gte with an optional upper bound, and an or only when every branch has one)"
                        .into(),
                });
            }
            Plan {
                access: Access::Scan,
                estimated_rows: catalog.live,
                rejected,
                suggest,
            }
        }
    }
}

/// A probe as JSON, for EXPLAIN.
pub fn probe_json(probe: &Probe) -> Value {
    let bound = |b: &Bound<Value>, inc: &str, exc: &str| match b {
        Bound::Included(v) => Some((inc.to_string(), v.clone())),
        Bound::Excluded(v) => Some((exc.to_string(), v.clone())),
        Bound::Unbounded => None,
    };
    match probe {
        Probe::Eq(v) => json!({ "eq": v }),
        Probe::In(v) => json!({ "in": v }),
        Probe::Prefix(p) => json!({ "prefix": p }),
        Probe::Range { lower, upper } => {
            let range: serde_json::Map<String, Value> =
                [bound(lower, "gte", "gt"), bound(upper, "lte", "lt")]
                    .into_iter()
                    .flatten()
                    .collect();
            json!({ "range": range })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(filter: Value, live: u64) -> Plan {
        let filter: FilterExpr = serde_json::from_value(filter).unwrap();
        let indexes = vec![
            Usable {
                name: "status".into(),
                field: "status".into(),
            },
            Usable {
                name: "age".into(),
                field: "age".into(),
            },
        ];
        // `status` is unselective, `age` selective.
        let estimate = |name: &str, _: &Probe| Some(if name == "status" { 500 } else { 5 });
        choose(
            Some(&filter),
            &Catalog {
                namespace: "users",
                joined: Some("orders"),
                indexes: &indexes,
                live,
                estimate: &estimate,
            },
        )
    }

    #[test]
    fn picks_the_cheapest_index_or_a_scan() {
        let p = plan(
            json!({"and": [{"field": "status", "op": "eq", "value": "a"},
                                    {"field": "age", "op": "gt", "value": 3},
                                    {"field": "age", "op": "lt", "value": 9}]}),
            1000,
        );
        let Access::Index(probes) = &p.access else {
            panic!("{p:?}")
        };
        assert_eq!(probes[0].index, "age");
        assert!(
            matches!(&probes[0].probe, Probe::Range { upper: Bound::Excluded(v), .. } if v == &json!(9))
        );
        assert!(
            p.rejected
                .iter()
                .any(|r| r.index.as_deref() == Some("status"))
        );
        assert!(p.rejected.iter().any(|r| r.access == "scan"));

        let p = plan(json!({"field": "status", "op": "eq", "value": "a"}), 400);
        assert_eq!(
            p.access,
            Access::Scan,
            "the index reads more than the namespace holds"
        );

        let p = plan(
            json!({"or": [{"field": "users:status", "op": "eq", "value": "a"},
                                   {"field": "age", "op": "in", "value": [1, 2]}]}),
            1000,
        );
        let Access::Index(probes) = &p.access else {
            panic!("{p:?}")
        };
        assert_eq!(probes.len(), 2);
        assert_eq!(p.estimated_rows, 505);

        for unindexable in [
            json!({"or": [{"field": "status", "op": "eq", "value": "a"}, {"field": "name", "op": "eq", "value": 1}]}),
            json!({"not": {"field": "age", "op": "eq", "value": 1}}),
            json!({"field": "age", "op": "lt", "value": 1}),
            json!({"field": "age", "op": "eq", "value": null}),
            json!({"field": "age", "op": "ne", "value": 1}),
            json!({"field": "orders:age", "op": "eq", "value": 1}),
        ] {
            let p = plan(unindexable.clone(), 1000);
            assert_eq!(p.access, Access::Scan, "{unindexable}");
            assert!(!p.rejected.is_empty());
        }
        assert_eq!(
            plan(json!({"field": "orders:age", "op": "eq", "value": 1}), 9).suggest,
            None
        );
        assert_eq!(
            plan(json!({"field": "users:name", "op": "eq", "value": 1}), 9)
                .suggest
                .as_deref(),
            Some("name")
        );
    }

    #[test]
    fn probes_explain_as_json() {
        let range = Probe::Range {
            lower: Bound::Excluded(json!(1)),
            upper: Bound::Included(json!(5)),
        };
        assert_eq!(probe_json(&range), json!({"range": {"gt": 1, "lte": 5}}));
        assert_eq!(probe_json(&Probe::Eq(json!("a"))), json!({"eq": "a"}));
    }
}
