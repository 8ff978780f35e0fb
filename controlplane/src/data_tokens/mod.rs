//! Data-plane tokens: JWTs the control plane signs (EdDSA, with the cluster's own key) and the
//! cluster verifies with the public half, naming the cluster (claim and audience), a scope, an
//! expiry and a token id by which it can be revoked. [`store`] records them and serves the signed
//! list of revoked ids each cluster polls.

pub mod store;

use jsonwebtoken::{Algorithm, Header};
use koru_dataplane_api::auth::{Claims, MAX_ADMIN_TTL_SECS, Scope};
use koru_dataplane_api::revocations::{RevocationList, RevokedToken};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::auth::keys::KeyPair;
use crate::error::{Error, Result};

/// Lifetime of a data-plane token when none is asked for.
pub const DEFAULT_TTL_SECS: u64 = 3600;
/// Longest lifetime of a data-plane token.
pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

/// `POST /api/v1/orgs/{org}/clusters/{id}/data-tokens`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct DataTokenRequest {
    /// read, write or admin; at most what the caller's role allows.
    #[schema(value_type = String)]
    pub scope: Scope,
    /// Lifetime in seconds (60 to 30 days, at most one hour for admin scope); one hour when
    /// absent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A signed data-plane token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataToken {
    /// The token's id (its `jti`), by which it is listed and revoked.
    pub id: String,
    /// The JWT for `Authorization: Bearer` against the cluster's endpoint.
    pub token: String,
    /// Expiry, seconds since the epoch.
    pub expires_at: u64,
    /// The granted scope.
    #[schema(value_type = String)]
    pub scope: Scope,
}

/// The largest data-plane scope a role may grant: viewers read, members write, admins administer.
pub fn max_scope(role: Role) -> Scope {
    match role {
        Role::Viewer => Scope::Read,
        Role::Member => Scope::Write,
        Role::Admin | Role::Owner => Scope::Admin,
    }
}

/// Signs a token for `cluster_id` after checking the scope against `role` and the lifetime.
pub fn issue(
    key: &KeyPair,
    cluster_id: &str,
    subject: &str,
    role: Role,
    req: &DataTokenRequest,
    now_secs: u64,
) -> Result<DataToken> {
    if req.scope > max_scope(role) {
        return Err(Error::Forbidden(format!(
            "your role {} may issue data-plane tokens up to scope {}, not {}",
            role.as_str(),
            max_scope(role),
            req.scope
        )));
    }
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if !(60..=MAX_TTL_SECS).contains(&ttl) {
        return Err(Error::BadRequest(format!(
            "ttl_secs must be 60 to {MAX_TTL_SECS}"
        )));
    }
    if req.scope == Scope::Admin && ttl > MAX_ADMIN_TTL_SECS {
        return Err(Error::BadRequest(format!(
            "admin-scope data tokens live at most {MAX_ADMIN_TTL_SECS} s: ask for ttl_secs of at most {MAX_ADMIN_TTL_SECS}"
        )));
    }
    let claims = Claims {
        sub: subject.to_string(),
        cluster: cluster_id.to_string(),
        scope: req.scope,
        exp: now_secs + ttl,
        iat: now_secs,
        aud: koru_dataplane_api::auth::audience(cluster_id),
        jti: crate::db::new_id(),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key.encoding)
        .map_err(|e| Error::Internal(format!("signing a data-plane token: {e}")))?;
    Ok(DataToken {
        id: claims.jti,
        token,
        expires_at: claims.exp,
        scope: req.scope,
    })
}

/// How long a revocation list is accepted after it was made: data planes fetch it every few
/// seconds, so a stale copy (replayed, or cached by a proxy) stops counting soon.
pub const REVOCATION_LIST_TTL_SECS: u64 = 600;

/// The signed list of `revoked` (unexpired) tokens of `cluster_id`, for its data plane.
pub fn revocation_list(
    key: &KeyPair,
    cluster_id: &str,
    revoked: Vec<RevokedToken>,
    now_secs: u64,
) -> Result<String> {
    let list = RevocationList {
        aud: koru_dataplane_api::revocations::audience(cluster_id),
        iat: now_secs,
        exp: now_secs + REVOCATION_LIST_TTL_SECS,
        revoked,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &list, &key.encoding)
        .map_err(|e| Error::Internal(format!("signing a revocation list: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use koru_dataplane::auth::Verifier;

    #[test]
    fn the_data_plane_accepts_what_we_sign_for_it_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::load_or_generate(&dir.path().join("d.pem")).unwrap();
        let now = crate::db::now_ms() as u64 / 1000;
        let req = DataTokenRequest {
            scope: Scope::Write,
            ttl_secs: None,
        };
        let t = issue(&key, "c1", "user:u1", Role::Member, &req, now).unwrap();
        let verifier = Verifier::from_pem(key.public_pem.as_bytes(), "key", "c1").unwrap();
        let claims = verifier
            .check(Some(&format!("Bearer {}", t.token)), Scope::Write)
            .unwrap();
        assert_eq!(
            (claims.cluster.as_str(), claims.scope),
            ("c1", Scope::Write)
        );
        let other = Verifier::from_pem(key.public_pem.as_bytes(), "key", "c2").unwrap();
        assert!(
            other
                .check(Some(&format!("Bearer {}", t.token)), Scope::Read)
                .is_err()
        );
        let admin = DataTokenRequest {
            scope: Scope::Admin,
            ttl_secs: None,
        };
        assert!(matches!(
            issue(&key, "c1", "u", Role::Member, &admin, now),
            Err(Error::Forbidden(_))
        ));
        let forever = DataTokenRequest {
            scope: Scope::Read,
            ttl_secs: Some(MAX_TTL_SECS + 1),
        };
        assert!(matches!(
            issue(&key, "c1", "u", Role::Viewer, &forever, now),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn tokens_carry_an_audience_and_an_id_and_admin_ones_live_an_hour_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::load_or_generate(&dir.path().join("d.pem")).unwrap();
        let now = crate::db::now_ms() as u64 / 1000;
        let admin = |ttl_secs| DataTokenRequest {
            scope: Scope::Admin,
            ttl_secs,
        };
        let one = issue(&key, "c1", "u", Role::Owner, &admin(None), now).unwrap();
        let two = issue(&key, "c1", "u", Role::Owner, &admin(Some(3600)), now).unwrap();
        assert_ne!(one.id, two.id, "every token has its own id");
        let verifier = Verifier::from_pem(key.public_pem.as_bytes(), "key", "c1").unwrap();
        let claims = verifier
            .check(Some(&format!("Bearer {}", one.token)), Scope::Admin)
            .unwrap();
        assert_eq!(claims.aud, "koru-dataplane:c1");
        assert_eq!(claims.jti, one.id);
        let Err(Error::BadRequest(message)) =
            issue(&key, "c1", "u", Role::Owner, &admin(Some(3601)), now)
        else {
            panic!("an admin token of more than an hour was issued");
        };
        assert!(message.contains("at most 3600"), "{message}");
    }
}
