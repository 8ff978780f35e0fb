//! The monitoring the control plane's chart ships (charts/koru-controlplane/monitoring): the alert
//! rules pass their `promtool test rules` unit tests, and a real Prometheus scraping a real
//! `koru-dataplane` and a real `koru-controlplane dev` loads the rules without error and has
//! every metric the dashboards and rules name. Prometheus and promtool come from
//! `scripts/prometheus.sh` (unpacked once from Debian's package and cached).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use koru_testkit::{DataPlane, Process, ProcessSpec, eventually_async};
use serde_json::Value;

/// The data plane's admin token in the scrape test.
const ADMIN_TOKEN: &str = "monitoring-test-admin-token-0123456789abcdef0123456789abcdef";

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// charts/koru-controlplane/monitoring.
fn monitoring() -> PathBuf {
    root().join("charts/koru-controlplane/monitoring")
}

/// The directory holding `prometheus` and `promtool`, fetched on first use. Under `CI=true` a
/// failed fetch fails the test; elsewhere it is skipped loudly (no apt on the machine).
fn prometheus_bin_dir() -> Option<PathBuf> {
    let out = Command::new(root().join("scripts/prometheus.sh"))
        .arg("bin-dir")
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/prometheus.sh");
    if out.status.success() {
        return Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()));
    }
    let message = "scripts/prometheus.sh could not fetch Prometheus (see its error above)";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("\n!!! SKIPPING the monitoring test: {message} !!!\n");
    None
}

