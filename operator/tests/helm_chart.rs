//! The Helm chart `charts/koru-operator`, through the real `helm` (built by `scripts/helm.sh`): it
//! lints and refuses mistyped values, renders exactly the operator's objects, and on the real API
//! server (testenv) those objects apply, their pods pass the `restricted` Pod Security Standard,
//! and the ServiceAccount gets exactly the access the operator needs; and `helm install`, `upgrade`
//! and `uninstall` work against that API server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use koru_testkit::{
    assert_lint_refuses, assert_lints_strictly, assert_template_refuses, can_i_as, chart_path,
    delete_release_leftovers, documents, helm_available, helm_on, install_rendered, kinds,
    kubeconfig, kubectl, object_names, one, remove_release, rule, rules, wait_for_pods, wait_until,
};
use serde_json::Value;

/// The release name of the API server test: cluster-scoped object names derive from it, so it is
/// unique to this test among the tests sharing one API server.
const RELEASE: &str = "helm-chart-test";
/// The namespace of the API server test, its own.
const NAMESPACE: &str = "helm-chart-test";
/// The object name prefix the chart gives `RELEASE` (it does not contain the chart name).
const FULLNAME: &str = "helm-chart-test-koru-operator";

fn chart() -> String {
    chart_path("koru-operator")
}

/// `helm template` of the chart as release `RELEASE` in `namespace`, with extra arguments.
fn render(namespace: &str, extra: &[&str]) -> String {
    koru_testkit::render(&chart(), RELEASE, namespace, extra)
}

#[test]
fn the_chart_lints_and_refuses_mistyped_values() {
    if !helm_available() {
        return;
    }
    let chart = chart();
    assert_lints_strictly(&chart);

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
        assert_lint_refuses(&chart, set, message);
    }

    // Several replicas without leader election would reconcile every cluster twice.
    assert_template_refuses(
        &chart,
        RELEASE,
        &["leaderElection.enabled=false"],
        "needs leaderElection.enabled=true",
    );
    // Without creating a ServiceAccount the chart must be told which one to use.
    assert_template_refuses(
        &chart,
        RELEASE,
        &["serviceAccount.create=false"],
        "serviceAccount.name must name",
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
            rule("", "pods", &["get", "list", "watch", "delete", "patch"]),
            rule("", "pods/resize", &["patch"]),
            rule("", "secrets", &["get", "create"]),
            rule(
                "",
                "services",
                &[
                    "get", "list", "watch", "create", "patch", "update", "delete"
                ]
            ),
            rule("apps", "controllerrevisions", &["get"]),
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
                "networking.k8s.io",
                "networkpolicies",
                &["get", "create", "patch"]
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

/// `kubectl auth can-i` as the operator's ServiceAccount in `NAMESPACE`.
fn can_i(k: &str, args: &[&str]) -> bool {
    can_i_as(k, NAMESPACE, FULLNAME, args)
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
    // Then what `helm install` does: the CRDs from crds/ first, then the templates.
    let out = install_rendered(&k, NAMESPACE, FULLNAME, &rendered);
    assert!(
        !out.contains("would violate PodSecurity"),
        "the pod template breaks the restricted Pod Security Standard:\n{out}"
    );

    // Every object of the release carries these labels (the namespace's `default` ServiceAccount not).
    let selector =
        format!("app.kubernetes.io/name=koru-operator,app.kubernetes.io/instance={RELEASE}");
    let names = object_names(
        &k,
        NAMESPACE,
        "serviceaccount,role,rolebinding,deployment,service",
        &selector,
    );
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
    wait_for_pods(&k, NAMESPACE, &selector, 2);

    // RBAC takes effect once the API server's informers see the bindings.
    wait_until(
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
        // An upgrade replaces the pods one by one (the StatefulSet is OnDelete).
        &["delete", "pods", "-n", "default"],
        // Compute autoscaling resizes pods in place.
        &["patch", "pods", "--subresource=resize", "-n", "default"],
        &["get", "controllerrevisions.apps", "-n", "default"],
        &["list", "storageclasses.storage.k8s.io"],
        &["create", "leases.coordination.k8s.io", "-n", NAMESPACE],
        &["get", "secrets", "-n", "default"],
        &["create", "secrets", "-n", "default"],
    ] {
        assert!(
            can_i(&k, args),
            "the operator should be allowed to {args:?}"
        );
    }
    for args in [
        &["list", "secrets", "--all-namespaces"][..],
        &["watch", "secrets", "-n", "default"],
        &["update", "secrets", "-n", "default"],
        &["delete", "secrets", "-n", "default"],
        &["delete", "nodes"],
        &["get", "nodes"],
        &["update", "leases.coordination.k8s.io", "-n", "default"],
        &["get", "leases.coordination.k8s.io", "-n", "kube-system"],
        &["create", "koruclusters.koru.dev", "-n", "default"],
        &["delete", "koruclusters.koru.dev", "-n", "default"],
        &["create", "persistentvolumeclaims", "-n", "default"],
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
    remove_release(&k, NAMESPACE, FULLNAME);
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
    delete_release_leftovers(&k, ns, &fullname);
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
