//! Revoked data-plane tokens: the list the control plane serves for each cluster, signed with the
//! cluster's token key (so the data plane checks it with the public key it already has and needs no
//! credential to fetch it), and the poller that keeps a [`Verifier`] up to date from a URL or a file.
//!
//! A failed fetch keeps the list last applied: the data plane stays available while the control
//! plane is down, and a revoked token is refused again as soon as a fetch succeeds. A list older
//! than the one in use (by `iat`) is refused, so a replayed old list cannot un-revoke a token.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::auth::Verifier;

/// How often the list is fetched when `--revocations-interval` is not given.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest list accepted, in bytes (a list holds unexpired revocations only).
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

pub use koru_dataplane_api::revocations::{RevocationList, RevokedToken, audience};

/// The revoked token ids a verifier refuses, from the newest list applied.
#[derive(Debug, Default)]
pub struct Revoked {
    ids: HashSet<String>,
    issued_at: u64,
}

impl Revoked {
    /// Whether the token id `jti` is revoked.
    pub fn contains(&self, jti: &str) -> bool {
        self.ids.contains(jti)
    }
}

/// Where the list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationSource {
    /// Fetched with GET (`--revocations-url`).
    Url(String),
    /// Read from a file (`--revocations-file`), e.g. written by a sidecar.
    File(PathBuf),
}

/// Why a list was not applied.
#[derive(Debug, Error)]
pub enum RevocationError {
    /// It could not be fetched or read.
    #[error("cannot fetch the revocation list: {0}")]
    Fetch(String),
    /// It is not a list signed for this cluster with its key, or has expired.
    #[error("the revocation list is not valid: {0}")]
    Invalid(String),
    /// It is older than the list in use.
    #[error("the revocation list (iat {got}) is older than the one in use (iat {have})")]
    Stale {
        /// `iat` of the list in use.
        have: u64,
        /// `iat` of the refused list.
        got: u64,
    },
}

impl Verifier {
    /// Checks a signed revocation list and makes it the set of refused token ids; returns how
    /// many ids it holds.
    pub fn apply_revocations(&self, document: &str) -> Result<usize, RevocationError> {
        let list: RevocationList = self
            .decode_signed(document, &audience(self.cluster()))
            .map_err(RevocationError::Invalid)?;
        let mut revoked = self.revoked.write();
        if list.iat < revoked.issued_at {
            return Err(RevocationError::Stale {
                have: revoked.issued_at,
                got: list.iat,
            });
        }
        revoked.ids = list.revoked.into_iter().map(|t| t.jti).collect();
        revoked.issued_at = list.iat;
        Ok(revoked.ids.len())
    }
}

/// Reads the list once from `source`.
async fn fetch(
    client: &reqwest::Client,
    source: &RevocationSource,
) -> Result<String, RevocationError> {
    let bytes = match source {
        RevocationSource::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| RevocationError::Fetch(format!("{}: {e}", path.display())))?,
        RevocationSource::Url(url) => {
            let response = client
                .get(url)
                .send()
                .await
                .map_err(|e| RevocationError::Fetch(format!("{url}: {e}")))?;
            let status = response.status();
            if !status.is_success() {
                return Err(RevocationError::Fetch(format!("{url} answered {status}")));
            }
            response
                .bytes()
                .await
                .map_err(|e| RevocationError::Fetch(format!("{url}: {e}")))?
                .to_vec()
        }
    };
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(RevocationError::Fetch(format!(
            "the list is larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| RevocationError::Invalid("not text".into()))
}

/// Fetches the list from `source` now and then every `interval`, applying each good one to
/// `verifier` (and so to every clone of it); failures are logged and the previous list kept.
pub fn spawn(
    verifier: Verifier,
    source: RevocationSource,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder().timeout(FETCH_TIMEOUT).build() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the revocation list client; revocations are not polled");
                return;
            }
        };
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticks.tick().await;
            match fetch(&client, &source)
                .await
                .and_then(|doc| verifier.apply_revocations(&doc))
            {
                Ok(count) => {
                    if failing {
                        tracing::info!(revoked = count, "the revocation list is up to date again");
                    }
                    failing = false;
                    tracing::debug!(revoked = count, "applied the revocation list");
                }
                // Logged once per outage, not every few seconds.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot update the revoked tokens; keeping the last list");
                }
                Err(e) => tracing::debug!(error = %e, "still cannot update the revoked tokens"),
            }
        }
    })
}
