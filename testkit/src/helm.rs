//! The real `helm` (built by `scripts/helm.sh`) on this repository's charts, and the rendered
//! documents as JSON values.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::root;

/// The path of the chart `charts/<name>`.
pub fn chart_path(name: &str) -> String {
    root().join("charts").join(name).display().to_string()
}

/// helm's own config, cache and data (repositories, plugins), kept out of the user's home:
/// `<target>/tmp/helm-home` beside the running test (`<target>/<profile>/deps/<test>`).
fn helm_home() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.ancestors()
        .nth(3)
        .expect("the test runs from <target>/<profile>/deps")
        .join("tmp/helm-home")
}

/// Runs `scripts/helm.sh` (which builds the pinned helm once) against `kubeconfig`, or against no
/// cluster; returns (success, stdout, stderr).
pub fn helm_on(kubeconfig: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let home = helm_home();
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
pub fn helm(args: &[&str]) -> (bool, String, String) {
    helm_on(None, args)
}

/// Whether helm is available (built now if needed). Under CI=true a missing helm fails the test;
/// elsewhere (no Go, say) the test is skipped loudly.
pub fn helm_available() -> bool {
    let (ok, _, err) = helm(&["--build-only"]);
    if !ok {
        let message = format!("scripts/helm.sh could not build helm:\n{err}");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("\n!!! SKIPPING the Helm chart test: {message} !!!\n");
    }
    ok
}

/// `helm template` of `chart` as `release` in `namespace`, with extra arguments.
pub fn render(chart: &str, release: &str, namespace: &str, extra: &[&str]) -> String {
    let mut args = vec!["template", release, chart, "--namespace", namespace];
    args.extend_from_slice(extra);
    let (ok, out, err) = helm(&args);
    assert!(ok, "helm template {extra:?} failed:\n{err}");
    out
}

/// Fails the test unless `helm lint --strict` passes `chart`.
pub fn assert_lints_strictly(chart: &str) {
    let (ok, out, err) = helm(&["lint", "--strict", chart]);
    assert!(ok, "helm lint failed:\n{out}{err}");
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

/// Fails the test unless `helm lint` refuses `chart` with `--set set`, saying `message`.
pub fn assert_lint_refuses(chart: &str, set: &str, message: &str) {
    let (ok, out, err) = helm(&["lint", chart, "--set", set]);
    assert!(!ok, "helm lint accepted --set {set}:\n{out}{err}");
    assert!(
        out.contains(message),
        "--set {set}: expected {message:?} in:\n{out}{err}"
    );
}

/// Fails the test unless `helm template` of `chart` as `release` with each of `sets` (`--set`)
/// fails, saying `message`.
pub fn assert_template_refuses(chart: &str, release: &str, sets: &[&str], message: &str) {
    let mut args = vec!["template", release, chart];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, _, err) = helm(&args);
    assert!(!ok && err.contains(message), "{err}");
}

/// The rendered documents as JSON values.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).expect("helm template printed valid YAML")
}

/// The kinds of the documents, sorted.
pub fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("?").to_string())
        .collect();
    kinds.sort();
    kinds
}

/// The one document of `kind` (the test fails when there is none or more than one).
pub fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut found = docs.iter().filter(|d| d["kind"] == kind);
    let doc = found.next().unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(found.next().is_none(), "more than one {kind} rendered");
    doc
}

/// The (apiGroup, resource, verbs) rules of a ClusterRole or Role, one entry per group and resource.
pub fn rules(role: &Value) -> Vec<(String, String, Vec<String>)> {
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

/// One expected entry of [`rules`].
pub fn rule(group: &str, resource: &str, verbs: &[&str]) -> (String, String, Vec<String>) {
    (
        group.to_string(),
        resource.to_string(),
        verbs.iter().map(|v| v.to_string()).collect(),
    )
}
