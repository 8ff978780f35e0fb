//! The JSON-lines export of an organization's audit log, and its offline check. An export is a
//! header line, the events oldest first, then the signed digests of the exported range; with the
//! control plane's public key it is verified without access to our database.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::OrgEvent;
use super::chain::{BrokenLink, ChainKind};
use super::digest::{Digest, TrustedKeys};
use super::verify::{Verification, Walk};

/// The `format` of the header line.
pub const FORMAT: &str = "koru-audit-export/v1";

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// The organization whose chain this is.
    pub org_id: String,
    /// When the export was made, ms since the epoch.
    pub exported_at: i64,
    /// The id of the key the digests are signed with.
    pub key_id: String,
    /// That key's public half (SPKI PEM). Pin it out of band; a copy here proves nothing alone.
    pub public_key_pem: String,
    /// Whether filters left events out (a filtered export is not one contiguous chain).
    pub filtered: bool,
}

/// One line of an export, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ExportLine {
    /// The header, first.
    Header(ExportHeader),
    /// An event of the organization's chain.
    Event(OrgEvent),
    /// A signed digest of the organization's chain.
    Digest(Digest),
}

/// Why an export could not be checked at all (as opposed to a broken chain).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A line is not valid.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The first line is not a header of a known format.
    #[error("the export has no `{FORMAT}` header line")]
    NoHeader,
    /// No key to check signatures with.
    #[error("the public key: {0}")]
    Key(String),
}

/// The result of checking an export.
#[derive(Debug, Clone)]
pub struct ExportVerification {
    /// The organization.
    pub org_id: String,
    /// Whether the signatures were checked with a pinned key (or only with the export's own).
    pub key_pinned: bool,
    /// The chain check.
    pub verification: Verification,
}

/// Checks an export: the header, every event's link and hash, and every digest's hash and
/// signature. Signatures are checked with `pinned` keys when given, else with the key in the
/// header (which only shows the export is self-consistent).
pub fn verify_export(
    text: &str,
    pinned: Option<TrustedKeys>,
) -> Result<ExportVerification, ExportError> {
    let mut header = None;
    let mut events = Vec::new();
    let mut digests = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ExportLine = serde_json::from_str(line).map_err(|e| ExportError::Line {
            line: i + 1,
            reason: e.to_string(),
        })?;
        match parsed {
            ExportLine::Header(h) if header.is_none() && events.is_empty() => header = Some(h),
            ExportLine::Header(_) => {
                return Err(ExportError::Line {
                    line: i + 1,
                    reason: "a second header".into(),
                });
            }
            ExportLine::Event(e) => events.push(e),
            ExportLine::Digest(d) => digests.push(d),
        }
    }
    let header = header
        .filter(|h| h.format == FORMAT)
        .ok_or(ExportError::NoHeader)?;
    let key_pinned = pinned.is_some();
    let keys = match pinned {
        Some(keys) => keys,
        None => TrustedKeys::new([
            TrustedKeys::parse_pem(&header.public_key_pem).map_err(ExportError::Key)?
        ]),
    };
    let digests = digests
        .into_iter()
        .filter(|d| d.scope == header.org_id)
        .collect();
    let mut walk = Walk::from_any_start(ChainKind::Org, digests, Some(keys));
    for event in &events {
        if event.record.org_id.as_deref() != Some(header.org_id.as_str()) {
            let broken = BrokenLink {
                seq: event.seq,
                event_id: Some(event.record.id.clone()),
                reason: format!(
                    "the event belongs to organization {:?}, not {}",
                    event.record.org_id, header.org_id
                ),
            };
            return Ok(ExportVerification {
                org_id: header.org_id,
                key_pinned,
                verification: walk.fail(broken),
            });
        }
        if let Err(broken) = walk.push(&event.link(), &event.record) {
            return Ok(ExportVerification {
                org_id: header.org_id,
                key_pinned,
                verification: walk.fail(broken),
            });
        }
    }
    Ok(ExportVerification {
        org_id: header.org_id,
        key_pinned,
        verification: walk.finish(),
    })
}
