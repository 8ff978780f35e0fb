//! The managed resources (`koru_cluster`, `koru_api_token`, `koru_backup`) and the helpers they
//! share to read configuration values and report errors.

mod api_token;
mod backup;
mod cluster;

pub use api_token::{ApiTokenResource, ApiTokenState};
pub use backup::{BackupResource, BackupState};
pub use cluster::{ClusterChange, ClusterResource, ClusterState, Timeouts, plan_change};

use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Description};
use tf_provider::value::Value;

/// The value if it is known and set.
pub(crate) fn known<T>(value: &Value<T>) -> Option<&T> {
    match value {
        Value::Value(v) => Some(v),
        _ => None,
    }
}

/// An attribute of a schema.
pub(crate) fn attribute(
    attr_type: AttributeType,
    constraint: AttributeConstraint,
    description: &str,
) -> Attribute {
    Attribute {
        attr_type,
        description: Description::plain(description),
        constraint,
        sensitive: false,
        deprecated: false,
    }
}

/// An allow list as a Terraform list value.
pub(crate) fn cidrs_value(cidrs: &[String]) -> Value<Vec<Value<String>>> {
    Value::Value(cidrs.iter().cloned().map(Value::Value).collect())
}

/// A global database's regions as the state holds them: null for a single-region cluster.
pub(crate) fn regions_value(cluster: &crate::client::Cluster) -> Value<Vec<Value<String>>> {
    if cluster.regions.is_empty() {
        Value::Null
    } else {
        Value::Value(
            cluster
                .regions
                .iter()
                .map(|r| Value::Value(r.name.clone()))
                .collect(),
        )
    }
}

/// Each region's endpoint by region name (empty for a single-region cluster); a region not yet
/// reachable maps to null.
pub(crate) fn region_endpoints_value(
    cluster: &crate::client::Cluster,
) -> Value<std::collections::HashMap<String, Value<String>>> {
    Value::Value(
        cluster
            .regions
            .iter()
            .map(|r| (r.name.clone(), r.endpoint.clone().into()))
            .collect(),
    )
}

/// An allow list when it and every entry are known.
pub(crate) fn known_cidrs(value: &Value<Vec<Value<String>>>) -> Option<Vec<String>> {
    known(value)?.iter().map(|v| known(v).cloned()).collect()
}

/// Milliseconds since the epoch as RFC 3339 (UTC), as Terraform configurations compare times.
pub(crate) fn rfc3339(ms: i64) -> String {
    koru_dataplane_api::rfc3339::format_millis(ms).unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
