//! The data explorer over the real router and database and a real data plane (a cluster of the
//! local provisioner): every page and action, roles, another tenant's cluster, CAS conflicts and
//! bad input. [`Explored`] is a signed-in user with a running cluster.

mod key;
mod keys;
mod live;
mod query;
mod rewind;
mod slider;

use koru_controlplane::auth::Role;
use koru_controlplane::data_tokens::{self, DataTokenRequest};
use koru_dataplane_api::auth::Scope;
use serde_json::Value;

use axum::http::StatusCode;

use super::Browser;
use super::cluster_forms::{cluster_id, running_cluster};
use super::common::Api;

/// A signed-in owner of organization `slug` with the running free cluster `orders`.
pub(super) struct Explored<'a> {
    /// The owner's browser.
    pub browser: Browser<'a>,
    /// The organization's slug.
    pub slug: String,
    /// The cluster's id.
    pub id: String,
    /// `/orgs/{slug}/clusters/orders/data`.
    pub base: String,
    /// The cluster's data plane.
    pub endpoint: String,
}

/// Signs `email` up with a pro organization `org` and creates the running cluster `orders`.
pub(super) async fn explored<'a>(api: &'a Api, email: &str, org: &str) -> Explored<'a> {
    let mut browser = Browser::new(api);
    let slug = browser.sign_up(email, org, "pro").await;
    let id = running_cluster(api, &mut browser, &slug, "orders").await;
    assert_eq!(cluster_id(api, "orders").await, id);
    let cluster = koru_controlplane::clusters::get(&api.state.db, &org_id(api, &slug).await, &id)
        .await
        .unwrap();
    Explored {
        browser,
        base: format!("/orgs/{slug}/clusters/orders/data"),
        slug,
        id,
        endpoint: cluster.endpoint.unwrap(),
    }
}

/// The id of the organization `slug`.
pub(super) async fn org_id(api: &Api, slug: &str) -> String {
    sqlx::query_scalar("SELECT id FROM organizations WHERE slug = $1")
        .bind(slug)
        .fetch_one(&api.state.db)
        .await
        .unwrap()
}

impl Explored<'_> {
    /// A data-plane token of `scope` for this cluster whose writes the data plane records as
    /// `author`'s.
    pub async fn token(&self, api: &Api, author: &str, scope: Scope) -> String {
        let cluster = koru_controlplane::clusters::get(
            &api.state.db,
            &org_id(api, &self.slug).await,
            &self.id,
        )
        .await
        .unwrap();
        data_tokens::store::issue(
            &api.state,
            &cluster,
            "user:test",
            author,
            Role::Owner,
            &DataTokenRequest {
                scope,
                ttl_secs: Some(600),
            },
        )
        .await
        .unwrap()
        .token
    }

    /// `PUT /api/v1/{ns}/{key}` on the data plane as `author`; the answer's body.
    pub async fn put_as(
        &self,
        api: &Api,
        author: &str,
        ns: &str,
        key: &str,
        value: Value,
    ) -> Value {
        let token = self.token(api, author, Scope::Write).await;
        let response = reqwest::Client::new()
            .put(format!("{}/api/v1/{ns}/{key}", self.endpoint))
            .bearer_auth(token)
            .json(&serde_json::json!({ "value": value }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    }

    /// The value of `ns/key` on the data plane now, `None` when it is not found.
    pub async fn value(&self, api: &Api, ns: &str, key: &str) -> Option<Value> {
        let token = self.token(api, "test", Scope::Read).await;
        super::common::data_value(&self.endpoint, &token, ns, key).await
    }
}

/// A browser of `email`, signed up with an organization of their own and then a `role` in the
/// organization `slug` of `owner`.
pub(super) async fn joined<'a>(
    api: &'a Api,
    owner: &mut Browser<'_>,
    slug: &str,
    email: &str,
    role: &str,
) -> Browser<'a> {
    let page = owner
        .post(
            &format!("/orgs/{slug}/members"),
            &[("email", email), ("role", role)],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let link = page
        .body
        .split("id=\"invite-link\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap();
    let token = link.rsplit('/').next().unwrap().to_string();
    let mut browser = Browser::new(api);
    let own = email.split('@').next().unwrap();
    browser.sign_up(email, &format!("{own} own"), "free").await;
    let page = browser
        .post("/invitations/accept", &[("token", &token)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    browser
}
