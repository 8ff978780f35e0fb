//! Global databases: the catalogue of regions a cluster may span, the checks on a requested list,
//! and each region's record (endpoint, phase, stream links) as the API shows it.

use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Row, Transaction};
use utoipa::ToSchema;

use crate::error::{Error, Result};

/// The regions a global database may be placed in, in the order they are offered.
pub const CATALOGUE: [&str; 5] = [
    "us-east",
    "us-west",
    "eu-west",
    "eu-central",
    "ap-southeast",
];

/// One region of a global database as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterRegion {
    /// The region's name (from the catalogue).
    pub name: String,
    /// Where this region's data plane is reached, once known.
    pub endpoint: Option<String>,
    /// The region's own phase (Provisioning, Running, …), once reported.
    pub phase: Option<String>,
    /// The streams this region follows from its peers, once reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<RegionLink>>,
}

/// The stream one region follows from one peer (a summary of the data plane's `PeerLink`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegionLink {
    /// The peer region.
    pub peer: String,
    /// `connecting`, `streaming` or `failing`.
    pub state: String,
    /// How far this region trails the peer, seconds; absent until the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// The last failure, while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl From<&koru_dataplane_api::region::PeerLink> for RegionLink {
    fn from(link: &koru_dataplane_api::region::PeerLink) -> RegionLink {
        use koru_dataplane_api::region::LinkState;
        RegionLink {
            peer: link.name.clone(),
            state: match link.state {
                LinkState::Connecting => "connecting",
                LinkState::Streaming => "streaming",
                LinkState::Failing => "failing",
            }
            .into(),
            lag_seconds: link.lag_seconds,
            last_error: link.last_error.clone(),
        }
    }
}

/// Checks the regions asked for a global database: at least two, each from the catalogue, none
/// twice. The tier's limit is checked by [`crate::tiers::check_regions`].
pub fn check(regions: &[String]) -> Result<()> {
    if regions.len() < 2 {
        return Err(Error::BadRequest(
            "a global database names at least two regions; leave `regions` out for a single-region cluster".into(),
        ));
    }
    for (i, name) in regions.iter().enumerate() {
        if !CATALOGUE.contains(&name.as_str()) {
            return Err(Error::BadRequest(format!(
                "unknown region {name:?}; the regions are {}",
                CATALOGUE.join(", ")
            )));
        }
        if regions[..i].contains(name) {
            return Err(Error::BadRequest(format!("region {name:?} is named twice")));
        }
    }
    Ok(())
}

/// Checks that every region of global database `name` can be named `<name>-<region>` (how the
/// Kubernetes provisioner names the KoruClusters of its non-primary regions) within the
/// 40-character limit of cluster names.
pub fn check_names(name: &str, regions: &[String]) -> Result<()> {
    if let Some(long) = regions
        .iter()
        .skip(1)
        .find(|r| name.len() + 1 + r.len() > 40)
    {
        return Err(Error::BadRequest(format!(
            "cluster name {name:?} is too long for region {long:?}: a global database's name plus a dash and each region's name must fit in 40 characters"
        )));
    }
    Ok(())
}

