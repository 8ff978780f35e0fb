//! Organizations, memberships with roles, and invitations.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::auth::session::{new_secret, secret_hash};
use crate::db::{new_id, now_ms};
use crate::error::{Error, Result};
use crate::pagination::{After, bounds};
use crate::tiers::{CustomLimits, Tier, TierName};

/// How long an invitation stays valid.
pub const INVITATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// An organization as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Organization {
    /// Organization id.
    pub id: String,
    /// URL-safe unique name, usable instead of the id in paths.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The tier.
    pub tier: TierName,
    /// Whether members must log in with SSO.
    pub sso_required: bool,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Limits staff set for this enterprise organization, replacing the tier's; absent when none.
    #[serde(skip_serializing_if = "CustomLimits::is_empty")]
    pub custom_limits: CustomLimits,
    /// Set while staff have suspended the organization (its members' requests are refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Suspension>,
}

impl Organization {
    /// The limits that hold for a cluster of `cluster_tier` here (custom enterprise limits
    /// included); `self.tier` gives the organization-wide ones, such as the cluster count.
    pub fn limits(&self, cluster_tier: TierName) -> Tier {
        crate::tiers::effective(self.tier, cluster_tier, &self.custom_limits)
    }

    /// Fails with 403 `organization_suspended` while staff have suspended it.
    pub fn check_active(&self) -> Result<()> {
        match &self.suspension {
            None => Ok(()),
            Some(s) => Err(Error::Suspended(format!(
                "organization {} is suspended ({}); contact support",
                self.slug, s.reason
            ))),
        }
    }
}

/// Why and since when staff suspended an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Suspension {
    /// Since when, ms since the epoch.
    pub since: i64,
    /// The reason staff gave.
    pub reason: String,
}

/// The columns [`organization`] reads, of `organizations o`.
pub(crate) const ORG_COLUMNS: &str = "o.id, o.slug, o.name, o.tier, o.sso_required, o.created_at, \
    o.suspended_at, o.suspended_reason, o.limit_max_storage_bytes, o.limit_max_ops_per_sec, \
    o.limit_max_clusters, o.limit_max_replicas, o.limit_backup_retention_days";

fn limit<T: TryFrom<i64>>(row: &AnyRow, column: &str) -> Result<Option<T>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| {
            T::try_from(v).map_err(|_| Error::Internal(format!("{column} {v} is out of range")))
        })
        .transpose()
}

/// The custom limits of a row that has the `limit_*` columns of `organizations`.
pub(crate) fn custom_limits(row: &AnyRow) -> Result<CustomLimits> {
    Ok(CustomLimits {
        max_storage_bytes: limit(row, "limit_max_storage_bytes")?,
        max_ops_per_sec: limit(row, "limit_max_ops_per_sec")?,
        max_clusters: limit(row, "limit_max_clusters")?,
        max_replicas: limit(row, "limit_max_replicas")?,
        backup_retention_days: limit(row, "limit_backup_retention_days")?,
    })
}

