//! One-time use of SAML messages, in the database so it holds across restarts and replicas: the
//! AuthnRequest IDs we sent (an InResponseTo must name one of this organization's, and uses it up)
//! and the IDs of consumed assertions (refused again until they expire).

use sqlx::{Any, AnyPool, Row, Transaction};

use super::SsoError;
use super::acs::Rejection;
use crate::db::now_ms;

/// How long an AuthnRequest may be answered.
pub const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;

/// An outstanding AuthnRequest, as the ACS uses it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where the login goes afterwards.
    pub relay_state: Option<String>,
    /// The signed-in user who started a link flow with it: the asserted NameID is bound to them.
    pub link_user_id: Option<String>,
}

/// Records an AuthnRequest we are about to send (for `link_user_id`'s link flow, if given), and
/// drops expired ones.
pub async fn remember_request(
    db: &AnyPool,
    org_id: &str,
    request_id: &str,
    relay_state: Option<&str>,
    link_user_id: Option<&str>,
) -> Result<(), SsoError> {
    let now = now_ms();
    sqlx::query("DELETE FROM saml_requests WHERE expires_at <= $1")
        .bind(now)
        .execute(db)
        .await?;
    sqlx::query("INSERT INTO saml_requests (id, org_id, relay_state, expires_at, created_at, link_user_id) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(request_id)
        .bind(org_id)
        .bind(relay_state)
        .bind(now + REQUEST_TTL_MS)
        .bind(now)
        .bind(link_user_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Uses up the request `request_id` of `org_id`; returns what it was started with. Unknown, expired, used
/// and other organizations' requests are all refused, and of two concurrent uses only one wins.
pub async fn consume_request(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    request_id: &str,
) -> Result<Request, SsoError> {
    let now = now_ms();
    let row = sqlx::query(
        "SELECT relay_state, link_user_id FROM saml_requests WHERE id = $1 AND org_id = $2 AND expires_at > $3",
    )
    .bind(request_id)
    .bind(org_id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let unknown = || {
        Rejection::InResponseTo("it names no outstanding login request of this organization (unknown, expired or already used)".into())
    };
    let Some(row) = row else {
        return Err(unknown().into());
    };
    let request = Request {
        relay_state: row.try_get("relay_state")?,
        link_user_id: row.try_get("link_user_id")?,
    };
    let deleted = sqlx::query("DELETE FROM saml_requests WHERE id = $1 AND org_id = $2")
        .bind(request_id)
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    if deleted.rows_affected() != 1 {
        return Err(unknown().into());
    }
    Ok(request)
}

/// Records a consumed assertion until `expires_at_ms`, refusing one already recorded; drops
/// expired entries.
pub async fn consume_assertion(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    assertion_id: &str,
    expires_at_ms: i64,
) -> Result<(), SsoError> {
    sqlx::query("DELETE FROM saml_assertions WHERE expires_at <= $1")
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO saml_assertions (org_id, assertion_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(org_id)
    .bind(assertion_id)
    .bind(expires_at_ms)
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            SsoError::Rejected(Rejection::Replayed)
        }
        _ => SsoError::Database(e),
    })?;
    Ok(())
}
