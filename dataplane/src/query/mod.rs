//! The query engine: filters, sorting, aggregation, joins and text search over a namespace, now or
//! as of any moment, planned over the secondary indexes.
//!
//! Field paths use dots (`address.city`, `tags.0`), as KoruDelta clients expect.

pub mod aggregate;
pub mod filter;
pub mod join;

pub use filter::{
    Filter, FilterExpr, OPERATORS, Sort, Sources, compare, field, resolve, sort,
};
