//! The data plane's wire types, defined once for the data plane that writes them and the operator,
//! control plane and Terraform provider that read them (see README.md).
//!
//! Every type here is plain serde data: changing a field changes what crosses the wire, so the
//! tests pin each type to the exact JSON the data plane sends.

pub mod auth;
pub mod backup;
pub mod data;
pub mod error;
pub mod raft;
pub mod ready;
pub mod region;
pub mod revocations;
pub mod rfc3339;

pub use auth::{Claims, MAX_ADMIN_TTL_SECS, Scope};
pub use backup::{BackupUrl, BackupUrlError, Manifest, SegmentMeta};
pub use error::{ErrorBody, ErrorDetail};
pub use ready::{ArchiveReport, Readiness};
