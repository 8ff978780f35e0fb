//! The form actions that change a cluster's tier and replicas, and delete it, from its page: the
//! same service calls as `PATCH` and `DELETE /api/v1/orgs/{org}/clusters/{id}`, with the same role
//! checks (member to change, admin to delete), errors shown inline in the form that caused them.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::pages::{Outcome, detail_page};
use super::{SettingsForm, cluster_href};
use crate::auth::Role;
use crate::clusters::{self, Cluster, UpdateCluster};
use crate::dashboard::PageResult;
use crate::dashboard::session::{Flash, SignedIn, with_cookies};
use crate::dashboard::view::{self, OrgContext};
use crate::error::Error;
use crate::operations;
use crate::state::AppState;
use crate::tiers::TierName;

/// The deletion form: the cluster's name, typed to confirm.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /orgs/{org}/clusters/{id}/settings`: changes the tier and replicas (member), as `PATCH`
/// does, and goes back to the cluster's page, which follows the operation.
pub async fn update(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Form(form): Form<SettingsForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, &id, "clusters").await?;
    let cluster = clusters::get(&state.db, &ctx.access.org.id, &id).await?;
    match try_update(&state, &ctx, &cluster, &form).await {
        Ok(changed) => {
            let flash = Flash::cookie(
                &user.visitor.policy,
                false,
                &format!(
                    "Cluster {} is changing to the {} tier with {} replica{}, {}; this page follows its progress.",
                    changed.name,
                    changed.tier.as_str(),
                    changed.replicas,
                    if changed.replicas == 1 { "" } else { "s" },
                    match changed.allowed_cidrs.len() {
                        0 => "reachable from every address".to_string(),
                        1 => "reachable from 1 network".to_string(),
                        n => format!("reachable from {n} networks"),
                    }
                ),
            );
            let to = cluster_href(ctx.slug(), &changed);
            Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let status = e.status_and_code().0;
            let outcome = Outcome::settings_refused(form, explain(&state, e).await?);
            detail_page(&state, ctx, cluster, status, outcome).await
        }
    }
}

async fn try_update(
    state: &AppState,
    ctx: &OrgContext,
    cluster: &Cluster,
    form: &SettingsForm,
) -> Result<Cluster, Error> {
    ctx.access.require(Role::Member)?;
    let tier = TierName::parse(&form.tier)
        .ok_or_else(|| Error::BadRequest(format!("there is no tier {:?}", form.tier)))?;
    // Only what changed is sent, so a cluster left on a tier above a downgraded plan can still
    // change its replicas, as through the API.
    let allowed_cidrs = match form.cidrs() {
        Some(typed) => {
            let cidrs = crate::allow_lists::normalize(&typed)?;
            Some(cidrs).filter(|c| *c != cluster.allowed_cidrs)
        }
        None => None,
    };
    let request = UpdateCluster {
        tier: Some(tier).filter(|t| *t != cluster.tier),
        replicas: Some(form.replicas).filter(|r| *r != cluster.replicas),
        allowed_cidrs,
    };
    if request.tier.is_none() && request.replicas.is_none() && request.allowed_cidrs.is_none() {
        return Err(Error::BadRequest(
            "nothing to change: choose another tier, number of replicas or allow list".into(),
        ));
    }
    let (changed, _) = clusters::update(state, &ctx.access.org, &cluster.id, &request).await?;
    Ok(changed)
}

/// `POST /orgs/{org}/clusters/{id}/delete`: deletes the cluster (admin) once its name is typed,
/// as `DELETE` does, and goes to the list, where it shows as Deleting until it is gone.
pub async fn delete(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Form(form): Form<DeleteForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, &id, "clusters").await?;
    let cluster = clusters::get(&state.db, &ctx.access.org.id, &id).await?;
    match try_delete(&state, &ctx, &cluster, &form).await {
        Ok(()) => {
            let flash = Flash::cookie(
                &user.visitor.policy,
                false,
                &format!(
                    "Cluster {} is being deleted with its data; it leaves this list when that is done.",
                    cluster.name
                ),
            );
            let to = format!("/orgs/{}/clusters", ctx.slug());
            Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let status = e.status_and_code().0;
            let outcome = Outcome::delete_refused(explain(&state, e).await?);
            detail_page(&state, ctx, cluster, status, outcome).await
        }
    }
}

async fn try_delete(
    state: &AppState,
    ctx: &OrgContext,
    cluster: &Cluster,
    form: &DeleteForm,
) -> Result<(), Error> {
    ctx.access.require(Role::Admin)?;
    // Checked here, not only by the input's pattern: a form posted without the page's script or
    // by hand must not delete a cluster by mistake either.
    if form.confirm.trim() != cluster.name {
        return Err(Error::BadRequest(format!(
            "type the cluster name, {}, to confirm; nothing was deleted",
            cluster.name
        )));
    }
    clusters::delete(state, &ctx.access.org, &cluster.id).await?;
    Ok(())
}

/// `POST /orgs/{org}/clusters/{id}/suspend`: scales the cluster to zero now (member), as the API's
/// `POST …/suspend` does, and goes back to its page, which follows the operation.
pub async fn suspend(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> PageResult {
    lifecycle_action(state, user, org, id, true).await
}

/// `POST /orgs/{org}/clusters/{id}/resume`: wakes a suspended cluster (member), as the API's
/// `POST …/resume` does, and goes back to its page, which follows the operation.
pub async fn resume(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> PageResult {
    lifecycle_action(state, user, org, id, false).await
}

async fn lifecycle_action(
    state: AppState,
    user: SignedIn,
    org: String,
    id: String,
    suspend: bool,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, &id, "clusters").await?;
    let cluster = clusters::get(&state.db, &ctx.access.org.id, &id).await?;
    let done = match ctx.access.require(Role::Member) {
        Err(e) => Err(e),
        Ok(()) if suspend => crate::lifecycle::suspend(&state, &ctx.access.org, &cluster.id).await,
        Ok(()) => crate::lifecycle::resume(&state, &ctx.access.org, &cluster.id).await,
    };
    let (error, text) = match done {
        Ok(_) if suspend => (
            false,
            format!(
                "Cluster {} is being suspended; its data is kept.",
                cluster.name
            ),
        ),
        Ok(_) => (
            false,
            format!(
                "Cluster {} is waking up; this page follows it.",
                cluster.name
            ),
        ),
        Err(e @ (Error::Database(_) | Error::Internal(_))) => return Err(e.into()),
        Err(e) => (true, explain(&state, e).await?),
    };
    let flash = Flash::cookie(&user.visitor.policy, error, &text);
    let to = cluster_href(ctx.slug(), &cluster);
    Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
}

/// A refused change as a sentence; for 423, which operation is in the way.
async fn explain(state: &AppState, e: Error) -> Result<String, Error> {
    Ok(match &e {
        Error::Locked(id) => match operations::get(&state.db, id).await {
            Ok(op) => format!(
                "The {} operation {id} is still running on this cluster; try again when it has finished.",
                op.kind.as_str()
            ),
            // It finished (and the cluster may be gone) between the refusal and this look-up.
            Err(Error::NotFound(_)) => view::sentence(&e.to_string()),
            Err(other) => return Err(other),
        },
        other => view::sentence(&other.to_string()),
    })
}
