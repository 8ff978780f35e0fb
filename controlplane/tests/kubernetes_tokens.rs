//! Data tokens on Kubernetes, end to end: a token issued through the control plane's API is
//! accepted by the real `koru-dataplane` binary configured exactly as the operator configures a
//! cluster's pods (the ConfigMap its `desired()` renders from the KoruCluster the Kubernetes
//! provisioner wrote to the real API server, and the public key from the token Secret there), and
//! refused by another organization's cluster of the same name.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::sync::Arc;

use base64::Engine;
use common::{Api, backends};
use k8s_openapi::api::core::v1::Secret;
use koru_controlplane::auth::keys::KeyPair;
use koru_controlplane::auth::session::Sessions;
use koru_controlplane::provisioner::Provisioner;
use koru_controlplane::provisioner::kubernetes::{KubeProvisioner, KubeProvisionerConfig};
use koru_controlplane::state::{AppState, LoginLimiter};
use koru_crd::KoruCluster;
use koru_testkit::{DataPlane, NamespaceGuard, eventually_async, install_crds, kubeconfig, unique};
use reqwest::StatusCode;
use serde_json::json;

/// A control plane on `backend` provisioning through the testenv API server, its organizations'
/// namespaces prefixed with `prefix`.
async fn api_on_kubernetes(backend: &common::Backend, prefix: &str) -> Api {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap().keep();
    let client = kube::Client::try_default()
        .await
        .expect("a client from KUBECONFIG");
    let config = KubeProvisionerConfig {
        namespace_prefix: prefix.to_string(),
        ..KubeProvisionerConfig::default()
    };
    let state = AppState {
        db: koru_controlplane::db::connect(&backend.url)
            .await
            .expect("database"),
        sessions: Sessions::new(KeyPair::load_or_generate(&dir.join("session.pem")).unwrap()),
        dataplane_key: KeyPair::load_or_generate(&dir.join("dataplane.pem")).unwrap(),
        provisioner: Arc::new(Provisioner::Kubernetes(KubeProvisioner::new(
            client, config,
        ))),
        login_limiter: Arc::new(LoginLimiter::new()),
        public_url: "http://127.0.0.1:9".into(),
        metrics: koru_controlplane::metrics::Metrics::new(),
        sso: Default::default(),
        gateway: Default::default(),
        suspend_policy: Default::default(),
    };
    Api {
        state,
        backend: backend.name,
        dir,
    }
}

/// A cluster created through the API, as the operator would run it.
struct Hosted {
    id: String,
    token: String,
    dataplane: DataPlane,
    _scratch: tempfile::TempDir,
}