/// Runs `command`, failing with its output unless it succeeds.
fn run_ok(command: &mut Command) -> String {
    let out = command.output().expect("starting the command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_their_promtool_unit_tests() {
    let Some(bin) = prometheus_bin_dir() else {
        return;
    };
    let promtool = bin.join("promtool");
    let checked = run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(monitoring().join("rules/koru.rules.yaml")),
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tests: Vec<PathBuf> = std::fs::read_dir(monitoring().join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    assert!(!tests.is_empty(), "no rule tests");
    let tested = run_ok(
        Command::new(&promtool)
            .current_dir(monitoring().join("tests"))
            .args(["test", "rules"])
            .args(&tests),
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every PromQL expression of the dashboards and the rules file.
fn expressions() -> Vec<String> {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        // A template variable's query: label_values(<metric>, <label>).
                        ("query", Value::String(q)) if q.starts_with("label_values(") => {
                            out.push(q.clone())
                        }
                        _ => collect(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(monitoring().join("dashboards")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        collect(&serde_json::from_str(&text).unwrap(), &mut out);
    }
    let rules = std::fs::read_to_string(monitoring().join("rules/koru.rules.yaml")).unwrap();
    collect(&serde_saphyr::from_str::<Value>(&rules).unwrap(), &mut out);
    out
}

/// The metric names in `expr`: identifiers starting with `koru_` (recording rules, which have
/// colons, are not metrics a binary exports).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("koru_") && !t.contains(':'))
        .map(str::to_string)
        .collect()
}

/// The recording rules' names used in `expr`.
fn recorded_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.contains(":koru_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn names_are_read_out_of_expressions() {
    let e = r#"sum by (cluster) (rate(koru_gateway_requests_total{code=~"5.."}[5m])) / cluster:koru_gateway_requests:rate5m > 14.4 * 0.001"#;
    assert_eq!(
        metric_names(e).into_iter().collect::<Vec<_>>(),
        ["koru_gateway_requests_total"]
    );
    assert_eq!(
        recorded_names(e).into_iter().collect::<Vec<_>>(),
        ["cluster:koru_gateway_requests:rate5m"]
    );
}

/// A metric's family name: what Prometheus' metadata lists for it (OpenMetrics counters and
/// histograms drop these suffixes).
fn family(name: &str) -> &str {
    ["_total", "_bucket", "_sum", "_count", "_created"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// Whether `name` is one of the gateway's metrics, as the contract crate names them.
fn is_gateway_metric(name: &str) -> bool {
    use koru_gateway_api::metrics::*;
    let histograms = [REQUEST_DURATION, WAKE_DURATION];
    [REQUESTS, REFUSED, WAKES, SYNC_AGE].contains(&name)
        || histograms.iter().any(|h| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{h}{s}"))
        })
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus child process, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- Prometheus log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// `GET {base}{path}` of Prometheus' HTTP API: its `data` when the call succeeded.
fn api(base: &str, path: &str) -> impl std::future::Future<Output = Option<Value>> + use<> {
    let url = format!("{base}{path}");
    async move {
        let body: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }
}

/// `host:port` of a process URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_binaries_with_every_metric_the_dashboards_and_rules_name() {
    let Some(bin) = prometheus_bin_dir() else {
        return;
    };
    // reqwest's rustls needs the process-wide provider the binaries install at start-up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    // A one-member Raft cluster (so the replication metrics exist) that archives, with some
    // traffic, a base backup and a restore drill (so every labelled family has a series).
    let backups = format!("file://{}", dir.path().join("backups").display());
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let peer = format!("127.0.0.1:{}", free_port());
    let dataplane = DataPlane::start(
        &dir.path().join("data"),
        &[
            "--backup-store",
            &backups,
            "--admin-token-file",
            &token_file.display().to_string(),
            "--node-id",
            "1",
            "--peers",
            &format!("1={peer}"),
            "--peer-listen",
            &peer,
        ],
    );
    let http = reqwest::Client::new();
    let dp = dataplane.url.clone();
    for i in 0..3 {
        // Accepted once the member has elected itself.
        eventually_async(30, "a write accepted", || {
            let put = http
                .put(format!("{dp}/api/v1/shop/cart-{i}"))
                .json(&serde_json::json!({"value": i}))
                .send();
            async move { put.await.ok()?.status().is_success().then_some(()) }
        })
        .await;
    }
    for (path, status) in [("/admin/backups", 201), ("/admin/backups/verify", 200)] {
        let r = http
            .post(format!("{dp}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            status,
            "POST {path}: {}",
            r.text().await.unwrap()
        );
    }
    let controlplane = Process::start(
        ProcessSpec::controlplane(koru_testkit::controlplane_binary())
            .clear_koru_env()
            .args([
                "dev",
                "--listen",
                "127.0.0.1:0",
                "--gateway-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path().join("cloud"))
            .env("KORU_DATAPLANE_BIN", koru_testkit::dataplane_binary()),
    );
    // A cluster created and deleted, so the operations counter has series.
    let cp = controlplane.url().trim_end_matches('/').to_string();
    let signup: Value = http
        .post(format!("{cp}/api/v1/signup"))
        .json(&serde_json::json!({"email": "ops@monitoring.example", "password": "correct horse battery", "organization": "Monitoring"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["access_token"]
        .as_str()
        .expect("signed up")
        .to_string();
    let org = signup["organization"]["id"].as_str().unwrap().to_string();
    let created: Value = http
        .post(format!("{cp}/api/v1/orgs/{org}/clusters"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "probe"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let finished = |id: String| {
        let (http, cp, token) = (http.clone(), cp.clone(), token.clone());
        async move {
            eventually_async(120, "the operation finished", || {
                let get = http
                    .get(format!("{cp}/api/v1/operations/{id}"))
                    .bearer_auth(&token)
                    .send();
                async move {
                    let op: Value = get.await.ok()?.json().await.ok()?;
                    (op["status"] != "running").then_some(op)
                }
            })
            .await
        }
    };
    let op = finished(created["operation"]["id"].as_str().expect("created").into()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let deleted: Value = http
        .delete(format!("{cp}/api/v1/orgs/{org}/clusters/probe"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = finished(deleted["id"].as_str().expect("deleting").into()).await;
    assert_eq!(op["status"], "succeeded", "{op}");

    let rules = monitoring().join("rules/koru.rules.yaml");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n\
             \x20 - job_name: koru-dataplane\n    static_configs:\n\
             \x20     - targets: ['{dp}']\n        labels: {{namespace: koru-test, cluster: orders}}\n\
             \x20 - job_name: koru-controlplane\n    static_configs:\n\
             \x20     - targets: ['{cp}']\n",
            rules = rules.display(),
            dp = host_port(&dataplane.url),
            cp = host_port(controlplane.url()),
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("prometheus.log");
    let child = Command::new(bin.join("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting prometheus");
    let prometheus = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let base = prometheus.url.clone();

    // Both targets are scraped successfully.
    let targets = eventually_async(60, "both targets up", || {
        let targets = api(&base, "/api/v1/targets");
        async move {
            let data = targets.await?;
            let active = data["activeTargets"].as_array()?.clone();
            (active.len() == 2 && active.iter().all(|t| t["health"] == "up")).then_some(active)
        }
    })
    .await;
    let jobs: BTreeSet<&str> = targets
        .iter()
        .map(|t| t["labels"]["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs.into_iter().collect::<Vec<_>>(),
        ["koru-controlplane", "koru-dataplane"]
    );

    // Every rule loaded and has been evaluated without error.
    let groups = eventually_async(60, "every rule evaluated", || {
        let rules = api(&base, "/api/v1/rules");
        async move {
            let data = rules.await?;
            let groups = data["groups"].as_array()?.clone();
            let evaluated = groups.iter().all(|g| {
                g["rules"].as_array().is_some_and(|rules| {
                    rules
                        .iter()
                        .all(|r| r["health"] == "ok" || r["health"] == "err")
                })
            });
            (groups.len() == 3 && evaluated).then_some(groups)
        }
    })
    .await;
    let mut loaded = 0;
    for rule in groups.iter().flat_map(|g| g["rules"].as_array().unwrap()) {
        assert_eq!(rule["health"], "ok", "{rule}");
        loaded += 1;
    }
    let in_file = std::fs::read_to_string(&rules)
        .unwrap()
        .matches("\n      - alert: ")
        .count()
        + std::fs::read_to_string(&rules)
            .unwrap()
            .matches("\n      - record: ")
            .count();
    assert_eq!(loaded, in_file, "every rule of the file loaded");

    // Every metric the dashboards and rules name was scraped (series or, for a family with no
    // sample yet, its metadata) or is the gateway's, as the contract crate names it.
    let series: BTreeSet<String> = eventually_async(30, "metrics scraped", || {
        let names = api(&base, "/api/v1/label/__name__/values");
        async move {
            let names: BTreeSet<String> = serde_json::from_value(names.await?).ok()?;
            names
                .contains("koru_controlplane_http_requests_total")
                .then_some(names)
        }
    })
    .await;
    assert!(series.contains("koru_log_bytes"), "{series:?}");
    assert!(series.contains("koru_http_requests_total"), "{series:?}");
    let metadata = api(&base, "/api/v1/metadata").await.unwrap();
    let families: BTreeSet<&str> = metadata
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let defined: BTreeSet<String> = std::fs::read_to_string(&rules)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(str::to_string)
        .collect();
    let mut missing = Vec::new();
    let mut checked = 0;
    for expr in expressions() {
        for name in metric_names(&expr) {
            checked += 1;
            let found = if name.starts_with("koru_gateway_") {
                is_gateway_metric(&name)
            } else {
                series.contains(&name) || families.contains(family(&name))
            };
            if !found {
                missing.push(format!("{name} (in {expr})"));
            }
        }
        for name in recorded_names(&expr) {
            assert!(
                defined.contains(&name),
                "{name} is not recorded by the rules ({expr})"
            );
        }
    }
    assert!(checked > 50, "only {checked} names checked");
    assert!(
        missing.is_empty(),
        "metrics named by the dashboards or rules that no binary exports:\n{}",
        missing.join("\n")
    );
    drop(prometheus);
    drop(controlplane);
    drop(dataplane);
}

#[test]
fn the_chart_ships_the_dashboards_and_rules_only_when_asked() {
    use koru_testkit::{chart_path, documents, helm_available, kinds, one, render};
    if !helm_available() {
        return;
    }
    let chart = chart_path("koru-controlplane");
    let plain = documents(&render(&chart, "mon", "koru-cloud", &[]));
    assert!(
        !kinds(&plain)
            .iter()
            .any(|k| k == "ConfigMap" || k == "PrometheusRule"),
        "off by default"
    );
    let docs = documents(&render(
        &chart,
        "mon",
        "koru-cloud",
        &[
            "--set",
            "monitoring.grafanaDashboards.enabled=true",
            "--set",
            "monitoring.grafanaDashboards.namespace=grafana",
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--set",
            "monitoring.prometheusRule.labels.release=prometheus",
        ],
    ));
    // One ConfigMap per dashboard file, labelled for the sidecar, holding the file unchanged.
    let maps: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ConfigMap").collect();
    let files: Vec<PathBuf> = std::fs::read_dir(monitoring().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(maps.len(), files.len());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let map = maps
            .iter()
            .find(|m| m["data"].get(&name).is_some())
            .unwrap_or_else(|| panic!("no ConfigMap holds {name}"));
        assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
        assert_eq!(map["metadata"]["namespace"], "grafana");
        let shipped: Value = serde_json::from_str(map["data"][&name].as_str().unwrap()).unwrap();
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(shipped, committed, "{name}");
    }
    // The PrometheusRule carries the rules file's groups.
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(rule["metadata"]["namespace"], "koru-cloud");
    let file: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(monitoring().join("rules/koru.rules.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(rule["spec"]["groups"], file["groups"]);
    koru_testkit::assert_template_refuses(
        &chart,
        "mon",
        &["monitoring.prometheusRule.enabled=yes"],
        "at '/monitoring/prometheusRule/enabled': got string, want boolean",
    );
}