/// Records the regions of a new global database, in order.
pub async fn insert(
    tx: &mut Transaction<'_, Any>,
    cluster_id: &str,
    regions: &[String],
) -> Result<()> {
    for (position, name) in regions.iter().enumerate() {
        sqlx::query("INSERT INTO cluster_regions (cluster_id, name, position) VALUES ($1, $2, $3)")
            .bind(cluster_id)
            .bind(name)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The regions of a cluster, in order; empty for a single-region cluster.
pub async fn of(db: &AnyPool, cluster_id: &str) -> Result<Vec<ClusterRegion>> {
    let rows = sqlx::query(
        "SELECT name, endpoint, phase, links FROM cluster_regions WHERE cluster_id = $1 ORDER BY position",
    )
    .bind(cluster_id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            let links: Option<String> = row.try_get("links")?;
            Ok(ClusterRegion {
                name: row.try_get("name")?,
                endpoint: row.try_get("endpoint")?,
                phase: row.try_get("phase")?,
                status: links
                    .map(|l| serde_json::from_str(&l))
                    .transpose()
                    .map_err(|e| Error::Internal(format!("stored region links: {e}")))?,
            })
        })
        .collect()
}

/// Records what the provisioner reports about each region of a cluster.
pub async fn record(
    db: &AnyPool,
    cluster_id: &str,
    reported: &[crate::provisioner::RegionState],
) -> Result<()> {
    for r in reported {
        let links = r
            .links
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Internal(format!("region links: {e}")))?;
        sqlx::query(
            "UPDATE cluster_regions SET endpoint = $1, phase = $2, links = $3 WHERE cluster_id = $4 AND name = $5",
        )
        .bind(&r.endpoint)
        .bind(&r.phase)
        .bind(links)
        .bind(cluster_id)
        .bind(&r.name)
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Removes a cluster's region records (with the cluster: SQLite may not enforce the cascade).
pub async fn forget(db: &AnyPool, cluster_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM cluster_regions WHERE cluster_id = $1")
        .bind(cluster_id)
        .execute(db)
        .await?;
    Ok(())
}

/// How long one region's data plane may take to answer its status.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Replaces each running region's stored links with what its data plane says now
/// (`GET /admin/v1/regions`, with a short-lived admin token signed by the cluster's key). A
/// region that does not answer keeps what was stored: the page still shows, a moment older.
pub async fn refresh_links(state: &crate::state::AppState, cluster: &mut crate::clusters::Cluster) {
    if cluster.regions.is_empty() || cluster.suspended {
        return;
    }
    let token = match admin_token(state, &cluster.id).await {
        Ok(token) => token,
        Err(e) => {
            tracing::warn!(cluster = %cluster.id, error = %e, "cannot sign a token for the regions' status");
            return;
        }
    };
    let Ok(client) = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build() else {
        return;
    };
    for region in &mut cluster.regions {
        let Some(endpoint) = region.endpoint.as_deref() else {
            continue;
        };
        if region.phase.as_deref() != Some("Running") {
            continue;
        }
        let answer = client
            .get(format!("{endpoint}/admin/v1/regions"))
            .bearer_auth(&token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let status = match answer {
            Ok(response) => {
                response
                    .json::<koru_dataplane_api::region::RegionStatus>()
                    .await
            }
            Err(e) => Err(e),
        };
        match status {
            Ok(status) => {
                region.status = Some(status.peers.iter().map(RegionLink::from).collect());
            }
            Err(e) => {
                tracing::debug!(cluster = %cluster.id, region = %region.name, error = %e, "no region status")
            }
        }
    }
}

/// A 60-second admin token for the cluster's data planes.
async fn admin_token(state: &crate::state::AppState, cluster_id: &str) -> Result<String> {
    let key = crate::cluster_keys::signing_key(&state.db, &state.dataplane_key, cluster_id).await?;
    let now = u64::try_from(crate::db::now_ms() / 1000).unwrap_or(0);
    let token = crate::data_tokens::issue(
        &key,
        cluster_id,
        crate::backups::SUBJECT,
        crate::auth::Role::Owner,
        &crate::data_tokens::DataTokenRequest {
            scope: koru_dataplane_api::auth::Scope::Admin,
            ttl_secs: Some(60),
        },
        now,
    )?;
    Ok(token.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_link_is_summarised_with_its_state_and_lag() {
        let link = koru_dataplane_api::region::PeerLink {
            name: "eu-west".into(),
            url: "http://127.0.0.1:1".into(),
            state: koru_dataplane_api::region::LinkState::Failing,
            applied_lsn: 7,
            applied_time: None,
            lag_seconds: Some(1.5),
            records_applied: 3,
            last_error: Some("connection refused".into()),
        };
        let summary = RegionLink::from(&link);
        assert_eq!(
            (
                summary.peer.as_str(),
                summary.state.as_str(),
                summary.lag_seconds
            ),
            ("eu-west", "failing", Some(1.5))
        );
        assert_eq!(summary.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn each_regions_name_fits() {
        let regions = vec!["us-east".to_string(), "ap-southeast".to_string()];
        assert!(check_names(&"a".repeat(27), &regions).is_ok());
        assert!(check_names(&"a".repeat(28), &regions).is_err());
    }

    #[test]
    fn regions_come_from_the_catalogue_once_each() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check(&names(&["us-east", "eu-west"])).is_ok());
        for bad in [
            &["us-east"][..],
            &["us-east", "mars-north"],
            &["us-east", "us-east"],
        ] {
            let e = check(&names(bad)).unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{bad:?}: {e}");
        }
    }
}
