//! Multi-region: this cluster's region, its peer regions, and the streams that apply each
//! peer's writes here (see `dataplane/REGIONS.md`).

#[cfg(feature = "server")]
pub mod apply;
#[cfg(feature = "server")]
pub mod conflicts;
#[cfg(feature = "server")]
pub mod links;
#[cfg(feature = "server")]
pub mod policy;
#[cfg(feature = "server")]
pub mod session;
#[cfg(feature = "server")]
pub mod stream;

use std::path::PathBuf;

/// The internal namespace of the streams' watermarks (`watermark/<peer>`) and heartbeats.
pub const REGION_NS: &str = "_koru_region";
/// The key prefix of a watermark in [`REGION_NS`]; a record holding one was applied from a peer.
pub const WATERMARK_PREFIX: &str = "watermark/";
/// The key prefix in [`REGION_NS`] of a seeding import's progress (`import/<source region>`);
/// a record holding one was imported from a peer's snapshot, so it is not sent back either.
pub const IMPORT_PREFIX: &str = "import/";
/// The internal namespace of the conflict lists.
pub const CONFLICTS_NS: &str = "_koru_conflicts";
/// The internal namespace of the namespace policies (replicated like data).
pub const POLICY_NS: &str = "_koru_region_policy";

/// Marks a request that presented the admin token or the region token (or came to a server
/// without auth): it may read the raw, local-origin change feed.
#[derive(Debug, Clone, Copy)]
pub struct Privileged;

/// Whether a committed record was applied here from a peer region (it holds a watermark, or a
/// seeding import's progress).
#[cfg(feature = "server")]
pub fn applied_from_peer(change: &crate::store::Change) -> bool {
    change.ops.iter().any(|op| {
        op.namespace == REGION_NS
            && (op.key.starts_with(WATERMARK_PREFIX) || op.key.starts_with(IMPORT_PREFIX))
    })
}

/// Whether writes to `namespace` travel between regions: user namespaces and the policies.
pub fn replicated(namespace: &str) -> bool {
    namespace == POLICY_NS || !namespace.starts_with(crate::names::INTERNAL_PREFIX)
}

/// The region a cluster is in when `--region` is not given.
pub const DEFAULT_REGION: &str = "local";

/// A peer region this one streams from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its region name.
    pub name: String,
    /// Its API's base URL, e.g. `https://eu-west.example.com`.
    pub url: String,
}

/// `--region`, `--region-peer` and `--region-token-file`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionConfig {
    /// This region's name.
    pub name: String,
    /// The regions whose writes are applied here.
    pub peers: Vec<Peer>,
    /// The bearer token presented to the peers, if any.
    pub token_file: Option<PathBuf>,
}

/// A region name or peer that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RegionConfigError(String);

impl RegionConfig {
    /// Validates the flags: names of 1–32 lowercase letters, digits and `-`; `NAME=URL` peers
    /// with http(s) URLs, none named like this region, none twice.
    pub fn parse(
        name: &str,
        peers: &[String],
        token_file: Option<PathBuf>,
    ) -> Result<Self, RegionConfigError> {
        check_name(name).map_err(|e| RegionConfigError(format!("--region: {e}")))?;
        let mut parsed: Vec<Peer> = Vec::new();
        for p in peers {
            let (peer, url) = p
                .split_once('=')
                .ok_or_else(|| RegionConfigError(format!("--region-peer {p:?} is not NAME=URL")))?;
            check_name(peer).map_err(|e| RegionConfigError(format!("--region-peer: {e}")))?;
            if peer == name {
                return Err(RegionConfigError(format!(
                    "--region-peer {peer:?} names this region"
                )));
            }
            if parsed.iter().any(|q| q.name == peer) {
                return Err(RegionConfigError(format!(
                    "--region-peer {peer:?} is given twice"
                )));
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(RegionConfigError(format!(
                    "--region-peer {peer}: {url:?} is not an http(s) URL"
                )));
            }
            parsed.push(Peer {
                name: peer.to_owned(),
                url: url.trim_end_matches('/').to_owned(),
            });
        }
        Ok(RegionConfig {
            name: name.to_owned(),
            peers: parsed,
            token_file,
        })
    }
}

/// Whether `name` can name a region.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a region name (1-32 lowercase letters, digits and '-')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_are_refused_with_the_flag_named() {
        let c =
            RegionConfig::parse("us-east", &["eu-west=http://127.0.0.1:1/".into()], None).unwrap();
        assert_eq!(c.peers[0].url, "http://127.0.0.1:1");
        for bad in ["eu-west", "US=http://x", "us-east=http://x", "eu=ftp://x"] {
            let e = RegionConfig::parse("us-east", &[bad.into()], None).unwrap_err();
            assert!(e.to_string().contains("--region-peer"), "{bad}: {e}");
        }
        assert!(RegionConfig::parse("", &[], None).is_err());
    }
}
