//! The aggregation pipeline: `group_by` one or more fields, `sum`/`avg`/`count`/`min`/`max` as
//! named outputs, evaluated in one streaming pass with a bounded number of groups. `having`,
//! sorting by an output and the limit are the query's own, applied to the rows this returns.
//!
//! Semantics (also in API.md, "Aggregation and joins: semantics"):
//! - Fields are dotted paths into each document's value. A document missing a `group_by` field
//!   (or holding `null` there) falls in that field's `null` group. Numbers group by value (`1`
//!   and `1.0` are one group, shown as first seen); arrays and objects group by equality.
//! - Without `group_by` there is exactly one group, even over no documents.
//! - `sum` adds the numbers of the field and skips everything else; the sum of none is `0`. A
//!   sum of integers is exact and stays an integer while it fits in 64 bits (signed, or unsigned
//!   when positive), else it is a float; one float among the numbers makes it a float.
//! - `avg` is the mean of the numbers (a float), `null` when there are none.
//! - `count` of `"*"` counts the group's documents; `count` of a field counts the documents where
//!   the field exists and is not `null`.
//! - `min`/`max` consider numbers and strings only: numbers by value, strings by bytes, and every
//!   number orders before every string (so `max` over mixed values is a string). `null` when the
//!   group has none. The value is returned as stored (an integer stays an integer).
//! - Rows hold the `group_by` fields by name (`"address.city": …`) and the outputs by name, and
//!   come ordered by the `group_by` values (null, booleans, numbers, strings, arrays, objects).
//! - Memory is bounded by [`AggregateLimits`]: more groups than `max_groups`, or group keys and
//!   `min`/`max` values taking more than `max_bytes`, stop the pass with an [`AggregateError`].

pub(crate) mod values;

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use smallvec::SmallVec;
use thiserror::Error;

use super::filter::field;
use values::{ValueKey, approx_bytes, cmp_min_max, total_order};

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

/// Default most groups one aggregation may hold.
pub const DEFAULT_MAX_GROUPS: usize = 100_000;
/// Default most bytes of group keys and `min`/`max` values one aggregation may hold.
pub const DEFAULT_MAX_AGGREGATE_BYTES: usize = 64 * 1024 * 1024;
/// Bytes counted per group for its bookkeeping, on top of its keys and values.
const GROUP_OVERHEAD_BYTES: usize = 128;

/// How much one aggregation may hold in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateLimits {
    /// Most groups.
    pub max_groups: usize,
    /// Most bytes of group keys, `min`/`max` values and per-group bookkeeping (an estimate).
    pub max_bytes: usize,
}

impl Default for AggregateLimits {
    fn default() -> Self {
        AggregateLimits {
            max_groups: DEFAULT_MAX_GROUPS,
            max_bytes: DEFAULT_MAX_AGGREGATE_BYTES,
        }
    }
}

/// Why an aggregation was refused or stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AggregateError {
    /// The aggregation is malformed (a client error: 400).
    #[error("{0}")]
    Invalid(String),
    /// More groups than `max_groups` (422).
    #[error(
        "the aggregation makes more than {limit} groups (the limit max_groups); group by fewer distinct values or filter first"
    )]
    TooManyGroups {
        /// The limit.
        limit: usize,
    },
    /// Group keys and values past `max_bytes` (422).
    #[error(
        "the aggregation's groups hold more than {limit} bytes (the limit max_bytes); group by smaller or fewer values or filter first"
    )]
    TooManyBytes {
        /// The limit.
        limit: usize,
    },
}

impl Aggregate {
    /// The field read (`"*"` for counting documents).
    pub fn field(&self) -> &str {
        match self {
            Aggregate::Sum(f)
            | Aggregate::Avg(f)
            | Aggregate::Count(f)
            | Aggregate::Min(f)
            | Aggregate::Max(f) => f,
        }
    }

