//! The `/readyz` answer: whether a data plane takes writes, how far its archive lags, and (on a
//! replicated cluster) its view of its group. The operator reads the archive's lag from it.

use serde::{Deserialize, Serialize};

use crate::raft::ReplicaStatus;

/// `GET /readyz`. Every field has a default, so a reader copes with an older or newer data plane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Readiness {
    /// `ready`, `read_only` (a failed write or fsync) or `no_leader` (a member cut off from its group).
    pub status: String,
    /// Whether the store refuses writes.
    pub read_only: bool,
    /// LSN of the last record applied.
    pub last_lsn: u64,
    /// The archiver's state, when the data plane archives.
    pub archive: Option<ArchiveReport>,
    /// This member's view of its group, without the members' addresses (anyone may ask).
    pub replication: Option<ReplicaStatus>,
}

/// The `/readyz` view of the archiver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveReport {
    /// The backup store URL.
    pub store: String,
    /// Age in seconds of the oldest write not yet archived.
    pub lag_seconds: f64,
    /// Newest archived segment (0 when none).
    pub last_archived_segment: u64,
    /// LSN of the newest archived record (0 when none).
    pub last_archived_lsn: u64,
    /// Commit time of the newest archived record (RFC 3339), the recovery point.
    pub last_archived_time: Option<String>,
    /// Sealed segments waiting for upload.
    pub pending_segments: u64,
    /// The last upload error and when it happened (RFC 3339); cleared by the next success.
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_answer_reads_with_defaults() {
        let ready: Readiness =
            serde_json::from_str(r#"{"status":"ready","archive":{"lag_seconds":1.5}}"#).unwrap();
        assert_eq!(ready.status, "ready");
        assert_eq!(ready.archive.map(|a| a.lag_seconds), Some(1.5));
        let ready: Readiness =
            serde_json::from_str(r#"{"status":"ready","archive":null}"#).unwrap();
        assert!(ready.archive.is_none());
    }

    #[test]
    fn the_answer_is_sent_with_its_keys_in_the_order_readers_have_always_seen() {
        // The data plane sends the answer through a `serde_json::Value`, whose keys sort.
        let ready = Readiness {
            status: "ready".into(),
            last_lsn: 7,
            ..Readiness::default()
        };
        let text = serde_json::to_value(&ready).unwrap().to_string();
        assert_eq!(
            text,
            r#"{"archive":null,"last_lsn":7,"read_only":false,"replication":null,"status":"ready"}"#
        );
    }
}
