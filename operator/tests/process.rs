//! The `koru-operator` process as real child processes against the real API server: leader
//! election with handover on a crash and on SIGTERM, the probes and metrics, OTLP traces, and
//! refusal of bad flags.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use koru_testkit::{get, kubeconfig, kubectl};

/// One test at a time: each runs up to three operator processes, and timings (a takeover within
/// a lease duration) should not depend on how busy a two-core machine is.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// An operator process, killed when dropped.
struct Operator {
    child: RefCell<Child>,
    name: String,
    port: u16,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Operator {
    /// Starts `koru-operator` serving probes and metrics on a free port, with `args` added.
    fn start(k: &str, name: &str, args: &[&str]) -> Operator {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_koru-operator"))
            .env("KUBECONFIG", k)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting koru-operator");
        Operator {
            child: RefCell::new(child),
            name: name.to_string(),
            port,
        }
    }

    /// Fails the test at once when the operator has exited, instead of at a later timeout.
    fn assert_running(&self) {
        if let Ok(Some(status)) = self.child.borrow_mut().try_wait() {
            panic!(
                "koru-operator {} exited with {status}; its log is above",
                self.name
            );
        }
    }

    /// `GET path` on the operator's HTTP server: (status, content type, body).
    fn get(&self, path: &str) -> Option<(u16, String, String)> {
        http_get(self.port, path)
    }

    /// One scrape of `/metrics`.
    fn scrape(&self) -> Option<String> {
        let (status, _, body) = self.get("/metrics")?;
        assert_eq!(status, 200, "{body}");
        Some(body)
    }

    /// The value of an unlabelled or fully labelled series in `/metrics`.
    fn metric(&self, series: &str) -> Option<f64> {
        value(&self.scrape()?, series)
    }

    /// Sends SIGTERM and waits (at most `secs`) for the exit status.
    fn terminate(&self, secs: u64) -> ExitStatus {
        let pid = self.child.borrow().id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.borrow_mut().try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running {secs} s after SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The value of `series` (name and labels as exposed) in a scrape.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A port free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 GET: (status, content type, body), or None when nothing listens yet.
fn http_get(port: u16, path: &str) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    Some((status, content_type, body.to_string()))
}

/// Polls `check` every 200 ms until it returns Some or `secs` pass, while `running` run.
fn eventually<T>(
    running: &[&Operator],
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        for o in running {
            o.assert_running();
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Applies the CRDs and creates a fresh namespace for the test, named `prefix` plus a suffix
/// unique to this run (a namespace deleted by an earlier run may still be terminating).
fn setup(k: &str, prefix: &str) -> String {
    let crds = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/koru-operator/crds/koru-crds.yaml"
    ))
    .unwrap();
    let (ok, out) = kubectl(k, &["apply", "--server-side", "-f", "-"], &crds);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        k,
        &[
            "wait",
            "--for=condition=Established",
            "crd/koruclusters.koru.dev",
            "--timeout=60s",
        ],
        "",
    );
    assert!(ok, "{out}");
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let ns = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        since_epoch.as_millis() % 1_000_000
    );
    let (ok, out) = kubectl(k, &["create", "namespace", &ns], "");
    assert!(ok, "{out}");
    ns
}

/// Creates a one-replica KoruCluster.
fn apply_cluster(k: &str, ns: &str, name: &str) {
    let manifest = format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n"
    );
    let (ok, out) = kubectl(k, &["apply", "-f", "-"], &manifest);
    assert!(ok, "{out}");
}

/// Waits for the StatefulSet of cluster `name`: proof that some operator reconciled it.
fn wait_for_statefulset(k: &str, ns: &str, name: &str, running: &[&Operator]) {
    eventually(running, 60, &format!("the StatefulSet {ns}/{name}"), || {
        get(k, &["get", "statefulset", name, "-n", ns, "-o", "name"])
    });
}

