//! The names of the gateway's Prometheus metrics, read by the charts' Grafana dashboards and
//! alert rules. Every per-cluster series carries the label `cluster` (the cluster's id).

/// Counter: requests answered, labels `cluster`, `code` (HTTP status).
pub const REQUESTS: &str = "koru_gateway_requests_total";
/// Histogram (seconds): time from request to response head, label `cluster`.
pub const REQUEST_DURATION: &str = "koru_gateway_request_duration_seconds";
/// Counter: requests refused at the edge, labels `cluster`, `reason` (`token`, `revoked`,
/// `allow_list`, `rate_limit`, `too_large`, `forbidden_route`).
pub const REFUSED: &str = "koru_gateway_refused_total";
/// Counter: wakes of a suspended cluster the gateway asked for, label `cluster`.
pub const WAKES: &str = "koru_gateway_wakes_total";
/// Histogram (seconds): how long a held request waited for its cluster to wake, label `cluster`.
pub const WAKE_DURATION: &str = "koru_gateway_wake_duration_seconds";
/// Gauge: seconds since the last successful sync with the control plane.
pub const SYNC_AGE: &str = "koru_gateway_sync_age_seconds";
