//! Data-plane tokens end to end with the local provisioner's real `koru-dataplane` processes and
//! the control plane served on a real socket (the data planes poll it): tokens are listed and
//! revoked through the API and a revoked token gets 401 within the poll interval; admin tokens
//! live an hour at most; each cluster has its own signing key, so a token for another
//! organization's `orders` (even one claiming that cluster's id) is refused. On SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{Api, backends, http};
use jsonwebtoken::{Algorithm, Header};
use koru_dataplane_api::auth::{Claims, Scope};
use serde_json::{Value, json};

/// Serves the API on a loopback port (the data planes fetch their revocation lists there) and
/// makes it the control plane's URL.
async fn serve(api: &mut Api) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    api.state.public_url = format!("http://{}", listener.local_addr().unwrap());
    let app = koru_controlplane::http::app(api.state.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    Served(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

/// The served API. Its copy of the state keeps the provisioner supervising, which would restart
/// the data planes the `Api` kills when dropped (and leave them running after the test), so it
/// is stopped first.
struct Served(tokio::task::JoinHandle<()>);

impl Served {
    /// Stops the server and waits until its copy of the state is gone.
    async fn stop(self) {
        self.0.abort();
        let _ = self.0.await;
    }
}

/// Creates the cluster `orders` of `org` and waits until it runs; returns (id, endpoint).
async fn orders(api: &Api, session: &str, org: &str) -> (String, String) {
    let clusters = format!("/api/v1/orgs/{org}/clusters");
    let (status, created) = api
        .call(
            "POST",
            &clusters,
            Some(session),
            Some(json!({"name": "orders"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "[{}] {created}", api.backend);
    let op = api
        .wait_operation(session, created["operation"]["id"].as_str().unwrap())
        .await;
    assert_eq!(op["status"], "succeeded", "[{}] {op}", api.backend);
    let (_, cluster) = api
        .call("GET", &format!("{clusters}/orders"), Some(session), None)
        .await;
    (
        cluster["id"].as_str().unwrap().to_string(),
        cluster["endpoint"].as_str().unwrap().to_string(),
    )
}

async fn token(api: &Api, session: &str, org: &str, id: &str, body: Value) -> (StatusCode, Value) {
    api.call(
        "POST",
        &format!("/api/v1/orgs/{org}/clusters/{id}/data-tokens"),
        Some(session),
        Some(body),
    )
    .await
}

/// The status of a write to `endpoint` with `token`.
async fn put(endpoint: &str, token: &str) -> u16 {
    http()
        .put(format!("{endpoint}/api/v1/shop/cart-1"))
        .bearer_auth(token)
        .json(&json!({"value": 1}))
        .send()
        .await
        .expect("the data plane answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_revoked_token_is_refused_within_the_poll_interval_and_others_keep_working() {
    for backend in backends().await {
        let mut api = Api::new(&backend).await;
        let served = serve(&mut api).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("rev@tokens.example", "Revokers").await;
        let (id, endpoint) = orders(&api, &owner, &org).await;
        let (status, doomed) = token(&api, &owner, &org, &id, json!({"scope": "write"})).await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {doomed}");
        let (_, kept) = token(&api, &owner, &org, &id, json!({"scope": "write"})).await;
        let (doomed_token, kept_token) = (
            doomed["token"].as_str().unwrap(),
            kept["token"].as_str().unwrap(),
        );
        assert_eq!(
            put(&endpoint, doomed_token).await,
            200,
            "[{b}] before revoking"
        );

        // Listed by id, then revoked (audited like every change).
        let tokens = format!("/api/v1/orgs/{org}/clusters/{id}/data-tokens");
        let (status, listed) = api.call("GET", &tokens, Some(&owner), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {listed}");
        let doomed_id = doomed["id"].as_str().unwrap();
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == doomed_id && t["revoked_at"].is_null()),
            "[{b}] {listed}"
        );
        let (status, revoked) = api
            .call(
                "DELETE",
                &format!("{tokens}/{doomed_id}"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {revoked}");
        assert!(revoked["revoked_at"].is_u64(), "[{b}] {revoked}");
        let (status, _) = api
            .call(
                "DELETE",
                &format!("{tokens}/no-such-token"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, audit) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/audit"),
                Some(&owner),
                None,
            )
            .await;
        assert!(
            audit.to_string().contains(doomed_id),
            "[{b}] the revocation is in the audit log: {audit}"
        );

        // The data plane polls every 5 s: refused well within 15 s, the other token unharmed.
        let started = Instant::now();
        loop {
            let status = put(&endpoint, doomed_token).await;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "[{b}] the revoked token still works after 15 s"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(
            put(&endpoint, kept_token).await,
            200,
            "[{b}] the other token"
        );

        // The list the data plane polls is public, signed and names only revoked ids.
        let list = http()
            .get(format!(
                "{}/api/v1/clusters/{id}/revocations",
                api.state.public_url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(list.status().as_u16(), 200);
        let list = list.text().await.unwrap();
        assert_eq!(list.split('.').count(), 3, "a JWT: {list}");
        let unknown = http()
            .get(format!(
                "{}/api/v1/clusters/nope/revocations",
                api.state.public_url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status().as_u16(), 404);
        served.stop().await;
    }
}

#[tokio::test]
async fn admin_tokens_live_an_hour_at_most() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("ttl@tokens.example", "Hourly").await;
        let (id, endpoint) = orders(&api, &owner, &org).await;
        let (status, body) = token(
            &api,
            &owner,
            &org,
            &id,
            json!({"scope": "admin", "ttl_secs": 3601}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("at most 3600"), "[{b}] {message}");
        let (status, body) = token(
            &api,
            &owner,
            &org,
            &id,
            json!({"scope": "admin", "ttl_secs": 3600}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {body}");
        assert_eq!(put(&endpoint, body["token"].as_str().unwrap()).await, 200);
        // Write tokens may still live long.
        let (status, body) = token(
            &api,
            &owner,
            &org,
            &id,
            json!({"scope": "write", "ttl_secs": 86400}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {body}");
    }
}

#[tokio::test]
async fn one_organizations_token_never_opens_anothers_cluster_of_the_same_name() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (ann, org_a, _) = api.signup("ann@a.example", "Org A").await;
        let (bob, org_b, _) = api.signup("bob@b.example", "Org B").await;
        let (id_a, endpoint_a) = orders(&api, &ann, &org_a).await;
        let (id_b, endpoint_b) = orders(&api, &bob, &org_b).await;
        let (_, a) = token(&api, &ann, &org_a, &id_a, json!({"scope": "write"})).await;
        let a = a["token"].as_str().unwrap();
        assert_eq!(put(&endpoint_a, a).await, 200, "[{b}] A's token on A");
        assert_eq!(put(&endpoint_b, a).await, 401, "[{b}] A's token on B");
        // Nor through the API: org A cannot address B's cluster.
        let (status, _) = token(&api, &ann, &org_a, &id_b, json!({"scope": "read"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}]");

        // Even a token naming B's cluster (claim and audience), as a mis-binding bug would sign
        // it, is refused: A's tokens are signed with A's own key, which B does not trust.
        let key_a = koru_controlplane::cluster_keys::find(&api.state.db, &id_a)
            .await
            .unwrap()
            .expect("cluster A has its own key");
        let key_b = koru_controlplane::cluster_keys::find(&api.state.db, &id_b)
            .await
            .unwrap()
            .expect("cluster B has its own key");
        assert_ne!(key_a.public_pem, key_b.public_pem);
        assert_ne!(key_a.public_pem, api.state.dataplane_key.public_pem);
        let now = u64::try_from(koru_controlplane::db::now_ms() / 1000).unwrap();
        let forged = |key: &koru_controlplane::auth::keys::KeyPair| {
            let claims = Claims {
                sub: "user:attacker".into(),
                cluster: id_b.clone(),
                scope: Scope::Write,
                exp: now + 600,
                iat: now,
                aud: koru_dataplane_api::auth::audience(&id_b),
                jti: "forged".into(),
            };
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key.encoding).unwrap()
        };
        assert_eq!(
            put(&endpoint_b, &forged(&key_a)).await,
            401,
            "[{b}] A's key, B's claims"
        );
        assert_eq!(
            put(&endpoint_b, &forged(&api.state.dataplane_key)).await,
            401,
            "[{b}] the global key no longer opens a cluster that has its own"
        );
        assert_eq!(
            put(&endpoint_b, &forged(&key_b)).await,
            200,
            "[{b}] B's key does"
        );
    }
}
