//! The control plane's Ed25519 signing keys: one for session tokens, one for data-plane tokens
//! (whose public half every cluster gets). Loaded from PEM files, or generated into the data
//! directory on first start in `dev` mode.

use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{DecodingKey, EncodingKey};

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[error("signing key {path}: {reason}")]
pub struct KeyError {
    /// The key file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// An Ed25519 key pair ready for jsonwebtoken.
#[derive(Clone)]
pub struct KeyPair {
    /// Signs tokens.
    pub encoding: EncodingKey,
    /// Verifies tokens.
    pub decoding: DecodingKey,
    /// The public half as PEM (SPKI), to hand to the data plane.
    pub public_pem: String,
    /// The private key itself, for signing raw bytes (the audit log's digests).
    pub signing: SigningKey,
}

impl KeyPair {
    /// Reads a PKCS#8 PEM private key.
    pub fn load(path: &Path) -> Result<KeyPair, KeyError> {
        let error = |reason: String| KeyError {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| error(format!("not an Ed25519 PKCS#8 PEM private key: {e}")))?;
        Self::from_signing_key(&key).map_err(error)
    }

    /// Reads the key at `path`, or generates one there (mode 0600) when the file is missing.
    pub fn load_or_generate(path: &Path) -> Result<KeyPair, KeyError> {
        if path.exists() {
            return Self::load(path);
        }
        let error = |reason: String| KeyError {
            path: path.display().to_string(),
            reason,
        };
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| error(e.to_string()))?;
        write_private(path, pem.as_bytes()).map_err(|e| error(e.to_string()))?;
        Self::from_signing_key(&key).map_err(error)
    }

    /// A new random key pair (a cluster's token key).
    pub fn generate() -> Result<KeyPair, String> {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        Self::from_signing_key(&SigningKey::from_bytes(&seed))
    }

    /// A key pair from a PKCS#8 PEM private key held elsewhere (the database).
    pub fn from_private_pem(pem: &str) -> Result<KeyPair, String> {
        let key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| format!("not an Ed25519 PKCS#8 PEM private key: {e}"))?;
        Self::from_signing_key(&key)
    }

    /// The private key as PKCS#8 PEM, for storing it.
    pub fn private_pem(&self) -> Result<String, String> {
        self.signing
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| e.to_string())
    }

    fn from_signing_key(key: &SigningKey) -> Result<KeyPair, String> {
        let private = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        let public_pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        Ok(KeyPair {
            encoding: EncodingKey::from_ed_pem(private.as_bytes()).map_err(|e| e.to_string())?,
            decoding: DecodingKey::from_ed_pem(public_pem.as_bytes()).map_err(|e| e.to_string())?,
            public_pem,
            signing: key.clone(),
        })
    }
}

/// Writes a secret file readable by its owner only, via a temporary file and rename.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/session.pem");
        let first = KeyPair::load_or_generate(&path).unwrap();
        let again = KeyPair::load_or_generate(&path).unwrap();
        assert_eq!(first.public_pem, again.public_pem);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "garbage").unwrap();
        let e = KeyPair::load(&path).err().unwrap();
        assert!(e.to_string().contains("not an Ed25519"), "{e}");
    }
}
