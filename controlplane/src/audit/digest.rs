//! Signed digests: every so often the head of the global chain and of each organization's chain
//! is signed with the control plane's Ed25519 key, so a chain (or an organization's export) is
//! checked against signatures instead of against our database.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use super::Link;
use super::chain::BrokenLink;
use super::store;
use crate::db::now_ms;
use crate::error::Result;

/// How often the server signs the chain heads.
pub const DIGEST_INTERVAL: Duration = Duration::from_secs(3600);
/// The scope of the global chain's digests; an organization's digests have its id as scope.
pub const GLOBAL_SCOPE: &str = "global";
/// The first line of every signed digest message.
pub const MESSAGE_TAG: &str = "koru-audit-digest/v1";

/// A signed statement "at `time`, chain `scope` had `seq` events and its head was `hash`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Digest {
    /// `global`, or the organization id.
    pub scope: String,
    /// The head's seq in that chain.
    pub seq: i64,
    /// The head's hash.
    pub hash: String,
    /// When it was signed, ms since the epoch.
    pub time: i64,
    /// Which key signed it: hex SHA-256 of the raw 32-byte Ed25519 public key.
    pub key_id: String,
    /// Ed25519 signature of [`message`], standard base64.
    pub signature: String,
}

/// The exact bytes a digest's signature covers (UTF-8, `\n` after every line):
/// `koru-audit-digest/v1`, `scope=<scope>`, `seq=<seq>`, `hash=<hash>`, `time=<ms>`.
pub fn message(scope: &str, seq: i64, hash: &str, time: i64) -> String {
    format!("{MESSAGE_TAG}\nscope={scope}\nseq={seq}\nhash={hash}\ntime={time}\n")
}

/// The id of a public key: hex SHA-256 of its 32 raw bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Signs the head `link` of chain `scope`, now.
pub fn sign(key: &SigningKey, scope: &str, link: &Link, time: i64) -> Digest {
    let signature = key.sign(message(scope, link.seq, &link.hash, time).as_bytes());
    Digest {
        scope: scope.to_string(),
        seq: link.seq,
        hash: link.hash.clone(),
        time,
        key_id: key_id(&key.verifying_key()),
        signature: BASE64.encode(signature.to_bytes()),
    }
}

/// The public keys whose signatures are accepted.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(Vec<(String, VerifyingKey)>);

impl TrustedKeys {
    /// Trusts exactly `keys`.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> TrustedKeys {
        TrustedKeys(keys.into_iter().map(|k| (key_id(&k), k)).collect())
    }

    /// Reads a key from PEM: an SPKI public key, or a PKCS#8 private key (its public half).
    pub fn parse_pem(pem: &str) -> std::result::Result<VerifyingKey, String> {
        VerifyingKey::from_public_key_pem(pem)
            .or_else(|_| SigningKey::from_pkcs8_pem(pem).map(|k| k.verifying_key()))
            .map_err(|_| {
                "not an Ed25519 public key (SPKI PEM) or private key (PKCS#8 PEM)".to_string()
            })
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks `digest`'s signature; says why it fails.
    pub fn check(&self, digest: &Digest) -> std::result::Result<(), String> {
        let key = self
            .0
            .iter()
            .find(|(id, _)| *id == digest.key_id)
            .map(|(_, k)| k)
            .ok_or_else(|| {
                format!(
                    "signed by key {}, which is not a trusted audit key",
                    digest.key_id
                )
            })?;
        let bytes = BASE64
            .decode(&digest.signature)
            .map_err(|_| "the signature is not base64".to_string())?;
        let signature = Signature::from_slice(&bytes)
            .map_err(|_| "the signature is not 64 bytes".to_string())?;
        key.verify_strict(
            message(&digest.scope, digest.seq, &digest.hash, digest.time).as_bytes(),
            &signature,
        )
        .map_err(|_| {
            format!(
                "the signature does not verify with key {}: the digest was altered",
                digest.key_id
            )
        })
    }
}

/// Checks a chain's digests while its links are walked in order: each digest must name a link
/// that exists, with that link's hash, and carry a valid signature. No I/O.
#[derive(Debug)]
pub struct DigestChecker {
    digests: Vec<Digest>,
    next: usize,
    keys: Option<TrustedKeys>,
    checked: u64,
    last_signed: i64,
}

impl DigestChecker {
    /// Checks `digests` (any order); signatures only when `keys` is given.
    pub fn new(mut digests: Vec<Digest>, keys: Option<TrustedKeys>) -> DigestChecker {
        digests.sort_by_key(|d| d.seq);
        DigestChecker {
            digests,
            next: 0,
            keys,
            checked: 0,
            last_signed: 0,
        }
    }

    /// Skips digests before `seq` (a chain checked from the middle cannot confirm them).
    pub fn skip_before(&mut self, seq: i64) {
        while self.next < self.digests.len() && self.digests[self.next].seq < seq {
            self.next += 1;
        }
    }

    /// Checks the digests of link `seq` (already verified by the chain walk).
    pub fn on_link(
        &mut self,
        seq: i64,
        hash: &str,
        event_id: &str,
    ) -> std::result::Result<(), BrokenLink> {
        while let Some(d) = self.digests.get(self.next) {
            if d.seq > seq {
                break;
            }
            let broken = |reason: String| BrokenLink {
                seq: d.seq,
                event_id: (d.seq == seq).then(|| event_id.to_string()),
                reason,
            };
            if d.seq < seq {
                return Err(broken(format!(
                    "a digest names seq {}, which is not in the chain",
                    d.seq
                )));
            }
            if d.hash != hash {
                return Err(broken(format!(
                    "the digest signed at {} says the hash here is {}, but the chain has {hash}: events up to here were rewritten",
                    d.time, d.hash
                )));
            }
            if let Some(keys) = &self.keys {
                keys.check(d)
                    .map_err(|why| broken(format!("digest signed at {}: {why}", d.time)))?;
            }
            self.checked += 1;
            self.last_signed = seq;
            self.next += 1;
        }
        Ok(())
    }

