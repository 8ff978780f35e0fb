//! What can go wrong with a query, typed so the HTTP edge maps each case once (`http/error.rs`).

use crate::error::StoreError;

/// Which budget a query ran past; each has a flag (`--query-max-…`) that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Documents read (`--query-max-scan`).
    Scan,
    /// Bytes of the answer (`--query-max-result-bytes`).
    ResultBytes,
    /// Groups of an aggregation (`--query-max-groups`).
    Groups,
    /// Bytes of documents held at once (`--query-memory`).
    Memory,
}

impl Limit {
    /// The flag that raises this limit.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::Scan => "--query-max-scan",
            Limit::ResultBytes => "--query-max-result-bytes",
            Limit::Groups => "--query-max-groups",
            Limit::Memory => "--query-memory",
        }
    }
}

/// A query that could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query is malformed or asks for something that does not exist; the client must fix it.
    #[error("{0}")]
    Invalid(String),
    /// No plan answers the query within its limits; the message suggests an index to create.
    #[error("{0}")]
    NoPlan(String),
    /// A text search over a field without a ready text index.
    #[error("{0}")]
    NoTextIndex(String),
    /// A query form this build cannot answer yet.
    #[error("{0}")]
    Unsupported(String),
    /// The query ran past a budget; the message names the limit and what to do.
    #[error("{message}")]
    LimitExceeded {
        /// The budget.
        limit: Limit,
        /// What happened and what to do.
        message: String,
    },
    /// A stored value could not be read back as JSON (a bug or damage; logged at the edge).
    #[error("stored value of key {0:?} could not be read")]
    Unreadable(String),
    /// The query's thread panicked or was cancelled (logged where it happened).
    #[error("the query was interrupted; see the server log")]
    Interrupted,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    /// The stable machine-readable code the HTTP API and the embedded [`crate::db::Db`] report.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Invalid(_) => "bad_request",
            QueryError::NoPlan(_) => "no_plan",
            QueryError::NoTextIndex(_) => "no_text_index",
            QueryError::Unsupported(_) => "not_supported",
            QueryError::LimitExceeded {
                limit: Limit::ResultBytes,
                ..
            } => "result_too_large",
            QueryError::LimitExceeded { .. } => "query_limit_exceeded",
            QueryError::Unreadable(_) | QueryError::Interrupted => "internal",
            QueryError::Store(e) => e.code(),
        }
    }

    /// A budget exceeded: `what` says what happened, the flag is named after it.
    pub fn limit(limit: Limit, what: impl std::fmt::Display, advice: &str) -> QueryError {
        QueryError::LimitExceeded {
            limit,
            message: format!("{what} (limit set by {}); {advice}", limit.flag()),
        }
    }
}