    /// The function's name, as in JSON.
    pub fn function(&self) -> &'static str {
        match self {
            Aggregate::Sum(_) => "sum",
            Aggregate::Avg(_) => "avg",
            Aggregate::Count(_) => "count",
            Aggregate::Min(_) => "min",
            Aggregate::Max(_) => "max",
        }
    }
}

impl Aggregation {
    /// An empty pipeline, to add outputs to: the roadmap's `Aggregation::pipeline().sum("amount")`.
    pub fn pipeline() -> Aggregation {
        Aggregation::default()
    }

    /// Groups also by `field`.
    pub fn group_by(mut self, field: impl Into<String>) -> Aggregation {
        self.group_by.push(field.into());
        self
    }

    /// Adds an output under an explicit name.
    pub fn output(mut self, name: impl Into<String>, aggregate: Aggregate) -> Aggregation {
        self.aggregate.insert(name.into(), aggregate);
        self
    }

    /// Adds `sum_<field>` (dots in the field become `_`).
    pub fn sum(self, field: &str) -> Aggregation {
        self.output(default_name("sum", field), Aggregate::Sum(field.into()))
    }

    /// Adds `avg_<field>`.
    pub fn avg(self, field: &str) -> Aggregation {
        self.output(default_name("avg", field), Aggregate::Avg(field.into()))
    }

    /// Adds `count`: the documents of each group.
    pub fn count(self) -> Aggregation {
        self.output("count", Aggregate::Count("*".into()))
    }

    /// Adds `count_<field>`: the documents where the field exists and is not null.
    pub fn count_field(self, field: &str) -> Aggregation {
        self.output(default_name("count", field), Aggregate::Count(field.into()))
    }

    /// Adds `min_<field>`.
    pub fn min(self, field: &str) -> Aggregation {
        self.output(default_name("min", field), Aggregate::Min(field.into()))
    }

    /// Adds `max_<field>`.
    pub fn max(self, field: &str) -> Aggregation {
        self.output(default_name("max", field), Aggregate::Max(field.into()))
    }

    /// Refuses what cannot be evaluated, with a message a client can act on.
    pub fn validate(&self) -> Result<(), AggregateError> {
        let invalid = |m: String| Err(AggregateError::Invalid(m));
        if self.group_by.is_empty() && self.aggregate.is_empty() {
            return invalid("an aggregation needs group_by fields or aggregate outputs".into());
        }
        for (i, g) in self.group_by.iter().enumerate() {
            if !is_path(g) {
                return invalid(format!(
                    "group_by field {g:?} is not a dotted path such as \"address.city\""
                ));
            }
            if self.group_by[..i].contains(g) {
                return invalid(format!("group_by names {g:?} twice"));
            }
        }
        for (name, agg) in &self.aggregate {
            if name.is_empty() {
                return invalid("an aggregate output needs a name".into());
            }
            if self.group_by.contains(name) {
                return invalid(format!(
                    "output {name:?} has the name of a group_by field; rename it"
                ));
            }
            let f = agg.field();
            let star_ok = matches!(agg, Aggregate::Count(_));
            let ok = if f == "*" { star_ok } else { is_path(f) };
            if !ok {
                return invalid(format!(
                    "output {name:?}: {} of {f:?}: name a dotted field path{}",
                    agg.function(),
                    if star_ok { " or \"*\"" } else { "" }
                ));
            }
        }
        Ok(())
    }
}

/// `sum_amount`, `avg_address_city`: the roadmap's output names.
fn default_name(function: &str, field: &str) -> String {
    format!("{function}_{}", field.replace('.', "_"))
}

fn is_path(f: &str) -> bool {
    !f.is_empty() && f.split('.').all(|p| !p.is_empty())
}

/// Aggregates `docs` in one pass (see the module doc): the rows of every group, ordered by their
/// `group_by` values.
pub fn run<I>(
    docs: I,
    spec: &Aggregation,
    limits: &AggregateLimits,
) -> Result<Vec<Group>, AggregateError>
where
    I: IntoIterator,
    I::Item: Borrow<Value>,
{
    let mut aggregator = Aggregator::new(spec, *limits)?;
    for doc in docs {
        aggregator.add(doc.borrow())?;
    }
    Ok(aggregator.finish())
}

