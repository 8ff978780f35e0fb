//! The benchmark tool's error type: bad arguments exit with status 2, failures with status 1.

use koru_dataplane::StoreError;

/// Why a benchmark could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The arguments make no sense; the message says which and why.
    #[error("{0}")]
    Usage(String),
    /// A file, socket or child process failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server under test misbehaved (refused connections, answered too many errors).
    #[error("{0}")]
    Target(String),
    /// The embedded store refused or failed a write.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A result file could not be read or written as JSON.
    #[error("{context}: {source}")]
    Json {
        /// Which file or value.
        context: String,
        /// The underlying error.
        source: serde_json::Error,
    },
}

impl BenchError {
    /// An `Io` error with context, for `map_err`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Io { context, source }
    }
}
