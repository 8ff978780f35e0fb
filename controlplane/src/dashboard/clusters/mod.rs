//! Clusters in the dashboard: the pages ([`pages`]: GET handlers rendering templates) and the form
//! actions ([`actions`], and [`changes`] for a cluster's settings and deletion: POST handlers),
//! with the forms both share. The routes are in [`super::routes`].

mod actions;
mod changes;
mod pages;

use serde::Deserialize;

use crate::clusters::Cluster;

pub use actions::{backup, create, data_token, restore};
pub use changes::{delete, resume, suspend, update};
pub use pages::{detail, list, new};

/// The path of a cluster's page: by name, or by id for a cluster named like the `new` page.
pub(super) fn cluster_href(slug: &str, c: &Cluster) -> String {
    let id = if c.name == "new" { &c.id } else { &c.name };
    format!("/orgs/{slug}/clusters/{id}")
}

/// What the create form holds.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterForm {
    name: String,
    tier: String,
    #[serde(default)]
    region: String,
    /// A global database's regions, separated by commas; empty for a single-region cluster.
    #[serde(default)]
    regions: String,
    replicas: u32,
    /// Makes a double submission create one cluster.
    #[serde(default)]
    idempotency_key: String,
}

/// The restore form, as submitted (or its defaults).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RestoreForm {
    name: String,
    #[serde(default)]
    target_time: String,
    #[serde(default)]
    backup_id: String,
    #[serde(default)]
    idempotency_key: String,
}

/// The settings form, as submitted, or the cluster's current tier, replicas and allow list.
#[derive(Debug, Clone, Deserialize)]
pub struct SettingsForm {
    tier: String,
    replicas: u32,
    /// The allow list as typed: CIDRs separated by new lines, commas or spaces. A form from a
    /// page without the field leaves the list alone.
    #[serde(default)]
    allowed_cidrs: Option<String>,
}

impl SettingsForm {
    /// The form filled with what `c` has now.
    fn of(c: &Cluster) -> SettingsForm {
        SettingsForm {
            tier: c.tier.as_str().to_string(),
            replicas: c.replicas,
            allowed_cidrs: Some(c.allowed_cidrs.join("\n")),
        }
    }

    /// The allow list typed into the form, one entry per CIDR (unchecked).
    fn cidrs(&self) -> Option<Vec<String>> {
        self.allowed_cidrs.as_ref().map(|text| {
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
    }

    /// The allow list as the form's text area shows it.
    fn cidrs_text(&self) -> &str {
        self.allowed_cidrs.as_deref().unwrap_or_default()
    }
}