    /// After the last link (`head_seq`): a digest beyond it means events were deleted.
    pub fn finish(&self, head_seq: i64) -> std::result::Result<(), BrokenLink> {
        match self.digests.get(self.next) {
            Some(d) => Err(BrokenLink {
                seq: d.seq,
                event_id: None,
                reason: format!(
                    "a digest signed at {} covers seq {}, but the chain ends at seq {head_seq}: events were deleted",
                    d.time, d.seq
                ),
            }),
            None => Ok(()),
        }
    }

    /// Digests that matched.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The seq of the newest matching digest (0 when none).
    pub fn last_signed(&self) -> i64 {
        self.last_signed
    }

    /// Whether signatures were checked.
    pub fn signatures_checked(&self) -> bool {
        self.keys.is_some()
    }
}

fn digest(row: &sqlx::any::AnyRow) -> Result<Digest> {
    Ok(Digest {
        scope: row.try_get("scope")?,
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
        time: row.try_get("created_at")?,
        key_id: row.try_get("key_id")?,
        signature: row.try_get("signature")?,
    })
}

/// Stores a signed digest of head `link` of chain `scope`, unless that head has one already
/// (replicas signing the same head agree; the first one stays).
pub async fn sign_head(db: &AnyPool, key: &SigningKey, scope: &str, link: &Link) -> Result<()> {
    let d = sign(key, scope, link, now_ms());
    sqlx::query(
        "INSERT INTO audit_digests (scope, seq, hash, created_at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (scope, seq) DO NOTHING",
    )
    .bind(&d.scope)
    .bind(d.seq)
    .bind(&d.hash)
    .bind(d.time)
    .bind(&d.key_id)
    .bind(&d.signature)
    .execute(db)
    .await?;
    Ok(())
}

/// Signs every chain head that has no digest yet; returns how many it signed.
pub async fn sign_heads(db: &AnyPool, key: &SigningKey) -> Result<usize> {
    let mut signed = 0;
    if let Some(head) = store::global_head(db).await? {
        let exists =
            sqlx::query("SELECT 1 AS one FROM audit_digests WHERE scope = $1 AND seq = $2")
                .bind(GLOBAL_SCOPE)
                .bind(head.seq)
                .fetch_optional(db)
                .await?
                .is_some();
        if !exists {
            sign_head(db, key, GLOBAL_SCOPE, &head).await?;
            signed += 1;
        }
    }
    for (org_id, head) in store::unsigned_org_heads(db).await? {
        sign_head(db, key, &org_id, &head).await?;
        signed += 1;
    }
    Ok(signed)
}

/// The digests of chain `scope` with seq in `from..=to`, oldest first.
pub async fn list(db: &AnyPool, scope: &str, from: i64, to: i64) -> Result<Vec<Digest>> {
    let rows = sqlx::query(
        "SELECT scope, seq, hash, created_at, key_id, signature FROM audit_digests \
         WHERE scope = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
    )
    .bind(scope)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    rows.iter().map(digest).collect()
}

/// Signs the chain heads every `every` until the process ends. Errors are logged and retried at
/// the next tick; several replicas may run this at once.
pub fn spawn_periodic(
    db: AnyPool,
    key: SigningKey,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match sign_heads(&db, &key).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(signed = n, "signed audit chain heads"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot sign the audit chain heads; retrying at the next interval")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn link(seq: i64) -> Link {
        Link {
            seq,
            prev_hash: "p".into(),
            hash: format!("h{seq}"),
        }
    }

    #[test]
    fn signatures_verify_only_unaltered_and_with_a_trusted_key() {
        let d = sign(&key(1), "org-1", &link(3), 42);
        let trusted = TrustedKeys::new([key(1).verifying_key()]);
        assert_eq!(trusted.check(&d), Ok(()));
        let mut altered = d.clone();
        altered.seq = 4;
        assert!(trusted.check(&altered).unwrap_err().contains("altered"));
        let mut moved = d.clone();
        moved.scope = "org-2".into();
        assert!(
            trusted.check(&moved).is_err(),
            "a digest cannot be replayed for another organization"
        );
        let other = TrustedKeys::new([key(2).verifying_key()]);
        assert!(other.check(&d).unwrap_err().contains("not a trusted"));
    }

    #[test]
    fn the_checker_matches_digests_to_links() {
        let k = key(1);
        let keys = Some(TrustedKeys::new([k.verifying_key()]));
        let digests = vec![sign(&k, "s", &link(2), 1), sign(&k, "s", &link(4), 2)];
        let mut c = DigestChecker::new(digests.clone(), keys.clone());
        for seq in 1..=5 {
            c.on_link(seq, &format!("h{seq}"), "e").unwrap();
        }
        assert_eq!((c.checked(), c.last_signed()), (2, 4));
        assert_eq!(c.finish(5), Ok(()));

        // A rewritten chain no longer matches its digest.
        let mut c = DigestChecker::new(digests.clone(), keys.clone());
        c.on_link(1, "h1", "e1").unwrap();
        let broken = c.on_link(2, "rewritten", "e2").unwrap_err();
        assert_eq!((broken.seq, broken.event_id.as_deref()), (2, Some("e2")));

        // A truncated chain leaves a digest behind.
        let mut c = DigestChecker::new(digests, keys);
        for seq in 1..=3 {
            c.on_link(seq, &format!("h{seq}"), "e").unwrap();
        }
        assert_eq!(c.finish(3).unwrap_err().seq, 4);
    }
}
