//! The Helm chart `charts/koru-operator`, through the real `helm` (built by `scripts/helm.sh`): it
//! lints and refuses mistyped values, renders exactly the operator's objects, and on the real API
//! server (testenv) those objects apply, their pods pass the `restricted` Pod Security Standard,
//! and the ServiceAccount gets exactly the access the operator needs; and `helm install`, `upgrade`
//! and `uninstall` work against that API server.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{kubeconfig, kubectl};
use serde_json::Value;

/// The release name of the API server test: cluster-scoped object names derive from it, so it is
/// unique to this test among the tests sharing one API server.
const RELEASE: &str = "helm-chart-test";
/// The namespace of the API server test, its own.
const NAMESPACE: &str = "helm-chart-test";
/// The object name prefix the chart gives `RELEASE` (it does not contain the chart name).
const FULLNAME: &str = "helm-chart-test-koru-operator";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> String {
    root().join("charts/koru-operator").display().to_string()
}

/// Runs `scripts/helm.sh` (which builds the pinned helm once) against `kubeconfig`, or against no
/// cluster; returns (success, stdout, stderr).
fn helm_on(kubeconfig: Option<&str>, args: &[&str]) -> (bool, String, String) {
    // helm's own config, cache and data (repositories, plugins) stay out of the user's home.
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    let mut command = Command::new(root().join("scripts/helm.sh"));
    command
        .args(args)
        .current_dir(root())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    match kubeconfig {
        Some(k) => command.env("KUBECONFIG", k),
        // A path that does not exist: rendering and linting must not need a cluster.
        None => command.env("KUBECONFIG", home.join("no-cluster.kubeconfig")),
    };
    let out = command.output().expect("running scripts/helm.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`helm_on`] without a cluster.
fn helm(args: &[&str]) -> (bool, String, String) {
    helm_on(None, args)
}

/// Whether helm is available (built now if needed). Under CI=true a missing helm fails the test;
/// elsewhere (no Go, say) the test is skipped loudly.
fn helm_available() -> bool {
    let (ok, _, err) = helm(&["--build-only"]);
    if !ok {
        let message = format!("scripts/helm.sh could not build helm:\n{err}");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("\n!!! SKIPPING the Helm chart test: {message} !!!\n");
    }
    ok
}

/// `helm template` of the chart as release `RELEASE` in `namespace`, with extra arguments.
fn render(namespace: &str, extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        RELEASE,
        chart.as_str(),
        "--namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = helm(&args);
    assert!(ok, "helm template {extra:?} failed:\n{err}");
    out
}

/// The rendered documents as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).expect("helm template printed valid YAML")
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("?").to_string())
        .collect();
    kinds.sort();
    kinds
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut found = docs.iter().filter(|d| d["kind"] == kind);
    let doc = found.next().unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(found.next().is_none(), "more than one {kind} rendered");
    doc
}

/// The (apiGroup, resource, verbs) rules of a ClusterRole or Role, one entry per group and resource.
fn rules(role: &Value) -> Vec<(String, String, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    let mut out = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                out.push((group.clone(), resource, strings(&rule["verbs"])));
            }
        }
    }
    out.sort();
    out
}

fn rule(group: &str, resource: &str, verbs: &[&str]) -> (String, String, Vec<String>) {
    (
        group.to_string(),
        resource.to_string(),
        verbs.iter().map(|v| v.to_string()).collect(),
    )
}

