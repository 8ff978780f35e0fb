//! The clusters' form actions (POST): create a cluster, issue a data-plane token, take a backup,
//! restore into a new cluster. Each goes on to a page, or renders its form again with the error
//! inline.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use koru_dataplane_api::auth::Scope;
use serde::Deserialize;

use crate::auth::Role;
use crate::backups;
use crate::clusters::{self, Cluster, CreateCluster, DEFAULT_REGION};
use crate::dashboard::PageResult;
use crate::dashboard::session::{Flash, SignedIn, with_cookies};
use crate::dashboard::view::{self, OrgContext};
use crate::error::Error;
use crate::operations;
use crate::restores::{self, RestoreCluster};
use crate::state::AppState;
use crate::tiers::TierName;

use super::pages::{Outcome, detail_page, issue, new_page};
use super::{ClusterForm, RestoreForm, cluster_href};

/// `POST /orgs/{org}/clusters`: creates the cluster (member) and goes to its page.
pub async fn create(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    Form(form): Form<ClusterForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "New cluster", "clusters").await?;
    match try_create(&state, &ctx, &form).await {
        Ok(cluster) => {
            let flash = Flash::cookie(
                &user.visitor.policy,
                false,
                &format!(
                    "Cluster {} is being created; this page follows its progress.",
                    cluster.name
                ),
            );
            let to = cluster_href(ctx.slug(), &cluster);
            Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let (status, _) = e.status_and_code();
            let error = Some(view::sentence(&e.to_string()));
            new_page(&state, ctx, form, status, error).await
        }
    }
}

/// A form's idempotency key, when it carries a usable one.
fn form_key(raw: &str) -> Option<&str> {
    Some(raw).filter(|k| (1..=200).contains(&k.len()))
}

/// The cluster an earlier submission with the same idempotency key made, if there was one: a
/// form sent twice (a double click, a reload) makes one cluster.
async fn replayed(
    state: &AppState,
    org_id: &str,
    key: Option<&str>,
) -> Result<Option<Cluster>, Error> {
    let Some(key) = key else {
        return Ok(None);
    };
    match operations::by_idempotency_key(&state.db, org_id, key).await? {
        Some(done) => Ok(Some(
            clusters::get(&state.db, org_id, &done.cluster_id).await?,
        )),
        None => Ok(None),
    }
}

async fn try_create(
    state: &AppState,
    ctx: &OrgContext,
    form: &ClusterForm,
) -> Result<Cluster, Error> {
    ctx.access.require(Role::Member)?;
    let org = &ctx.access.org;
    let key = form_key(&form.idempotency_key);
    if let Some(done) = replayed(state, &org.id, key).await? {
        return Ok(done);
    }
    let tier = TierName::parse(&form.tier)
        .ok_or_else(|| Error::BadRequest(format!("there is no tier {:?}", form.tier)))?;
    let region = form.region.trim();
    let request = CreateCluster {
        name: form.name.trim().to_string(),
        tier: Some(tier),
        region: Some(
            if region.is_empty() {
                DEFAULT_REGION
            } else {
                region
            }
            .to_string(),
        ),
        replicas: Some(form.replicas),
        regions: Some(
            form.regions
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>(),
        )
        .filter(|r| !r.is_empty()),
        allowed_cidrs: None,
    };
    let (cluster, _) = clusters::create(state, org, &request, None, key).await?;
    Ok(cluster)
}

/// The data-token form.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    scope: String,
    ttl_secs: u64,
}

/// `POST /orgs/{org}/clusters/{id}/data-tokens`: the cluster's page with a token of the chosen
/// scope and lifetime in its snippet.
pub async fn data_token(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, &id, "clusters").await?;
    let cluster = clusters::get(&state.db, &ctx.access.org.id, &id).await?;
    let scope = match form.scope.as_str() {
        "read" => Ok(Scope::Read),
        "write" => Ok(Scope::Write),
        "admin" => Ok(Scope::Admin),
        other => Err(Error::BadRequest(format!("there is no scope {other:?}"))),
    };
    let issued = match scope {
        Ok(s) => issue(&state, &ctx, &cluster, s, form.ttl_secs).await,
        Err(e) => Err(e),
    };
    let (status, outcome) = match issued {
        Ok(token) => (
            StatusCode::CREATED,
            Outcome {
                issued: Some(token),
                ..Outcome::default()
            },
        ),
        Err(e) => (
            e.status_and_code().0,
            Outcome {
                token_error: Some(view::sentence(&e.to_string())),
                ..Outcome::default()
            },
        ),
    };
    detail_page(&state, ctx, cluster, status, outcome).await
}

/// `POST /orgs/{org}/clusters/{id}/backups`: takes a base backup now (member).
pub async fn backup(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, &id, "clusters").await?;
    let cluster = clusters::get(&state.db, &ctx.access.org.id, &id).await?;
    let taken = match ctx.access.require(Role::Member) {
        Ok(()) => backups::take(&state, &cluster).await,
        Err(e) => Err(e),
    };
    let flash = match taken {
        Ok(b) => format!(
            "Backup {} taken: it covers everything written up to {}.",
            b.id,
            b.last_time
                .as_deref()
                .map(view::rfc3339)
                .unwrap_or_else(|| "now".into())
        ),
        Err(e @ (Error::Database(_) | Error::Internal(_))) => return Err(e.into()),
        Err(e) => format!("No backup was taken. {}", view::sentence(&e.to_string())),
    };
    let error = flash.starts_with("No backup");
    let cookie = Flash::cookie(&user.visitor.policy, error, &flash);
    let to = format!("{}#backups", cluster_href(ctx.slug(), &cluster));
    Ok(with_cookies(
        Redirect::to(&to).into_response(),
        vec![cookie],
    ))
}

/// `POST /orgs/{org}/clusters/{id}/restore`: restores the cluster's backups into a new cluster as
/// of the chosen moment (member), as `POST …/restore` does, and goes to the new cluster's page.
pub async fn restore(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Form(form): Form<RestoreForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, &id, "clusters").await?;
    let source = clusters::get(&state.db, &ctx.access.org.id, &id).await?;
    match try_restore(&state, &ctx, &source, &form).await {
        Ok(created) => {
            let flash = Flash::cookie(
                &user.visitor.policy,
                false,
                &format!(
                    "Cluster {} is being restored from {}; this page follows its progress.",
                    created.name, source.name
                ),
            );
            let to = cluster_href(ctx.slug(), &created);
            Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let outcome = Outcome {
                restore_error: Some(view::sentence(&e.to_string())),
                restore: Some(form),
                ..Outcome::default()
            };
            detail_page(&state, ctx, source, e.status_and_code().0, outcome).await
        }
    }
}

async fn try_restore(
    state: &AppState,
    ctx: &OrgContext,
    source: &Cluster,
    form: &RestoreForm,
) -> Result<Cluster, Error> {
    ctx.access.require(Role::Member)?;
    let org = &ctx.access.org;
    let key = form_key(&form.idempotency_key);
    if let Some(done) = replayed(state, &org.id, key).await? {
        return Ok(done);
    }
    let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let request = RestoreCluster {
        name: form.name.trim().to_string(),
        target_time: text(&form.target_time),
        backup_id: text(&form.backup_id),
        tier: None,
        region: None,
        replicas: None,
    };
    let (created, _) = restores::start(state, org, source, &request, key).await?;
    Ok(created)
}
