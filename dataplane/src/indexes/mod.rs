//! Secondary indexes: value indexes (equality, ranges, prefixes, unique) and full-text indexes,
//! each answerable as of any moment of the retained history.
//!
//! An index's definition is a key of the internal namespace [`def::INDEXES_NAMESPACE`], written
//! through the log like any value, so definitions are versioned, durable, replicated and restored
//! by point-in-time recovery; the entries themselves are derived from the log and rebuilt from it.

pub mod build;
pub mod def;
pub mod encode;
// Without tantivy (the `text` feature: off in the browser build) text indexes answer why not.
#[cfg_attr(not(feature = "text"), path = "text/off.rs")]
pub mod text;
pub mod value;

pub use def::{IndexDef, IndexInfo, IndexKind, IndexStatus, IndexType, Probe, TextHit};

#[cfg(test)]
mod tests;
