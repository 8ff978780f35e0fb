//! Who a verified SSO assertion signs in. An organization's IdP may sign in only
//! (a) an account whose email is in one of the organization's verified domains (created just in
//! time when missing, made a member in the default role when not one), or
//! (b) an account its owner linked to this IdP while signed in (the link flow: the AuthnRequest
//! was started by that user's own session, and the ACS binds the asserted NameID to them).
//! Anything else is refused, so an IdP cannot sign in as, nor pre-claim, an address outside the
//! domains its organization proved it owns.

use sqlx::{Any, Row, Transaction};

use super::SsoError;
use super::domains;
use crate::accounts::User;
use crate::auth::Role;
use crate::db::{new_id, now_ms};
use crate::orgs::{self, Organization};

/// How an SSO login found its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// An account in a verified domain that already was a member.
    Member,
    /// An account in a verified domain, made a member now.
    Joined,
    /// An account created now (a verified domain).
    Created,
    /// An account linked to the IdP before.
    Linked,
    /// The account whose link flow this login completes, linked now.
    LinkedNow,
}

impl Found {
    /// Whether the account or its membership was created by this login.
    pub fn created(self) -> bool {
        matches!(self, Found::Joined | Found::Created)
    }
}

async fn user_by(
    tx: &mut Transaction<'_, Any>,
    column: &'static str,
    value: &str,
) -> Result<Option<User>, SsoError> {
    let sql = match column {
        "id" => "SELECT id, email, created_at FROM users WHERE id = $1",
        _ => "SELECT id, email, created_at FROM users WHERE email = $1",
    };
    let row = sqlx::query(sql)
        .bind(value)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|row| {
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .transpose()
}

async fn is_member(
    tx: &mut Transaction<'_, Any>,
    org: &Organization,
    user_id: &str,
) -> Result<bool, SsoError> {
    Ok(
        sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(&org.id)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Binds `name_id` of `org`'s IdP to `user_id`, who started the link flow while signed in and
/// must be a member; a user has one link per organization (a new one replaces it), and a NameID
/// belongs to one user.
async fn link(
    tx: &mut Transaction<'_, Any>,
    org: &Organization,
    user_id: &str,
    name_id: &str,
) -> Result<User, SsoError> {
    let user = user_by(tx, "id", user_id).await?.ok_or_else(|| {
        SsoError::NotAllowed("the account that started this link no longer exists".into())
    })?;
    if !is_member(tx, org, &user.id).await? {
        return Err(SsoError::NotAllowed(format!(
            "{} is not a member of organization {}, so it cannot be linked to its identity provider",
            user.email, org.slug
        )));
    }
    let taken = || {
        SsoError::NotAllowed(format!(
            "the identity {name_id} of this identity provider is already linked to another account"
        ))
    };
    // Checked first so the usual refusal does not abort the transaction (PostgreSQL); the
    // constraint still settles a race.
    let holder = sqlx::query("SELECT user_id FROM sso_links WHERE org_id = $1 AND name_id = $2")
        .bind(&org.id)
        .bind(name_id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = holder {
        let holder: String = row.try_get("user_id")?;
        if holder != user.id {
            return Err(taken());
        }
    }
    sqlx::query("DELETE FROM sso_links WHERE org_id = $1 AND user_id = $2")
        .bind(&org.id)
        .bind(&user.id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO sso_links (org_id, user_id, name_id, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&org.id)
    .bind(&user.id)
    .bind(name_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => taken(),
        _ => SsoError::Database(e),
    })?;
    Ok(user)
}

/// The account an SSO login of `org` for the asserted `name_id` (an email, normalized) signs in,
/// per the rules above; `link_user_id` is the user whose link flow the answered request started.
pub async fn member_for(
    tx: &mut Transaction<'_, Any>,
    org: &Organization,
    name_id: &str,
    default_role: Role,
    link_user_id: Option<&str>,
) -> Result<(User, Found), SsoError> {
    if let Some(user_id) = link_user_id {
        return Ok((link(tx, org, user_id, name_id).await?, Found::LinkedNow));
    }
    let linked = sqlx::query("SELECT user_id FROM sso_links WHERE org_id = $1 AND name_id = $2")
        .bind(&org.id)
        .bind(name_id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = linked {
        let user_id: String = row.try_get("user_id")?;
        let user = user_by(tx, "id", &user_id).await?;
        return match user {
            Some(user) if is_member(tx, org, &user.id).await? => Ok((user, Found::Linked)),
            _ => Err(SsoError::NotAllowed(format!(
                "the account linked to {name_id} is no longer a member of organization {}",
                org.slug
            ))),
        };
    }
    if !domains::is_verified_for(tx, org, name_id).await? {
        return Err(SsoError::NotAllowed(format!(
            "the identity provider of organization {} may sign in only addresses in the organization's verified domains, or accounts linked to it by their owners; {name_id} is neither",
            org.slug
        )));
    }
    if let Some(user) = user_by(tx, "email", name_id).await? {
        if is_member(tx, org, &user.id).await? {
            return Ok((user, Found::Member));
        }
        orgs::add_member(tx, &org.id, &user.id, default_role).await?;
        return Ok((user, Found::Joined));
    }
    let user = User {
        id: new_id(),
        email: name_id.to_string(),
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, NULL, $3)",
    )
    .bind(&user.id)
    .bind(&user.email)
    .bind(user.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => SsoError::Invalid(
            "this account was just created by a concurrent login; try again".into(),
        ),
        _ => SsoError::Database(e),
    })?;
    orgs::add_member(tx, &org.id, &user.id, default_role).await?;
    Ok((user, Found::Created))
}
