//! The explorer's first pages: a cluster's namespaces with their key and version counts, and a
//! namespace's live keys with prefix search and cursor paging, each linking to its key page;
//! members also get a form to create a key.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::data::{Keys, Namespaces};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::Role;
use crate::dashboard::session::SignedIn;
use crate::dashboard::view::{self, Layout};
use crate::dashboard::{PageError, PageResult, render};
use crate::state::AppState;

use super::client::{DataError, DataPlane, segment};
use super::{Explorer, Nav};

/// How many keys a page of the key list shows.
pub const KEYS_PER_PAGE: usize = 50;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/clusters/{id}/data", get(namespaces))
        .route("/orgs/{org}/clusters/{id}/data/ns/{ns}", get(keys))
}

/// A data-plane error as the page shows it: its refusal inline with its status (a bad name is
/// the data plane's 400 with its message), while a cluster that cannot be asked at all is a
/// page of its own saying so (503) and the control plane's own errors are its error pages.
pub(super) fn inline(e: DataError) -> Result<(StatusCode, String), PageError> {
    match e {
        DataError::Refused {
            status, message, ..
        } => Ok((
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            view::sentence(&message),
        )),
        DataError::Unavailable(message) => {
            Err(PageError::new(StatusCode::SERVICE_UNAVAILABLE, message))
        }
        DataError::ControlPlane(e) => Err(e.into()),
    }
}

/// The page's connection to the cluster's data plane; a cluster that cannot be asked is a page
/// saying so.
pub(super) async fn connect(
    state: &AppState,
    ex: &Explorer,
    scope: Scope,
) -> Result<DataPlane, PageError> {
    ex.data(state, scope).await.map_err(|e| match inline(e) {
        Ok((status, message)) => PageError::new(status, message),
        Err(page) => page,
    })
}

/// `GET path` read as `T` from the data plane's exact text (values stay as written).
pub(super) async fn read<T: DeserializeOwned>(dp: &DataPlane, path: &str) -> Result<T, DataError> {
    let text = dp.get_text(path).await?;
    serde_json::from_str(&text).map_err(|e| {
        tracing::warn!(error = %e, path, "an answer of a data plane the explorer cannot read");
        DataError::Unavailable("The cluster's answer could not be read; try again.".into())
    })
}

/// The path of a namespace's page in the explorer.
pub(super) fn ns_href(base: &str, ns: &str) -> String {
    format!("{base}/ns/{}", segment(ns))
}

/// The query string `?a=b&…` of `pairs` (empty values left out).
pub(super) fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

/// A namespace in the list.
struct NamespaceRow {
    name: String,
    href: String,
    keys: Option<String>,
    versions: Option<String>,
}

#[derive(Template)]
#[template(path = "explorer_namespaces.html")]
struct NamespacesPage {
    layout: Layout,
    nav: Nav,
    cluster: String,
    namespaces: Vec<NamespaceRow>,
    /// Whether the data plane gave counts (older data planes give names only).
    counted: bool,
    error: Option<String>,
    /// How to write a first key from a terminal.
    snippet: String,
    can_write: bool,
    /// Where the new-key form posts (the namespace is a field).
    new_action: String,
}

