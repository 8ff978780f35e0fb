//! 200 KoruClusters reconciled to their objects by one real `koru-operator` against the real API
//! server. It prints the time to converge and the operator's peak memory (figures for the issue
//! note, not targets: performance targets live in benchmarks, not in timed tests).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::time::{Duration, Instant};

use common::{cluster_yaml, start_operator};
use koru_testkit::{apply, eventually, fresh_namespace, get, install_crds, kubeconfig, kubectl};

const CLUSTERS: usize = 200;

fn count(k: &str, ns: &str, kind: &str) -> usize {
    get(
        k,
        &[
            "get",
            kind,
            "-n",
            ns,
            "-o",
            "name",
            "-l",
            "app.kubernetes.io/managed-by=koru-operator",
        ],
    )
    .unwrap_or_default()
    .lines()
    .filter(|l| !l.is_empty())
    .count()
}

fn provisioned(k: &str, ns: &str) -> usize {
    get(
        k,
        &[
            "get",
            "kc",
            "-n",
            ns,
            "-o",
            "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default()
    .lines()
    .filter(|l| *l == "Provisioning")
    .count()
}

#[test]
fn two_hundred_clusters_reconcile_to_their_objects() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "scale-test";
    fresh_namespace(&k, ns);
    let manifests = (0..CLUSTERS)
        .map(|i| {
            cluster_yaml(
                &format!("db{i:03}"),
                "  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n",
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    // All clusters exist before the operator starts, so the time measured is the operator's.
    let start = Instant::now();
    apply(&k, ns, &manifests);
    let applied = start.elapsed();
    let start = Instant::now();
    let mut operator = start_operator(&k, ns);
    eventually(
        &mut operator,
        600,
        "200 clusters with their objects",
        || {
            let done = count(&k, ns, "statefulsets") == CLUSTERS
                && count(&k, ns, "services") == 2 * CLUSTERS
                && count(&k, ns, "configmaps") == CLUSTERS
                && provisioned(&k, ns) == CLUSTERS;
            if !done {
                std::thread::sleep(Duration::from_secs(1));
            }
            done.then_some(())
        },
    );
    let converged = start.elapsed();
    let rss = operator.peak_rss_kib();
    eprintln!(
        "scale: {CLUSTERS} KoruClusters applied (kubectl) in {:.1} s; from the operator's start, all reconciled to their objects and status in {:.1} s; operator peak RSS {:.1} MiB",
        applied.as_secs_f64(),
        converged.as_secs_f64(),
        rss as f64 / 1024.0
    );
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}
