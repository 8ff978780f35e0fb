//! A query as asked: the v2 body of `POST /api/v1/{ns}/query` (a v1 body is a v2 body that uses
//! only `filter`, `sort`, `limit` and `at`), and the builder the embedded API reads it through.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::aggregate::{Aggregate, Aggregation};
use super::error::QueryError;
use super::filter::{Filter, FilterExpr, Sort};
use super::join::{Join, JoinKind, JoinOn};
use crate::names;

/// Field name that sorts text-search results by relevance.
pub const RELEVANCE: &str = "_relevance";

/// `{"field": "bio", "query": "database +performance -slow", "highlight": true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSearch {
    /// The field a ready text index covers.
    pub field: String,
    /// Words, `+must`, `-not`, `"phrases"`, `prefix*`.
    pub query: String,
    /// Add the field's text with matches in `<b>…</b>` to each row.
    #[serde(default)]
    pub highlight: bool,
}

/// A query: every part optional; `{}` lists the namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Which documents (a leaf or an `and`/`or`/`not` tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterExpr>,
    /// Order of results or groups: one `{"field","descending"}` or an array of them.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sort: Vec<Sort>,
    /// Most rows or groups answered (`total` counts them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Answer as the data stood at this RFC 3339 moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Fields to group by (a string or an array).
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub group_by: Vec<String>,
    /// Named aggregate outputs: `{"sum_amount": {"sum": "amount"}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aggregate: BTreeMap<String, Aggregate>,
    /// A filter over the group rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub having: Option<FilterExpr>,
    /// Another namespace joined in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Join>,
    /// A full-text search over a text index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_search: Option<TextSearch>,
    /// Add the plan to the answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

/// A value or an array of them (null: none).
fn one_or_many<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(t)) => vec![t],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// Most sort keys, group fields and aggregate outputs one query may name.
pub const MAX_QUERY_FIELDS: usize = 64;

impl Query {
    /// An empty query: every document of the namespace.
    pub fn new() -> Query {
        Query::default()
    }

    /// Adds a condition; several calls all have to hold.
    pub fn filter(mut self, filter: impl Into<FilterExpr>) -> Query {
        self.filter = Some(match self.filter.take() {
            None => filter.into(),
            Some(f) => f.and_also(filter.into()),
        });
        self
    }

    /// Sorts by `field`; each call adds a key that orders the ties of the keys before it.
    pub fn sort_by(mut self, field: impl Into<String>, ascending: bool) -> Query {
        self.sort.push(Sort {
            field: field.into(),
            descending: !ascending,
        });
        self
    }

    /// At most `n` rows or groups.
    pub fn limit(mut self, n: usize) -> Query {
        self.limit = Some(n);
        self
    }

    /// As the data stood at `micros` (microseconds since the Unix epoch).
    pub fn at(mut self, micros: i64) -> Query {
        self.at = Some(crate::clock::rfc3339(micros));
        self
    }

    /// Adds the plan to the answer.
    pub fn explain(mut self) -> Query {
        self.explain = true;
        self
    }

    /// Groups by `field` too.
    pub fn group_by(mut self, field: impl Into<String>) -> Query {
        self.group_by.push(field.into());
        self
    }

    /// Adds an aggregation's outputs (and its `group_by` fields).
    pub fn aggregate(mut self, aggregation: Aggregation) -> Query {
        self.group_by.extend(aggregation.group_by);
        self.aggregate.extend(aggregation.aggregate);
        self
    }

    /// Keeps only the groups passing `filter`.
    pub fn having(mut self, filter: impl Into<FilterExpr>) -> Query {
        self.having = Some(match self.having.take() {
            None => filter.into(),
            Some(f) => f.and_also(filter.into()),
        });
        self
    }

    /// The roadmap's `.join("orders", "user_id", "users", "id")`: an inner join of the queried
    /// namespace (`from`, checked when the query runs) to `namespace` on `left = right`.
    pub fn join(mut self, from: &str, left: &str, namespace: &str, right: &str) -> Query {
        let _ = from;
        self.join = Some(Join {
            namespace: namespace.to_string(),
            on: JoinOn {
                left: left.to_string(),
                right: right.to_string(),
            },
            kind: JoinKind::Inner,
        });
        self
    }

    /// Keeps every queried document, with `null` where the join found nothing.
    pub fn left_join(mut self) -> Query {
        if let Some(j) = &mut self.join {
            j.kind = JoinKind::Left;
        }
        self
    }

    /// A full-text search of `field` (which needs a ready text index).
    pub fn text_search(mut self, field: &str, query: &str) -> Query {
        self.text_search = Some(TextSearch {
            field: field.to_string(),
            query: query.to_string(),
            highlight: false,
        });
        self
    }