#[test]
fn the_chart_lints_and_refuses_mistyped_values() {
    if !helm_available() {
        return;
    }
    let chart = chart();
    let (ok, out, err) = helm(&["lint", "--strict", &chart]);
    assert!(ok, "helm lint failed:\n{out}{err}");
    assert!(out.contains("0 chart(s) failed"), "{out}");

    for (set, message) in [
        (
            "replicaCount=abc",
            "'/replicaCount': got string, want integer",
        ),
        (
            "logging.format=xml",
            "'/logging/format': value must be one of",
        ),
        ("metrics.port=70000", "'/metrics/port'"),
        ("replicas=3", "additional properties 'replicas' not allowed"),
    ] {
        let (ok, out, err) = helm(&["lint", &chart, "--set", set]);
        assert!(!ok, "helm lint accepted --set {set}:\n{out}{err}");
        assert!(
            out.contains(message),
            "--set {set}: expected {message:?} in:\n{out}{err}"
        );
    }

    // Several replicas without leader election would reconcile every cluster twice.
    let (ok, _, err) = helm(&[
        "template",
        RELEASE,
        &chart,
        "--set",
        "leaderElection.enabled=false",
    ]);
    assert!(
        !ok && err.contains("needs leaderElection.enabled=true"),
        "{err}"
    );
    // Without creating a ServiceAccount the chart must be told which one to use.
    let (ok, _, err) = helm(&[
        "template",
        RELEASE,
        &chart,
        "--set",
        "serviceAccount.create=false",
    ]);
    assert!(
        !ok && err.contains("serviceAccount.name must name"),
        "{err}"
    );
}

#[test]
fn the_chart_renders_exactly_the_operator_objects() {
    if !helm_available() {
        return;
    }
    let docs = documents(&render("koru-system", &[]));
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    for doc in &docs {
        let meta = &doc["metadata"];
        let labels = &meta["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "koru-operator", "{meta}");
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{meta}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{meta}");
        assert_eq!(labels["app.kubernetes.io/version"], "0.1.0", "{meta}");
        let cluster_scoped = matches!(
            doc["kind"].as_str(),
            Some("ClusterRole" | "ClusterRoleBinding")
        );
        assert_eq!(meta["namespace"].is_null(), cluster_scoped, "{meta}");
        if !cluster_scoped {
            assert_eq!(meta["namespace"], "koru-system", "{meta}");
        }
    }

    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let anti =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        anti["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/koru/koru-operator:0.1.0");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["ports"][0]["name"], "metrics");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    assert!(container["resources"]["requests"]["memory"].is_string());
    let env = container["env"].as_array().expect("env");
    let var = |name: &str| -> &Value {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
    };
    assert_eq!(var("KORU_OPERATOR_LEADER_ELECTION")["value"], "true");
    assert_eq!(var("KORU_OPERATOR_LEASE_NAME")["value"], FULLNAME);
    assert_eq!(var("KORU_OPERATOR_METRICS_ADDR")["value"], "0.0.0.0:8080");
    assert_eq!(
        var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        var("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert!(
        env.iter()
            .all(|e| e["name"] != "OTEL_EXPORTER_OTLP_ENDPOINT")
    );

    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    assert_eq!(
        rules(one(&docs, "ClusterRole")),
        [
            rule(
                "",
                "configmaps",
                &[
                    "get", "list", "watch", "create", "patch", "update", "delete"
                ]
            ),
            rule("", "events", &["create", "patch"]),
            rule(
                "",
                "persistentvolumeclaims",
                &["get", "list", "watch", "patch", "update", "delete"]
            ),
            rule("", "pods", &["get", "list", "watch"]),
            rule(
                "",
                "services",
                &[
                    "get", "list", "watch", "create", "patch", "update", "delete"
                ]
            ),
            rule(
                "apps",
                "statefulsets",
                &[
                    "get", "list", "watch", "create", "patch", "update", "delete"
                ]
            ),
            rule("events.k8s.io", "events", &["create", "patch"]),
            rule(
                "koru.dev",
                "korubackups",
                &["get", "list", "watch", "patch", "update"]
            ),
            rule("koru.dev", "korubackups/finalizers", &["update"]),
            rule(
                "koru.dev",
                "korubackups/status",
                &["get", "patch", "update"]
            ),
            rule(
                "koru.dev",
                "koruclusters",
                &["get", "list", "watch", "patch", "update"]
            ),
            rule("koru.dev", "koruclusters/finalizers", &["update"]),
            rule(
                "koru.dev",
                "koruclusters/status",
                &["get", "patch", "update"]
            ),
            rule(
                "policy",
                "poddisruptionbudgets",
                &[
                    "get", "list", "watch", "create", "patch", "update", "delete"
                ]
            ),
            rule(
                "storage.k8s.io",
                "storageclasses",
                &["get", "list", "watch"]
            ),
        ]
    );
    assert_eq!(
        rules(one(&docs, "Role")),
        [rule(
            "coordination.k8s.io",
            "leases",
            &["get", "create", "update", "patch"]
        )]
    );
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let subject = &one(&docs, binding)["subjects"][0];
        assert_eq!(subject["kind"], "ServiceAccount");
        assert_eq!(subject["name"], FULLNAME);
        assert_eq!(subject["namespace"], "koru-system");
    }

    // The optional parts appear only when asked for.
    let docs = documents(&render(
        "koru-system",
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "tracing.otlpEndpoint=http://otel-collector:4318",
        ],
    ));
    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let env = &one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"
                && e["value"] == "http://otel-collector:4318"),
        "{env}"
    );
    // rbac.create=false leaves the RBAC to the cluster admin.
    let docs = documents(&render("koru-system", &["--set", "rbac.create=false"]));
    assert_eq!(kinds(&docs), ["Deployment", "Service", "ServiceAccount"]);
}

