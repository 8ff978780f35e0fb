//! KoruDelta's data plane: a versioned, time-travelling key-value store and its HTTP server.
//!
//! Layout: [`wal`] is the on-disk log, [`store`] the log plus the in-memory index, [`http`] the API
//! v1 on top, [`config`] the command line, [`clock`] the time and its format, [`server`] the process around it all; [`rewind`] puts a
//! key range back to an earlier moment; [`raft`] replicates the store across a cluster's members.

#![warn(missing_docs)]

pub mod auth;
pub mod backup;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod indexes;
pub mod json_check;
pub mod metrics;
pub mod names;
pub mod query;
pub mod raft;
pub mod revocations;
pub mod rewind;
pub mod server;
pub mod store;
pub mod usage;
pub mod wal;

pub use db::{BlockingDb, Db, DbError};
pub use error::StoreError;
pub use store::{Document, FsyncMode, Store, StoreConfig, WriteOp};
