//! The Helm chart `charts/koru-controlplane`, through the real `helm` (built by `scripts/helm.sh`):
//! it lints and refuses mistyped values, renders exactly the control plane's objects with the
//! environment, key mounts and probes the server expects, and on the real API server (testenv)
//! those objects apply, their pods pass the `restricted` Pod Security Standard, and the
//! ServiceAccount gets exactly the access the Kubernetes provisioner needs.

mod common_kube;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common_kube::{kubeconfig, kubectl, root};
use koru_controlplane::provisioner::kubernetes::{KubeProvisioner, KubeProvisionerConfig};
use koru_controlplane::provisioner::{ClusterSpec, ProvisionError};
use serde_json::{Value, json};

/// The release name of the API server test: cluster-scoped object names derive from it, so it is
/// unique to this test among the tests sharing one API server.
const RELEASE: &str = "cp-helm-chart-test";
/// The namespace of the API server test, its own.
const NAMESPACE: &str = "cp-helm-chart-test";
/// The object name prefix the chart gives `RELEASE` (it does not contain the chart name).
const FULLNAME: &str = "cp-helm-chart-test-koru-controlplane";

fn chart() -> String {
    root()
        .join("charts/koru-controlplane")
        .display()
        .to_string()
}

/// Runs `scripts/helm.sh` (which builds the pinned helm once) without a cluster; returns
/// (success, stdout, stderr).
fn helm(args: &[&str]) -> (bool, String, String) {
    // helm's own config, cache and data stay out of the user's home.
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    let out = Command::new(root().join("scripts/helm.sh"))
        .args(args)
        .current_dir(root())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        // A path that does not exist: rendering and linting must not need a cluster.
        .env("KUBECONFIG", home.join("no-cluster.kubeconfig"))
        .output()
        .expect("running scripts/helm.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

/// The (apiGroup, resource, verbs) rules of a ClusterRole, one entry per group and resource.
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

/// The container of the rendered Deployment.
fn container(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// One environment variable of the container.
fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
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
        ("ingress.enabled=yes", "'/ingress/enabled': got string"),
        ("service.port=70000", "'/service/port'"),
        (
            "database.existingSecretKey=",
            "'/database/existingSecretKey'",
        ),
        (
            "signingKeys.existingSecret=Bad_Name",
            "'/signingKeys/existingSecret'",
        ),
        ("publicUrl=cloud.example.com", "'/publicUrl'"),
        // A namespace name is a DNS label, so its prefix is lower-case and starts with a letter.
        (
            "provisioner.namespacePrefix=Bad_Prefix",
            "'/provisioner/namespacePrefix'",
        ),
        (
            "provisioner.namespacePrefix=",
            "'/provisioner/namespacePrefix'",
        ),
        (
            "provisioner.namespacePrefix=a-very-long-prefix-xy-",
            "'/provisioner/namespacePrefix'",
        ),
        ("replicas=3", "additional properties 'replicas' not allowed"),
        // The binary reads no SAML SP key (AuthnRequests go unsigned), so the chart offers none.
        (
            "saml.spKey.existingSecret=saml-sp",
            "additional properties 'saml' not allowed",
        ),
    ] {
        let (ok, out, err) = helm(&["lint", &chart, "--set", set]);
        assert!(!ok, "helm lint accepted --set {set}:\n{out}{err}");
        assert!(
            out.contains(message),
            "--set {set}: expected {message:?} in:\n{out}{err}"
        );
    }

    // An Ingress needs a host to route.
    let (ok, _, err) = helm(&[
        "template",
        RELEASE,
        &chart,
        "--set",
        "ingress.enabled=true",
        "--set",
        "ingress.hosts=null",
    ]);
    assert!(
        !ok && err.contains("needs at least one ingress.hosts"),
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
fn the_chart_renders_exactly_the_control_plane_objects() {
    if !helm_available() {
        return;
    }
    let docs = documents(&render("koru-cloud", &[]));
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount"
        ]
    );
    for doc in &docs {
        let meta = &doc["metadata"];
        let labels = &meta["labels"];
        assert_eq!(
            labels["app.kubernetes.io/name"], "koru-controlplane",
            "{meta}"
        );
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{meta}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{meta}");
        assert_eq!(labels["app.kubernetes.io/version"], "0.1.0", "{meta}");
        assert_eq!(meta["name"], FULLNAME, "{meta}");
        let cluster_scoped = matches!(
            doc["kind"].as_str(),
            Some("ClusterRole" | "ClusterRoleBinding")
        );
        assert_eq!(meta["namespace"].is_null(), cluster_scoped, "{meta}");
        if !cluster_scoped {
            assert_eq!(meta["namespace"], "koru-cloud", "{meta}");
        }
    }

    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["fsGroup"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(&docs);
    assert_eq!(c["image"], "ghcr.io/koru/koru-controlplane:0.1.0");
    assert_eq!(c["args"], json!(["serve"]));
    let security = &c["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    // Exactly the variables the binary reads, with the values the chart promises.
    let database = env(c, "KORU_DATABASE_URL").expect("KORU_DATABASE_URL");
    assert_eq!(
        database["valueFrom"]["secretKeyRef"],
        json!({"name": format!("{FULLNAME}-database"), "key": "url"})
    );
    for (name, value) in [
        ("KORU_LISTEN", "0.0.0.0:8080"),
        ("KORU_PROVISIONER", "kubernetes"),
        ("KORU_SESSION_KEY", "/etc/koru/keys/session.pem"),
        ("KORU_DATAPLANE_KEY", "/etc/koru/keys/dataplane.pem"),
        ("KORU_NAMESPACE_PREFIX", "koru-"),
        ("KORU_LOG", "info"),
    ] {
        assert_eq!(
            env(c, name).map(|e| &e["value"]),
            Some(&json!(value)),
            "{name}"
        );
    }
    // No public URL without an Ingress or publicUrl, and the provisioner's image and storage
    // class are left to the operator and the Kubernetes cluster unless set.
    let names: Vec<&str> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        names,
        [
            "KORU_DATABASE_URL",
            "KORU_LISTEN",
            "KORU_PROVISIONER",
            "KORU_SESSION_KEY",
            "KORU_DATAPLANE_KEY",
            "KORU_NAMESPACE_PREFIX",
            "KORU_LOG",
        ]
    );
    // The signing keys: only the two named keys, read-only, readable through fsGroup.
    assert_eq!(
        c["volumeMounts"][0],
        json!({"name": "signing-keys", "mountPath": "/etc/koru/keys", "readOnly": true})
    );
    let keys = &pod["volumes"][0];
    assert_eq!(keys["name"], "signing-keys");
    assert_eq!(keys["secret"]["secretName"], format!("{FULLNAME}-keys"));
    assert_eq!(keys["secret"]["defaultMode"], 0o440);
    assert_eq!(
        keys["secret"]["items"],
        json!([
            {"key": "session.pem", "path": "session.pem"},
            {"key": "dataplane.pem", "path": "dataplane.pem"}
        ])
    );

    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(&service["spec"]["selector"], selector);
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);

    let all = [
        "get", "list", "watch", "create", "patch", "update", "delete",
    ];
    assert_eq!(
        rules(one(&docs, "ClusterRole")),
        [
            rule("", "namespaces", &["get", "list", "create", "patch"]),
            rule(
                "",
                "secrets",
                &["get", "create", "patch", "update", "delete"]
            ),
            rule("koru.dev", "korubackups", &all),
            rule("koru.dev", "koruclusters", &all),
        ]
    );
    let subject = &one(&docs, "ClusterRoleBinding")["subjects"][0];
    assert_eq!(
        subject,
        &json!({"kind": "ServiceAccount", "name": FULLNAME, "namespace": "koru-cloud"})
    );

    // The optional parts, and the Secret names and URL the values choose.
    let docs = documents(&render(
        "koru-cloud",
        &[
            "--set",
            "ingress.enabled=true",
            "--set",
            "ingress.className=nginx",
            "--set",
            "ingress.hosts[0].host=cloud.example.com",
            "--set",
            "ingress.tls[0].secretName=cloud-tls",
            "--set",
            "ingress.tls[0].hosts[0]=cloud.example.com",
            "--set",
            "database.existingSecret=pg",
            "--set",
            "database.existingSecretKey=dsn",
            "--set",
            "signingKeys.existingSecret=my-keys",
            "--set",
            "provisioner.dataplaneImage=registry.example/koru-dataplane,provisioner.storageClass=fast",
        ],
    ));
    let ingress = one(&docs, "Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "cloud-tls");
    let route = &ingress["spec"]["rules"][0];
    assert_eq!(route["host"], "cloud.example.com");
    assert_eq!(
        route["http"]["paths"][0],
        json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": FULLNAME, "port": {"name": "http"}}}})
    );
    let c = container(&docs);
    assert_eq!(
        env(c, "KORU_PUBLIC_URL").map(|e| &e["value"]),
        Some(&json!("https://cloud.example.com"))
    );
    assert_eq!(
        env(c, "KORU_DATABASE_URL").map(|e| &e["valueFrom"]["secretKeyRef"]),
        Some(&json!({"name": "pg", "key": "dsn"}))
    );
    assert_eq!(
        env(c, "KORU_DATAPLANE_IMAGE").map(|e| &e["value"]),
        Some(&json!("registry.example/koru-dataplane"))
    );
    assert_eq!(
        env(c, "KORU_STORAGE_CLASS").map(|e| &e["value"]),
        Some(&json!("fast"))
    );
    assert_eq!(
        env(c, "KORU_NAMESPACE_PREFIX").map(|e| &e["value"]),
        Some(&json!("koru-"))
    );
    let volumes = &one(&docs, "Deployment")["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0]["secret"]["secretName"], "my-keys");
    let volume_names: Vec<&Value> = volumes
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| &v["name"])
        .collect();
    assert_eq!(volume_names, [&json!("signing-keys"), &json!("tmp")]);
    let mount_names: Vec<&Value> = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(mount_names, [&json!("signing-keys"), &json!("tmp")]);
    // An explicit publicUrl wins over the Ingress host.
    let docs = documents(&render(
        "koru-cloud",
        &[
            "--set",
            "ingress.enabled=true",
            "--set",
            "publicUrl=https://api.example.org",
        ],
    ));
    assert_eq!(
        env(container(&docs), "KORU_PUBLIC_URL").map(|e| &e["value"]),
        Some(&json!("https://api.example.org"))
    );
    // rbac.create=false leaves the RBAC to the cluster admin; one replica gets no budget.
    let docs = documents(&render(
        "koru-cloud",
        &["--set", "rbac.create=false", "--set", "replicaCount=1"],
    ));
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

/// `kubectl auth can-i` as the control plane's ServiceAccount in `NAMESPACE`.
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

#[tokio::test]
async fn the_rendered_chart_applies_and_grants_exactly_the_provisioners_access() {
    let Some(k) = kubeconfig() else { return };
    if !helm_available() {
        return;
    }
    // With the Ingress, so its object is checked by the API server too.
    let rendered = render(
        NAMESPACE,
        &[
            "--set",
            "ingress.enabled=true",
            "--set",
            "ingress.hosts[0].host=cloud.example.com",
        ],
    );

    // A fresh namespace that enforces the restricted Pod Security Standard, so the pods are
    // created only if their security settings meet it; and no RBAC left from an earlier run.
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
    // The CRDs the provisioner writes, so `can-i` is asked about served resources.
    common_kube::install_crds(&k);

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

    let selector =
        format!("app.kubernetes.io/name=koru-controlplane,app.kubernetes.io/instance={RELEASE}");
    let (ok, out) = kubectl(
        &k,
        &[
            "get",
            "serviceaccount,deployment,service,ingress,poddisruptionbudget",
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
    let mut expected = vec![
        format!("serviceaccount/{FULLNAME}"),
        format!("deployment.apps/{FULLNAME}"),
        format!("service/{FULLNAME}"),
        format!("ingress.networking.k8s.io/{FULLNAME}"),
        format!("poddisruptionbudget.policy/{FULLNAME}"),
    ];
    expected.sort();
    assert_eq!(names, expected);

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

    // RBAC takes effect once the API server's informers see the binding.
    eventually(30, "the ClusterRoleBinding to take effect", || {
        can_i(&k, &["create", "koruclusters.koru.dev", "-n", "koru-acme"])
    });
    for args in [
        &["create", "koruclusters.koru.dev", "-n", "koru-acme"][..],
        &["patch", "koruclusters.koru.dev", "-n", "koru-acme"],
        &["delete", "koruclusters.koru.dev", "-n", "koru-acme"],
        &["get", "koruclusters.koru.dev", "-n", "koru-acme"],
        &["create", "korubackups.koru.dev", "-n", "koru-acme"],
        &["list", "korubackups.koru.dev", "-n", "koru-acme"],
        &["create", "secrets", "-n", "koru-acme"],
        &["patch", "secrets", "-n", "koru-acme"],
        &["delete", "secrets", "-n", "koru-acme"],
        &["create", "namespaces"],
        &["patch", "namespaces"],
        &["get", "namespaces"],
    ] {
        assert!(
            can_i(&k, args),
            "the control plane should be allowed to {args:?}"
        );
    }
    for args in [
        &["delete", "namespaces"][..],
        &["get", "nodes"],
        &["list", "secrets", "-n", "koru-acme"],
        &["watch", "secrets", "--all-namespaces"],
        &["create", "statefulsets.apps", "-n", "koru-acme"],
        &["create", "pods", "-n", "koru-acme"],
        &["get", "pods", "-n", "koru-acme"],
        &["create", "services", "-n", "koru-acme"],
        &["delete", "persistentvolumeclaims", "-n", "koru-acme"],
        &[
            "patch",
            "koruclusters.koru.dev",
            "--subresource=status",
            "-n",
            "koru-acme",
        ],
        &[
            "create",
            "rolebindings.rbac.authorization.k8s.io",
            "-n",
            "koru-acme",
        ],
        &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
    ] {
        assert!(
            !can_i(&k, args),
            "the control plane must not be allowed to {args:?}"
        );
    }

    // The real provisioner, acting as the ServiceAccount, does its whole job with these rules.
    provision_as_the_service_account(&k).await;

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

/// Runs the Kubernetes provisioner as the chart's ServiceAccount (impersonated): a cluster is
/// applied (namespace, Secret, KoruCluster), read, backed up and deleted without a refusal.
async fn provision_as_the_service_account(k: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = kube::config::KubeConfigOptions::default();
    let kubeconfig = kube::config::Kubeconfig::read_from(k).expect("reading the kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("a client config");
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{NAMESPACE}:{FULLNAME}"));
    let client = kube::Client::try_from(config).expect("a client");
    let provisioner = KubeProvisioner::new(client, KubeProvisionerConfig::default());
    let slug = common_kube::unique("cp-helm-rbac");
    let _guard = common_kube::NamespaceGuard {
        kubeconfig: k.to_string(),
        name: format!("koru-{slug}"),
    };
    let spec = ClusterSpec {
        id: format!("cl-{slug}"),
        name: "orders".into(),
        org_id: format!("org-{slug}"),
        org_slug: slug.clone(),
        version: "0.1.0".into(),
        replicas: 1,
        storage_bytes: 1 << 30,
        max_ops_per_sec: 100,
        max_stored_bytes: 1 << 28,
        token_public_key_pem: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n".into(),
    };
    provisioner
        .apply(&spec)
        .await
        .expect("apply as the ServiceAccount");
    provisioner
        .apply(&spec)
        .await
        .expect("re-apply as the ServiceAccount");
    let state = provisioner
        .state(&spec)
        .await
        .expect("state as the ServiceAccount");
    assert_eq!(state.phase, "Pending");
    provisioner
        .backup(&spec, "b1")
        .await
        .expect("backup as the ServiceAccount");
    provisioner
        .backup_state(&spec, "b1")
        .await
        .expect("backup state as the ServiceAccount");
    provisioner
        .delete(&spec)
        .await
        .expect("delete as the ServiceAccount");
    assert!(matches!(
        provisioner.state(&spec).await,
        Err(ProvisionError::NotFound(_))
    ));
}
