//! `data "koru_cluster"`: one cluster of the organization, by id or by name.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, AttributeType, Block, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, DataSource, Diagnostics};

use crate::client::Cluster;
use crate::diagnostics::{api_error, error};
use crate::provider::Shared;
use crate::resources::{attribute, known, rfc3339};
use crate::rules;

/// The data source's attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDataState {
    /// Cluster id (set this or `name`).
    pub id: Value<String>,
    /// Cluster name (set this or `id`).
    pub name: Value<String>,
    /// Tier.
    pub tier: Value<String>,
    /// Region label.
    pub region: Value<String>,
    /// Replicas.
    pub replicas: Value<i64>,
    /// Storage per cluster, e.g. `100GB`.
    pub storage: Value<String>,
    /// Operations per second.
    pub max_ops_per_sec: Value<i64>,
    /// The data plane's URL.
    pub endpoint: Value<String>,
    /// Phase.
    pub status: Value<String>,
    /// Why it is not running, when it is not.
    pub message: Value<String>,
    /// Data-plane version.
    pub version: Value<String>,
    /// Creation time (RFC 3339).
    pub created_at: Value<String>,
    /// CIDRs allowed to reach the cluster through the gateway; empty allows everyone.
    pub allowed_cidrs: Value<Vec<Value<String>>>,
}

impl ClusterDataState {
    /// The data source's view of `cluster`.
    pub fn from_api(c: &Cluster) -> ClusterDataState {
        ClusterDataState {
            id: Value::Value(c.id.clone()),
            name: Value::Value(c.name.clone()),
            tier: Value::Value(c.tier.clone()),
            region: Value::Value(c.region.clone()),
            replicas: Value::Value(i64::from(c.replicas)),
            storage: Value::Value(rules::storage_label(c.max_storage_bytes)),
            max_ops_per_sec: Value::Value(i64::try_from(c.max_ops_per_sec).unwrap_or(i64::MAX)),
            endpoint: c.endpoint.clone().into(),
            status: Value::Value(c.phase.clone()),
            message: c.message.clone().into(),
            version: Value::Value(c.version.clone()),
            allowed_cidrs: crate::resources::cidrs_value(&c.allowed_cidrs),
            created_at: Value::Value(rfc3339(c.created_at)),
        }
    }
}

/// Which of `id` and `name` is wrong, when not exactly one is set.
pub fn check_lookup(config: &ClusterDataState) -> Result<(), (&'static str, String)> {
    match (&config.id, &config.name) {
        (Value::Null, Value::Null) => Err(("id", "set id or name to look the cluster up".into())),
        (Value::Value(_), Value::Value(_)) => {
            Err(("name", "set either id or name, not both".into()))
        }
        _ => Ok(()),
    }
}

/// The `koru_cluster` data source.
pub struct ClusterDataSource {
    shared: Shared,
}

impl ClusterDataSource {
    /// The data source, calling the API through `shared` once the provider is configured.
    pub fn new(shared: Shared) -> ClusterDataSource {
        ClusterDataSource { shared }
    }
}

#[async_trait]
impl DataSource for ClusterDataSource {
    type State<'a> = ClusterDataState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeConstraint::{Computed, OptionalComputed};
        use AttributeType::{Number, String};
        let attributes = HashMap::from([
            (
                "id".into(),
                attribute(String, OptionalComputed, "Cluster id; set this or name."),
            ),
            (
                "name".into(),
                attribute(String, OptionalComputed, "Cluster name; set this or id."),
            ),
            ("tier".into(), attribute(String, Computed, "Tier.")),
            (
                "region".into(),
                attribute(String, Computed, "Region label."),
            ),
            ("replicas".into(), attribute(Number, Computed, "Replicas.")),
            (
                "allowed_cidrs".into(),
                attribute(
                    AttributeType::List(Box::new(String)),
                    Computed,
                    "CIDRs allowed to reach the cluster through the gateway; empty allows every address.",
                ),
            ),
            (
                "storage".into(),
                attribute(
                    String,
                    Computed,
                    "Storage per cluster (the tier's), e.g. 100GB.",
                ),
            ),
            (
                "max_ops_per_sec".into(),
                attribute(Number, Computed, "Operations per second (the tier's)."),
            ),
            (
                "endpoint".into(),
                attribute(String, Computed, "URL of the data plane; null until known."),
            ),
            (
                "status".into(),
                attribute(
                    String,
                    Computed,
                    "Phase: Pending, Provisioning, Running, Degraded, Failed or Deleting.",
                ),
            ),
            (
                "message".into(),
                attribute(String, Computed, "Why it is not running, when it is not."),
            ),
            (
                "version".into(),
                attribute(String, Computed, "Data-plane version."),
            ),
            (
                "created_at".into(),
                attribute(String, Computed, "Creation time (RFC 3339)."),
            ),
        ]);
        Some(Schema {
            version: 1,
            block: Block {
                attributes,
                description: Description::plain("A cluster of the organization, by id or name."),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ClusterDataState) -> Option<()> {
        if let Err((attr, message)) = check_lookup(&config) {
            error(diags, "Which cluster?", message, AttributePath::new(attr));
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: ClusterDataState,
        _meta: ValueEmpty,
    ) -> Option<ClusterDataState> {
        let conn = self.shared.connection(diags)?;
        // The API takes an id or a name in the same place.
        let key = known(&config.id).or(known(&config.name))?;
        match conn.client.cluster(&conn.org, key).await {
            Ok(cluster) => Some(ClusterDataState::from_api(&cluster)),
            Err(e) => {
                api_error(diags, format!("Cannot read cluster {key:?}"), &e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_id_and_name_is_set() {
        let by = |id: Value<String>, name: Value<String>| ClusterDataState {
            id,
            name,
            ..Default::default()
        };
        let v = |s: &str| Value::Value(s.to_string());
        assert!(check_lookup(&by(v("c1"), Value::Null)).is_ok());
        assert!(check_lookup(&by(Value::Null, v("orders"))).is_ok());
        assert!(check_lookup(&by(Value::Unknown, Value::Null)).is_ok());
        assert_eq!(
            check_lookup(&by(Value::Null, Value::Null)).unwrap_err().0,
            "id"
        );
        assert_eq!(
            check_lookup(&by(v("c1"), v("orders"))).unwrap_err().0,
            "name"
        );
    }
}
