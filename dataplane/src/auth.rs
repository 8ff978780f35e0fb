//! Data-plane tokens: the JWT claims the control plane issues and how the server checks them,
//! plus the static admin token of `--admin-token-file`.
//!
//! The control plane signs tokens with its private key; the server gets only the public key
//! (EdDSA or RS256, PEM), so a stolen data-plane pod cannot mint tokens. The operator, which holds
//! no signing key, authenticates with the admin token instead: a random secret the server keeps
//! only as a SHA-256 digest and compares in constant time.

use std::borrow::Cow;
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

pub use koru_dataplane_api::auth::{Claims, MAX_ADMIN_TTL_SECS, Scope, audience};

/// Why a request was not let through.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header (nor Basic with a token as the password).
    #[error(
        "missing bearer token: send Authorization: Bearer <token> (or Basic auth with the token as the password, e.g. http://token:<token>@host)"
    )]
    Missing,
    /// The token is malformed, badly signed or expired.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token is for another cluster.
    #[error("token is for cluster {0:?}, not this one")]
    WrongCluster(String),
    /// The token's scope is too small.
    #[error("token scope {have} does not allow this; {need} is required")]
    Forbidden {
        /// The token's scope.
        have: Scope,
        /// The scope the request needs.
        need: Scope,
    },
}

/// Why a verification key could not be loaded.
#[derive(Debug, Error)]
#[error("cannot use {path} as a token verification key: {reason}")]
pub struct KeyError {
    /// The key file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Checks tokens against one public key and one cluster id, and against the revoked token ids
/// last learned from the control plane (shared by clones, so the poller updates every user).
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    cluster: String,
    pub(crate) revoked: std::sync::Arc<parking_lot::RwLock<crate::revocations::Revoked>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds a verifier from a PEM public key (Ed25519 or RSA) for tokens naming `cluster`.
    pub fn from_pem(pem: &[u8], path: &str, cluster: &str) -> Result<Verifier, KeyError> {
        let (key, alg) = match DecodingKey::from_ed_pem(pem) {
            Ok(key) => (key, Algorithm::EdDSA),
            Err(_) => match DecodingKey::from_rsa_pem(pem) {
                Ok(key) => (key, Algorithm::RS256),
                Err(e) => {
                    return Err(KeyError {
                        path: path.into(),
                        reason: format!("not an Ed25519 or RSA public key in PEM form ({e})"),
                    });
                }
            },
        };
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        // The audience is compared in `check_token`, after the cluster claim, so a token for
        // another cluster keeps getting its own answer (403 wrong_cluster).
        validation.validate_aud = false;
        validation.leeway = 30;
        Ok(Verifier {
            key,
            validation,
            cluster: cluster.into(),
            revoked: Default::default(),
        })
    }

    /// The cluster id tokens must name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Decodes a document other than a token signed with this verifier's key (the revocation
    /// list), whose audience must be `aud` and which must not have expired.
    pub(crate) fn decode_signed<T: serde::de::DeserializeOwned>(
        &self,
        document: &str,
        aud: &str,
    ) -> Result<T, String> {
        let mut validation = self.validation.clone();
        validation.set_audience(&[aud]);
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "aud"]);
        jsonwebtoken::decode::<T>(document.trim(), &self.key, &validation)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    /// Verifies an `Authorization` header value and checks it grants `need`.
    pub fn check(&self, header: Option<&str>, need: Scope) -> Result<Claims, AuthError> {
        self.check_token(&bearer(header)?, need)
    }

    /// Verifies a bearer token and checks it grants `need`.
    fn check_token(&self, token: &str, need: Scope) -> Result<Claims, AuthError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        if claims.cluster != self.cluster {
            return Err(AuthError::WrongCluster(claims.cluster));
        }
        if claims.aud != audience(&self.cluster) {
            return Err(AuthError::Invalid(format!(
                "the token's audience is {:?}, not {:?}",
                claims.aud,
                audience(&self.cluster)
            )));
        }
        if claims.jti.is_empty() {
            return Err(AuthError::Invalid("the token has no id (jti)".into()));
        }
        if claims.scope == Scope::Admin
            && claims.exp.saturating_sub(claims.iat) > MAX_ADMIN_TTL_SECS
        {
            return Err(AuthError::Invalid(format!(
                "admin-scope tokens may live at most {MAX_ADMIN_TTL_SECS} s (exp - iat)"
            )));
        }
        if self.revoked.read().contains(&claims.jti) {
            return Err(AuthError::Invalid("the token has been revoked".into()));
        }
        if claims.scope < need {
            return Err(AuthError::Forbidden {
                have: claims.scope,
                need,
            });
        }
        Ok(claims)
    }
}

