//! Journey 4 on real pods: a three-pod cluster archives its log to MinIO (an S3 store on the
//! nodes' host, reached over the pod network), a `KoruBackup` takes a base backup through the
//! operator, and a new KoruCluster restored from that store to a moment between two rounds of
//! writes (point-in-time recovery, run by each pod's restore init container) holds exactly the
//! first round.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::rfc3339::format_millis;
use koru_e2e::{
    ObjectStore, OperatorRelease, TokenKey, apply, client_url, cluster_yaml, get_value, put_value,
    wait_cluster,
};
use koru_testkit::{get, wait_until};
use serde_json::{Value, json};

/// A KoruCluster of three pods verifying tokens of the Secret `token-key`, archiving to
/// `destination`, with `extra` spec lines (indented two spaces).
fn cluster(name: &str, destination: &str, extra: &str) -> String {
    cluster_yaml(
        name,
        &format!(
            "  replicas: 3\n  storage:\n    size: 1Gi\n  durability:\n    fsync: always\n  backup:\n    destination: {destination}\n    credentialsSecret: s3-credentials\n    archiveTimeout: 2s\n{extra}"
        ),
    )
}

/// Writes `{"n": i, "round": round}` to `k-<i>` for every i in `keys`.
async fn write_round(url: &str, token: &str, keys: std::ops::Range<u32>, round: &str) {
    let http = reqwest::Client::new();
    for i in keys {
        let value = json!({"n": i, "round": round});
        put_value(&http, url, &format!("shop/k-{i}"), token, value).await;
    }
}

/// The `/readyz` answer of every pod of the cluster, asked at the pod's own address.
async fn readiness(k: &str, ns: &str, name: &str) -> Vec<Value> {
    let ips = get(
        k,
        &[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            &format!("app.kubernetes.io/instance={name}"),
            "-o",
            "jsonpath={.items[*].status.podIP}",
        ],
    )
    .unwrap_or_default();
    let mut answers = Vec::new();
    for ip in ips.split_whitespace() {
        if let Ok(r) = reqwest::get(format!("http://{ip}:7878/readyz")).await {
            answers.push(r.json().await.unwrap_or(Value::Null));
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_go_to_minio_from_real_pods_and_a_new_cluster_restores_to_a_moment() {
    let Some(k) = koru_e2e::nodes() else {
        return;
    };
    let namespace = koru_e2e::namespace(&k, "e2e-backup");
    let ns = namespace.name.clone();
    let _operator = OperatorRelease::install(&k, &ns, 1);
    let store = ObjectStore::start();
    let key = TokenKey::new(41);
    apply(
        &k,
        &ns,
        &format!(
            "{}---\n{}",
            key.secret("token-key"),
            store.credentials_secret("s3-credentials")
        ),
    );
    let source = format!("s3://{}/orders", store.bucket());
    apply(&k, &ns, &cluster("orders", &source, ""));
    wait_cluster(&k, &ns, "orders", 3, "0.1.0", 300);
    let url = client_url(&k, &ns, "orders");
    let token = key.token(&format!("{ns}/orders"), Scope::Write);

    // Round a, a base backup through a KoruBackup, the moment to restore to, then round b.
    write_round(&url, &token, 0..20, "a").await;
    apply(
        &k,
        &ns,
        "apiVersion: koru.dev/v1alpha1\nkind: KoruBackup\nmetadata:\n  name: first\nspec:\n  cluster: orders\n",
    );
    let started = Instant::now();
    let mut backup = Value::Null;
    wait_until(180, "the KoruBackup to complete", || {
        backup = get(&k, &["get", "korubackup", "first", "-n", &ns, "-o", "json"])
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        assert_ne!(backup["status"]["phase"], "Failed", "{backup:#}");
        backup["status"]["phase"] == "Completed"
    });
    eprintln!(
        "KoruBackup completed in {:?}: {}",
        started.elapsed(),
        backup["status"]
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let target = format_millis(now.as_millis() as i64).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write_round(&url, &token, 0..30, "b").await;
    // The whole log, round b included, reaches the store (the archive keeps up within seconds).
    koru_testkit::eventually_async(120, "the archive to hold every write", || {
        let (k, ns) = (&k, &ns);
        async move {
            readiness(k, ns, "orders")
                .await
                .iter()
                .any(|r| {
                    let archive = &r["archive"];
                    archive["pending_segments"] == 0
                        && archive["last_error"].is_null()
                        && archive["last_archived_lsn"].as_u64() >= r["last_lsn"].as_u64()
                        && r["last_lsn"].as_u64() > Some(0)
                })
                .then_some(())
        }
    })
    .await;

    // A new cluster restored to `target` by its pods' init containers.
    let started = Instant::now();
    let restored_store = format!("s3://{}/restored", store.bucket());
    apply(
        &k,
        &ns,
        &cluster(
            "restored",
            &restored_store,
            &format!(
                "  bootstrap:\n    fromBackup:\n      source: {source}\n      targetTime: \"{target}\"\n"
            ),
        ),
    );
    wait_cluster(&k, &ns, "restored", 3, "0.1.0", 300);
    eprintln!("restored cluster Running after {:?}", started.elapsed());
    let restored = client_url(&k, &ns, "restored");
    let token = key.token(&format!("{ns}/restored"), Scope::Read);
    let http = reqwest::Client::new();
    for i in 0..30 {
        let (status, body) = get_value(&http, &restored, &format!("shop/k-{i}"), &token).await;
        if i < 20 {
            assert_eq!(status, 200, "k-{i}: {body}");
            assert_eq!(body["value"], json!({"n": i, "round": "a"}), "k-{i}");
        } else {
            assert_eq!(status, 404, "k-{i} was written after the target: {body}");
        }
    }
}
