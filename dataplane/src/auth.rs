//! Data-plane tokens: the JWT claims the control plane issues and how the server checks them.
//!
//! The control plane signs tokens with its private key; the server gets only the public key
//! (EdDSA or RS256, PEM), so a stolen data-plane pod cannot mint tokens.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
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
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token: send Authorization: Bearer <token>")]
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
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
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
