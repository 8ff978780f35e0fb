//! KoruDelta's data plane: a versioned, time-travelling key-value store and its HTTP server.
//!
//! Layout: [`wal`] is the on-disk log, [`store`] the log plus the in-memory index, [`http`] the API
//! v1 on top, [`config`] the command line, [`clock`] the time and its format, [`server`] the process around it all; [`rewind`] puts a
//! key range back to an earlier moment; [`raft`] replicates the store across a cluster's members.

//!
//! Without the `server` feature (default on) only the embedded store is built: [`wal`], [`store`],
//! [`query`], [`indexes`] (no text indexes) and [`db::BlockingDb`], for wasm32-unknown-unknown.

#![warn(missing_docs)]

#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod backup;
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
pub mod crdt;
pub mod db;
pub mod error;
#[cfg(feature = "server")]
pub mod http;
pub mod indexes;
pub mod json_check;
pub mod metrics;
pub mod names;
pub mod patch;
pub mod query;
#[cfg(feature = "server")]
pub mod raft;
#[cfg(feature = "server")]
pub mod region;
#[cfg(feature = "server")]
pub mod revocations;
#[cfg(feature = "server")]
pub mod rewind;
#[cfg(feature = "server")]
pub mod server;
pub mod snapshot;
pub mod store;
#[cfg(feature = "server")]
pub mod usage;
pub mod wal;

#[cfg(feature = "server")]
pub use db::Db;
pub use db::{BlockingDb, DbError};
pub use error::StoreError;
pub use store::{Document, FsyncMode, Store, StoreConfig, WriteOp};
