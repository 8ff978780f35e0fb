//! Accounts and sessions: sign-up, login, token refresh with rotation, logout.

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::auth::password;
use crate::auth::session::{REFRESH_TTL_SECS, SessionClaims, Sessions, new_secret, secret_hash};
use crate::db::{new_id, now_ms};
use crate::error::{Error, Result};
use crate::orgs::{self, Organization};
use crate::tiers::TierName;

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    /// User id.
    pub id: String,
    /// Email address (lower-case).
    pub email: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

/// A fresh pair of session tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tokens {
    /// Signed access token for `Authorization: Bearer`; short-lived.
    pub access_token: String,
    /// Opaque token for `POST /api/v1/token/refresh`; single use.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Always `Bearer`.
    pub token_type: &'static str,
}

/// `POST /api/v1/signup`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SignupRequest {
    /// Email address.
    pub email: String,
    /// Password, at least 10 characters.
    pub password: String,
    /// Name of the organization to create.
    pub organization: String,
    /// `free` (default) or `pro`; enterprise is arranged with sales.
    #[serde(default)]
    pub tier: Option<TierName>,
}

/// What sign-up returns.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignupResponse {
    /// The new user.
    pub user: User,
    /// The new organization, owned by the user.
    pub organization: Organization,
    /// Session tokens.
    #[serde(flatten)]
    pub tokens: Tokens,
}

/// `POST /api/v1/login`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// The message of every failed login, so it reveals nothing about which accounts exist.
pub const BAD_LOGIN: &str = "wrong email or password";

/// Normalizes and checks an email address.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Error::BadRequest(format!(
            "{email:?} is not an email address"
        )))
    }
}

/// Creates a user, their organization (they own it) and a session.
pub async fn signup(
    db: &AnyPool,
    sessions: &Sessions,
    req: &SignupRequest,
) -> Result<SignupResponse> {
    let email = normalize_email(&req.email)?;
    password::check_rules(&req.password)?;
    let tier = req.tier.unwrap_or(TierName::Free);
    if tier == TierName::Enterprise {
        return Err(Error::PaymentRequired(
            "the enterprise tier is arranged with sales; sign up on free or pro and upgrade".into(),
        ));
    }
    let hash = password::hash(&req.password)?;
    let now = now_ms();
    let user = User {
        id: new_id(),
        email,
        created_at: now,
    };
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&user.id)
        .bind(&user.email)
        .bind(&hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            Error::unique(
                e,
                "an account with this email already exists; log in instead",
            )
        })?;
    let organization = orgs::create(&mut tx, &req.organization, tier).await?;
    orgs::add_member(&mut tx, &organization.id, &user.id, Role::Owner).await?;
    tx.commit().await?;
    let tokens = issue(db, sessions, &user.id, None, &new_id()).await?;
    Ok(SignupResponse {
        user,
        organization,
        tokens,
    })
}

/// Checks an email and password and opens a session. Every failure says [`BAD_LOGIN`], and an
/// unknown email costs the same hashing work as a wrong password.
pub async fn login(
    db: &AnyPool,
    sessions: &Sessions,
    req: &LoginRequest,
) -> Result<(User, Tokens)> {
    let email = req.email.trim().to_lowercase();
    let row =
        sqlx::query("SELECT id, email, password_hash, created_at FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(db)
            .await?;
    let Some(row) = row else {
        password::verify(&req.password, password::decoy());
        return Err(Error::Unauthorized(BAD_LOGIN.into()));
    };
    let stored: Option<String> = row.try_get("password_hash")?;
    let ok = match &stored {
        Some(h) => password::verify(&req.password, h),
        None => {
            password::verify(&req.password, password::decoy());
            false
        }
    };
    if !ok {
        return Err(Error::Unauthorized(BAD_LOGIN.into()));
    }
    let user = User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
    };
    let sso_only = sqlx::query(
        "SELECT o.slug FROM organizations o JOIN memberships m ON m.org_id = o.id \
         WHERE m.user_id = $1 AND o.sso_required = 1",
    )
    .bind(&user.id)
    .fetch_optional(db)
    .await?;
    if let Some(org) = sso_only {
        let slug: String = org.try_get("slug")?;
        return Err(Error::Forbidden(format!(
            "organization {slug} requires single sign-on: log in at /saml/{slug}/login"
        )));
    }
    let tokens = issue(db, sessions, &user.id, None, &new_id()).await?;
    Ok((user, tokens))
}

