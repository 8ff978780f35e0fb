//! API tokens for automation (Terraform, CI): scoped to one organization and a role, with an
//! optional expiry; the secret is shown once and stored only as a hash.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::auth::session::{new_secret, secret_hash};
use crate::db::{new_id, now_ms};
use crate::error::{Error, Result};
use crate::pagination::{After, bounds};

/// Prefix of every API token, so they are recognisable (and findable by secret scanners).
pub const PREFIX: &str = "koru_";

/// An API token as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiToken {
    /// Token id.
    pub id: String,
    /// A name saying what it is for.
    pub name: String,
    /// The role it acts with.
    pub role: Role,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// Expiry, ms since the epoch, if any.
    pub expires_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Last use, ms since the epoch.
    pub last_used_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// The secret: only in the response that creates the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `POST /api/v1/orgs/{org}/tokens`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateToken {
    /// What the token is for.
    pub name: String,
    /// Its role; at most the creator's.
    pub role: Role,
    /// Days until it expires (1 to 3650); never when absent. A token creating a token must set
    /// it, to at most its own remaining whole days.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

fn token(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&row.try_get::<String, _>("role")?)
            .ok_or_else(|| Error::Internal("unknown role stored".into()))?,
        prefix: row.try_get("prefix")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
        created_at: row.try_get("created_at")?,
        token: None,
    })
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A token created by another token (`creator` = `token:<id>`) expires no later than its
/// creator, so a short-lived or expiring token cannot mint itself a longer life. Refused with a
/// 400 that says the longest lifetime allowed, rather than silently shortened.
async fn check_within_creator(
    db: &AnyPool,
    creator_id: &str,
    expires_at: Option<i64>,
    now: i64,
) -> Result<()> {
    let row = sqlx::query("SELECT expires_at FROM api_tokens WHERE id = $1")
        .bind(creator_id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::Unauthorized("invalid, expired or revoked API token".into()))?;
    let Some(limit) = row.try_get::<Option<i64>, _>("expires_at")? else {
        return Ok(());
    };
    if expires_at.is_some_and(|e| e <= limit) {
        return Ok(());
    }
    let days = (limit - now) / DAY_MS;
    Err(Error::BadRequest(if days >= 1 {
        format!(
            "an API token may create only tokens that expire no later than itself: set expires_in_days to at most {days}"
        )
    } else {
        "an API token may create only tokens that expire no later than itself, and this one expires within a day: create the token with a user's session".to_string()
    }))
}

/// Creates a token for `org_id`; its role may not exceed the creator's, and a token created by
/// a token (`creator` = `token:<id>`) expires no later than its creator.
pub async fn create(
    db: &AnyPool,
    org_id: &str,
    creator: &str,
    creator_role: Role,
    req: &CreateToken,
) -> Result<ApiToken> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::BadRequest(
            "token name must have 1 to 100 characters".into(),
        ));
    }
    if req.role > creator_role {
        return Err(Error::Forbidden(format!(
            "a {} cannot create a token with role {}",
            creator_role.as_str(),
            req.role.as_str()
        )));
    }
    let now = now_ms();
    let expires_at = match req.expires_in_days {
        Some(d) if (1..=3650).contains(&d) => Some(now + i64::from(d) * DAY_MS),
        Some(_) => {
            return Err(Error::BadRequest(
                "expires_in_days must be 1 to 3650".into(),
            ));
        }
        None => None,
    };
    if let Some(creator_id) = creator.strip_prefix("token:") {
        check_within_creator(db, creator_id, expires_at, now).await?;
    }
    let secret = new_secret(PREFIX);
    let created = ApiToken {
        id: new_id(),
        name: name.to_string(),
        role: req.role,
        prefix: secret.chars().take(12).collect(),
        expires_at,
        revoked_at: None,
        last_used_at: None,
        created_at: now,
        token: Some(secret.clone()),
    };
    sqlx::query(
        "INSERT INTO api_tokens (id, org_id, name, role, token_hash, prefix, created_by, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&created.id)
    .bind(org_id)
    .bind(&created.name)
    .bind(req.role.as_str())
    .bind(secret_hash(&secret))
    .bind(&created.prefix)
    .bind(creator)
    .bind(expires_at)
    .bind(now)
    .execute(db)
    .await?;
    Ok(created)
}

/// One page of the tokens of an organization, oldest first (`limit + 1` fetched).
pub async fn list(
    db: &AnyPool,
    org_id: &str,
    after: &Option<After>,
    limit: u32,
) -> Result<Vec<ApiToken>> {
    let (t, id) = bounds(after);
    let rows = sqlx::query(
        "SELECT id, name, role, prefix, expires_at, revoked_at, last_used_at, created_at \
         FROM api_tokens WHERE org_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
         ORDER BY created_at, id LIMIT $4",
    )
    .bind(org_id)
    .bind(t)
    .bind(id)
    .bind(i64::from(limit) + 1)
    .fetch_all(db)
    .await?;
    rows.iter().map(token).collect()
}

/// Revokes a token of `org_id`; a token of another organization is "not found".
pub async fn revoke(db: &AnyPool, org_id: &str, id: &str) -> Result<()> {
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(id)
        .bind(org_id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        let exists = sqlx::query("SELECT id FROM api_tokens WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .fetch_optional(db)
            .await?;
        return match exists {
            Some(_) => Ok(()),
            None => Err(Error::NotFound("no such token".into())),
        };
    }
    Ok(())
}

/// The organization and role of a valid (known, unrevoked, unexpired) token secret.
pub async fn authenticate(db: &AnyPool, secret: &str) -> Result<(String, String, Role)> {
    let invalid = || Error::Unauthorized("invalid, expired or revoked API token".into());
    let row = sqlx::query(
        "SELECT id, org_id, role, expires_at, revoked_at FROM api_tokens WHERE token_hash = $1",
    )
    .bind(secret_hash(secret))
    .fetch_optional(db)
    .await?
    .ok_or_else(invalid)?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    let expires: Option<i64> = row.try_get("expires_at")?;
    let now = now_ms();
    if revoked.is_some() || expires.is_some_and(|e| e <= now) {
        return Err(invalid());
    }
    let id: String = row.try_get("id")?;
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&id)
        .execute(db)
        .await?;
    let role = Role::parse(&row.try_get::<String, _>("role")?).ok_or_else(invalid)?;
    Ok((id, row.try_get("org_id")?, role))
}