pub(crate) fn organization(row: &AnyRow) -> Result<Organization> {
    let tier: String = row.try_get("tier")?;
    let sso: i64 = row.try_get("sso_required")?;
    let suspended_at: Option<i64> = row.try_get("suspended_at")?;
    Ok(Organization {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        tier: TierName::parse(&tier)
            .ok_or_else(|| Error::Internal(format!("unknown tier {tier:?} stored")))?,
        sso_required: sso != 0,
        created_at: row.try_get("created_at")?,
        custom_limits: custom_limits(row)?,
        suspension: match suspended_at {
            Some(since) => Some(Suspension {
                since,
                reason: row
                    .try_get::<Option<String>, _>("suspended_reason")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
    })
}

/// Whether `slug` could be taken for an id: a slug of that shape could shadow another
/// organization's id in paths, so none is ever given out.
pub fn is_id_shaped(slug: &str) -> bool {
    uuid::Uuid::try_parse(slug).is_ok()
}

/// A slug from a display name: lower-case letters, digits and single dashes, at most 40 chars.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() { "org".into() } else { slug }
}

/// Creates an organization; its slug gets a random suffix when the plain one is taken.
pub async fn create(
    tx: &mut Transaction<'_, Any>,
    name: &str,
    tier: TierName,
) -> Result<Organization> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::BadRequest(
            "organization name must have 1 to 100 characters".into(),
        ));
    }
    let base = slugify(name);
    if is_id_shaped(&base) {
        return Err(Error::BadRequest(
            "this organization name would give a slug shaped like an organization id; choose another name".into(),
        ));
    }
    let mut slug = base.clone();
    for attempt in 0..5 {
        let taken = sqlx::query("SELECT id FROM organizations WHERE slug = $1")
            .bind(&slug)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        if !taken {
            break;
        }
        let suffix: String = new_id()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(6)
            .collect();
        slug = format!("{}-{suffix}", &base[..base.len().min(33)]);
        if attempt == 4 {
            return Err(Error::Conflict(
                "could not find a free slug; choose another name".into(),
            ));
        }
    }
    let org = Organization {
        id: new_id(),
        slug,
        name: name.to_string(),
        tier,
        sso_required: false,
        created_at: now_ms(),
        custom_limits: CustomLimits::default(),
        suspension: None,
    };
    sqlx::query("INSERT INTO organizations (id, slug, name, tier, sso_required, created_at) VALUES ($1, $2, $3, $4, 0, $5)")
        .bind(&org.id)
        .bind(&org.slug)
        .bind(&org.name)
        .bind(tier.as_str())
        .bind(org.created_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| Error::unique(e, "an organization with this slug already exists"))?;
    Ok(org)
}

/// Adds a member (or changes nothing if they already are one).
pub async fn add_member(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    user_id: &str,
    role: Role,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::unique(e, "already a member of this organization"))?;
    Ok(())
}

/// Locks an organization's row until `tx` ends, and reads it. Every transaction that checks an
/// organization-wide quota and then acts on it takes this first, so two of them for one
/// organization run one after the other and the second sees what the first wrote: a row lock
/// on PostgreSQL (the no-op UPDATE), the database's single write lock on SQLite.
pub async fn lock(tx: &mut Transaction<'_, Any>, org_id: &str) -> Result<Organization> {
    let locked = sqlx::query("UPDATE organizations SET tier = tier WHERE id = $1")
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(Error::NotFound(format!("no organization {org_id:?}")));
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ORG_COLUMNS} FROM organizations o WHERE o.id = $1"
    )))
    .bind(org_id)
    .fetch_one(&mut **tx)
    .await?;
    organization(&row)
}

/// Moves an organization to another plan (free or pro; enterprise is set by staff with
/// `koru-controlplane admin set-tier`). A downgrade must leave every cluster within the new plan.
pub async fn set_tier(db: &AnyPool, org: &Organization, tier: TierName) -> Result<Organization> {
    if tier == TierName::Enterprise {
        return Err(Error::PaymentRequired(
            "the enterprise plan is arranged with sales and changed by staff".into(),
        ));
    }
    change_tier(db, &org.id, tier).await
}

/// Sets an organization's tier (any tier: staff and [`set_tier`] both end here), once every
/// cluster fits the new plan, under the organization's [`lock`].
pub async fn change_tier(db: &AnyPool, org_id: &str, tier: TierName) -> Result<Organization> {
    let mut tx = db.begin().await?;
    let org = lock(&mut tx, org_id).await?;
    let target = Organization {
        tier,
        ..org.clone()
    };
    let plan = target.limits(tier);
    let clusters = crate::clusters::list_in(&mut tx, &org.id).await?;
    if clusters.len() as u32 > plan.max_clusters {
        return Err(Error::QuotaExceeded(format!(
            "the {} plan allows {} cluster(s); delete clusters first ({} now)",
            tier.as_str(),
            plan.max_clusters,
            clusters.len()
        )));
    }
    for c in &clusters {
        crate::tiers::check_tier(tier, c.tier).map_err(|_| {
            Error::QuotaExceeded(format!(
                "cluster {} is on the {} tier, above the {} plan; change it first",
                c.name,
                c.tier.as_str(),
                tier.as_str()
            ))
        })?;
    }
    sqlx::query("UPDATE organizations SET tier = $1 WHERE id = $2")
        .bind(tier.as_str())
        .bind(&org.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(target)
}

/// An organization by id or slug, without any access check. The id wins: a slug equal to
/// another organization's id (which [`create`] refuses, but older rows may hold) never
/// shadows that organization.
pub async fn find(db: &AnyPool, id_or_slug: &str) -> Result<Option<Organization>> {
    for column in ["id", "slug"] {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ORG_COLUMNS} FROM organizations o WHERE o.{column} = $1"
        )))
        .bind(id_or_slug)
        .fetch_optional(db)
        .await?;
        if let Some(row) = row {
            return organization(&row).map(Some);
        }
    }
    Ok(None)
}