/// Opens a session (a new token family) for a user whose identity organization `org_id`'s SAML
/// single sign-on established: the session (access token and every refresh) is scoped to that
/// organization, so one organization's IdP never opens the doors of another.
pub async fn issue_sso_session(
    db: &AnyPool,
    sessions: &Sessions,
    user_id: &str,
    org_id: &str,
) -> Result<Tokens> {
    issue(db, sessions, user_id, Some(org_id), &new_id()).await
}

/// Opens a session (a new token family) for the person who approved a device authorization,
/// with their approving session's scope (`org` for an SSO session), never a wider one.
pub async fn issue_device_session(
    db: &AnyPool,
    sessions: &Sessions,
    user_id: &str,
    org: Option<&str>,
) -> Result<Tokens> {
    user(db, user_id).await?;
    if let Some(org) = org {
        crate::sso::check_session_scope(db, org).await?;
    }
    issue(db, sessions, user_id, org, &new_id()).await
}

/// An access token and a refresh token of `family` (one family per login, so reuse of a
/// rotated refresh token revokes exactly that login's tokens), scoped to `org` for SSO.
async fn issue(
    db: &AnyPool,
    sessions: &Sessions,
    user_id: &str,
    org: Option<&str>,
    family: &str,
) -> Result<Tokens> {
    let now = now_ms();
    let (access_token, claims) = sessions.issue(user_id, org, now / 1000)?;
    let refresh_token = new_secret("kr_");
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family, token_hash, expires_at, created_at, org_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(user_id)
    .bind(family)
    .bind(secret_hash(&refresh_token))
    .bind(now + REFRESH_TTL_SECS * 1000)
    .bind(now)
    .bind(org)
    .execute(db)
    .await?;
    Ok(Tokens {
        access_token,
        refresh_token,
        expires_in: claims.exp - claims.iat,
        token_type: "Bearer",
    })
}

/// Exchanges a refresh token for a new pair. A refresh token works once: presenting a used one
/// means it leaked, so its whole family is revoked.
pub async fn refresh(db: &AnyPool, sessions: &Sessions, refresh_token: &str) -> Result<Tokens> {
    let invalid = || Error::Unauthorized("invalid or expired refresh token; log in again".into());
    let row = sqlx::query(
        "SELECT id, user_id, family, expires_at, revoked_at, org_id FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(secret_hash(refresh_token))
    .fetch_optional(db)
    .await?
    .ok_or_else(invalid)?;
    let id: String = row.try_get("id")?;
    let user_id: String = row.try_get("user_id")?;
    let family: String = row.try_get("family")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let org: Option<String> = row.try_get("org_id")?;
    let now = now_ms();
    if revoked_at.is_some() {
        revoke_family(db, &family).await?;
        tracing::warn!(user = %user_id, "a used refresh token was presented again; the session is revoked");
        return Err(invalid());
    }
    if expires_at <= now {
        return Err(invalid());
    }
    if let Some(org) = &org {
        crate::sso::check_session_scope(db, org).await?;
    }
    // Only one of two concurrent refreshes with the same token wins the update.
    let updated = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&id)
    .execute(db)
    .await?;
    if updated.rows_affected() != 1 {
        revoke_family(db, &family).await?;
        return Err(invalid());
    }
    issue(db, sessions, &user_id, org.as_deref(), &family).await
}

async fn revoke_family(db: &AnyPool, family: &str) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(family)
    .execute(db)
    .await?;
    Ok(())
}

/// Ends a session: the access token stops working at once, and the refresh token's family too.
pub async fn logout(
    db: &AnyPool,
    claims: &SessionClaims,
    refresh_token: Option<&str>,
) -> Result<()> {
    sqlx::query("INSERT INTO revoked_sessions (jti, expires_at) VALUES ($1, $2)")
        .bind(&claims.jti)
        .bind(claims.exp * 1000)
        .execute(db)
        .await
        .map_err(|e| Error::unique(e, "this session has already ended"))?;
    if let Some(token) = refresh_token {
        let family =
            sqlx::query("SELECT family FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2")
                .bind(secret_hash(token))
                .bind(&claims.sub)
                .fetch_optional(db)
                .await?;
        if let Some(row) = family {
            let family: String = row.try_get("family")?;
            revoke_family(db, &family).await?;
        }
    }
    Ok(())
}

/// Whether a session token was revoked by logout.
pub async fn is_revoked(db: &AnyPool, jti: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT jti FROM revoked_sessions WHERE jti = $1")
            .bind(jti)
            .fetch_optional(db)
            .await?
            .is_some(),
    )
}

/// A user by id.
pub async fn user(db: &AnyPool, id: &str) -> Result<User> {
    let row = sqlx::query("SELECT id, email, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::Unauthorized("the account no longer exists".into()))?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a da@example.com",
            "ada@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
