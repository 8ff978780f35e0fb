//! An organization's API tokens (admin): the list, the create form whose answer shows the secret
//! once, and revocation.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::session::{Flash, SignedIn, with_cookies};
use super::view::{self, Layout, OrgContext};
use super::{PageResult, render};
use crate::api_tokens::{self, ApiToken, CreateToken};
use crate::auth::Role;
use crate::error::Error;
use crate::state::AppState;

/// The most tokens listed; an organization with more pages through the API.
const LISTED: u32 = 200;

/// A token in the list.
struct TokenRow {
    id: String,
    name: String,
    role: &'static str,
    prefix: String,
    created: String,
    expires: String,
    last_used: String,
    revoked: Option<String>,
    revoke_action: String,
}

/// A just-created token, whose secret is shown this once.
struct Created {
    name: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    action: String,
    tokens: Vec<TokenRow>,
    roles: Vec<&'static str>,
    created: Option<Created>,
    name: String,
    role: String,
    error: Option<String>,
}

fn token_row(slug: &str, t: &ApiToken) -> TokenRow {
    TokenRow {
        revoke_action: format!("/orgs/{slug}/tokens/{}/revoke", t.id),
        id: t.id.clone(),
        name: t.name.clone(),
        role: t.role.as_str(),
        prefix: t.prefix.clone(),
        created: view::time_ms(t.created_at),
        expires: t
            .expires_at
            .map(view::time_ms)
            .unwrap_or_else(|| "never".into()),
        last_used: t
            .last_used_at
            .map(view::time_ms)
            .unwrap_or_else(|| "never".into()),
        revoked: t.revoked_at.map(view::time_ms),
    }
}

async fn page(
    state: &AppState,
    ctx: OrgContext,
    status: StatusCode,
    created: Option<Created>,
    form: Option<&TokenForm>,
    error: Option<String>,
) -> PageResult {
    ctx.access.require(Role::Admin)?;
    let mut tokens = api_tokens::list(&state.db, &ctx.access.org.id, &None, LISTED).await?;
    tokens.truncate(LISTED as usize);
    // Newest first: the one just created is at the top.
    tokens.reverse();
    let roles = [Role::Viewer, Role::Member, Role::Admin, Role::Owner]
        .into_iter()
        .filter(|r| *r <= ctx.access.role)
        .map(Role::as_str)
        .collect();
    let page = TokensPage {
        action: format!("/orgs/{}/tokens", ctx.slug()),
        tokens: tokens.iter().map(|t| token_row(ctx.slug(), t)).collect(),
        roles,
        created,
        name: form.map(|f| f.name.clone()).unwrap_or_default(),
        role: form
            .map(|f| f.role.clone())
            .unwrap_or_else(|| "member".into()),
        error,
        layout: ctx.layout,
    };
    Ok(render(status, &page))
}

/// `GET /orgs/{org}/tokens`.
pub async fn list(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "API tokens", "tokens").await?;
    page(&state, ctx, StatusCode::OK, None, None, None).await
}

/// The create form.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    name: String,
    role: String,
    /// Days until it expires; empty for never.
    #[serde(default)]
    expires_in_days: String,
}

/// `POST /orgs/{org}/tokens`: creates a token (admin) and shows its secret, once.
pub async fn create(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    Form(form): Form<TokenForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "API tokens", "tokens").await?;
    ctx.access.require(Role::Admin)?;
    let request = parse(&form);
    let created = match request {
        Ok(req) => {
            api_tokens::create(
                &state.db,
                &ctx.access.org.id,
                &ctx.actor,
                ctx.access.role,
                &req,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(token) => {
            let created = Created {
                name: token.name,
                secret: token.token.unwrap_or_default(),
            };
            page(&state, ctx, StatusCode::CREATED, Some(created), None, None).await
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let status = e.status_and_code().0;
            let error = Some(view::sentence(&e.to_string()));
            page(&state, ctx, status, None, Some(&form), error).await
        }
    }
}

fn parse(form: &TokenForm) -> Result<CreateToken, Error> {
    let role = Role::parse(&form.role)
        .ok_or_else(|| Error::BadRequest(format!("there is no role {:?}", form.role)))?;
    let days = form.expires_in_days.trim();
    let expires_in_days =
        if days.is_empty() {
            None
        } else {
            Some(days.parse::<u32>().map_err(|_| {
                Error::BadRequest("expiry must be a number of days, or never".into())
            })?)
        };
    Ok(CreateToken {
        name: form.name.clone(),
        role,
        expires_in_days,
    })
}

/// `POST /orgs/{org}/tokens/{id}/revoke` (admin).
pub async fn revoke(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "API tokens", "tokens").await?;
    ctx.access.require(Role::Admin)?;
    api_tokens::revoke(&state.db, &ctx.access.org.id, &id).await?;
    let flash = Flash::cookie(
        &user.visitor.policy,
        false,
        "The token is revoked: requests with it now fail.",
    );
    let to = format!("/orgs/{}/tokens", ctx.slug());
    Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
}
