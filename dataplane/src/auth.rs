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
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// What a token allows, each scope including the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read keys, history, queries, views, status.
    Read,
    /// Everything `read` allows plus puts, deletes, batches and view changes.
    Write,
    /// Everything, including administrative endpoints.
    Admin,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        })
    }
}

/// Claims of a data-plane token, shared with the control plane that issues them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token was issued to (user or API token id).
    pub sub: String,
    /// The cluster the token is valid for.
    pub cluster: String,
    /// The granted scope.
    pub scope: Scope,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
}

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

/// Checks tokens against one public key and one cluster id.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    cluster: String,
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
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Ok(Verifier {
            key,
            validation,
            cluster: cluster.into(),
        })
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
        if claims.scope < need {
            return Err(AuthError::Forbidden {
                have: claims.scope,
                need,
            });
        }
        Ok(claims)
    }
}

/// The token of an `Authorization` header value: `Bearer <token>`, or `Basic` auth whose
/// password is the token (the user name is ignored). Basic lets clients that only take a URL send
/// a token as `http://token:<token>@host`, the published `kdelta` CLI among them.
pub fn bearer(header: Option<&str>) -> Result<Cow<'_, str>, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let token = if let Some(t) = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
    {
        Cow::Borrowed(t.trim())
    } else if let Some(encoded) = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
    {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(AuthError::Missing)?;
        let (_, password) = decoded.split_once(':').ok_or(AuthError::Missing)?;
        Cow::Owned(password.trim().to_string())
    } else {
        return Err(AuthError::Missing);
    };
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
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