/// Signs up `email` with organization `org`, creates the cluster `orders` through the API, issues
/// a write token for it, and starts the real data plane with the configuration the operator derives
/// from the KoruCluster and token Secret now in the API server.
async fn hosted_orders(api: &Api, prefix: &str, email: &str, org: &str) -> Hosted {
    let (session, org_id, _) = api.signup(email, org).await;
    let (status, created) = api
        .call(
            "POST",
            &format!("/api/v1/orgs/{org_id}/clusters"),
            Some(&session),
            Some(json!({"name": "orders"})),
        )
        .await;
    assert_eq!(status, 202, "[{}] create: {created}", api.backend);
    let id = created["cluster"]["id"].as_str().unwrap().to_string();
    let slug = koru_controlplane::orgs::find(&api.state.db, &org_id)
        .await
        .unwrap()
        .unwrap()
        .slug;
    let ns = format!("{prefix}{slug}");
    let client = kube::Client::try_default().await.unwrap();
    let clusters: kube::Api<KoruCluster> = kube::Api::namespaced(client.clone(), &ns);
    let kc = eventually_async(60, "the KoruCluster the provisioner applies", || {
        let clusters = clusters.clone();
        async move { clusters.get_opt("orders").await.ok().flatten() }
    })
    .await;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client, &ns);
    let secret = secrets
        .get("orders-token-key")
        .await
        .expect("the token Secret");

    let (status, issued) = api
        .call(
            "POST",
            &format!("/api/v1/orgs/{org_id}/clusters/{id}/data-tokens"),
            Some(&session),
            Some(json!({"scope": "write"})),
        )
        .await;
    assert_eq!(status, 201, "[{}] data token: {issued}", api.backend);

    // What the operator makes of that KoruCluster: the pods' environment and mounted files.
    let desired = koru_operator::desired::desired(&kc).expect("the operator's objects");
    let config = desired.config.data.expect("ConfigMap data");
    let auth = kc.spec.auth.as_ref().expect("auth");
    let key = &secret.data.as_ref().expect("Secret data")[&auth.public_key_secret.key].0;
    let scratch = tempfile::tempdir().unwrap();
    let key_path = scratch.path().join("public.pem");
    std::fs::write(&key_path, key).unwrap();
    let admin_path = scratch.path().join("admin-token");
    std::fs::write(
        &admin_path,
        uuid::Uuid::new_v4().simple().to_string().repeat(2),
    )
    .unwrap();
    let env: Vec<(String, String)> = config
        .into_iter()
        // Files the pod mounts are in the scratch directory here; there are no peer pods (nor
        // their DNS names) in this test, so the single member runs without replication.
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "KORU_PEERS" | "KORU_PEER_TEMPLATE" | "KORU_PEER_LISTEN"
            )
        })
        .map(|(k, v)| match k.as_str() {
            "KORU_AUTH_PUBLIC_KEY" => (k, key_path.display().to_string()),
            "KORU_ADMIN_TOKEN_FILE" => (k, admin_path.display().to_string()),
            _ => (k, v),
        })
        .collect();
    assert!(
        env.iter().any(|(k, _)| k == "KORU_CLUSTER_ID"),
        "the operator names the cluster: {env:?}"
    );
    let dataplane =
        DataPlane::start_with_env(&scratch.path().join("data"), "127.0.0.1:0", &env, &[]);
    Hosted {
        id,
        token: issued["token"].as_str().unwrap().to_string(),
        dataplane,
        _scratch: scratch,
    }
}

async fn put(dataplane: &DataPlane, token: &str) -> (StatusCode, String) {
    let response = common::http()
        .put(format!("{}/api/v1/orders/o-1", dataplane.url))
        .bearer_auth(token)
        .json(&json!({"value": {"total": 42}}))
        .send()
        .await
        .expect("the data plane answers");
    (response.status(), response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_token_issued_through_the_api_opens_its_kubernetes_cluster_and_no_other() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    for backend in backends().await {
        let prefix = format!("{}-", unique("ktok"));
        let api = api_on_kubernetes(&backend, &prefix).await;
        let a = hosted_orders(&api, &prefix, "ann@a.example", "Acme").await;
        let _ns_a = NamespaceGuard {
            kubeconfig: k.clone(),
            name: format!("{prefix}acme"),
        };
        let b = hosted_orders(&api, &prefix, "bob@b.example", "Bolt").await;
        let _ns_b = NamespaceGuard {
            kubeconfig: k.clone(),
            name: format!("{prefix}bolt"),
        };
        assert_ne!(a.id, b.id);

        // Each organization's token opens its own `orders`.
        let (status, body) = put(&a.dataplane, &a.token).await;
        assert!(
            status.is_success(),
            "[{}] A's token on A: {status} {body}",
            api.backend
        );
        let (status, body) = put(&b.dataplane, &b.token).await;
        assert!(
            status.is_success(),
            "[{}] B's token on B: {status} {body}",
            api.backend
        );
        // And never the other organization's `orders`.
        let (status, body) = put(&b.dataplane, &a.token).await;
        assert_eq!(status, 401, "[{}] A's token on B: {body}", api.backend);
        let (status, body) = put(&a.dataplane, &b.token).await;
        assert_eq!(status, 401, "[{}] B's token on A: {body}", api.backend);

        // Each cluster got a key of its own, not the control plane's global one.
        let secret = |ns: &str| {
            koru_testkit::field(&k, ns, "secret/orders-token-key", "{.data.public\\.pem}")
                .map(|b64| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap()
                })
                .expect("the token Secret")
        };
        let (key_a, key_b) = (
            secret(&format!("{prefix}acme")),
            secret(&format!("{prefix}bolt")),
        );
        assert_ne!(key_a, key_b);
        assert_ne!(key_a, api.state.dataplane_key.public_pem.as_bytes());
    }
}
