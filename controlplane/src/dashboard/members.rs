//! Members and invitations: the member list with role changes and removal (admin, with the
//! owner rules of [`orgs::set_role`]), invitations whose link is shown once, and the page where
//! the invited person accepts.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::Extensions;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::session::{Flash, SignedIn, with_cookies};
use super::view::{self, Layout, OrgContext};
use super::{PageResult, render};
use crate::accounts;
use crate::audit::AuditSlot;
use crate::auth::Role;
use crate::error::Error;
use crate::orgs;
use crate::state::AppState;

/// The most members and invitations listed; larger organizations page through the API.
const LISTED: u32 = 500;

/// A member in the list.
struct MemberRow {
    user_id: String,
    email: String,
    role: &'static str,
    joined: String,
    is_me: bool,
}

/// An invitation in the list.
struct InvitationRow {
    email: String,
    role: &'static str,
    status: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    layout: Layout,
    base: String,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    roles: Vec<&'static str>,
    can_manage: bool,
    invite_link: Option<String>,
    invite_email: String,
    invite_role: String,
    error: Option<String>,
}

/// What a POST brings to the page.
#[derive(Default)]
struct Outcome {
    invite_link: Option<String>,
    invite: Option<InviteForm>,
    error: Option<String>,
}

async fn page(
    state: &AppState,
    ctx: OrgContext,
    user_id: &str,
    status: StatusCode,
    outcome: Outcome,
) -> PageResult {
    let org_id = &ctx.access.org.id;
    let mut members = orgs::members(&state.db, org_id, &None, LISTED).await?;
    members.truncate(LISTED as usize);
    let can_manage = ctx.access.role >= Role::Admin;
    let invitations = if can_manage {
        let now = crate::db::now_ms();
        let mut all = orgs::invitations(&state.db, org_id, &None, LISTED).await?;
        all.truncate(LISTED as usize);
        all.reverse();
        all.iter()
            .map(|i| InvitationRow {
                email: i.email.clone(),
                role: i.role.as_str(),
                status: match i.accepted_at {
                    Some(at) => format!("accepted {}", view::time_ms(at)),
                    None if i.expires_at <= now => "expired".into(),
                    None => format!("pending until {}", view::time_ms(i.expires_at)),
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    let roles = [Role::Viewer, Role::Member, Role::Admin, Role::Owner]
        .into_iter()
        .filter(|r| *r <= ctx.access.role)
        .map(Role::as_str)
        .collect();
    let invite = outcome.invite.unwrap_or_default();
    let page = MembersPage {
        base: format!("/orgs/{}/members", ctx.slug()),
        members: members
            .iter()
            .map(|m| MemberRow {
                user_id: m.user_id.clone(),
                email: m.email.clone(),
                role: m.role.as_str(),
                joined: view::time_ms(m.joined_at),
                is_me: m.user_id == user_id,
            })
            .collect(),
        invitations,
        roles,
        can_manage,
        invite_link: outcome.invite_link,
        invite_email: invite.email,
        invite_role: if invite.role.is_empty() {
            "member".into()
        } else {
            invite.role
        },
        error: outcome.error,
        layout: ctx.layout,
    };
    Ok(render(status, &page))
}

/// `GET /orgs/{org}/members`.
pub async fn list(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Members", "members").await?;
    page(
        &state,
        ctx,
        &user.claims.sub,
        StatusCode::OK,
        Outcome::default(),
    )
    .await
}

fn role(text: &str) -> Result<Role, Error> {
    Role::parse(text).ok_or_else(|| Error::BadRequest(format!("there is no role {text:?}")))
}

/// The invitation form.
#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    email: String,
    role: String,
}

/// `POST /orgs/{org}/members`: invites someone (admin) and shows the link to send them, once.
pub async fn invite(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    Form(form): Form<InviteForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Members", "members").await?;
    let invited = async {
        ctx.access.require(Role::Admin)?;
        let role = role(&form.role)?;
        orgs::invite(
            &state.db,
            &ctx.access.org.id,
            ctx.access.role,
            &ctx.actor,
            &form.email,
            role,
        )
        .await
    }
    .await;
    match invited {
        Ok(invitation) => {
            let token = invitation.token.unwrap_or_default();
            let link = format!(
                "{}/invitations/{token}",
                state.public_url.trim_end_matches('/')
            );
            let outcome = Outcome {
                invite_link: Some(link),
                ..Outcome::default()
            };
            page(&state, ctx, &user.claims.sub, StatusCode::CREATED, outcome).await
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let outcome = Outcome {
                error: Some(view::sentence(&e.to_string())),
                invite: Some(form),
                ..Outcome::default()
            };
            page(
                &state,
                ctx,
                &user.claims.sub,
                e.status_and_code().0,
                outcome,
            )
            .await
        }
    }
}

/// The role form.
#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: String,
}

/// `POST /orgs/{org}/members/{user}/role` (admin; owners for the owner role).
pub async fn set_role(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, member)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Members", "members").await?;
    let changed = async {
        ctx.access.require(Role::Admin)?;
        let role = role(&form.role)?;
        orgs::set_role(
            &state.db,
            &ctx.access.org.id,
            ctx.access.role,
            &member,
            role,
        )
        .await?;
        Ok::<_, Error>(role)
    }
    .await;
    finish(
        &state,
        ctx,
        &user,
        changed.map(|r| format!("The role is now {}.", r.as_str())),
    )
    .await
}

/// `POST /orgs/{org}/members/{user}/remove` (admin, or the member themselves).
pub async fn remove(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, member)): Path<(String, String)>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Members", "members").await?;
    let leaving = member == user.claims.sub;
    let removed = async {
        if !leaving {
            ctx.access.require(Role::Admin)?;
        }
        orgs::remove_member(&state.db, &ctx.access.org.id, ctx.access.role, &member).await
    }
    .await;
    if leaving && removed.is_ok() {
        let flash = Flash::cookie(
            &user.visitor.policy,
            false,
            &format!("You left {}.", ctx.access.org.name),
        );
        return Ok(with_cookies(Redirect::to("/").into_response(), vec![flash]));
    }
    finish(
        &state,
        ctx,
        &user,
        removed.map(|()| "The member is removed.".into()),
    )
    .await
}

