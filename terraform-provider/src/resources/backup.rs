//! `koru_backup`: a base backup of a Running cluster, taken when the resource is created. The
//! API cannot delete base backups (the tier's retention does), so destroying the resource only
//! forgets it; a backup removed by retention disappears from the state and is taken again.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, AttributeType, Block, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::{attribute, known};
use crate::client::{ApiError, Backup};
use crate::diagnostics::{api_error, root_error, root_warning};
use crate::provider::Shared;

/// A `koru_backup` as configured, planned and stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupState {
    /// `<cluster id>/<backup id>`, the form `terraform import` takes.
    pub id: Value<String>,
    /// The backup's id as the API names it.
    pub backup_id: Value<String>,
    /// The cluster backed up.
    pub cluster_id: Value<String>,
    /// When it was taken (RFC 3339).
    pub created: Value<String>,
    /// First log sequence number covered.
    pub first_lsn: Value<i64>,
    /// Last log sequence number covered.
    pub last_lsn: Value<i64>,
    /// Commit time of the first record covered (RFC 3339); null for an empty cluster.
    pub first_time: Value<String>,
    /// Commit time of the last record covered (RFC 3339); null for an empty cluster.
    pub last_time: Value<String>,
}

impl BackupState {
    /// The state of `backup` of `cluster`.
    pub fn from_api(cluster: &str, backup: &Backup) -> BackupState {
        let lsn = |n: u64| Value::Value(i64::try_from(n).unwrap_or(i64::MAX));
        BackupState {
            id: Value::Value(format!("{cluster}/{}", backup.id)),
            backup_id: Value::Value(backup.id.clone()),
            cluster_id: Value::Value(cluster.to_string()),
            created: Value::Value(backup.created.clone()),
            first_lsn: lsn(backup.first_lsn),
            last_lsn: lsn(backup.last_lsn),
            first_time: backup.first_time.clone().into(),
            last_time: backup.last_time.clone().into(),
        }
    }
}

/// Splits an import id `<cluster id>/<backup id>`.
pub fn parse_import_id(id: &str) -> Result<(&str, &str), String> {
    match id.split_once('/') {
        Some((cluster, backup))
            if !cluster.is_empty() && !backup.is_empty() && !backup.contains('/') =>
        {
            Ok((cluster, backup))
        }
        _ => Err(format!(
            "import id {id:?} must be <cluster id>/<backup id>, e.g. 0b6f.../20240101T000000Z"
        )),
    }
}

/// The `koru_backup` resource.
pub struct BackupResource {
    shared: Shared,
}

impl BackupResource {
    /// The resource, calling the API through `shared` once the provider is configured.
    pub fn new(shared: Shared) -> BackupResource {
        BackupResource { shared }
    }
}

