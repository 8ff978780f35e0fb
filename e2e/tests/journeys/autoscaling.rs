//! Journey 6 (suspension and autoscaling) on real pods: a three-member cluster suspended to zero
//! pods keeps its volumes, raises no alarm, and wakes on them with its data and its Raft group
//! (the wake time, from unsuspending to the first successful read, is printed); a cluster under
//! load gets more CPU in place (the pod is resized, not replaced) and its small volume, filled
//! past the threshold, grows to its ceiling and then warns.

use std::time::{Duration, Instant};

use koru_dataplane_api::auth::Scope;
use koru_e2e::{
    OperatorRelease, TokenKey, apply, client_url, cluster_field, cluster_yaml, get_value,
    patch_cluster, pod_names, pod_uid, put_value, wait_cluster,
};
use koru_testkit::{get, wait_until};
use serde_json::{Value, json};

/// The names and UIDs of the cluster's volume claims.
fn claims(k: &str, ns: &str, name: &str) -> Vec<String> {
    let selector = format!("app.kubernetes.io/instance={name}");
    let mut claims: Vec<String> = get(
        k,
        &[
            "get",
            "pvc",
            "-n",
            ns,
            "-l",
            &selector,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect();
    claims.sort();
    claims
}

/// Warning events in the namespace, as `reason: message` lines.
fn warnings(k: &str, ns: &str) -> Vec<String> {
    get(
        k,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            "type=Warning",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{.note}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect()
}

/// Whether an event with `reason` was recorded in the namespace.
fn has_event(k: &str, ns: &str, reason: &str) -> bool {
    get(
        k,
        &[
            "get",
            "events",
            "-n",
            ns,
            "-o",
            "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default()
    .lines()
    .any(|r| r == reason)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_cluster_keeps_its_volumes_and_wakes_with_its_data() {
    let Some(k) = koru_e2e::nodes() else {
        return;
    };
    let namespace = koru_e2e::namespace(&k, "e2e-suspend");
    let ns = namespace.name.clone();
    let _operator = OperatorRelease::install(&k, &ns, 1);
    let key = TokenKey::new(62);
    apply(
        &k,
        &ns,
        &format!(
            "{}---\n{}",
            key.secret("token-key"),
            cluster_yaml("nap", "  replicas: 3\n  storage:\n    size: 256Mi\n")
        ),
    );
    wait_cluster(&k, &ns, "nap", 3, "0.1.0", 300);
    let url = client_url(&k, &ns, "nap");
    let token = key.token(&format!("{ns}/nap"), Scope::Write);
    let http = reqwest::Client::new();
    for i in 0..20 {
        put_value(
            &http,
            &url,
            &format!("shop/cart-{i}"),
            &token,
            json!({"items": i}),
        )
        .await;
    }
    let volumes = claims(&k, &ns, "nap");
    assert_eq!(volumes.len(), 3, "{volumes:?}");

    let before = warnings(&k, &ns);
    patch_cluster(&k, &ns, "nap", r#"{"suspended": true}"#);
    wait_until(180, "the cluster to be Suspended with no pods", || {
        cluster_field(&k, &ns, "nap", "/status/phase") == "Suspended"
            && pod_names(&k, &ns, "nap").is_empty()
    });
    assert_eq!(claims(&k, &ns, "nap"), volumes, "the volumes are kept");
    let status = cluster_field(&k, &ns, "nap", "/status");
    let condition = |t: &str| {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(condition("Ready")["reason"], "Suspended", "{status:#}");
    assert_eq!(condition("Degraded")["status"], "False", "{status:#}");
    assert!(
        get(&k, &["get", "pdb", "nap", "-n", &ns]).is_none(),
        "no disruption budget while suspended"
    );
    // Going to sleep raises no alarm of ours. The kubelet may still probe a member in its last
    // moments (its listener closed, or its leader already gone) and record that as "Unhealthy":
    // that is how Kubernetes reports any pod's end, not something the operator said.
    let suspending = warnings(&k, &ns);
    let alarms: Vec<&String> = suspending
        .iter()
        .filter(|w| !before.contains(w) && !w.starts_with("Unhealthy: Readiness probe failed"))
        .collect();
    assert!(alarms.is_empty(), "warnings while suspending: {alarms:?}");
    // Suspended for a while: no alarm at all, no status churn.
    let written = cluster_field(&k, &ns, "nap", "/metadata/resourceVersion");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        cluster_field(&k, &ns, "nap", "/metadata/resourceVersion"),
        written,
        "nothing is written while suspended"
    );
    let alarms: Vec<String> = warnings(&k, &ns)
        .into_iter()
        .filter(|w| !suspending.contains(w))
        .collect();
    assert!(alarms.is_empty(), "warnings while suspended: {alarms:?}");

    let woken = Instant::now();
    patch_cluster(&k, &ns, "nap", r#"{"suspended": false}"#);
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let first_read = loop {
        let response = quick
            .get(format!("{url}/api/v1/shop/cart-7"))
            .bearer_auth(&token)
            .send()
            .await;
        if let Ok(r) = response
            && r.status().is_success()
        {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["value"], json!({"items": 7}));
            break woken.elapsed();
        }
        assert!(
            woken.elapsed() < Duration::from_secs(300),
            "no successful read within 300 s of waking"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "wake time (unsuspend -> first successful read, 3 members): {:.1} s",
        first_read.as_secs_f64()
    );
    wait_cluster(&k, &ns, "nap", 3, "0.1.0", 300);
    assert_eq!(claims(&k, &ns, "nap"), volumes, "the same volumes");
    for i in 0..20 {
        let (status, got) = get_value(&http, &url, &format!("shop/cart-{i}"), &token).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["value"], json!({"items": i}));
    }
    // The group re-formed from its data: it takes writes again.
    put_value(&http, &url, "shop/after", &token, json!({"woken": true})).await;
    assert!(has_event(&k, &ns, "ClusterSuspended"));
}

#[tokio::test(flavor = "multi_thread")]
async fn load_resizes_the_pod_in_place_and_a_filling_volume_grows_to_its_ceiling() {
    let Some(k) = koru_e2e::nodes() else {
        return;
    };
    let namespace = koru_e2e::namespace(&k, "e2e-scale");
    let ns = namespace.name.clone();
    // Sample every 5 s with short cool-downs, so the journey sees decisions within a minute.
    let _operator = OperatorRelease::install_setting(
        &k,
        &ns,
        &[
            "autoscale.intervalSeconds=5",
            "autoscale.computeUpCooldownSeconds=10",
        ],
    );
    let key = TokenKey::new(63);
    apply(
        &k,
        &ns,
        &format!(
            "{}---\n{}",
            key.secret("token-key"),
            cluster_yaml(
                "busy",
                "  replicas: 1\n  resources:\n    cpu: 100m\n    memory: 256Mi\n    autoscale:\n      minCpu: 100m\n      maxCpu: \"1\"\n      minMemory: 256Mi\n      maxMemory: 512Mi\n  storage:\n    size: 64Mi\n    storageClassName: expandable\n    autoscale:\n      thresholdPercent: 50\n      maxSize: 96Mi\n"
            )
        ),
    );
    wait_cluster(&k, &ns, "busy", 1, "0.1.0", 300);
    assert_eq!(
        cluster_field(&k, &ns, "busy", "/status/resources/cpu"),
        "100m"
    );
    let url = client_url(&k, &ns, "busy");
    let token = key.token(&format!("{ns}/busy"), Scope::Write);
    let uid = pod_uid(&k, &ns, "busy-0").unwrap();
    let pod_cpu = |k: &str| {
        get(
            k,
            &[
                "get",
                "pod",
                "busy-0",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.containers[0].resources.requests.cpu} {.status.containerStatuses[0].resources.requests.cpu} {.status.containerStatuses[0].restartCount}",
            ],
        )
        .unwrap_or_default()
    };

    // Load: writers as fast as the pod answers, throttled at its 100m.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (url, token, stop) = (url.clone(), token.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = http
                    .put(format!("{url}/api/v1/load/w{w}-{}", n % 50))
                    .bearer_auth(&token)
                    .json(&json!({"value": {"n": n, "pad": "x".repeat(200)}}))
                    .send()
                    .await;
                n += 1;
            }
        }));
    }
    let loaded = Instant::now();
    wait_until(240, "the pod to be resized in place above 100m", || {
        let cpu = cluster_field(&k, &ns, "busy", "/status/resources/cpu");
        let seen = pod_cpu(&k);
        let mut parts = seen.split_whitespace();
        let (spec, actual) = (parts.next(), parts.next());
        cpu != "100m" && spec.is_some() && spec == actual && actual != Some("100m")
    });
    eprintln!(
        "in-place resize under load after {:.0} s: pod (spec, actual, restarts) = {}; status.resources = {}",
        loaded.elapsed().as_secs_f64(),
        pod_cpu(&k),
        cluster_field(&k, &ns, "busy", "/status/resources")
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    assert_eq!(
        pod_uid(&k, &ns, "busy-0").unwrap(),
        uid,
        "resized, not replaced"
    );
    assert!(pod_cpu(&k).ends_with(" 0"), "no restart: {}", pod_cpu(&k));
    assert!(has_event(&k, &ns, "ComputeResized"));
    // The StatefulSet's template matches, and its rollout is complete (the pod on its newest
    // revision): nothing will replace the pod for it.
    let template_cpu = get(
        &k,
        &[
            "get",
            "statefulset",
            "busy",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].resources.requests.cpu}",
        ],
    )
    .unwrap();
    assert_ne!(template_cpu, "100m");
    wait_until(60, "the StatefulSet to count the pod as updated", || {
        get(
            &k,
            &[
                "get",
                "statefulset",
                "busy",
                "-n",
                &ns,
                "-o",
                "jsonpath={.status.currentRevision} {.status.updateRevision}",
            ],
        )
        .and_then(|s| {
            let (a, b) = s.split_once(' ')?;
            Some(a == b)
        })
        .unwrap_or(false)
    });

    // Fill the 64Mi volume past 50 %: 512 KiB values (the log and the Raft log hold each).
    let http = reqwest::Client::new();
    let big = "y".repeat(512 * 1024);
    let mut written = 0;
    let fill = |from: usize, to: usize| {
        let (http, url, token, big) = (http.clone(), url.clone(), token.clone(), big.clone());
        async move {
            for i in from..to {
                put_value(&http, &url, &format!("fill/v{i}"), &token, json!(big)).await;
            }
        }
    };
    fill(0, 40).await;
    written += 40;
    wait_until(180, "the volume to grow to its ceiling, 96Mi", || {
        get(
            &k,
            &[
                "get",
                "pvc",
                "data-busy-0",
                "-n",
                &ns,
                "-o",
                "jsonpath={.status.capacity.storage}",
            ],
        )
        .as_deref()
            == Some("96Mi")
    });
    assert!(has_event(&k, &ns, "StorageAutoscaled"));
    assert_eq!(
        cluster_field(&k, &ns, "busy", "/status/storage/size"),
        "96Mi"
    );
    // Past 50 % of the ceiling: a warning and the condition the dashboard shows a banner from.
    fill(written, written + 25).await;
    wait_until(120, "StorageAtCeiling to turn True", || {
        cluster_field(&k, &ns, "busy", "/status/conditions")
            .as_array()
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "StorageAtCeiling" && c["status"] == "True")
            })
    });
    assert!(
        warnings(&k, &ns)
            .iter()
            .any(|w| w.starts_with("StorageAtCeiling")),
        "{:?}",
        warnings(&k, &ns)
    );
    let (status, got) = get_value(&http, &url, "fill/v3", &token).await;
    assert_eq!(status, 200);
    assert_eq!(got["value"].as_str().map(str::len), Some(512 * 1024));
    assert_eq!(
        pod_uid(&k, &ns, "busy-0").unwrap(),
        uid,
        "the pod kept throughout"
    );
}
