//! The route table a gateway replica gets on each sync: every cluster's state, members, token key,
//! revoked tokens, limits, and this replica's share of the cluster's ops/s.

use std::collections::HashMap;

use koru_gateway_api::{ClusterRoute, RouteState, RouteTable};
use sqlx::Row;

use super::{reports, shares};
use crate::error::Result;
use crate::operations::OperationKind;
use crate::state::AppState;

/// What the gateway does with a cluster, from what it should be (`suspended`), what the
/// provisioner last saw (`phase`), and whether a resume is under way.
///
/// A cluster asked to suspend is `Suspended` at once, even while still stopping, so the gateway
/// holds new requests and asks for a wake (which resumes it after the suspend) rather than
/// sending them to a process on its way down. Degraded clusters still serve (on Kubernetes some
/// members are up; locally the data plane answers its own errors), so they are routed.
pub fn route_state(suspended: bool, phase: &str, resuming: bool) -> RouteState {
    if suspended {
        return RouteState::Suspended;
    }
    match phase {
        "Running" | "Degraded" => RouteState::Running,
        "Suspended" => RouteState::Waking,
        _ if resuming => RouteState::Waking,
        _ => RouteState::Unavailable,
    }
}

/// The route table for gateway replica `gateway_id` at `now` (ms).
pub async fn table(state: &AppState, gateway_id: &str, now: i64) -> Result<RouteTable> {
    let db = &state.db;
    let clusters = crate::clusters::all(db).await?;
    let slugs: HashMap<String, String> = sqlx::query("SELECT id, slug FROM organizations")
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("slug")?)))
        .collect::<Result<_>>()?;
    let resuming: HashMap<String, OperationKind> = crate::operations::running(db)
        .await?
        .into_iter()
        .map(|op| (op.cluster_id, op.kind))
        .collect();
    let keys = crate::cluster_keys::public_keys(db).await?;
    let mut revoked = crate::data_tokens::store::revoked_by_cluster(db).await?;
    let mut live = reports::live(db, now).await?;
    if !live.iter().any(|g| g == gateway_id) {
        live.push(gateway_id.to_string());
    }
    let demand = reports::demand(db, now).await?;
    let no_demand = Default::default();
    let mut routes = Vec::with_capacity(clusters.len());
    for c in clusters {
        let org_slug = slugs.get(&c.org_id).cloned().unwrap_or_default();
        let state_now = route_state(
            c.suspended,
            &c.phase,
            resuming.get(&c.id) == Some(&OperationKind::Resume),
        );
        let members = if state_now == RouteState::Running {
            state.provisioner.members(&org_slug, &c)
        } else {
            Vec::new()
        };
        let tier = crate::tiers::tier(c.tier);
        let split = shares::shares(&live, demand.get(&c.id).unwrap_or(&no_demand));
        routes.push(ClusterRoute {
            token_public_key_pem: keys
                .get(&c.id)
                .cloned()
                .unwrap_or_else(|| state.dataplane_key.public_pem.clone()),
            revoked_token_ids: revoked.remove(&c.id).unwrap_or_default(),
            allowed_cidrs: c.allowed_cidrs,
            max_ops_per_sec: c.max_ops_per_sec,
            max_request_bytes: tier.max_request_bytes,
            ops_share: split.get(gateway_id).copied().unwrap_or(0.0),
            state: state_now,
            members,
            id: c.id,
            name: c.name,
            org_slug,
        });
    }
    Ok(RouteTable {
        clusters: routes,
        live_gateways: u32::try_from(live.len()).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_wish_then_the_phase() {
        assert_eq!(route_state(true, "Running", false), RouteState::Suspended);
        assert_eq!(route_state(true, "Suspended", true), RouteState::Suspended);
        assert_eq!(route_state(false, "Running", false), RouteState::Running);
        assert_eq!(route_state(false, "Degraded", false), RouteState::Running);
        assert_eq!(route_state(false, "Suspended", true), RouteState::Waking);
        assert_eq!(route_state(false, "Provisioning", true), RouteState::Waking);
        assert_eq!(
            route_state(false, "Provisioning", false),
            RouteState::Unavailable
        );
        assert_eq!(route_state(false, "Failed", false), RouteState::Unavailable);
        assert_eq!(
            route_state(false, "Pending", false),
            RouteState::Unavailable
        );
    }
}