/// After a change on the page: back to it with a flash, or the page with the error.
async fn finish(
    state: &AppState,
    ctx: OrgContext,
    user: &SignedIn,
    done: Result<String, Error>,
) -> PageResult {
    match done {
        Ok(message) => {
            let flash = Flash::cookie(&user.visitor.policy, false, &message);
            let to = format!("/orgs/{}/members", ctx.slug());
            Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let outcome = Outcome {
                error: Some(view::sentence(&e.to_string())),
                ..Outcome::default()
            };
            page(state, ctx, &user.claims.sub, e.status_and_code().0, outcome).await
        }
    }
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    layout: Layout,
    token: String,
    email: String,
    error: Option<String>,
}

/// `GET /invitations/{token}`: the page an invitation link opens (after logging in).
pub async fn show(
    State(state): State<AppState>,
    user: SignedIn,
    Path(token): Path<String>,
) -> PageResult {
    let me = accounts::user(&state.db, &user.claims.sub).await?;
    let mut layout = Layout::anonymous("Invitation", &user.visitor);
    layout.email = Some(me.email.clone());
    Ok(render(
        StatusCode::OK,
        &InvitationPage {
            layout,
            token,
            email: me.email,
            error: None,
        },
    ))
}

/// The accept form; the token travels in the body so the audit log's target never holds it.
#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    token: String,
}

/// `POST /invitations/accept`: joins the organization of an invitation to the user's email.
pub async fn accept(
    State(state): State<AppState>,
    user: SignedIn,
    extensions: Extensions,
    Form(form): Form<AcceptForm>,
) -> PageResult {
    let me = accounts::user(&state.db, &user.claims.sub).await?;
    match orgs::accept(&state.db, &form.token, &me.id, &me.email).await {
        Ok(joined) => {
            AuditSlot::note_org(&extensions, joined.id.clone());
            let flash = Flash::cookie(
                &user.visitor.policy,
                false,
                &format!("Welcome to {}.", joined.name),
            );
            let to = format!("/orgs/{}/clusters", joined.slug);
            Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let mut layout = Layout::anonymous("Invitation", &user.visitor);
            layout.email = Some(me.email.clone());
            Ok(render(
                e.status_and_code().0,
                &InvitationPage {
                    layout,
                    token: form.token,
                    email: me.email,
                    error: Some(view::sentence(&e.to_string())),
                },
            ))
        }
    }
}
