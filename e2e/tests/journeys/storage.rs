//! Journey 5 (storage growth) on real pods: a cluster on volumes that really grow (the test
//! Kubernetes's `expandable` class: a tmpfs per claim, grown under the running pod) asks for more
//! storage; the operator grows its claims and the file system under the running pod grows with
//! them, the pod untouched and its data kept.

use std::process::Command;

use koru_dataplane_api::auth::Scope;
use koru_e2e::{
    OperatorRelease, TokenKey, apply, client_url, cluster_yaml, get_value, patch_cluster, pod_uid,
    put_value, wait_cluster,
};
use koru_testkit::{get, wait_until};
use serde_json::json;

/// The size in bytes of the file system mounted at `path`, as `df` reports it.
fn filesystem_bytes(path: &str) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=size", path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("df {path}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_grows_its_storage_on_a_really_expandable_volume() {
    let Some(k) = koru_e2e::nodes() else {
        return;
    };
    let namespace = koru_e2e::namespace(&k, "e2e-grow");
    let ns = namespace.name.clone();
    let _operator = OperatorRelease::install(&k, &ns, 1);
    let key = TokenKey::new(61);
    apply(
        &k,
        &ns,
        &format!(
            "{}---\n{}",
            key.secret("token-key"),
            cluster_yaml(
                "grow",
                "  replicas: 1\n  storage:\n    size: 1Gi\n    storageClassName: expandable\n"
            )
        ),
    );
    wait_cluster(&k, &ns, "grow", 1, "0.1.0", 300);
    let url = client_url(&k, &ns, "grow");
    let token = key.token(&format!("{ns}/grow"), Scope::Write);
    let http = reqwest::Client::new();
    put_value(&http, &url, "shop/cart-1", &token, json!({"items": 3})).await;
    let volume = get(
        &k,
        &[
            "get",
            "pvc",
            "data-grow-0",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.volumeName}",
        ],
    )
    .unwrap();
    let path = get(
        &k,
        &["get", "pv", &volume, "-o", "jsonpath={.spec.local.path}"],
    )
    .unwrap();
    let before = filesystem_bytes(&path);
    assert!(before <= 1 << 30, "a 1Gi volume holds {before} bytes");
    let uid = pod_uid(&k, &ns, "grow-0").unwrap();

    patch_cluster(&k, &ns, "grow", r#"{"storage": {"size": "2Gi"}}"#);
    wait_until(180, "the claim to report 2Gi", || {
        get(
            &k,
            &[
                "get",
                "pvc",
                "data-grow-0",
                "-n",
                &ns,
                "-o",
                "jsonpath={.status.capacity.storage}",
            ],
        )
        .as_deref()
            == Some("2Gi")
    });
    wait_cluster(&k, &ns, "grow", 1, "0.1.0", 180);
    let after = filesystem_bytes(&path);
    eprintln!("file system under the pod: {before} bytes -> {after} bytes");
    assert!(
        after > (1 << 30) + (1 << 29),
        "the file system did not grow: {after} bytes"
    );
    assert_eq!(
        pod_uid(&k, &ns, "grow-0").unwrap(),
        uid,
        "the pod was replaced"
    );
    let (status, got) = get_value(&http, &url, "shop/cart-1", &token).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["value"], json!({"items": 3}));
}
