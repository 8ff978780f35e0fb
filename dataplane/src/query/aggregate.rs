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