    /// Adds highlights to a text search's rows.
    pub fn highlight(mut self) -> Query {
        if let Some(t) = &mut self.text_search {
            t.highlight = true;
        }
        self
    }

    /// Whether the answer is groups rather than documents.
    pub fn is_aggregation(&self) -> bool {
        !self.group_by.is_empty() || !self.aggregate.is_empty()
    }

    /// The aggregation part, in the aggregate module's shape.
    pub fn aggregation(&self) -> Aggregation {
        Aggregation {
            group_by: self.group_by.clone(),
            aggregate: self.aggregate.clone(),
        }
    }

    /// Reads kdelta's `--filter 'age > 30'` leaves as what they mean (see
    /// [`Filter::from_kdelta_expression`]).
    pub fn from_kdelta(mut self) -> Query {
        self.filter = self
            .filter
            .map(|f| f.map_leaves(&Filter::from_kdelta_expression));
        self
    }

    /// The moment asked for, in microseconds.
    pub fn at_micros(&self) -> Result<Option<i64>, QueryError> {
        self.at
            .as_deref()
            .map(|s| {
                crate::clock::parse_micros(s).map_err(|e| {
                    QueryError::Invalid(format!(
                        "invalid timestamp {s:?}: {e} (use RFC 3339, e.g. 2026-01-31T12:00:00Z)"
                    ))
                })
            })
            .transpose()
    }

    /// Refuses what cannot be answered, with a message a client can act on.
    pub fn validate(&self, namespace: &str) -> Result<(), QueryError> {
        let invalid = |m: String| Err(QueryError::Invalid(m));
        if let Some(f) = &self.filter {
            f.validate().map_err(QueryError::Invalid)?;
        }
        if self.sort.len() + self.group_by.len() + self.aggregate.len() > MAX_QUERY_FIELDS {
            return invalid(format!(
                "a query names at most {MAX_QUERY_FIELDS} sort keys, group fields and outputs"
            ));
        }
        if let Some(h) = &self.having {
            if !self.is_aggregation() {
                return invalid("\"having\" filters groups: add group_by or aggregate".into());
            }
            h.validate().map_err(QueryError::Invalid)?;
        }
        if self.is_aggregation() {
            self.aggregation()
                .validate()
                .map_err(|e| QueryError::Invalid(e.to_string()))?;
        }
        if let Some(j) = &self.join {
            names::validate_namespace(&j.namespace)
                .map_err(|e| QueryError::Invalid(format!("join: {e}")))?;
            if j.namespace == namespace {
                return invalid(
                    "a namespace cannot be joined with itself (its fields would be ambiguous)"
                        .into(),
                );
            }
            if j.on.left.is_empty() || j.on.right.is_empty() {
                return invalid("join.on names a left and a right field".into());
            }
        }
        if let Some(t) = &self.text_search
            && (t.field.is_empty() || t.query.trim().is_empty())
        {
            return invalid("text_search needs a field and a non-empty query".into());
        }
        self.at_micros()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_bodies_read_as_v2_and_the_builder_writes_the_same_json() {
        let v1: Query = serde_json::from_value(json!({
            "filter": {"field": "age", "op": "gte", "value": 25},
            "sort": {"field": "age", "descending": true}, "limit": 2
        }))
        .unwrap();
        let built = Query::new()
            .filter(Filter::gte("age", 25))
            .sort_by("age", false)
            .limit(2);
        assert_eq!(v1, built);
        let nulls: Query = serde_json::from_value(json!({"sort": null, "filter": null})).unwrap();
        assert_eq!(nulls, Query::new());
        let two = Query::new()
            .filter(Filter::eq("users:status", "premium"))
            .filter(Filter::gt("orders:amount", 100))
            .join("orders", "user_id", "users", "id");
        let text = serde_json::to_value(&two).unwrap();
        assert_eq!(text["filter"]["and"][1]["field"], "orders:amount");
        assert_eq!(text["join"]["on"]["right"], "id");
        assert_eq!(serde_json::from_value::<Query>(text).unwrap(), two);
        assert!(two.validate("orders").is_ok());
        assert!(two.validate("users").is_err(), "self-join");
        assert!(Query::new().at(1_000_000).at_micros().unwrap() == Some(1_000_000));
        let bad_at = Query {
            at: Some("yesterday".into()),
            ..Query::new()
        };
        assert!(bad_at.validate("x").is_err());
        let having = Query::new().having(Filter::gt("count", 1));
        assert!(having.validate("x").is_err(), "having without groups");
    }
}
