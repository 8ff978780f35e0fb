//! The home page (the first organization's clusters) and an organization's plan: the tiers side
//! by side, and the owner's upgrade or downgrade.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{Flash, SignedIn, Visitor, with_cookies};
use super::view::{self, Layout, OrgContext};
use super::{PageError, PageResult, render};
use crate::auth::Role;
use crate::error::Error;
use crate::orgs;
use crate::state::AppState;
use crate::tiers::{self, TierName};

#[derive(Template)]
#[template(path = "no_org.html")]
struct NoOrgPage {
    layout: Layout,
}

/// `GET /`: the clusters of the user's first organization, or the login page.
pub async fn home(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    let Some(claims) = &visitor.user else {
        return Ok(Redirect::to("/login").into_response());
    };
    let memberships = orgs::of_user(&state.db, &claims.sub).await?;
    // An SSO session works in its organization only: start there.
    let first = memberships
        .iter()
        .find(|m| claims.org.as_deref() == Some(m.organization.id.as_str()))
        .or(memberships.first());
    match first {
        Some(m) => {
            Ok(Redirect::to(&format!("/orgs/{}/clusters", m.organization.slug)).into_response())
        }
        None => {
            let mut layout = Layout::anonymous("No organization", &visitor);
            layout.email = Some(crate::accounts::user(&state.db, &claims.sub).await?.email);
            Ok(render(StatusCode::OK, &NoOrgPage { layout }))
        }
    }
}

/// A tier as the plan page shows it.
struct PlanRow {
    name: &'static str,
    storage: String,
    ops: String,
    clusters: String,
    replicas: u32,
    retention: u32,
    sso: bool,
    current: bool,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    layout: Layout,
    plans: Vec<PlanRow>,
    current: &'static str,
    can_change: bool,
    error: Option<String>,
}

fn plan_page(ctx: OrgContext, status: StatusCode, error: Option<String>) -> Response {
    let current = ctx.access.org.tier;
    let plans = tiers::TIERS
        .iter()
        .map(|t| PlanRow {
            name: t.name.as_str(),
            storage: view::bytes(t.max_storage_bytes),
            ops: view::number(t.max_ops_per_sec),
            clusters: view::number(u64::from(t.max_clusters)),
            replicas: t.max_replicas,
            retention: t.backup_retention_days,
            sso: t.sso,
            current: t.name == current,
        })
        .collect();
    render(
        status,
        &PlanPage {
            layout: ctx.layout,
            plans,
            current: current.as_str(),
            can_change: ctx.access.role >= Role::Owner,
            error,
        },
    )
}

/// `GET /orgs/{org}/plan`.
pub async fn plan(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Plan", "plan").await?;
    Ok(plan_page(ctx, StatusCode::OK, None))
}

/// The plan form.
#[derive(Debug, Deserialize)]
pub struct PlanForm {
    tier: String,
}

/// `POST /orgs/{org}/plan`: moves the organization to another plan (owner), as `PATCH
/// /api/v1/orgs/{org}` does.
pub async fn set_plan(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    Form(form): Form<PlanForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Plan", "plan").await?;
    let result = match TierName::parse(&form.tier) {
        None => Err(Error::BadRequest(format!(
            "there is no plan {:?}",
            form.tier
        ))),
        Some(tier) => match ctx.access.require(Role::Owner) {
            Ok(()) => orgs::set_tier(&state.db, &ctx.access.org, tier).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(changed) => {
            let flash = Flash::cookie(
                &user.visitor.policy,
                false,
                &format!(
                    "{} is now on the {} plan.",
                    changed.name,
                    changed.tier.as_str()
                ),
            );
            let to = format!("/orgs/{}/plan", changed.slug);
            Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(PageError::from(e)),
        Err(e) => {
            let (status, _) = e.status_and_code();
            Ok(plan_page(ctx, status, Some(view::sentence(&e.to_string()))))
        }
    }
}