/// Polls `check` every 200 ms until it holds or `secs` pass.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl auth can-i` as the operator's ServiceAccount in `NAMESPACE`.
fn can_i(k: &str, args: &[&str]) -> bool {
    let who = format!("--as=system:serviceaccount:{NAMESPACE}:{FULLNAME}");
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    all.push(&who);
    let (ok, out) = kubectl(k, &all, "");
    let answer = out
        .lines()
        .map(str::trim)
        .find(|l| *l == "yes" || *l == "no");
    match answer {
        Some("yes") if ok => true,
        Some("no") if !ok => false,
        _ => panic!("kubectl auth can-i {args:?} gave no answer:\n{out}"),
    }
}

#[test]
fn the_rendered_chart_applies_and_grants_exactly_the_operators_access() {
    let Some(k) = kubeconfig() else { return };
    if !helm_available() {
        return;
    }
    let rendered = render(NAMESPACE, &[]);

    // A fresh namespace that enforces the restricted Pod Security Standard, so the operator pods
    // are created only if their security settings meet it; and no RBAC left from an earlier run.
    kubectl(
        &k,
        &[
            "delete",
            "namespace",
            NAMESPACE,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ],
        "",
    );
    kubectl(
        &k,
        &[
            "delete",
            &format!("clusterrole/{FULLNAME}"),
            &format!("clusterrolebinding/{FULLNAME}"),
            "--ignore-not-found",
        ],
        "",
    );
    let namespace = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n  labels:\n    pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/warn: restricted\n"
    );
    let (ok, out) = kubectl(&k, &["apply", "-f", "-"], &namespace);
    assert!(ok, "{out}");

    // What `helm install` does: the CRDs from crds/ first, then the templates.
    let crds = std::fs::read_to_string(root().join("charts/koru-operator/crds/koru-crds.yaml"))
        .expect("reading the chart's CRDs");
    let (ok, out) = kubectl(
        &k,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &crds,
    );
    assert!(ok, "applying the CRDs failed: {out}");
    let (ok, out) = kubectl(
        &k,
        &[
            "wait",
            "--for=condition=Established",
            "crd/koruclusters.koru.dev",
            "crd/korubackups.koru.dev",
            "--timeout=60s",
        ],
        "",
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &k,
        &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
        &rendered,
    );
    assert!(ok, "applying the rendered chart failed:\n{out}");
    assert!(
        !out.contains("would violate PodSecurity"),
        "the pod template breaks the restricted Pod Security Standard:\n{out}"
    );

    // Every object of the release carries these labels (the namespace's `default` ServiceAccount not).
    let selector =
        format!("app.kubernetes.io/name=koru-operator,app.kubernetes.io/instance={RELEASE}");
    let (ok, out) = kubectl(
        &k,
        &[
            "get",
            "serviceaccount,role,rolebinding,deployment,service",
            "-n",
            NAMESPACE,
            "-l",
            &selector,
            "-o",
            "name",
        ],
        "",
    );
    assert!(ok, "{out}");
    let mut names: Vec<&str> = out.lines().map(str::trim).collect();
    names.sort();
    let lease_role = format!("{FULLNAME}-leader-election");
    let metrics = format!("{FULLNAME}-metrics");
    let mut expected = vec![
        format!("serviceaccount/{FULLNAME}"),
        format!("role.rbac.authorization.k8s.io/{lease_role}"),
        format!("rolebinding.rbac.authorization.k8s.io/{lease_role}"),
        format!("deployment.apps/{FULLNAME}"),
        format!("service/{metrics}"),
    ];
    expected.sort();
    assert_eq!(names, expected);
    let (ok, out) = kubectl(
        &k,
        &[
            "get",
            &format!("clusterrole/{FULLNAME}"),
            &format!("clusterrolebinding/{FULLNAME}"),
            "-o",
            "name",
        ],
        "",
    );
    assert!(ok, "{out}");

    // The Deployment controller creates both pods, which the namespace admits only when they meet
    // the restricted standard (there is no scheduler here, so they stay Pending).
    eventually(60, "the Deployment's 2 pods", || {
        let (ok, out) = kubectl(
            &k,
            &[
                "get", "pods", "-n", NAMESPACE, "-l", &selector, "-o", "name",
            ],
            "",
        );
        ok && out.lines().filter(|l| l.starts_with("pod/")).count() == 2
    });

    // RBAC takes effect once the API server's informers see the bindings.
    eventually(
        30,
        "the ClusterRoleBinding and RoleBinding to take effect",
        || {
            can_i(&k, &["patch", "statefulsets.apps", "-n", "default"])
                && can_i(
                    &k,
                    &["update", "leases.coordination.k8s.io", "-n", NAMESPACE],
                )
        },
    );
    for args in [
        &["watch", "koruclusters.koru.dev", "--all-namespaces"][..],
        &["list", "korubackups.koru.dev", "--all-namespaces"],
        &[
            "patch",
            "koruclusters.koru.dev",
            "--subresource=status",
            "-n",
            "default",
        ],
        &[
            "update",
            "koruclusters.koru.dev",
            "--subresource=finalizers",
            "-n",
            "default",
        ],
        &["create", "events.events.k8s.io", "-n", "default"],
        &["patch", "events", "-n", "default"],
        &["delete", "poddisruptionbudgets.policy", "-n", "default"],
        &["create", "services", "-n", "default"],
        &["patch", "persistentvolumeclaims", "-n", "default"],
        &["watch", "pods", "--all-namespaces"],
        &["list", "storageclasses.storage.k8s.io"],
        &["create", "leases.coordination.k8s.io", "-n", NAMESPACE],
    ] {
        assert!(
            can_i(&k, args),
            "the operator should be allowed to {args:?}"
        );
    }
    for args in [
        &["get", "secrets", "-n", NAMESPACE][..],
        &["list", "secrets", "--all-namespaces"],
        &["delete", "nodes"],
        &["get", "nodes"],
        &["update", "leases.coordination.k8s.io", "-n", "default"],
        &["get", "leases.coordination.k8s.io", "-n", "kube-system"],
        &["create", "koruclusters.koru.dev", "-n", "default"],
        &["delete", "koruclusters.koru.dev", "-n", "default"],
        &["create", "persistentvolumeclaims", "-n", "default"],
        &["delete", "pods", "-n", "default"],
        &["create", "pods", "-n", "default"],
        &["create", "deployments.apps", "-n", "default"],
        &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
        &["create", "storageclasses.storage.k8s.io"],
        &[
            "update",
            "koruclusters.koru.dev",
            "--subresource=scale",
            "-n",
            "default",
        ],
        &["list", "namespaces"],
    ] {
        assert!(
            !can_i(&k, args),
            "the operator must not be allowed to {args:?}"
        );
    }

    // Clean up the cluster-scoped objects; the namespace takes the rest.
    let (ok, out) = kubectl(
        &k,
        &[
            "delete",
            &format!("clusterrole/{FULLNAME}"),
            &format!("clusterrolebinding/{FULLNAME}"),
        ],
        "",
    );
    assert!(ok, "{out}");
    kubectl(&k, &["delete", "namespace", NAMESPACE, "--wait=false"], "");
}

