//! Multi-region: this cluster's region, its peer regions, and the streams that apply each
//! peer's writes here (see `dataplane/REGIONS.md`).

use std::path::PathBuf;

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