/// The token of an `Authorization` header value (see [`koru_dataplane_api::auth::token_of`] for
/// the forms accepted).
pub fn bearer(header: Option<&str>) -> Result<Cow<'_, str>, AuthError> {
    header
        .and_then(koru_dataplane_api::auth::token_of)
        .ok_or(AuthError::Missing)
}

/// Why an admin token file could not be used.
#[derive(Debug, Error)]
#[error("cannot use {path} as the admin token file: {reason}")]
pub struct AdminTokenError {
    /// The token file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// The static admin credential of `--admin-token-file`: a request bearing the secret gets admin
/// scope. Only the secret's SHA-256 is kept; hashing the presented token first makes the constant
/// time comparison independent of both lengths.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// The shortest secret accepted, in characters (e.g. 16 random bytes in hex).
    pub const MIN_LEN: usize = 32;

    /// The token in a file's contents: the secret with surrounding whitespace (a trailing
    /// newline) removed, at least [`AdminToken::MIN_LEN`] visible ASCII characters.
    pub fn from_file_contents(contents: &[u8], path: &str) -> Result<AdminToken, AdminTokenError> {
        let refuse = |reason: String| AdminTokenError {
            path: path.into(),
            reason,
        };
        let secret = std::str::from_utf8(contents)
            .map_err(|_| refuse("the file is not text".into()))?
            .trim();
        if secret.len() < Self::MIN_LEN {
            return Err(refuse(format!(
                "the secret is shorter than {} characters (use e.g. `openssl rand -hex 32`)",
                Self::MIN_LEN
            )));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refuse(
                "the secret must be one line of visible ASCII characters".into(),
            ));
        }
        Ok(AdminToken {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the secret, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Whom a request was let in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Token auth is off: everything is allowed (development).
    Open,
    /// The admin token: admin scope.
    AdminToken,
    /// A verified data-plane token.
    Token(Claims),
}

/// The auth decision for one request: with no verifier (no `--auth-public-key`) everything is
/// allowed; otherwise the bearer token must be the admin token (admin scope, whatever `need` is)
/// or a data-plane JWT granting `need`.
pub fn authorize(
    verifier: Option<&Verifier>,
    admin: Option<&AdminToken>,
    header: Option<&str>,
    need: Scope,
) -> Result<Grant, AuthError> {
    let Some(verifier) = verifier else {
        return Ok(Grant::Open);
    };
    let token = bearer(header)?;
    if admin.is_some_and(|a| a.matches(&token)) {
        return Ok(Grant::AdminToken);
    }
    verifier.check_token(&token, need).map(Grant::Token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_as_bearer_or_as_the_basic_auth_password() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer  abc ")).unwrap(), "abc");
        // "token:abc" and ":abc" in base64: the user name is ignored.
        assert_eq!(bearer(Some("Basic dG9rZW46YWJj")).unwrap(), "abc");
        assert_eq!(bearer(Some("Basic OmFiYw==")).unwrap(), "abc");
        for bad in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Basic dG9rZW4="),
            Some("Basic dG9rZW46"),
            Some("Basic !!!"),
            Some("Digest abc"),
        ] {
            assert!(matches!(bearer(bad), Err(AuthError::Missing)), "{bad:?}");
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A verifier of an Ed25519 key whose private half no test has, so no JWT passes it.
    fn verifier() -> Verifier {
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6hEKh16q5lfR3mp54ER8Px/8gtfCvEQ6F5YtYyZO1S0=\n-----END PUBLIC KEY-----\n";
        Verifier::from_pem(pem.as_bytes(), "test.pem", "c-1").unwrap()
    }

    fn admin() -> AdminToken {
        AdminToken::from_file_contents(format!("{SECRET}\n").as_bytes(), "admin-token").unwrap()
    }

    #[test]
    fn the_admin_token_grants_admin_scope_with_token_auth_on() {
        let (v, a) = (verifier(), admin());
        let header = format!("Bearer {SECRET}");
        for need in [Scope::Read, Scope::Write, Scope::Admin] {
            assert_eq!(
                authorize(Some(&v), Some(&a), Some(&header), need),
                Ok(Grant::AdminToken)
            );
        }
        assert!(matches!(
            authorize(
                Some(&v),
                Some(&a),
                Some(&format!("Bearer {SECRET}0")),
                Scope::Read
            ),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            authorize(Some(&v), Some(&a), Some(&SECRET[1..]), Scope::Read),
            Err(AuthError::Missing)
        ));
        assert_eq!(
            authorize(Some(&v), Some(&a), None, Scope::Read),
            Err(AuthError::Missing)
        );
        assert!(
            matches!(
                authorize(Some(&v), None, Some(&header), Scope::Admin),
                Err(AuthError::Invalid(_))
            ),
            "without --admin-token-file the secret is just a malformed JWT"
        );
    }

    #[test]
    fn without_token_auth_everything_is_allowed_as_before() {
        for header in [None, Some("Bearer nonsense")] {
            assert_eq!(
                authorize(None, Some(&admin()), header, Scope::Admin),
                Ok(Grant::Open)
            );
        }
        assert_eq!(authorize(None, None, None, Scope::Write), Ok(Grant::Open));
    }

    /// A key pair for signing test tokens: (signing key, verifier for cluster `c-1`).
    fn signer() -> (jsonwebtoken::EncodingKey, Verifier) {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        (
            jsonwebtoken::EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
            Verifier::from_pem(public.as_bytes(), "test.pem", "c-1").unwrap(),
        )
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn sign(key: &jsonwebtoken::EncodingKey, claims: &impl serde::Serialize) -> String {
        let header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, claims, key).unwrap()
        )
    }

    fn claims(scope: Scope, ttl: u64) -> Claims {
        let now = now();
        Claims {
            sub: "u".into(),
            cluster: "c-1".into(),
            scope,
            exp: now + ttl,
            iat: now,
            aud: audience("c-1"),
            jti: "t-1".into(),
        }
    }

    #[test]
    fn tokens_need_the_clusters_audience_and_an_id() {
        let (key, v) = signer();
        let good = claims(Scope::Write, 600);
        assert!(v.check(Some(&sign(&key, &good)), Scope::Write).is_ok());
        let other_audience = Claims {
            aud: audience("c-2"),
            ..good.clone()
        };
        assert!(matches!(
            v.check(Some(&sign(&key, &other_audience)), Scope::Read),
            Err(AuthError::Invalid(_))
        ));
        // A token from before audiences and ids (or another issuer's) is refused.
        let old = serde_json::json!({"sub": "u", "cluster": "c-1", "scope": "write", "exp": good.exp, "iat": good.iat});
        assert!(matches!(
            v.check(Some(&sign(&key, &old)), Scope::Read),
            Err(AuthError::Invalid(_))
        ));
        let mut no_jti = serde_json::to_value(&good).unwrap();
        no_jti.as_object_mut().unwrap().remove("jti");
        assert!(matches!(
            v.check(Some(&sign(&key, &no_jti)), Scope::Read),
            Err(AuthError::Invalid(_))
        ));
        let empty_jti = Claims {
            jti: String::new(),
            ..good
        };
        assert!(matches!(
            v.check(Some(&sign(&key, &empty_jti)), Scope::Read),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn admin_tokens_live_an_hour_at_most() {
        let (key, v) = signer();
        let hour = claims(Scope::Admin, MAX_ADMIN_TTL_SECS);
        assert!(v.check(Some(&sign(&key, &hour)), Scope::Admin).is_ok());
        let longer = claims(Scope::Admin, MAX_ADMIN_TTL_SECS + 1);
        let Err(AuthError::Invalid(why)) = v.check(Some(&sign(&key, &longer)), Scope::Read) else {
            panic!("an admin token of more than an hour was accepted");
        };
        assert!(why.contains("at most 3600"), "{why}");
        // Write tokens may live longer.
        let write = claims(Scope::Write, 30 * 86_400);
        assert!(v.check(Some(&sign(&key, &write)), Scope::Write).is_ok());
    }

    #[test]
    fn revoked_tokens_are_refused_once_a_newer_signed_list_names_them() {
        use crate::revocations::{RevocationError, RevocationList, RevokedToken};
        let (key, v) = signer();
        let token = sign(&key, &claims(Scope::Read, 600));
        let bare = |doc: String| doc.trim_start_matches("Bearer ").to_string();
        let list = |iat: u64, aud: String, jtis: &[&str]| {
            bare(sign(
                &key,
                &RevocationList {
                    aud,
                    iat,
                    exp: now() + 600,
                    revoked: jtis
                        .iter()
                        .map(|j| RevokedToken {
                            jti: j.to_string(),
                            exp: now() + 600,
                        })
                        .collect(),
                },
            ))
        };
        let aud = crate::revocations::audience("c-1");
        let t = now();
        assert_eq!(
            v.apply_revocations(&list(t, aud.clone(), &["t-1"]))
                .unwrap(),
            1
        );
        // Clones share the list (the poller holds one, the router another).
        let clone = v.clone();
        assert!(matches!(
            clone.check(Some(&token), Scope::Read),
            Err(AuthError::Invalid(m)) if m.contains("revoked")
        ));
        // An older list (a replay) cannot un-revoke it; another cluster's list is not ours.
        assert!(matches!(
            v.apply_revocations(&list(t - 1, aud.clone(), &[])),
            Err(RevocationError::Stale { .. })
        ));
        assert!(matches!(
            v.apply_revocations(&list(t + 1, crate::revocations::audience("c-2"), &[])),
            Err(RevocationError::Invalid(_))
        ));
        // A token is not a list, nor is a list a token.
        assert!(v.apply_revocations(&bare(token.clone())).is_err());
        assert!(
            v.check(
                Some(&format!("Bearer {}", list(t, aud.clone(), &[]))),
                Scope::Read
            )
            .is_err()
        );
        assert!(clone.check(Some(&token), Scope::Read).is_err());
        v.apply_revocations(&list(t + 1, aud, &[])).unwrap();
        assert!(clone.check(Some(&token), Scope::Read).is_ok());
    }

    #[test]
    fn admin_token_files_must_hold_a_long_visible_secret() {
        let file = |s: &str| AdminToken::from_file_contents(s.as_bytes(), "t");
        assert!(file(&format!("  {SECRET}\r\n")).unwrap().matches(SECRET));
        let short = file("tooshort").unwrap_err().to_string();
        assert!(
            short.contains("cannot use t") && short.contains("shorter"),
            "{short}"
        );
        assert!(file(&format!("{SECRET} {SECRET}")).is_err(), "two words");
        assert!(AdminToken::from_file_contents(&[0xff; 40], "t").is_err());
        assert_eq!(format!("{:?}", admin()), "AdminToken(<redacted>)");
    }
}
