//! The contract between the control plane and the gateway (see README.md): the route table the
//! control plane serves, the activity each gateway replica reports, and the wake request.
//!
//! Plain serde data: changing a field changes what crosses the wire, so the tests pin the JSON.

pub mod metrics;

use serde::{Deserialize, Serialize};

/// The path of the sync call (POST, bearer: the gateway secret).
pub const SYNC_PATH: &str = "/internal/v1/gateway/sync";

/// The path of the wake call for cluster `id` (POST, bearer: the gateway secret).
pub fn wake_path(cluster_id: &str) -> String {
    format!("/internal/v1/gateway/clusters/{cluster_id}/wake")
}

/// The environment variable both sides read the shared gateway secret from.
pub const SECRET_ENV: &str = "KORU_GATEWAY_SECRET";

/// What one gateway replica tells the control plane on each sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SyncRequest {
    /// This replica's stable id (its pod name, or a random id per process).
    pub gateway_id: String,
    /// What it served per cluster since its previous sync (clusters with no traffic left out).
    #[serde(default)]
    pub activity: Vec<ClusterActivity>,
}

/// What one gateway replica served for one cluster since its previous sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ClusterActivity {
    /// The cluster's id.
    pub cluster_id: String,
    /// Requests answered (any status), including those refused at the edge.
    pub requests: u64,
    /// Requests answered with a 5xx status (the availability SLO's bad events).
    pub server_errors: u64,
    /// Requests slower than `SLOW_REQUEST_MS` (the latency SLO's bad events).
    pub slow_requests: u64,
    /// Requests refused by the rate limit (429): how much more this replica wanted.
    pub throttled: u64,
}

/// A request slower than this counts against the latency SLO.
pub const SLOW_REQUEST_MS: u64 = 250;

/// The control plane's answer to a sync: every hosted cluster the gateway may route to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RouteTable {
    /// Every cluster, whatever its state (a deleted cluster is absent: 404 at the edge).
    pub clusters: Vec<ClusterRoute>,
    /// Gateway replicas that synced in the last few seconds, this one included.
    pub live_gateways: u32,
}

/// How the gateway reaches and guards one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ClusterRoute {
    /// The cluster's id (the `cluster` claim of its data tokens).
    pub id: String,
    /// The cluster's name, unique in its organization: `<name>.<org_slug>.<domain>`.
    pub name: String,
    /// The owning organization's slug.
    pub org_slug: String,
    /// Whether it can serve now, is suspended, or is on its way back.
    pub state: RouteState,
    /// Each member's base URL (`http://host:port`), reachable from the gateway. Empty while
    /// suspended.
    pub members: Vec<String>,
    /// PEM public key the cluster's data tokens are signed with.
    pub token_public_key_pem: String,
    /// Token ids (`jti`) revoked and not yet expired.
    #[serde(default)]
    pub revoked_token_ids: Vec<String>,
    /// CIDRs allowed to reach the cluster (`10.0.0.0/8`, `2001:db8::/32`, `203.0.113.7/32`);
    /// empty allows every address.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    /// The tier's operations per second for the whole cluster.
    pub max_ops_per_sec: u64,
    /// The largest request body the tier allows, bytes.
    pub max_request_bytes: u64,
    /// The fraction (0..=1) of `max_ops_per_sec` this gateway replica may spend until its next
    /// sync, set by the control plane from every replica's recent demand.
    pub ops_share: f64,
}

/// Whether a cluster can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// Serving: forward.
    Running,
    /// Scaled to zero: hold the request, ask for a wake, forward once running.
    Suspended,
    /// Waking (a wake was asked for): hold the request.
    Waking,
    /// Being created, failed, or otherwise not serving: 503 with `Retry-After`.
    Unavailable,
}

/// The control plane's answer to a wake request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct WakeResponse {
    /// The cluster's state after the request (`waking`, or `running` if it already was).
    pub state: RouteState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn route_table_crosses_the_wire_as_documented() {
        let table = RouteTable {
            clusters: vec![ClusterRoute {
                id: "c1".into(),
                name: "orders".into(),
                org_slug: "acme".into(),
                state: RouteState::Suspended,
                members: vec![],
                token_public_key_pem: "PEM".into(),
                revoked_token_ids: vec!["t1".into()],
                allowed_cidrs: vec!["10.0.0.0/8".into()],
                max_ops_per_sec: 100,
                max_request_bytes: 1_048_576,
                ops_share: 0.5,
            }],
            live_gateways: 2,
        };
        let wire = json!({
            "clusters": [{
                "id": "c1", "name": "orders", "org_slug": "acme", "state": "suspended",
                "members": [], "token_public_key_pem": "PEM", "revoked_token_ids": ["t1"],
                "allowed_cidrs": ["10.0.0.0/8"], "max_ops_per_sec": 100,
                "max_request_bytes": 1_048_576, "ops_share": 0.5
            }],
            "live_gateways": 2
        });
        assert_eq!(serde_json::to_value(&table).ok(), Some(wire.clone()));
        assert_eq!(serde_json::from_value::<RouteTable>(wire).ok(), Some(table));
    }

    #[test]
    fn sync_request_defaults_missing_activity() {
        let parsed: SyncRequest =
            serde_json::from_value(json!({"gateway_id": "g"})).unwrap_or_default();
        assert_eq!(parsed.gateway_id, "g");
        assert!(parsed.activity.is_empty());
        assert_eq!(wake_path("c1"), "/internal/v1/gateway/clusters/c1/wake");
    }
}