/// The Lease's holder ("" when released), or None when it does not exist.
fn holder(k: &str, ns: &str, lease: &str) -> Option<String> {
    get(
        k,
        &[
            "get",
            "lease",
            lease,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
}

/// Deletes the test's namespace without waiting.
fn cleanup(k: &str, ns: &str) {
    kubectl(k, &["delete", "namespace", ns, "--wait=false"], "");
}

#[test]
fn one_of_two_operators_leads_and_the_other_takes_over_on_a_crash_and_on_sigterm() {
    let Some(k) = kubeconfig() else { return };
    let _serial = serial();
    let ns = &setup(&k, "process-election");
    let lease = "koru-operator-election-test";
    let election = |identity: &'static str| {
        [
            "--leader-election",
            "--lease-name",
            lease,
            "--lease-namespace",
            ns,
            "--lease-duration-secs",
            "4",
            "--identity",
            identity,
            "--watch-namespace",
            ns,
        ]
    };
    let a = Operator::start(&k, "op-a", &election("op-a"));
    let b = Operator::start(&k, "op-b", &election("op-b"));

    for o in [&a, &b] {
        let port = o.port;
        eventually(&[], 30, "healthz and readyz", || {
            let healthz = http_get(port, "/healthz")?.0;
            let readyz = http_get(port, "/readyz")?.0;
            (healthz == 200 && readyz == 200).then_some(())
        });
    }
    let first = eventually(&[&a, &b], 30, "a holder of the Lease", || {
        holder(&k, ns, lease).filter(|h| !h.is_empty())
    });
    let (leader, follower) = match first.as_str() {
        "op-a" => (a, b),
        "op-b" => (b, a),
        other => panic!("the Lease is held by {other}, neither operator"),
    };
    eventually(
        &[&leader, &follower],
        10,
        "leader 1 and follower 0 in /metrics",
        || {
            (leader.metric("koru_operator_leader")? == 1.0
                && follower.metric("koru_operator_leader")? == 0.0)
                .then_some(())
        },
    );
    // Longer than the lease duration: the leader keeps it only by renewing.
    std::thread::sleep(Duration::from_secs(6));
    leader.assert_running();
    follower.assert_running();
    assert_eq!(holder(&k, ns, lease).as_deref(), Some(leader.name.as_str()));
    assert_eq!(follower.metric("koru_operator_leader"), Some(0.0));
    for path in ["/healthz", "/readyz"] {
        assert_eq!(follower.get(path).map(|r| r.0), Some(200), "{path}");
    }
    let (_, content_type, _) = leader.get("/metrics").unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );

    // A crash: the follower takes over once the Lease expires.
    leader.child.borrow_mut().kill().unwrap();
    leader.child.borrow_mut().wait().unwrap();
    let killed = Instant::now();
    let new_name = follower.name.clone();
    eventually(&[&follower], 15, "the follower to take over", || {
        (holder(&k, ns, lease)? == new_name && follower.metric("koru_operator_leader")? == 1.0)
            .then_some(())
    });
    eprintln!("took over {:?} after SIGKILL", killed.elapsed());
    apply_cluster(&k, ns, "handover");
    wait_for_statefulset(&k, ns, "handover", &[&follower]);

    // A graceful stop: the leader releases the Lease, so a new candidate need not wait for it
    // to expire.
    let c = Operator::start(&k, "op-c", &election("op-c"));
    eventually(&[&follower, &c], 30, "op-c ready and waiting", || {
        (c.get("/readyz")?.0 == 200 && c.metric("koru_operator_leader")? == 0.0).then_some(())
    });
    let status = follower.terminate(20);
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    let stopped = Instant::now();
    let after_exit = holder(&k, ns, lease).unwrap();
    assert!(
        after_exit.is_empty() || after_exit == "op-c",
        "the stopped leader still holds the Lease: {after_exit:?}"
    );
    eventually(&[&c], 10, "op-c to lead", || {
        (holder(&k, ns, lease)? == "op-c" && c.metric("koru_operator_leader")? == 1.0).then_some(())
    });
    let took = stopped.elapsed();
    eprintln!("took over {took:?} after SIGTERM");
    assert!(
        took < Duration::from_millis(2500),
        "op-c took {took:?} to lead after a released Lease (an expiry takes over 3 s)"
    );

    // A leader that finds the Lease taken steps down: it stops reconciling and exits non-zero,
    // so that Kubernetes restarts it as a candidate.
    let (ok, out) = kubectl(
        &k,
        &[
            "patch",
            "lease",
            lease,
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"holderIdentity":"intruder"}}"#,
        ],
        "",
    );
    assert!(ok, "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = c.child.borrow_mut().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "op-c still runs without the Lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1), "{status}");
    assert_eq!(holder(&k, ns, lease).as_deref(), Some("intruder"));
    cleanup(&k, ns);
}