/// An aggregation in progress, fed one document at a time: for sources that can fail between
/// documents (reads from the log), where [`run`] would need them all up front.
#[derive(Debug)]
pub struct Aggregator<'a> {
    spec: &'a Aggregation,
    outputs: Vec<(&'a str, &'a Aggregate)>,
    limits: AggregateLimits,
    index: HashMap<Vec<ValueKey<'static>>, usize>,
    groups: Vec<GroupState>,
    bytes: usize,
}

/// One group: its `group_by` values as first seen and one accumulator per output.
#[derive(Debug)]
struct GroupState {
    values: Vec<Value>,
    accs: Vec<Acc>,
}

/// The running state of one output of one group.
#[derive(Debug)]
enum Acc {
    Sum(NumSum),
    Avg(NumSum),
    Count(u64),
    Min(Option<Value>),
    Max(Option<Value>),
}

/// An exact integer sum beside a compensated float sum.
#[derive(Debug, Default)]
struct NumSum {
    /// Integers, exact: 2^64 additions of 64-bit values cannot overflow an i128.
    int: i128,
    /// Floats, with Neumaier's compensation term.
    float: f64,
    compensation: f64,
    any_float: bool,
    count: u64,
}

impl NumSum {
    fn add(&mut self, n: &Number) {
        self.count += 1;
        match values::integer(n) {
            Some(i) => self.int += i,
            None => {
                let x = n.as_f64().unwrap_or(0.0);
                let t = self.float + x;
                self.compensation += if self.float.abs() >= x.abs() {
                    (self.float - t) + x
                } else {
                    (x - t) + self.float
                };
                self.float = t;
                self.any_float = true;
            }
        }
    }

    fn total_f64(&self) -> f64 {
        self.int as f64 + (self.float + self.compensation)
    }

    fn sum(&self) -> Value {
        if !self.any_float {
            if let Ok(i) = i64::try_from(self.int) {
                return Value::from(i);
            }
            if let Ok(u) = u64::try_from(self.int) {
                return Value::from(u);
            }
        }
        float(self.total_f64())
    }

    fn avg(&self) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        float(self.total_f64() / self.count as f64)
    }
}

/// A float as JSON; null past f64's range (JSON has no infinity).
fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

impl<'a> Aggregator<'a> {
    /// Starts an aggregation after validating it.
    pub fn new(spec: &'a Aggregation, limits: AggregateLimits) -> Result<Self, AggregateError> {
        spec.validate()?;
        let mut aggregator = Aggregator {
            spec,
            outputs: spec
                .aggregate
                .iter()
                .map(|(n, a)| (n.as_str(), a))
                .collect(),
            limits,
            index: HashMap::new(),
            groups: Vec::new(),
            bytes: 0,
        };
        if spec.group_by.is_empty() {
            // Without group_by there is one group, present even when no document comes.
            aggregator.new_group(Vec::new(), Vec::new())?;
        }
        Ok(aggregator)
    }

