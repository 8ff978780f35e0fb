//! A data-token signing key of a test's own, for clusters applied with kubectl (the control plane
//! signs the tokens of the clusters it provisions).

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use koru_dataplane_api::auth::{Claims, Scope, audience};

/// An Ed25519 key pair: the public half goes into the cluster's Secret, the private half signs.
pub struct TokenKey {
    /// The public half, PEM (SubjectPublicKeyInfo).
    pub public_pem: String,
    /// The private half, PKCS#8 PEM, as the control plane reads its signing keys.
    pub private_pem: String,
    signer: EncodingKey,
}

impl TokenKey {
    /// A key derived from `seed` (tests need no secrecy, only a private half of their own).
    pub fn new(seed: u8) -> TokenKey {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encoding the public key");
        let private = signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encoding the private key");
        TokenKey {
            public_pem,
            signer: EncodingKey::from_ed_pem(private.as_bytes()).expect("reading the private key"),
            private_pem: private.to_string(),
        }
    }

    /// A Secret `name` holding the public half as `public.pem`, for `spec.auth.publicKeySecret`.
    pub fn secret(&self, name: &str) -> String {
        let indented: String = self
            .public_pem
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  public.pem: |\n{indented}"
        )
    }

    /// A token for `cluster` (its cluster id) with `scope`, valid for an hour.
    pub fn token(&self, cluster: &str, scope: Scope) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs();
        let claims = Claims {
            sub: "e2e".into(),
            cluster: cluster.into(),
            scope,
            exp: now + 3600,
            iat: now,
            aud: audience(cluster),
            jti: format!("e2e-{now}"),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.signer)
            .expect("signing a token")
    }
}
