//! Journey 6 on real pods: on the dashboard of a control plane with the Kubernetes provisioner, a
//! user signs up, creates a cluster, sees it Running (its pod on a real node) and runs the copied
//! connection snippet where the cluster's DNS names resolve (the test Kubernetes's `koru-client`
//! network namespace, as from a pod), writing and reading a key. Real headless Chromium.

use std::time::{Duration, Instant};

use koru_e2e::{CLIENT_NETNS, ControlPlane, OperatorRelease};
use koru_testkit::{NamespaceGuard, run_browser_journeys, unique};

#[test]
fn a_cluster_created_on_the_dashboard_runs_on_real_pods_and_its_snippet_works() {
    let Some(k) = koru_e2e::nodes() else {
        return;
    };
    let namespace = koru_e2e::namespace(&k, "e2e-ui");
    let ns = namespace.name.clone();
    // The journey signs up "Kubernetes Journey", whose namespace the operator watches.
    let prefix = format!("{ns}-");
    let org_ns = format!("{prefix}kubernetes-journey");
    let _operator = OperatorRelease::install_watching(&k, &ns, &org_ns);
    let _org_namespace = NamespaceGuard {
        kubeconfig: k.clone(),
        name: org_ns,
    };
    let cp = ControlPlane::start(&k, &prefix, &[]);
    let shots = std::env::temp_dir().join(unique("e2e-dashboard-screenshots"));
    let started = Instant::now();
    let Some(run) = run_browser_journeys(
        &[
            ("KORU_URL", &cp.url),
            ("KORU_SCREENSHOTS", &shots.display().to_string()),
            ("KORU_JOURNEYS", "kubernetes"),
            ("KORU_SNIPPET_NETNS", CLIENT_NETNS),
        ],
        Duration::from_secs(240),
    ) else {
        return;
    };
    let _ = std::fs::remove_dir_all(&shots);
    println!("{}", run.stdout);
    eprintln!("{}", run.stderr);
    assert!(!run.timed_out, "the dashboard journey took over 240 s");
    assert!(run.success, "the dashboard journey failed: {}", run.stderr);
    eprintln!("dashboard journey on real pods: {:?}", started.elapsed());
}
