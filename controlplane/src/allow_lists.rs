//! Per-cluster IP allow lists: the CIDRs whose clients may reach a cluster through the gateway
//! (the gateway enforces them; the control plane checks, stores and hands them out).
//!
//! A list is stored normalised, as a JSON array in `clusters.allowed_cidrs`, so what the API shows,
//! what Terraform compares and what the gateway matches are the same strings.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use sqlx::{AnyPool, Row};

use crate::error::{Error, Result};

/// The most CIDRs one cluster's list may hold: enough for every office and CI range a team has,
/// small enough that the gateway's per-request check stays a short scan.
pub const MAX_ALLOWED_CIDRS: usize = 100;

/// Why an allow list was refused (each becomes a 400 naming the entry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    /// More entries than [`MAX_ALLOWED_CIDRS`].
    #[error("allowed_cidrs may hold at most {MAX_ALLOWED_CIDRS} entries, not {0}")]
    TooMany(usize),
    /// Neither a CIDR nor an address.
    #[error(
        "allowed_cidrs entry {0:?} is not an IPv4 or IPv6 CIDR such as 203.0.113.0/24 or 2001:db8::/32"
    )]
    Invalid(String),
    /// Bits set past the prefix length: probably a typo, so not silently widened or narrowed.
    #[error(
        "allowed_cidrs entry {given:?} has bits set past its prefix length; write the network {network:?}"
    )]
    HostBits {
        /// What the caller wrote.
        given: String,
        /// The network it lies in.
        network: String,
    },
    /// The same network twice (after normalising).
    #[error("allowed_cidrs lists {0:?} more than once")]
    Duplicate(String),
}

impl From<AllowListError> for Error {
    fn from(e: AllowListError) -> Error {
        Error::BadRequest(e.to_string())
    }
}

/// One entry in its normalised form: a CIDR in canonical text, a bare address as a single-host
/// network (`/32` or `/128`).
pub fn normalize_one(entry: &str) -> Result<String, AllowListError> {
    let trimmed = entry.trim();
    let net = match trimmed.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match trimmed.parse::<IpAddr>() {
            Ok(addr) => IpNet::from(addr),
            Err(_) => return Err(AllowListError::Invalid(entry.to_string())),
        },
    };
    if net.trunc() != net {
        return Err(AllowListError::HostBits {
            given: entry.to_string(),
            network: net.trunc().to_string(),
        });
    }
    Ok(net.to_string())
}

/// A whole list checked and normalised, in the caller's order (so Terraform sees what it wrote).
pub fn normalize(entries: &[String]) -> Result<Vec<String>, AllowListError> {
    if entries.len() > MAX_ALLOWED_CIDRS {
        return Err(AllowListError::TooMany(entries.len()));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let cidr = normalize_one(entry)?;
        if !seen.insert(cidr.clone()) {
            return Err(AllowListError::Duplicate(cidr));
        }
        out.push(cidr);
    }
    Ok(out)
}

/// The stored form of a normalised list.
pub fn to_column(cidrs: &[String]) -> String {
    serde_json::Value::from(cidrs.to_vec()).to_string()
}

/// A stored list; a damaged one is an internal error (only [`to_column`] writes the column).
pub fn from_column(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        Error::Internal(format!(
            "stored allowed_cidrs {text:?} is not a JSON list: {e}"
        ))
    })
}

/// Every cluster's allow list by cluster id, for the gateway's route table (clusters whose list
/// is empty are included, with an empty list: every address allowed).
pub async fn for_clusters(db: &AnyPool) -> Result<HashMap<String, Vec<String>>> {
    let rows = sqlx::query("SELECT id, allowed_cidrs FROM clusters")
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            let cidrs = from_column(&row.try_get::<String, _>("allowed_cidrs")?)?;
            Ok((id, cidrs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entries_are_normalised_in_order() {
        assert_eq!(
            normalize(&list(&[
                " 10.0.0.0/8",
                "203.0.113.7",
                "2001:DB8::/32",
                "::1",
                "0.0.0.0/0"
            ]))
            .unwrap(),
            list(&[
                "10.0.0.0/8",
                "203.0.113.7/32",
                "2001:db8::/32",
                "::1/128",
                "0.0.0.0/0"
            ])
        );
        assert_eq!(normalize(&[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0",
            "example.com",
            "10.0.0.0/8/8",
            "::g/64",
        ] {
            assert!(
                matches!(normalize_one(bad), Err(AllowListError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            normalize_one("10.1.2.3/8"),
            Err(AllowListError::HostBits {
                given: "10.1.2.3/8".into(),
                network: "10.0.0.0/8".into()
            })
        );
        let e = normalize(&list(&["10.0.0.0/8", "10.0.0.0/8 "])).unwrap_err();
        assert_eq!(e, AllowListError::Duplicate("10.0.0.0/8".into()));
        let many: Vec<String> = (0..=MAX_ALLOWED_CIDRS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert!(matches!(
            normalize(&many),
            Err(AllowListError::TooMany(101))
        ));
        let e = Error::from(AllowListError::Invalid("x".into()));
        assert!(e.to_string().contains("203.0.113.0/24"), "{e}");
    }

    #[test]
    fn the_column_round_trips() {
        let cidrs = list(&["10.0.0.0/8", "::1/128"]);
        assert_eq!(from_column(&to_column(&cidrs)).unwrap(), cidrs);
        assert_eq!(from_column("[]").unwrap(), Vec::<String>::new());
        assert!(from_column("10.0.0.0/8").is_err());
    }
}
