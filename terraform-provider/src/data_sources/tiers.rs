//! `data "koru_tiers"`: the tiers and their limits, as `GET /api/v1/tiers` serves them.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, AttributeType, Block, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics};

use crate::client::Tier;
use crate::diagnostics::api_error;
use crate::provider::Shared;
use crate::resources::attribute;
use crate::rules;

/// One tier in the data source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierState {
    /// Its name.
    pub name: String,
    /// Storage per cluster, e.g. `100GB`.
    pub storage: String,
    /// Storage per cluster, bytes.
    pub max_storage_bytes: i64,
    /// Operations per second per cluster.
    pub max_ops_per_sec: i64,
    /// Clusters per organization.
    pub max_clusters: i64,
    /// Replicas per cluster.
    pub max_replicas: i64,
    /// Days backups are kept.
    pub backup_retention_days: i64,
    /// Whether SAML single sign-on is available.
    pub sso: bool,
}

impl From<&Tier> for TierState {
    fn from(t: &Tier) -> TierState {
        TierState {
            name: t.name.clone(),
            storage: rules::storage_label(t.max_storage_bytes),
            max_storage_bytes: i64::try_from(t.max_storage_bytes).unwrap_or(i64::MAX),
            max_ops_per_sec: i64::try_from(t.max_ops_per_sec).unwrap_or(i64::MAX),
            max_clusters: i64::from(t.max_clusters),
            max_replicas: i64::from(t.max_replicas),
            backup_retention_days: i64::from(t.backup_retention_days),
            sso: t.sso,
        }
    }
}

/// The data source's single attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TiersState {
    /// The tiers in upgrade order.
    pub tiers: Value<Vec<TierState>>,
}

/// The `koru_tiers` data source.
pub struct TiersDataSource {
    shared: Shared,
}

impl TiersDataSource {
    /// The data source, calling the API through `shared` once the provider is configured.
    pub fn new(shared: Shared) -> TiersDataSource {
        TiersDataSource { shared }
    }
}

#[async_trait]
impl DataSource for TiersDataSource {
    type State<'a> = TiersState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeType::{Bool, Number, String};
        let tier = HashMap::from([
            ("name".to_string(), String),
            ("storage".to_string(), String),
            ("max_storage_bytes".to_string(), Number),
            ("max_ops_per_sec".to_string(), Number),
            ("max_clusters".to_string(), Number),
            ("max_replicas".to_string(), Number),
            ("backup_retention_days".to_string(), Number),
            ("sso".to_string(), Bool),
        ]);
        Some(Schema {
            version: 1,
            block: Block {
                attributes: HashMap::from([(
                    "tiers".to_string(),
                    attribute(
                        AttributeType::List(Box::new(AttributeType::Object(tier))),
                        AttributeConstraint::Computed,
                        "The tiers in upgrade order: name, storage (e.g. 100GB), max_storage_bytes, max_ops_per_sec, max_clusters, max_replicas, backup_retention_days, sso.",
                    ),
                )]),
                description: Description::plain("The tiers of KoruDelta Cloud and their limits."),
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        _config: TiersState,
        _meta: ValueEmpty,
    ) -> Option<TiersState> {
        let conn = self.shared.connection(diags)?;
        match conn.client.tiers().await {
            Ok(tiers) => Some(TiersState {
                tiers: Value::Value(tiers.iter().map(TierState::from).collect()),
            }),
            Err(e) => {
                api_error(diags, "Cannot read the tiers", &e);
                None
            }
        }
    }
}
