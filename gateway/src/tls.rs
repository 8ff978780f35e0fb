//! TLS on the public listener: a certificate resolver that re-reads the certificate and key files
//! when they change (a renewed certificate, a Kubernetes Secret's files swapped), without a
//! restart; a pair that does not load leaves the previous one in use.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsFiles;

/// How often the files are compared with what was loaded.
const RELOAD_POLL: Duration = Duration::from_secs(1);

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM holds nothing usable.
    #[error("{0}")]
    Pem(String),
}

/// The certificate in use and the bytes it was loaded from.
pub struct ReloadingCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    loaded_from: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Reads a file for TLS.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A certified key from PEM bytes.
fn certified(cert: &[u8], key: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("the certificate file is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Pem(
            "the certificate file holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| TlsError::Pem(format!("the key file holds no private key: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::Pem(format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| TlsError::Pem(format!("the key does not match the certificate: {e}")))?;
    Ok(certified)
}

impl ReloadingCert {
    /// Loads the pair; fails if it is unusable now (start-up refuses a broken pair).
    pub fn load(files: TlsFiles) -> Result<Arc<ReloadingCert>, TlsError> {
        let (cert, key) = (read(&files.cert)?, read(&files.key)?);
        let current = certified(&cert, &key)?;
        Ok(Arc::new(ReloadingCert {
            files,
            current: RwLock::new(Arc::new(current)),
            loaded_from: Mutex::new((cert, key)),
        }))
    }

    /// Loads the files again if they changed; returns whether a new pair is in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let (cert, key) = (read(&self.files.cert)?, read(&self.files.key)?);
        {
            let loaded = self.loaded_from.lock();
            if loaded.0 == cert && loaded.1 == key {
                return Ok(false);
            }
        }
        let next = certified(&cert, &key)?;
        *self.current.write() = Arc::new(next);
        *self.loaded_from.lock() = (cert, key);
        Ok(true)
    }

    /// Re-reads the files every second until the process ends.
    pub async fn watch(self: Arc<Self>) {
        let mut failing = false;
        loop {
            tokio::time::sleep(RELOAD_POLL).await;
            match self.reload() {
                Ok(true) => {
                    failing = false;
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Ok(false) => failing = false,
                Err(e) => {
                    // A Secret update writes the two files one after the other: a mismatched
                    // pair for a moment is normal; it is retried each second.
                    if !failing {
                        tracing::warn!(error = %e, "cannot reload the TLS certificate; keeping the current one");
                    }
                    failing = true;
                }
            }
        }
    }

    /// The server configuration: HTTP/2 and HTTP/1.1 by ALPN, certificates from this resolver.
    pub fn server_config(self: &Arc<Self>) -> ServerConfig {
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read()))
    }
}