/// A user's role in an organization, if they are a member.
pub async fn role_of(db: &AnyPool, org_id: &str, user_id: &str) -> Result<Option<Role>> {
    let row = sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(match row {
        Some(r) => Role::parse(&r.try_get::<String, _>("role")?),
        None => None,
    })
}

/// An organization a user belongs to, with their role.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgWithRole {
    /// The organization.
    #[serde(flatten)]
    pub organization: Organization,
    /// The user's role there.
    pub role: Role,
}

/// The organizations of a user.
pub async fn of_user(db: &AnyPool, user_id: &str) -> Result<Vec<OrgWithRole>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ORG_COLUMNS}, m.role FROM organizations o \
         JOIN memberships m ON m.org_id = o.id WHERE m.user_id = $1 ORDER BY o.created_at, o.id"
    )))
    .bind(user_id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrgWithRole {
                organization: organization(r)?,
                role: Role::parse(&r.try_get::<String, _>("role")?)
                    .ok_or_else(|| Error::Internal("unknown role stored".into()))?,
            })
        })
        .collect()
}

/// A member as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Member {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Since when, ms since the epoch.
    pub joined_at: i64,
}

/// One page of the members of an organization, in joining order (`limit + 1` fetched).
pub async fn members(
    db: &AnyPool,
    org_id: &str,
    after: &Option<After>,
    limit: u32,
) -> Result<Vec<Member>> {
    let (t, id) = bounds(after);
    let rows = sqlx::query(
        "SELECT u.id, u.email, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $1 AND (m.created_at > $2 OR (m.created_at = $2 AND u.id > $3)) \
         ORDER BY m.created_at, u.id LIMIT $4",
    )
    .bind(org_id)
    .bind(t)
    .bind(id)
    .bind(i64::from(limit) + 1)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                user_id: r.try_get("id")?,
                email: r.try_get("email")?,
                role: Role::parse(&r.try_get::<String, _>("role")?)
                    .ok_or_else(|| Error::Internal("unknown role stored".into()))?,
                joined_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Changes a member's role. Only an owner may grant or take away ownership, and the last owner
/// stays an owner.
pub async fn set_role(
    db: &AnyPool,
    org_id: &str,
    actor: Role,
    user_id: &str,
    role: Role,
) -> Result<()> {
    let current = role_of(db, org_id, user_id)
        .await?
        .ok_or_else(|| Error::NotFound("no such member".into()))?;
    if (role == Role::Owner || current == Role::Owner) && actor != Role::Owner {
        return Err(Error::Forbidden(
            "only an owner can grant or remove the owner role".into(),
        ));
    }
    if current == Role::Owner && role != Role::Owner && owners(db, org_id).await? <= 1 {
        return Err(Error::Conflict(
            "an organization keeps at least one owner".into(),
        ));
    }
    sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3")
        .bind(role.as_str())
        .bind(org_id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Removes a member, with the same owner rules as [`set_role`].
pub async fn remove_member(db: &AnyPool, org_id: &str, actor: Role, user_id: &str) -> Result<()> {
    let current = role_of(db, org_id, user_id)
        .await?
        .ok_or_else(|| Error::NotFound("no such member".into()))?;
    if current == Role::Owner && actor != Role::Owner {
        return Err(Error::Forbidden("only an owner can remove an owner".into()));
    }
    if current == Role::Owner && owners(db, org_id).await? <= 1 {
        return Err(Error::Conflict(
            "an organization keeps at least one owner".into(),
        ));
    }
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

async fn owners(db: &AnyPool, org_id: &str) -> Result<i64> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND role = 'owner'")
            .bind(org_id)
            .fetch_one(db)
            .await?;
    Ok(row.try_get("n")?)
}

/// An invitation as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    /// Invitation id.
    pub id: String,
    /// Who is invited.
    pub email: String,
    /// The role they get.
    pub role: Role,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
    /// When it was accepted, if it was.
    pub accepted_at: Option<i64>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// The secret to accept it with; only in the response that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Invites `email` with `role`; the secret token is returned once.
pub async fn invite(
    db: &AnyPool,
    org_id: &str,
    actor: Role,
    invited_by: &str,
    email: &str,
    role: Role,
) -> Result<Invitation> {
    let email = crate::accounts::normalize_email(email)?;
    if role > actor {
        return Err(Error::Forbidden(format!(
            "a {} cannot invite a {}",
            actor.as_str(),
            role.as_str()
        )));
    }
    let token = new_secret("ki_");
    let now = now_ms();
    let invitation = Invitation {
        id: new_id(),
        email,
        role,
        expires_at: now + INVITATION_TTL_MS,
        accepted_at: None,
        created_at: now,
        token: Some(token.clone()),
    };
    sqlx::query(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&invitation.id)
    .bind(org_id)
    .bind(&invitation.email)
    .bind(role.as_str())
    .bind(secret_hash(&token))
    .bind(invited_by)
    .bind(invitation.expires_at)
    .bind(now)
    .execute(db)
    .await?;
    Ok(invitation)
}

/// One page of the invitations of an organization, without their secrets (`limit + 1` fetched).
pub async fn invitations(
    db: &AnyPool,
    org_id: &str,
    after: &Option<After>,
    limit: u32,
) -> Result<Vec<Invitation>> {
    let (t, id) = bounds(after);
    let rows = sqlx::query(
        "SELECT id, email, role, expires_at, accepted_at, created_at FROM invitations \
         WHERE org_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3)) ORDER BY created_at, id LIMIT $4",
    )
    .bind(org_id)
    .bind(t)
    .bind(id)
    .bind(i64::from(limit) + 1)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Invitation {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                role: Role::parse(&r.try_get::<String, _>("role")?)
                    .ok_or_else(|| Error::Internal("unknown role stored".into()))?,
                expires_at: r.try_get("expires_at")?,
                accepted_at: r.try_get("accepted_at")?,
                created_at: r.try_get("created_at")?,
                token: None,
            })
        })
        .collect()
}

