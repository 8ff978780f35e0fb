//! The query engine: filters, sorting, aggregation, joins and text search over a namespace, now or
//! as of any moment, planned over the secondary indexes.
//!
//! Field paths use dots (`address.city`, `tags.0`), as KoruDelta clients expect.

pub mod aggregate;
pub mod engine;
pub mod error;
pub mod filter;
pub mod join;
pub mod limits;
pub mod plan;
pub mod row;
pub mod spec;

pub use aggregate::Aggregation;
pub use engine::QueryAnswer;
pub use error::{Limit, QueryError};
pub use filter::{Filter, FilterExpr, OPERATORS, Sort, Sources, compare, field, resolve, sort};
pub use limits::QueryLimits;
pub use row::{ResultRow, Row};
pub use spec::{Query, TextSearch};
