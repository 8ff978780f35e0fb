//! Journey 2 through the hosted path, on real pods: the control plane (a `koru-controlplane serve`
//! process with the Kubernetes provisioner) creates a three-member cluster that the operator
//! (installed by its chart, watching every namespace) runs; a data token the control plane issues
//! writes and reads through the endpoint the control plane reports — the token names the control
//! plane's cluster id, which the operator must configure (a mismatch locked users out before);
//! its backups go to MinIO and its restore journey makes a new cluster as of a past moment; a
//! revoked token stops working once the pods fetch the control plane's revocation list; and
//! deleting the cluster through the API removes it.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use koru_dataplane_api::rfc3339::{format_millis, parse_micros};
use koru_e2e::{
    ControlPlane, ObjectStore, OperatorRelease, apply, cluster_field, get_value, put_value,
    wait_cluster,
};
use koru_testkit::{NamespaceGuard, get, wait_until};
use serde_json::{Value, json};

/// An HTTP client that reaches `endpoint` (`http://<svc>.<ns>.svc:7878`, the in-cluster name the
/// control plane reports) at its Service's ClusterIP, as the cluster's DNS would answer a pod.
fn client_for(kubeconfig: &str, endpoint: &str) -> reqwest::Client {
    let host = endpoint
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let mut parts = host.split('.');
    let (service, namespace) = (parts.next().unwrap(), parts.next().unwrap());
    let ip = get(
        kubeconfig,
        &[
            "get",
            "service",
            service,
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )
    .unwrap();
    let addr: SocketAddr = format!("{ip}:7878").parse().unwrap();
    reqwest::Client::builder()
        .resolve(&host, addr)
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_created_through_the_control_plane_runs_on_real_pods_and_takes_its_tokens() {
    let Some(k) = koru_e2e::nodes() else {
        return;
    };
    let namespace = koru_e2e::namespace(&k, "e2e-cp");
    let ns = namespace.name.clone();
    // The operator watches only the namespace the control plane will make for the organization
    // (`<prefix><slug>`), so journeys running beside this one keep their own operators.
    let prefix = format!("{ns}-");
    let org_ns = format!("{prefix}e2e-co");
    let _operator = OperatorRelease::install_watching(&k, &ns, &org_ns);
    // Clusters archive to MinIO (its credentials copied by the control plane into the
    // organization's namespace), for the restore below.
    let store = ObjectStore::start();
    apply(&k, &ns, &store.credentials_secret("s3-credentials"));
    let destination = format!("s3://{}/cloud", store.bucket());
    let credentials = format!("{ns}/s3-credentials");
    let cp = ControlPlane::start(
        &k,
        &prefix,
        &[
            "--backup-destination",
            &destination,
            "--backup-credentials-secret",
            &credentials,
        ],
    );
    let (org, session) = cp.signup("owner@e2e.example", "E2E Co").await;
    assert_eq!(format!("{prefix}{org}"), org_ns);
    let _org_namespace = NamespaceGuard {
        kubeconfig: k.clone(),
        name: org_ns.clone(),
    };

    let started = Instant::now();
    let clusters = format!("/api/v1/orgs/{org}/clusters");
    let (status, created) = cp
        .call(
            "POST",
            &clusters,
            &session,
            Some(json!({"name": "orders", "tier": "pro", "replicas": 3})),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let op = cp
        .wait_operation(&session, created["operation"]["id"].as_str().unwrap(), 300)
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    wait_cluster(&k, &org_ns, "orders", 3, "0.1.0", 300);
    let (_, cluster) = cp
        .call("GET", &format!("{clusters}/orders"), &session, None)
        .await;
    eprintln!(
        "control plane's cluster Running with 3 voters after {:?}: {cluster}",
        started.elapsed()
    );
    assert_eq!(cluster["phase"], "Running", "{cluster}");
    let id = cluster["id"].as_str().unwrap().to_string();
    // The operator configured the pods for the id the control plane signs tokens for.
    assert_eq!(
        cluster_field(&k, &org_ns, "orders", "/spec/auth/clusterId"),
        Value::String(id.clone())
    );
    let endpoint = cluster["endpoint"].as_str().unwrap().to_string();
    assert_eq!(endpoint, format!("http://orders.{org_ns}.svc:7878"));

    // A data token from the control plane writes and reads through the reported endpoint.
    let (status, issued) = cp
        .call(
            "POST",
            &format!("{clusters}/{id}/data-tokens"),
            &session,
            Some(json!({"scope": "write"})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap().to_string();
    let http = client_for(&k, &endpoint);
    let key = format!("{endpoint}/api/v1/shop/cart-1");
    put_value(&http, &endpoint, "shop/cart-1", &token, json!({"items": 3})).await;
    let (_, got) = get_value(&http, &endpoint, "shop/cart-1", &token).await;
    assert_eq!(got["value"], json!({"items": 3}), "{got}");

    // The control plane's restore journey: a base backup, a moment, a second write, and a new
    // cluster restored to that moment holding the first value.
    let (status, backup) = cp
        .call("POST", &format!("{clusters}/{id}/backups"), &session, None)
        .await;
    assert_eq!(status, 201, "{backup}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let target = format_millis(now.as_millis() as i64).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    put_value(&http, &endpoint, "shop/cart-1", &token, json!({"items": 4})).await;
    // The archive passes the target once the open log segment is sealed (hosted clusters
    // archive at least every 10 s while written).
    let waited = Instant::now();
    let target_micros = parse_micros(&target).unwrap();
    koru_testkit::eventually_async(150, "the recoverable window to pass the target", || {
        let (cp, clusters, id, session) = (&cp, &clusters, &id, &session);
        async move {
            let (_, listed) = cp
                .call("GET", &format!("{clusters}/{id}/backups"), session, None)
                .await;
            let latest = listed["window"]["latest"]
                .as_str()
                .and_then(|t| parse_micros(t).ok());
            latest.is_some_and(|l| l > target_micros).then_some(())
        }
    })
    .await;
    eprintln!("window past the target after {:?}", waited.elapsed());
    let started = Instant::now();
    let (status, restoring) = cp
        .call(
            "POST",
            &format!("{clusters}/{id}/restore"),
            &session,
            Some(json!({"name": "orders-then", "target_time": target})),
        )
        .await;
    assert_eq!(status, 202, "{restoring}");
    let op = cp
        .wait_operation(
            &session,
            restoring["operation"]["id"].as_str().unwrap(),
            300,
        )
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    wait_cluster(&k, &org_ns, "orders-then", 3, "0.1.0", 300);
    let (_, then) = cp
        .call("GET", &format!("{clusters}/orders-then"), &session, None)
        .await;
    let then_id = then["id"].as_str().unwrap();
    let (status, then_token) = cp
        .call(
            "POST",
            &format!("{clusters}/{then_id}/data-tokens"),
            &session,
            Some(json!({"scope": "read"})),
        )
        .await;
    assert_eq!(status, 201, "{then_token}");
    let then_endpoint = then["endpoint"].as_str().unwrap();
    let then_token = then_token["token"].as_str().unwrap();
    let then_http = client_for(&k, then_endpoint);
    let (_, got) = get_value(&then_http, then_endpoint, "shop/cart-1", then_token).await;
    assert_eq!(
        got["value"],
        json!({"items": 3}),
        "restored as of {target}: {got}"
    );
    eprintln!(
        "restored through the control plane in {:?}",
        started.elapsed()
    );
    // The connection help's read token works too, and no token opens nothing.
    let read = cluster["connection"]["data_token"]["token"]
        .as_str()
        .unwrap();
    let status = http
        .get(&key)
        .bearer_auth(read)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    let status = http.get(&key).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 401);

    // Revoked, the token stops working once the pods have fetched the control plane's list.
    let token_id = issued["id"].as_str().unwrap();
    let (status, body) = cp
        .call(
            "DELETE",
            &format!("{clusters}/{id}/data-tokens/{token_id}"),
            &session,
            None,
        )
        .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let revoked = Instant::now();
    koru_testkit::eventually_async(60, "the revoked token to be refused", || {
        let (http, key, token) = (&http, &key, &token);
        async move {
            let status = http
                .get(key)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            (status == 401).then_some(())
        }
    })
    .await;
    eprintln!("revoked token refused after {:?}", revoked.elapsed());

    // Deleted through the API, the cluster goes from Kubernetes.
    let (status, deleted) = cp
        .call("DELETE", &format!("{clusters}/orders"), &session, None)
        .await;
    assert_eq!(status, 202, "{deleted}");
    wait_until(180, "the KoruCluster to be deleted", || {
        get(&k, &["get", "korucluster", "orders", "-n", &org_ns]).is_none()
    });
}