    /// Adds one document's value to its group.
    pub fn add(&mut self, doc: &Value) -> Result<(), AggregateError> {
        let slot = if self.spec.group_by.is_empty() {
            0
        } else {
            // Borrowed keys on the stack: finding an existing group allocates nothing.
            let found: SmallVec<[Option<&Value>; 4]> =
                self.spec.group_by.iter().map(|g| field(doc, g)).collect();
            let key: SmallVec<[ValueKey<'_>; 4]> = found.iter().map(|v| ValueKey::of(*v)).collect();
            match self.index.get(key.as_slice()) {
                Some(&slot) => slot,
                None => {
                    let key = key.into_iter().map(ValueKey::into_owned).collect();
                    let values = found
                        .into_iter()
                        .map(|v| v.cloned().unwrap_or(Value::Null))
                        .collect();
                    self.new_group(key, values)?
                }
            }
        };
        let mut grown = 0usize;
        let mut shrunk = 0usize;
        let group = &mut self.groups[slot];
        for ((_, agg), acc) in self.outputs.iter().zip(group.accs.iter_mut()) {
            let value = match agg.field() {
                "*" => None,
                f => field(doc, f),
            };
            match (acc, value) {
                (Acc::Count(n), _) if agg.field() == "*" => *n += 1,
                (Acc::Count(n), Some(v)) if !v.is_null() => *n += 1,
                (Acc::Sum(s) | Acc::Avg(s), Some(Value::Number(n))) => s.add(n),
                (Acc::Min(best), Some(v)) => {
                    replace_if(best, v, Ordering::Less, &mut grown, &mut shrunk)
                }
                (Acc::Max(best), Some(v)) => {
                    replace_if(best, v, Ordering::Greater, &mut grown, &mut shrunk)
                }
                _ => {}
            }
        }
        self.bytes = (self.bytes + grown).saturating_sub(shrunk);
        if self.bytes > self.limits.max_bytes {
            return Err(AggregateError::TooManyBytes {
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    fn new_group(
        &mut self,
        key: Vec<ValueKey<'static>>,
        values: Vec<Value>,
    ) -> Result<usize, AggregateError> {
        if self.groups.len() >= self.limits.max_groups {
            return Err(AggregateError::TooManyGroups {
                limit: self.limits.max_groups,
            });
        }
        self.bytes += GROUP_OVERHEAD_BYTES
            + key.iter().map(ValueKey::heap_bytes).sum::<usize>()
            + values.iter().map(approx_bytes).sum::<usize>();
        if self.bytes > self.limits.max_bytes {
            return Err(AggregateError::TooManyBytes {
                limit: self.limits.max_bytes,
            });
        }
        let accs = self
            .outputs
            .iter()
            .map(|(_, agg)| match agg {
                Aggregate::Sum(_) => Acc::Sum(NumSum::default()),
                Aggregate::Avg(_) => Acc::Avg(NumSum::default()),
                Aggregate::Count(_) => Acc::Count(0),
                Aggregate::Min(_) => Acc::Min(None),
                Aggregate::Max(_) => Acc::Max(None),
            })
            .collect();
        let slot = self.groups.len();
        self.groups.push(GroupState { values, accs });
        if !key.is_empty() {
            self.index.insert(key, slot);
        }
        Ok(slot)
    }

    /// Groups so far.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The rows of every group, ordered by their `group_by` values.
    pub fn finish(self) -> Vec<Group> {
        let Aggregator {
            spec,
            outputs,
            mut groups,
            ..
        } = self;
        groups.sort_by(|a, b| {
            a.values
                .iter()
                .zip(&b.values)
                .map(|(x, y)| total_order(x, y))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        groups
            .into_iter()
            .map(|g| {
                let mut row: Group = spec.group_by.iter().cloned().zip(g.values).collect();
                for ((name, _), acc) in outputs.iter().zip(g.accs) {
                    let value = match acc {
                        Acc::Sum(s) => s.sum(),
                        Acc::Avg(s) => s.avg(),
                        Acc::Count(n) => Value::from(n),
                        Acc::Min(v) | Acc::Max(v) => v.unwrap_or(Value::Null),
                    };
                    row.insert((*name).to_string(), value);
                }
                row
            })
            .collect()
    }
}

/// Keeps `candidate` in `best` when it orders `want` of it (numbers and strings only), counting
/// the bytes taken and released.
fn replace_if(
    best: &mut Option<Value>,
    candidate: &Value,
    want: Ordering,
    grown: &mut usize,
    shrunk: &mut usize,
) {
    let better = match best {
        None => cmp_min_max(candidate, candidate).is_some(),
        Some(current) => cmp_min_max(candidate, current) == Some(want),
    };
    if better {
        *grown += approx_bytes(candidate);
        if let Some(old) = best.replace(candidate.clone()) {
            *shrunk += approx_bytes(&old);
        }
    }
}

#[cfg(test)]
mod tests;