/// Looks `backup` up among the cluster's backups: `Ok(None)` when it or its cluster is gone.
async fn find(
    conn: &crate::provider::Connection,
    cluster: &str,
    backup: &str,
) -> Result<Option<Backup>, ApiError> {
    match conn.client.backups(&conn.org, cluster).await {
        Ok(list) => Ok(list.into_iter().find(|b| b.id == backup)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Resource for BackupResource {
    type State<'a> = BackupState;
    type PrivateState<'a> = ();
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeConstraint::{Computed, Required};
        use AttributeType::{Number, String};
        let attributes = HashMap::from([
            (
                "id".into(),
                attribute(
                    String,
                    Computed,
                    "<cluster id>/<backup id>, as `terraform import` takes it.",
                ),
            ),
            (
                "backup_id".into(),
                attribute(String, Computed, "The backup's id."),
            ),
            (
                "cluster_id".into(),
                attribute(
                    String,
                    Required,
                    "Id of the Running cluster to back up. Changing it takes a backup of the other cluster.",
                ),
            ),
            (
                "created".into(),
                attribute(String, Computed, "When it was taken (RFC 3339)."),
            ),
            (
                "first_lsn".into(),
                attribute(Number, Computed, "First log sequence number covered."),
            ),
            (
                "last_lsn".into(),
                attribute(Number, Computed, "Last log sequence number covered."),
            ),
            (
                "first_time".into(),
                attribute(
                    String,
                    Computed,
                    "Commit time of the first record covered (RFC 3339); null for an empty cluster.",
                ),
            ),
            (
                "last_time".into(),
                attribute(
                    String,
                    Computed,
                    "Commit time of the last record covered (RFC 3339); null for an empty cluster.",
                ),
            ),
        ]);
        Some(Schema {
            version: 1,
            block: Block {
                attributes,
                description: Description::plain(
                    "A base backup of a cluster, taken on create. Destroying it only removes it from the state: backups expire with the tier's retention.",
                ),
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: BackupState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(BackupState, ())> {
        let conn = self.shared.connection(diags)?;
        let (Some(cluster), Some(backup)) = (known(&state.cluster_id), known(&state.backup_id))
        else {
            return Some((state, ()));
        };
        match find(&conn, cluster, backup).await {
            Ok(Some(found)) => Some((BackupState::from_api(cluster, &found), ())),
            // Expired by retention, or its cluster was deleted.
            Ok(None) => None,
            // A cluster that is not Running (409) or unreachable (503) cannot list its backups now:
            // keep what is known rather than fail every plan while it changes.
            Err(e) if matches!(e.status(), Some(409 | 503)) => {
                root_warning(
                    diags,
                    format!("Cannot check backup {backup} now"),
                    e.to_string(),
                );
                Some((state, ()))
            }
            Err(e) => {
                api_error(diags, format!("Cannot read backup {backup}"), &e);
                Some((state, ()))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed: BackupState,
        _config: BackupState,
        _meta: ValueEmpty,
    ) -> Option<(BackupState, ())> {
        let planned = BackupState {
            id: Value::Unknown,
            backup_id: Value::Unknown,
            cluster_id: proposed.cluster_id,
            created: Value::Unknown,
            first_lsn: Value::Unknown,
            last_lsn: Value::Unknown,
            first_time: Value::Unknown,
            last_time: Value::Unknown,
        };
        Some((planned, ()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: BackupState,
        proposed: BackupState,
        config: BackupState,
        _private: (),
        meta: ValueEmpty,
    ) -> Option<(BackupState, (), Vec<AttributePath>)> {
        if proposed.cluster_id == prior.cluster_id {
            return Some((proposed, (), vec![]));
        }
        let (planned, ()) = self.plan_create(diags, proposed, config, meta).await?;
        Some((planned, (), vec![AttributePath::new("cluster_id")]))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: BackupState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<()> {
        Some(())
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: BackupState,
        _config: BackupState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(BackupState, ())> {
        let conn = self.shared.connection(diags)?;
        let cluster = known(&planned.cluster_id)?;
        match conn.client.create_backup(&conn.org, cluster).await {
            Ok(backup) => Some((BackupState::from_api(cluster, &backup), ())),
            Err(e) => {
                api_error(diags, format!("Cannot back up cluster {cluster}"), &e);
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: BackupState,
        planned: BackupState,
        _config: BackupState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(BackupState, ())> {
        // The only argument replaces the backup, so an update changes nothing.
        Some((planned, ()))
    }

    async fn destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: BackupState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<()> {
        // The API has no way to delete a base backup; retention removes it.
        Some(())
    }

    async fn import<'a>(&self, diags: &mut Diagnostics, id: String) -> Option<(BackupState, ())> {
        let (cluster, backup) = match parse_import_id(&id) {
            Ok(ids) => ids,
            Err(message) => {
                root_error(diags, "Invalid import id", message);
                return None;
            }
        };
        let conn = self.shared.connection(diags)?;
        match find(&conn, cluster, backup).await {
            Ok(Some(found)) => Some((BackupState::from_api(cluster, &found), ())),
            Ok(None) => {
                root_error(
                    diags,
                    format!("Cannot import backup {id:?}"),
                    format!(
                        "cluster {cluster:?} of organization {:?} has no backup {backup:?}",
                        conn.org
                    ),
                );
                None
            }
            Err(e) => {
                api_error(diags, format!("Cannot import backup {id:?}"), &e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ids_name_the_cluster_and_the_backup() {
        assert_eq!(parse_import_id("c1/b1"), Ok(("c1", "b1")));
        for bad in ["c1", "/b1", "c1/", "c1/b1/x", ""] {
            assert!(parse_import_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_cluster_backup_has_no_times() {
        let backup = Backup {
            id: "b1".into(),
            created: "2024-01-01T00:00:00Z".into(),
            first_lsn: 0,
            last_lsn: 0,
            first_time: None,
            last_time: None,
        };
        let state = BackupState::from_api("c1", &backup);
        assert_eq!(state.id, Value::Value("c1/b1".to_string()));
        assert!(state.first_time.is_null() && state.last_time.is_null());
        assert_eq!(state.last_lsn, Value::Value(0));
    }
}
