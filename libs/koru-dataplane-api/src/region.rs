//! A region's view of the global database it belongs to, as `GET /admin/v1/regions` answers
//! it; the operator polls it into `KoruCluster.status.regions`.

use serde::{Deserialize, Serialize};

/// The state of the stream from one peer region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not yet connected, or reconnecting after a clean end.
    Connecting,
    /// Following the peer's feed.
    Streaming,
    /// The last attempts failed (see `last_error`); retried with backoff.
    Failing,
}

/// One peer region this region streams from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerLink {
    /// The peer's region name.
    pub name: String,
    /// The peer's API base URL.
    pub url: String,
    /// How the stream is doing.
    pub state: LinkState,
    /// The peer's last LSN applied here (the watermark).
    pub applied_lsn: u64,
    /// The commit time (RFC 3339) of that record at the peer, once one was applied.
    #[serde(default)]
    pub applied_time: Option<String>,
    /// How far this region's view of the peer trails the peer's clock, in seconds; None until
    /// the first page was read.
    #[serde(default)]
    pub lag_seconds: Option<f64>,
    /// Records applied from the peer since this process started.
    pub records_applied: u64,
    /// The last failure, while `state` is `failing`.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `GET /admin/v1/regions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionStatus {
    /// This region's name (`local` when not part of a global database).
    pub region: String,
    /// The peers it streams from.
    pub peers: Vec<PeerLink>,
}
