//! The gateway in the control plane's chart (`gateway.enabled`), rendered by the real helm.

use koru_testkit::{chart_path, documents, helm_available, render};

#[test]
fn the_chart_runs_the_gateway_with_its_secret_tls_files_and_a_public_only_service() {
    if !helm_available() {
        return;
    }
    let chart = chart_path("koru-controlplane");
    let chart = chart.as_str();
    let off = documents(&render(chart, "r", "koru", &[]));
    assert!(
        off.iter()
            .all(|d| d["metadata"]["name"] != "r-koru-controlplane-gateway"),
        "off by default"
    );
    let yaml = render(
        chart,
        "r",
        "koru",
        &[
            "--set",
            "gateway.enabled=true",
            "--set",
            "gateway.tls.secretName=gw-tls",
            "--set",
            "gateway.domain=koru.example",
            "--set",
            "gateway.wakeDeadline=45s",
        ],
    );
    let docs = documents(&yaml);
    let named = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in\n{yaml}"))
            .clone()
    };
    let deployment = named("Deployment", "r-koru-controlplane-gateway");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/koru/koru-gateway:0.1.0");
    let env = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    assert_eq!(
        env("KORU_GATEWAY_CONTROLPLANE_URL")["value"],
        "http://r-koru-controlplane.koru.svc:8080"
    );
    assert_eq!(
        env("KORU_GATEWAY_SECRET")["valueFrom"]["secretKeyRef"]["name"],
        "r-koru-controlplane-gateway"
    );
    assert_eq!(
        env("KORU_GATEWAY_TLS_CERT")["value"],
        "/etc/koru/tls/tls.crt"
    );
    assert_eq!(env("KORU_GATEWAY_DOMAIN")["value"], "koru.example");
    assert_eq!(env("KORU_GATEWAY_WAKE_DEADLINE")["value"], "45s");
    assert_eq!(
        env("KORU_GATEWAY_ID")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // The TLS Secret is a directory mount (subPath files never update), so renewals reload.
    let mount = &container["volumeMounts"][0];
    assert_eq!(mount["mountPath"], "/etc/koru/tls");
    assert!(mount.get("subPath").is_none());
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "gw-tls");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");

    let service = named("Service", "r-koru-controlplane-gateway");
    let ports = service["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "only the public port: {ports:?}");
    assert_eq!(ports[0]["targetPort"], "public");
    assert_eq!(service["spec"]["externalTrafficPolicy"], "Local");
    // The control plane's Service never selects gateway pods, and it gets the same secret.
    let cp_service = named("Service", "r-koru-controlplane");
    assert_ne!(
        cp_service["spec"]["selector"]["app.kubernetes.io/name"],
        service["spec"]["selector"]["app.kubernetes.io/name"]
    );
    let cp = named("Deployment", "r-koru-controlplane");
    let cp_env = cp["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        cp_env.iter().any(|e| e["name"] == "KORU_GATEWAY_SECRET"
            && e["valueFrom"]["secretKeyRef"]["name"] == "r-koru-controlplane-gateway"),
        "{cp_env:?}"
    );
}