/// `GET /orgs/{org}/clusters/{id}/data`: the cluster's namespaces.
async fn namespaces(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> PageResult {
    let ex = Explorer::load(&state, &user, &org, &id, "Data", "data").await?;
    let dp = connect(&state, &ex, Scope::Read).await?;
    let (status, listed, error) =
        match read::<Namespaces>(&dp, "/api/v1/namespaces?stats=true").await {
            Ok(n) => (StatusCode::OK, Some(n), None),
            Err(e) => {
                let (status, message) = inline(e)?;
                (status, None, Some(message))
            }
        };
    let counted = listed.as_ref().is_some_and(|n| n.stats.is_some());
    let namespaces = listed
        .map(|n| {
            let stats = n.stats.unwrap_or_default();
            n.namespaces
                .into_iter()
                .map(|name| {
                    let s = stats.iter().find(|s| s.namespace == name);
                    NamespaceRow {
                        href: ns_href(&ex.base, &name),
                        keys: s.map(|s| view::number(s.keys)),
                        versions: s.map(|s| view::number(s.versions)),
                        name,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let endpoint = state
        .gateway
        .routing
        .endpoint(
            ex.ctx.slug(),
            &ex.cluster.name,
            ex.cluster.endpoint.as_deref(),
        )
        .unwrap_or_default();
    let page = NamespacesPage {
        cluster: ex.cluster.name.clone(),
        namespaces,
        counted,
        error,
        snippet: first_key_snippet(&endpoint),
        can_write: ex.ctx.access.role >= Role::Member,
        new_action: format!("{}/key", ex.base),
        nav: ex.nav,
        layout: ex.ctx.layout,
    };
    Ok(render(status, &page))
}

/// How to write a first key with curl, against `endpoint`.
fn first_key_snippet(endpoint: &str) -> String {
    let endpoint = if endpoint.is_empty() {
        "$KORU_ENDPOINT"
    } else {
        endpoint
    };
    format!(
        "curl -X PUT \"{endpoint}/api/v1/users/ada\" \\\n  \
         -H \"Authorization: Bearer $KORU_TOKEN\" \\\n  \
         -H \"Content-Type: application/json\" \\\n  \
         -d '{{\"value\": {{\"name\": \"Ada\", \"plan\": \"pro\"}}}}'"
    )
}

/// The keys page's query string.
#[derive(Debug, Default, Deserialize)]
struct KeysQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    cursor: String,
}

/// A key in the list.
struct KeyRow {
    key: String,
    href: String,
}

#[derive(Template)]
#[template(path = "explorer_keys.html")]
struct KeysPage {
    layout: Layout,
    nav: Nav,
    ns: String,
    /// This page, without query.
    href: String,
    /// The namespaces' page.
    namespaces_href: String,
    prefix: String,
    keys: Vec<KeyRow>,
    /// The next page, when more keys follow.
    next_href: Option<String>,
    /// The first page, when this is not it.
    first_href: Option<String>,
    error: Option<String>,
    can_write: bool,
    /// The key page (GET opens a key by name, POST writes one).
    key_action: String,
}

/// `GET /orgs/{org}/clusters/{id}/data/ns/{ns}?prefix=&cursor=`: a namespace's live keys.
async fn keys(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id, ns)): Path<(String, String, String)>,
    Query(q): Query<KeysQuery>,
) -> PageResult {
    let ex = Explorer::load(&state, &user, &org, &id, &ns, "data").await?;
    let dp = connect(&state, &ex, Scope::Read).await?;
    let path = format!(
        "/api/v1/{}/keys{}",
        segment(&ns),
        query(&[
            ("prefix", &q.prefix),
            ("cursor", &q.cursor),
            ("limit", &KEYS_PER_PAGE.to_string()),
        ])
    );
    let href = ns_href(&ex.base, &ns);
    let (status, listed, error) = match read::<Keys>(&dp, &path).await {
        Ok(k) => (StatusCode::OK, Some(k), None),
        Err(e) => {
            let (status, message) = inline(e)?;
            (status, None, Some(message))
        }
    };
    let key_action = format!("{href}/key");
    let (keys, next) = listed.map_or((Vec::new(), None), |k| (k.keys, k.next_cursor));
    let page = KeysPage {
        keys: keys
            .into_iter()
            .map(|key| KeyRow {
                href: format!("{key_action}{}", query(&[("key", &key)])),
                key,
            })
            .collect(),
        next_href: next
            .map(|c| format!("{href}{}", query(&[("prefix", &q.prefix), ("cursor", &c)]))),
        first_href: (!q.cursor.is_empty())
            .then(|| format!("{href}{}", query(&[("prefix", &q.prefix)]))),
        namespaces_href: ex.base.clone(),
        href,
        prefix: q.prefix,
        error,
        can_write: ex.ctx.access.role >= Role::Member,
        key_action,
        ns,
        nav: ex.nav,
        layout: ex.ctx.layout,
    };
    Ok(render(status, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_leave_empty_fields_out_and_encode_the_rest() {
        assert_eq!(query(&[("prefix", ""), ("cursor", "")]), "");
        assert_eq!(
            query(&[("key", "a b/ü&c"), ("at", "")]),
            "?key=a+b%2F%C3%BC%26c"
        );
        assert_eq!(ns_href("/d", "orders.eu"), "/d/ns/orders.eu");
        assert!(
            first_key_snippet("http://x").starts_with("curl -X PUT \"http://x/api/v1/users/ada\"")
        );
    }
}
