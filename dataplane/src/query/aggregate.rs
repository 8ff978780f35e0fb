//! The aggregation pipeline: `group_by` one or more fields, `sum`/`avg`/`count`/`min`/`max` as
//! named outputs, `having`, sorting by an aggregate, a limit.
//!
//! CONTRACT STUB (issue 18): the types' JSON shape is fixed; the evaluation is the
//! aggregate-and-join helper's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One aggregate output: the function and the field it reads (`"*"` for `count`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Sum of the numbers.
    Sum(String),
    /// Mean of the numbers.
    Avg(String),
    /// Documents in the group (`"*"`), or documents where the field exists.
    Count(String),
    /// Least value (numbers, strings).
    Min(String),
    /// Greatest value.
    Max(String),
}

/// The aggregation part of a query: `{"group_by": [...], "aggregate": {"sum_amount": {"sum":
/// "amount"}}, "having": <filter>}`; sort and limit are the query's own.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Aggregation {
    /// Fields to group by (none: one group of everything).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Named outputs.
    #[serde(default)]
    pub aggregate: BTreeMap<String, Aggregate>,
}

/// One group's row: its `group_by` fields and its named outputs.
pub type Group = Map<String, Value>;

// ---------------------------------------------------------------------------------------------
// STUB (query-engine branch): a small stand-in with the aggregate-join helper's interface (see
// QUERY_INTERFACES.md), so the engine's wiring builds and is tested here. On merge, keep the
// aggregate-join branch's version of this file.
// ---------------------------------------------------------------------------------------------

use std::cmp::Ordering;

use crate::query::filter::field;

/// How much one aggregation may hold in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateLimits {
    /// Most groups.
    pub max_groups: usize,
    /// Most bytes of group keys and values (an estimate).
    pub max_bytes: usize,
}

/// Why an aggregation was refused or stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// The aggregation is malformed.
    #[error("{0}")]
    Invalid(String),
    /// More groups than `max_groups`.
    #[error("the aggregation makes more than {limit} groups")]
    TooManyGroups {
        /// The limit.
        limit: usize,
    },
    /// Group keys past `max_bytes`.
    #[error("the aggregation's groups hold more than {limit} bytes")]
    TooManyBytes {
        /// The limit.
        limit: usize,
    },
}

impl Aggregation {
    /// An empty pipeline.
    pub fn pipeline() -> Aggregation {
        Aggregation::default()
    }

    /// Groups also by `field`.
    pub fn group_by(mut self, field: impl Into<String>) -> Aggregation {
        self.group_by.push(field.into());
        self
    }

    /// Adds `sum_<field>`.
    pub fn sum(mut self, field: &str) -> Aggregation {
        let name = format!("sum_{}", field.replace('.', "_"));
        self.aggregate.insert(name, Aggregate::Sum(field.into()));
        self
    }

    /// Adds `count`.
    pub fn count(mut self) -> Aggregation {
        self.aggregate
            .insert("count".into(), Aggregate::Count("*".into()));
        self
    }

    /// Refuses an empty aggregation.
    pub fn validate(&self) -> Result<(), AggregateError> {
        if self.group_by.is_empty() && self.aggregate.is_empty() {
            return Err(AggregateError::Invalid(
                "an aggregation needs group_by fields or aggregate outputs".into(),
            ));
        }
        Ok(())
    }
}

/// A group's key values and, per output: sum, count, all integers, best value.
type GroupState = (Vec<Value>, Vec<(f64, u64, bool, Option<Value>)>);

/// An aggregation in progress, fed one document at a time.
#[derive(Debug)]
pub struct Aggregator<'a> {
    spec: &'a Aggregation,
    limits: AggregateLimits,
    groups: BTreeMap<String, GroupState>,
}

impl<'a> Aggregator<'a> {
    /// A new aggregation.
    pub fn new(spec: &'a Aggregation, limits: AggregateLimits) -> Result<Self, AggregateError> {
        spec.validate()?;
        Ok(Aggregator {
            spec,
            limits,
            groups: BTreeMap::new(),
        })
    }

    /// Adds one document.
    pub fn add(&mut self, doc: &Value) -> Result<(), AggregateError> {
        let keys: Vec<Value> = self
            .spec
            .group_by
            .iter()
            .map(|g| field(doc, g).cloned().unwrap_or(Value::Null))
            .collect();
        let id = Value::Array(keys.clone()).to_string();
        if !self.groups.contains_key(&id) && self.groups.len() >= self.limits.max_groups {
            return Err(AggregateError::TooManyGroups {
                limit: self.limits.max_groups,
            });
        }
        let n = self.spec.aggregate.len();
        let (_, states) = self
            .groups
            .entry(id)
            .or_insert_with(|| (keys, vec![(0.0, 0, true, None); n]));
        for ((_, agg), state) in self.spec.aggregate.iter().zip(states.iter_mut()) {
            let (Aggregate::Sum(f)
            | Aggregate::Avg(f)
            | Aggregate::Count(f)
            | Aggregate::Min(f)
            | Aggregate::Max(f)) = agg;
            let v = if f == "*" { Some(doc) } else { field(doc, f) };
            match (agg, v) {
                (Aggregate::Sum(_) | Aggregate::Avg(_), Some(Value::Number(x))) => {
                    state.0 += x.as_f64().unwrap_or(0.0);
                    state.1 += 1;
                    state.2 &= x.is_i64();
                }
                (Aggregate::Count(_), Some(v)) if !v.is_null() => state.1 += 1,
                (
                    Aggregate::Min(_) | Aggregate::Max(_),
                    Some(v @ (Value::Number(_) | Value::String(_))),
                ) => {
                    let better = match &state.3 {
                        None => true,
                        Some(cur) => {
                            let ord = match (v, cur) {
                                (Value::Number(_), Value::String(_)) => Ordering::Less,
                                (Value::String(_), Value::Number(_)) => Ordering::Greater,
                                _ => super::compare(v, cur).unwrap_or(Ordering::Equal),
                            };
                            (ord == Ordering::Less) == matches!(agg, Aggregate::Min(_))
                                && ord != Ordering::Equal
                        }
                    };
                    if better {
                        state.3 = Some(v.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The group rows.
    pub fn finish(self) -> Vec<Group> {
        let spec = self.spec;
        let mut groups = self.groups.into_values().collect::<Vec<_>>();
        if groups.is_empty() && spec.group_by.is_empty() {
            groups.push((Vec::new(), vec![(0.0, 0, true, None); spec.aggregate.len()]));
        }
        groups
            .into_iter()
            .map(|(keys, states)| {
                let mut row: Group = spec.group_by.iter().cloned().zip(keys).collect();
                for ((name, agg), (sum, n, ints, best)) in spec.aggregate.iter().zip(states) {
                    let v = match agg {
                        Aggregate::Sum(_) if ints => Value::from(sum as i64),
                        Aggregate::Sum(_) => Value::from(sum),
                        Aggregate::Avg(_) if n == 0 => Value::Null,
                        Aggregate::Avg(_) => Value::from(sum / n as f64),
                        Aggregate::Count(_) => Value::from(n),
                        Aggregate::Min(_) | Aggregate::Max(_) => best.unwrap_or(Value::Null),
                    };
                    row.insert(name.clone(), v);
                }
                row
            })
            .collect()
    }
}
