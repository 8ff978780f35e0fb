//! The operator killed mid-reconcile and the API server restarted under it: both converge to the
//! same objects, with nothing duplicated. One test, since restarting the API server would disturb
//! any other test running beside it in this binary.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{cluster_yaml, start_operator};
use koru_testkit::{apply, eventually, fresh_namespace, get, install_crds, kubeconfig, kubectl};

/// How many of each kind of object the clusters of `ns` have, by managed label.
fn counts(k: &str, ns: &str) -> [usize; 4] {
    ["statefulsets", "services", "configmaps", "koruclusters"].map(|kind| {
        let args = [
            "get",
            kind,
            "-n",
            ns,
            "-o",
            "name",
            "-l",
            "app.kubernetes.io/managed-by=koru-operator",
        ];
        let args = if kind == "koruclusters" {
            &args[..6]
        } else {
            &args[..]
        };
        get(k, args)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    })
}

/// Clusters whose status says they were reconciled (their phase is set).
fn reconciled(k: &str, ns: &str) -> usize {
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
    .filter(|l| !l.is_empty())
    .count()
}

fn many_clusters(n: usize) -> String {
    (0..n)
        .map(|i| {
            cluster_yaml(
                &format!("c{i}"),
                "  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n",
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Kills the test control plane's kube-apiserver and starts it again with the same arguments.
fn restart_api_server(kubeconfig: &str) {
    let dir = Path::new(kubeconfig).parent().unwrap();
    let pidfile = dir.join("pids/kube-apiserver.pid");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let pid = pid.trim();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let mut args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let program = args.next().unwrap();
    let args: Vec<String> = args.collect();
    let status = Command::new("kill").args(["-9", pid]).status().unwrap();
    assert!(status.success());
    while Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("logs/kube-apiserver.log"))
        .unwrap();
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so it outlives this test like the one `testenv.sh up` started.
            .process_group(0)
            .spawn()
            .unwrap()
    };
    // `scripts/testenv.sh down` stops whatever pid this file names.
    std::fs::write(&pidfile, child.id().to_string()).unwrap();
    let mut tries = 0;
    while !kubectl(kubeconfig, &["get", "--raw", "/readyz"], "").0 {
        tries += 1;
        assert!(tries < 300, "the API server did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn operator_and_api_server_restarts_converge_without_duplicates() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "restarts-test";
    fresh_namespace(&k, ns);
    let n = 60;

    // The clusters exist before the operator starts, and it is killed as soon as it has made
    // its first StatefulSet.
    apply(&k, ns, &many_clusters(n));
    let mut operator = start_operator(&k, ns);
    eventually(&mut operator, 60, "the first StatefulSet", || {
        (counts(&k, ns)[0] > 0).then_some(())
    });
    operator.kill();
    let partial = counts(&k, ns)[0];
    let mut operator = start_operator(&k, ns);
    eventually(
        &mut operator,
        120,
        "all clusters after the operator restart",
        || (counts(&k, ns) == [n, 2 * n, n, n] && reconciled(&k, ns) == n).then_some(()),
    );
    eprintln!("operator killed after {partial} of {n} StatefulSets; converged after restart");

    // The API server dies while the operator works on new clusters, and comes back.
    let more = (n..2 * n)
        .map(|i| {
            cluster_yaml(
                &format!("c{i}"),
                "  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n",
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    apply(&k, ns, &more);
    restart_api_server(&k);
    operator.assert_running();
    let n = 2 * n;
    eventually(
        &mut operator,
        180,
        "all clusters after the API server restart",
        || (counts(&k, ns) == [n, 2 * n, n, n] && reconciled(&k, ns) == n).then_some(()),
    );
    // Nothing is made twice afterwards either.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(counts(&k, ns), [n, 2 * n, n, n]);
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}