#[test]
fn metrics_count_reconciles() {
    let Some(k) = kubeconfig() else { return };
    let _serial = serial();
    let ns = &setup(&k, "process-metrics");
    let operator = Operator::start(&k, "metrics", &["--watch-namespace", ns]);
    eventually(&[&operator], 30, "readyz", || {
        (operator.get("/readyz")?.0 == 200).then_some(())
    });
    assert_eq!(operator.metric("koru_operator_leader"), Some(1.0));
    apply_cluster(&k, ns, "counted");
    wait_for_statefulset(&k, ns, "counted", &[&operator]);
    let scrape = eventually(&[&operator], 30, "counted reconciles", || {
        let scrape = operator.scrape()?;
        let ok = value(&scrape, "koru_operator_reconciles_total{result=\"ok\"}")?;
        (ok >= 1.0).then_some(scrape)
    });
    let ok = value(&scrape, "koru_operator_reconciles_total{result=\"ok\"}").unwrap();
    let errors = value(&scrape, "koru_operator_reconciles_total{result=\"error\"}").unwrap();
    let count = value(&scrape, "koru_operator_reconcile_duration_seconds_count").unwrap();
    assert_eq!(
        ok + errors,
        count,
        "every reconcile is timed once: {scrape}"
    );
    assert!(
        scrape.contains("koru_operator_reconcile_duration_seconds_bucket{le=\"+Inf\"}"),
        "{scrape}"
    );
    cleanup(&k, ns);
}

#[test]
fn reconcile_spans_reach_an_otlp_collector() {
    let Some(k) = kubeconfig() else { return };
    let _serial = serial();
    let ns = &setup(&k, "process-otlp");
    let collector = koru_testkit::otlp::Collector::start();
    let endpoint = collector.endpoint.clone();
    let operator = Operator::start(
        &k,
        "traced",
        &[
            "--otlp-endpoint",
            &endpoint,
            "--log-format",
            "json",
            "--watch-namespace",
            ns,
        ],
    );
    apply_cluster(&k, ns, "traced");
    wait_for_statefulset(&k, ns, "traced", &[&operator]);
    // Shutdown flushes the spans still batched.
    let status = operator.terminate(20);
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    let traces = collector.trace_exports();
    assert!(
        !traces.is_empty(),
        "no POST /v1/traces; received {:?}",
        collector
            .received()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    let contains = |needle: &[u8]| {
        traces
            .iter()
            .any(|body| koru_testkit::otlp::contains_bytes(body, needle))
    };
    assert!(contains(b"reconcile"), "no span named reconcile");
    assert!(contains(b"traced"), "no span carrying the cluster name");
    assert!(contains(b"koru-operator"), "no service.name");
    cleanup(&k, ns);
}

/// Runs the binary with `args` (and `env`) to completion: (status, stderr).
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_koru-operator"))
        .args(args)
        .envs(env.iter().copied())
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .stdin(Stdio::null())
        .output()
        .expect("running koru-operator");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_and_a_taken_port_exit_non_zero_with_a_message() {
    for (args, env, expect) in [
        (
            &["--metrics-addr", "nonsense"][..],
            &[][..],
            "--metrics-addr",
        ),
        (&["--log-format", "xml"], &[], "--log-format"),
        (
            &["--lease-duration-secs", "0"],
            &[],
            "--lease-duration-secs",
        ),
        (&["--lease-name", "Bad_Name"], &[], "--lease-name"),
        (&["--otlp-endpoint", "collector"], &[], "--otlp-endpoint"),
        (&["--no-such-flag"], &[], "--no-such-flag"),
        (
            &[],
            &[("KORU_OPERATOR_METRICS_ADDR", "nonsense")],
            "--metrics-addr",
        ),
        (
            &[],
            &[("KORU_OPERATOR_LEADER_ELECTION", "maybe")],
            "--leader-election",
        ),
    ] {
        let (status, stderr) = run_to_exit(args, env);
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("error:"), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?} {env:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} {env:?}: {stderr}");
    }

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stderr) = run_to_exit(&["--metrics-addr", &addr], &[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
