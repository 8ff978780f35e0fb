//! Namespace policies: `multi_master` (any region writes) or `home_region` (one region owns the
//! namespace's writes), stored in `_koru_region_policy` and replicated like data.

use serde::{Deserialize, Serialize};

use super::{POLICY_NS, RegionConfig};
use crate::Store;

/// Who may write a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every region takes writes; conflicts resolve by merge or last writer.
    #[default]
    MultiMaster,
    /// Only `home` takes writes.
    HomeRegion,
}

/// A namespace's policy (`PUT /admin/v1/namespaces/{ns}/policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Policy {
    /// The mode.
    pub mode: Mode,
    /// The home region, for `home_region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
}

impl Policy {
    /// Checks the shape: `home_region` needs a valid `home`, `multi_master` takes none.
    pub fn validate(&self) -> Result<(), String> {
        match (self.mode, &self.home) {
            (Mode::HomeRegion, Some(h)) => super::check_name(h),
            (Mode::HomeRegion, None) => Err("home_region needs \"home\"".into()),
            (Mode::MultiMaster, Some(_)) => Err("multi_master takes no \"home\"".into()),
            (Mode::MultiMaster, None) => Ok(()),
        }
    }
}

/// The policy of `namespace` (the default when none was set).
pub fn get(store: &Store, namespace: &str) -> Policy {
    store
        .latest_raw(POLICY_NS, namespace)
        .ok()
        .flatten()
        .and_then(|(_, text)| text)
        .and_then(|text| {
            let plain = match crate::crdt::is_crdt(&text) {
                true => crate::crdt::render(&text).ok()?,
                false => text,
            };
            serde_json::from_str(&plain).ok()
        })
        .unwrap_or_default()
}

/// Where a write that this region may not take belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongRegion {
    /// The namespace's home.
    pub home: String,
    /// The home's URL, when it is one of this region's peers.
    pub endpoint: Option<String>,
}

/// Whether this region may write `namespace` under `policy`.
pub fn check_write(config: &RegionConfig, policy: &Policy) -> Result<(), WrongRegion> {
    match (policy.mode, &policy.home) {
        (Mode::HomeRegion, Some(home)) if *home != config.name => Err(WrongRegion {
            home: home.clone(),
            endpoint: config
                .peers
                .iter()
                .find(|p| p.name == *home)
                .map(|p| p.url.clone()),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Peer;

    #[test]
    fn only_the_home_region_writes_and_others_know_where_it_is() {
        let config = RegionConfig {
            name: "a".into(),
            peers: vec![Peer {
                name: "b".into(),
                url: "http://b".into(),
            }],
            token_file: None,
        };
        let home = |h: &str| Policy {
            mode: Mode::HomeRegion,
            home: Some(h.into()),
        };
        assert!(check_write(&config, &Policy::default()).is_ok());
        assert!(check_write(&config, &home("a")).is_ok());
        assert_eq!(
            check_write(&config, &home("b"))
                .unwrap_err()
                .endpoint
                .as_deref(),
            Some("http://b")
        );
        assert_eq!(check_write(&config, &home("c")).unwrap_err().endpoint, None);
        assert!(home("b").validate().is_ok());
        assert!(
            Policy {
                mode: Mode::HomeRegion,
                home: None
            }
            .validate()
            .is_err()
        );
    }
}
