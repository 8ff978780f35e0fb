//! The Helm chart `charts/koru-controlplane`, through the real `helm` (built by `scripts/helm.sh`):
//! it lints and refuses mistyped values, renders exactly the control plane's objects with the
//! environment, key mounts and probes the server expects, and on the real API server (testenv)
//! those objects apply, their pods pass the `restricted` Pod Security Standard, and the
//! ServiceAccount gets exactly the access the Kubernetes provisioner needs.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use koru_controlplane::provisioner::kubernetes::{KubeProvisioner, KubeProvisionerConfig};
use koru_controlplane::provisioner::{ClusterSpec, ProvisionError};
use koru_testkit::{
    NamespaceGuard, assert_lint_refuses, assert_lints_strictly, assert_template_refuses, can_i_as,
    chart_path, documents, helm_available, install_rendered, kinds, kubeconfig, object_names, one,
    remove_release, rule, rules, unique, wait_for_pods, wait_until,
};
use serde_json::{Value, json};

/// The release name of the API server test: cluster-scoped object names derive from it, so it is
/// unique to this test among the tests sharing one API server.
const RELEASE: &str = "cp-helm-chart-test";
/// The namespace of the API server test, its own.
const NAMESPACE: &str = "cp-helm-chart-test";
/// The object name prefix the chart gives `RELEASE` (it does not contain the chart name).
const FULLNAME: &str = "cp-helm-chart-test-koru-controlplane";

fn chart() -> String {
    chart_path("koru-controlplane")
}

/// `helm template` of the chart as release `RELEASE` in `namespace`, with extra arguments.
fn render(namespace: &str, extra: &[&str]) -> String {
    koru_testkit::render(&chart(), RELEASE, namespace, extra)
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
    assert_lints_strictly(&chart);

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
        assert_lint_refuses(&chart, set, message);
    }

    // An Ingress needs a host to route.
    assert_template_refuses(
        &chart,
        RELEASE,
        &["ingress.enabled=true", "ingress.hosts=null"],
        "needs at least one ingress.hosts",
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
            "--set",
            "provisioner.backup.destination=s3://backups/hosted,provisioner.backup.credentialsSecret=s3-creds",
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
    assert_eq!(
        env(c, "KORU_BACKUP_DESTINATION").map(|e| &e["value"]),
        Some(&json!("s3://backups/hosted"))
    );
    // The credentials Secret lives in the release namespace.
    let secret =
        env(c, "KORU_BACKUP_CREDENTIALS_SECRET").map(|e| e["value"].as_str().unwrap_or(""));
    assert!(
        secret.is_some_and(|s| s.ends_with("/s3-creds") && !s.starts_with('/')),
        "{secret:?}"
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

/// `kubectl auth can-i` as the control plane's ServiceAccount in `NAMESPACE`.
fn can_i(k: &str, args: &[&str]) -> bool {
    can_i_as(k, NAMESPACE, FULLNAME, args)
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
    // With the CRDs the provisioner writes, so `can-i` is asked about served resources.
    let out = install_rendered(&k, NAMESPACE, FULLNAME, &rendered);
    assert!(
        !out.contains("would violate PodSecurity"),
        "the pod template breaks the restricted Pod Security Standard:\n{out}"
    );

    let selector =
        format!("app.kubernetes.io/name=koru-controlplane,app.kubernetes.io/instance={RELEASE}");
    let names = object_names(
        &k,
        NAMESPACE,
        "serviceaccount,deployment,service,ingress,poddisruptionbudget",
        &selector,
    );
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
    wait_for_pods(&k, NAMESPACE, &selector, 2);

    // RBAC takes effect once the API server's informers see the binding.
    wait_until(30, "the ClusterRoleBinding to take effect", || {
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
    remove_release(&k, NAMESPACE, FULLNAME);
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
    let slug = unique("cp-helm-rbac");
    let _guard = NamespaceGuard {
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
        backup_retention_days: 1,
        restore: None,
        suspended: false,
        regions: Vec::new(),
        region: None,
        token_public_key_pem: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n".into(),
        revocations_url: None,
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
