//! Sessions: short-lived signed access tokens (EdDSA JWTs) plus opaque refresh tokens that rotate
//! on every use; logout revokes both.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::KeyPair;
use crate::error::{Error, Result};

/// Lifetime of an access token.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
/// Lifetime of a refresh token.
pub const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;
/// The audience of session tokens, so no other token signed by us passes as one.
pub const AUDIENCE: &str = "koru-controlplane";
/// The issuer of session tokens.
pub const ISSUER: &str = "koru-controlplane";

/// Claims of a session access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The user id.
    pub sub: String,
    /// Token id, recorded on logout so the token dies before its expiry.
    pub jti: String,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// Always [`ISSUER`].
    pub iss: String,
    /// The organization a single sign-on session is scoped to (its id); absent for a password
    /// session, which works in every organization of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// Issues and checks session access tokens.
#[derive(Clone)]
pub struct Sessions {
    keys: KeyPair,
}

impl Sessions {
    /// Sessions signed with `keys`.
    pub fn new(keys: KeyPair) -> Sessions {
        Sessions { keys }
    }

    /// The key pair sessions are signed with (it also signs the audit log's digests).
    pub fn key_pair(&self) -> &KeyPair {
        &self.keys
    }

    /// A new access token for `user_id`, scoped to organization `org` when SSO opened the
    /// session, and its claims.
    pub fn issue(
        &self,
        user_id: &str,
        org: Option<&str>,
        now_secs: i64,
    ) -> Result<(String, SessionClaims)> {
        let claims = SessionClaims {
            sub: user_id.to_string(),
            jti: crate::db::new_id(),
            iat: now_secs,
            exp: now_secs + ACCESS_TTL_SECS,
            aud: AUDIENCE.into(),
            iss: ISSUER.into(),
            org: org.map(str::to_string),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.keys.encoding)
                .map_err(|e| Error::Internal(format!("signing a session token: {e}")))?;
        Ok((token, claims))
    }

    /// The claims of a valid token: EdDSA with our key, our audience and issuer, not expired.
    /// `alg: none`, other keys and other algorithms are all refused.
    pub fn verify(&self, token: &str) -> Result<SessionClaims> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<SessionClaims>(token, &self.keys.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| Error::Unauthorized(format!("invalid session token: {e}")))
    }
}

/// A new opaque secret (256 random bits, base64url) with the given prefix.
pub fn new_secret(prefix: &str) -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a secret: its SHA-256, hex. Secrets have 256 random bits, so a fast hash
/// is enough (no password stretching needed).
pub fn secret_hash(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn sessions() -> (Sessions, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyPair::load_or_generate(&dir.path().join("s.pem")).unwrap();
        (Sessions::new(keys), dir)
    }

    fn now() -> i64 {
        crate::db::now_ms() / 1000
    }

    #[test]
    fn a_token_verifies_and_names_its_user() {
        let (s, _d) = sessions();
        let (token, claims) = s.issue("u1", None, now()).unwrap();
        assert_eq!(s.verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, ACCESS_TTL_SECS);
        assert_eq!(claims.org, None);
        let (scoped, claims) = s.issue("u1", Some("o1"), now()).unwrap();
        assert_eq!(s.verify(&scoped).unwrap().org.as_deref(), Some("o1"));
        assert_eq!(claims.org.as_deref(), Some("o1"));
    }

    #[test]
    fn none_other_keys_expired_and_foreign_audiences_are_refused() {
        let (s, _d) = sessions();
        let (other, _d2) = sessions();
        let (token, claims) = s.issue("u1", None, now()).unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("{}.{payload}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(s.verify(&none).is_err(), "alg none");
        let (foreign, _) = other.issue("u1", None, now()).unwrap();
        assert!(s.verify(&foreign).is_err(), "another key");
        let (expired, _) = s.issue("u1", None, now() - 2 * ACCESS_TTL_SECS).unwrap();
        assert!(s.verify(&expired).is_err(), "expired");
        let wrong_aud = SessionClaims {
            aud: "koru-dataplane".into(),
            ..claims
        };
        let forged =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &wrong_aud, &s.keys.encoding)
                .unwrap();
        assert!(s.verify(&forged).is_err(), "wrong audience");
    }

    #[test]
    fn secrets_are_random_and_stored_as_hashes() {
        let a = new_secret("koru_");
        assert!(a.starts_with("koru_") && a.len() > 40);
        assert_ne!(a, new_secret("koru_"));
        assert_eq!(secret_hash(&a).len(), 64);
        assert_ne!(secret_hash(&a), a);
    }
}
