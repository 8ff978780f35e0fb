//! Data-plane tokens: JWTs the control plane signs (EdDSA, its data-plane key) and every cluster
//! verifies with the public half, naming the cluster, a scope and an expiry.

use jsonwebtoken::{Algorithm, Header};
use koru_dataplane::auth::{Claims, Scope};
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
    /// Lifetime in seconds (60 to 30 days); one hour when absent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A signed data-plane token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataToken {
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
    let claims = Claims {
        sub: subject.to_string(),
        cluster: cluster_id.to_string(),
        scope: req.scope,
        exp: now_secs + ttl,
        iat: now_secs,
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key.encoding)
        .map_err(|e| Error::Internal(format!("signing a data-plane token: {e}")))?;
    Ok(DataToken {
        token,
        expires_at: claims.exp,
        scope: req.scope,
    })
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
}