/// Accepts an invitation for the logged-in user, whose email must be the invited one.
pub async fn accept(
    db: &AnyPool,
    token: &str,
    user_id: &str,
    user_email: &str,
) -> Result<Organization> {
    let invalid = || Error::NotFound("no such invitation, or it has expired or been used".into());
    let row = sqlx::query("SELECT id, org_id, email, role, expires_at, accepted_at FROM invitations WHERE token_hash = $1")
        .bind(secret_hash(token))
        .fetch_optional(db)
        .await?
        .ok_or_else(invalid)?;
    let accepted: Option<i64> = row.try_get("accepted_at")?;
    let expires: i64 = row.try_get("expires_at")?;
    let email: String = row.try_get("email")?;
    if accepted.is_some() || expires <= now_ms() || email != user_email {
        return Err(invalid());
    }
    let id: String = row.try_get("id")?;
    let org_id: String = row.try_get("org_id")?;
    let role = Role::parse(&row.try_get::<String, _>("role")?).ok_or_else(invalid)?;
    let mut tx = db.begin().await?;
    let used = sqlx::query(
        "UPDATE invitations SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL",
    )
    .bind(now_ms())
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() != 1 {
        return Err(invalid());
    }
    add_member(&mut tx, &org_id, user_id, role).await?;
    tx.commit().await?;
    find(db, &org_id).await?.ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("Acme Corp."), "acme-corp");
        assert_eq!(slugify("  Über  Café  "), "ber-caf");
        assert_eq!(slugify("!!!"), "org");
        assert!(slugify(&"x".repeat(100)).len() <= 40);
    }
}