#[test]
fn helm_installs_upgrades_and_uninstalls_the_chart() {
    let Some(k) = kubeconfig() else { return };
    if !helm_available() {
        return;
    }
    // Names of its own: cluster-scoped ones derive from the release name.
    let (release, ns) = ("helm-install-test", "helm-install-test");
    let fullname = format!("{release}-koru-operator");
    kubectl(
        &k,
        &[
            "delete",
            "namespace",
            ns,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ],
        "",
    );
    kubectl(
        &k,
        &[
            "delete",
            &format!("clusterrole/{fullname}"),
            &format!("clusterrolebinding/{fullname}"),
            "--ignore-not-found",
        ],
        "",
    );
    let chart = chart();
    // No --wait: without a scheduler or kubelet the pods never become ready here.
    let (ok, out, err) = helm_on(
        Some(&k),
        &["install", release, &chart, "-n", ns, "--create-namespace"],
    );
    assert!(ok, "helm install failed:\n{out}{err}");
    assert!(out.contains("STATUS: deployed"), "{out}");
    let replicas = |k: &str| -> String {
        let (ok, out) = kubectl(
            k,
            &[
                "get",
                &format!("deployment/{fullname}"),
                "-n",
                ns,
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            "",
        );
        assert!(ok, "{out}");
        out.trim().to_string()
    };
    assert_eq!(replicas(&k), "2");
    // The CRDs from crds/ are there (installed by helm, or already by another test).
    let (ok, out) = kubectl(&k, &["get", "crd", "koruclusters.koru.dev"], "");
    assert!(ok, "{out}");

    let (ok, out, err) = helm_on(
        Some(&k),
        &[
            "upgrade",
            release,
            &chart,
            "-n",
            ns,
            "--reuse-values",
            "--set",
            "replicaCount=1",
        ],
    );
    assert!(ok, "helm upgrade failed:\n{out}{err}");
    assert_eq!(replicas(&k), "1");
    // A mistyped value is refused before anything changes.
    let (ok, _, err) = helm_on(
        Some(&k),
        &[
            "upgrade",
            release,
            &chart,
            "-n",
            ns,
            "--set",
            "replicaCount=abc",
        ],
    );
    assert!(!ok && err.contains("replicaCount"), "{err}");
    assert_eq!(replicas(&k), "1");

    let (ok, out, err) = helm_on(Some(&k), &["uninstall", release, "-n", ns, "--wait"]);
    assert!(ok, "helm uninstall failed:\n{out}{err}");
    for object in [
        format!("clusterrole/{fullname}"),
        format!("clusterrolebinding/{fullname}"),
    ] {
        let (ok, out) = kubectl(&k, &["get", &object], "");
        assert!(
            !ok && out.contains("NotFound"),
            "{object} outlived uninstall: {out}"
        );
    }
    let (ok, out) = kubectl(&k, &["get", "deployment", &fullname, "-n", ns], "");
    assert!(!ok && out.contains("NotFound"), "{out}");
    // The CRDs stay, and with them every KoruCluster.
    let (ok, out) = kubectl(&k, &["get", "crd", "koruclusters.koru.dev"], "");
    assert!(ok, "helm uninstall removed the CRDs: {out}");
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}
