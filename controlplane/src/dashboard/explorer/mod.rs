//! The data explorer: a cluster's data as its people see it, without leaving the dashboard.
//!
//! Every page loads an [`Explorer`]: the organization (another tenant's is "not found"), the
//! cluster, and a [`client::DataPlane`] whose token is minted for the signed-in user with the
//! scope the page needs, which their role must allow (viewers read, members write, admins
//! rewind). The pages:
//!
//! - [`keys`]: namespaces with their key counts; a namespace's keys with prefix search and pages.
//! - [`key`]: a key's value, its history as a timeline with authors, a diff of any two versions,
//!   "read as of", and edit, delete and compare-and-set.
//! - [`slider`]: a namespace as it stood at a chosen moment, with what changed since the previous
//!   stop.
//! - [`query`]: the query console, results as a table and grouped results as a chart.
//! - [`live`]: the change feed tailing in the page (server-sent events).
//! - [`rewind`]: a key or prefix put back to a moment, from a reviewed dry run (audited).

pub mod client;
mod key;
mod keys;
mod live;
mod moment;
mod query;
mod rewind;
mod slider;

use axum::Router;
use koru_dataplane_api::auth::Scope;

use crate::clusters::{self, Cluster};
use crate::dashboard::PageError;
use crate::dashboard::session::SignedIn;
use crate::dashboard::view::OrgContext;
use crate::state::AppState;

use client::{DataError, DataPlane};

/// The explorer's routes, all under `/orgs/{org}/clusters/{id}/data`; the session middleware
/// is applied by [`super::routes`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(keys::routes())
        .merge(key::routes())
        .merge(slider::routes())
        .merge(query::routes())
        .merge(live::routes())
        .merge(rewind::routes())
}

/// What every explorer page starts from.
pub struct Explorer {
    /// The organization, the user's role and the page's layout.
    pub ctx: OrgContext,
    /// The cluster whose data it shows.
    pub cluster: Cluster,
    /// `/orgs/{org}/clusters/{id}/data`, which the explorer's links start with.
    pub base: String,
    /// The cluster's own page.
    pub cluster_href: String,
    /// The explorer's tabs.
    pub nav: Nav,
}

/// The explorer's tab bar (`explorer_nav.html`).
pub struct Nav {
    /// The current tab: `data`, `query`, `live` or `rewind`.
    pub tab: &'static str,
    /// `/orgs/{org}/clusters/{id}/data`.
    pub base: String,
    /// The cluster's name and its page.
    pub cluster: String,
    /// Its page.
    pub cluster_href: String,
    /// Whether the user may rewind (admin).
    pub can_rewind: bool,
}

impl Explorer {
    /// Loads the organization `org` and its cluster `cluster_ref` (id or name) for the page
    /// `title` on `tab`. Another organization's cluster is "not found".
    pub async fn load(
        state: &AppState,
        user: &SignedIn,
        org: &str,
        cluster_ref: &str,
        title: &str,
        tab: &'static str,
    ) -> Result<Explorer, PageError> {
        let ctx = OrgContext::load(state, user, org, title, "clusters").await?;
        let cluster = clusters::get(&state.db, &ctx.access.org.id, cluster_ref).await?;
        let cluster_href = super::clusters::cluster_href(ctx.slug(), &cluster);
        let base = format!("{cluster_href}/data");
        let nav = Nav {
            tab,
            base: base.clone(),
            cluster: cluster.name.clone(),
            cluster_href: cluster_href.clone(),
            can_rewind: ctx.access.role >= crate::auth::Role::Admin,
        };
        Ok(Explorer {
            ctx,
            cluster,
            base,
            cluster_href,
            nav,
        })
    }

    /// A connection to the cluster's data plane with `scope` for the page's user.
    pub async fn data(&self, state: &AppState, scope: Scope) -> Result<DataPlane, DataError> {
        DataPlane::connect(state, &self.ctx, &self.cluster, scope).await
    }

    /// The widest scope the user's role allows (what the page shows them they may do).
    pub fn max_scope(&self) -> Scope {
        crate::data_tokens::max_scope(self.ctx.access.role)
    }
}

/// How an author recorded by the data plane reads on a page: an email as it is, `token:<name>`
/// as "API token <name>", nothing as "unknown" (writes made without auth and without
/// `X-Koru-Author`, and every write of a log from before authors were recorded).
pub fn author_label(author: Option<&str>) -> String {
    match author {
        None | Some("") => "unknown".into(),
        Some(a) => match a.strip_prefix("token:") {
            Some(name) => format!("API token {name}"),
            None if a == crate::backups::SUBJECT => "KoruDelta Cloud".into(),
            None => a.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_read_as_people() {
        assert_eq!(author_label(Some("ada@example.com")), "ada@example.com");
        assert_eq!(author_label(Some("token:deploy")), "API token deploy");
        assert_eq!(author_label(None), "unknown");
        assert_eq!(author_label(Some("")), "unknown");
    }
}
