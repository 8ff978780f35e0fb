//! KoruBackups taken for real: the real `koru-operator` against the real API server, and a real
//! `koru-dataplane` on loopback standing where the cluster's pod would serve (there is no kubelet
//! here), reached through the `koru.dev/admin-endpoint` annotation with token auth on. A backup
//! waits for its cluster, runs, and completes with the id and range the data plane lists; the
//! cluster's status shows the recoverable window; an unreachable data plane is retried until the
//! deadline and a refusal fails at once, each with its event.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{admin_token, annotate_endpoint, cluster_yaml, start_operator, start_operator_with};
use koru_testkit::{
    DataPlane, Operator, apply, eventually, field, fresh_namespace, get, install_crds, kubeconfig,
    kubectl, mark_pods_ready, unique,
};
use serde_json::Value;

/// A token verification key whose private half no test has: only the admin token opens the API.
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

/// A scratch directory under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(unique("koru-operator-backups"));
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A one-replica cluster archiving to `destination`.
fn backed_up_cluster(name: &str, destination: &str) -> String {
    cluster_yaml(
        name,
        &format!(
            "  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n  backup:\n    destination: {destination}\n"
        ),
    )
}

fn backup_yaml(name: &str, cluster: &str) -> String {
    format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruBackup\nmetadata:\n  name: {name}\nspec:\n  cluster: {cluster}\n"
    )
}

/// Starts a data plane for `cluster` holding its admin token, with token auth on and, when
/// given, archiving to `store`; points the cluster's admin endpoint at it.
fn data_plane_for(
    k: &str,
    ns: &str,
    cluster: &str,
    token: &str,
    dir: &Path,
    store: Option<&str>,
) -> DataPlane {
    data_plane_with(k, ns, cluster, token, dir, store, &[])
}

/// [`data_plane_for`] with more command-line arguments.
fn data_plane_with(
    k: &str,
    ns: &str,
    cluster: &str,
    token: &str,
    dir: &Path,
    store: Option<&str>,
    extra: &[&str],
) -> DataPlane {
    let key = dir.join(format!("{cluster}.pem"));
    std::fs::write(&key, PUBLIC_KEY).unwrap();
    // As the Secret volume holds it.
    let token_file = dir.join(format!("{cluster}-token"));
    std::fs::write(&token_file, token).unwrap();
    let (key, token_file) = (key.display().to_string(), token_file.display().to_string());
    let mut args = vec![
        "--auth-public-key",
        &key,
        "--cluster-id",
        cluster,
        "--admin-token-file",
        &token_file,
    ];
    if let Some(store) = store {
        args.extend(["--backup-store", store]);
    }
    args.extend(extra);
    let dataplane = DataPlane::start(&dir.join(format!("{cluster}-data")), &args);
    annotate_endpoint(k, ns, cluster, &dataplane.url);
    dataplane
}

/// Marks the cluster's pods ready until it is Running.
fn make_running(k: &str, ns: &str, cluster: &str, operator: &mut Operator) {
    eventually(operator, 120, &format!("{cluster} Running"), || {
        mark_pods_ready(k, ns, cluster);
        field(k, ns, &format!("kc/{cluster}"), "{.status.phase}").filter(|p| p == "Running")
    });
}

/// An object as JSON.
fn object(k: &str, ns: &str, what: &str) -> Value {
    let json = get(k, &["get", what, "-n", ns, "-o", "json"]).expect(what);
    serde_json::from_str(&json).expect("kubectl's JSON")
}

/// The reasons and types of the events on a KoruBackup.
fn backup_events(k: &str, ns: &str, name: &str) -> String {
    get(
        k,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={name},involvedObject.kind=KoruBackup"),
            "-o",
            "jsonpath={range .items[*]}{.type}/{.reason}: {.message}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default()
}

/// Records every phase a KoruBackup passes through, from a `kubectl get --watch` (which sees each
/// status write, however short-lived).
struct PhaseWatch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl PhaseWatch {
    fn start(k: &str, ns: &str, name: &str) -> PhaseWatch {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", k)
            .args([
                "get",
                "korubackups",
                "-n",
                ns,
                "--watch",
                "--field-selector",
                &format!("metadata.name={name}"),
                "-o",
                "jsonpath={.status.phase}{\"\\n\"}",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running kubectl get --watch");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line.trim().to_string());
            }
        });
        PhaseWatch { child, lines }
    }

    /// The phases seen, without repeats or blanks.
    fn phases(&self) -> Vec<String> {
        let mut phases: Vec<String> = Vec::new();
        for line in self.lines.lock().unwrap().iter() {
            if !line.is_empty() && phases.last() != Some(line) {
                phases.push(line.clone());
            }
        }
        phases
    }
}

impl Drop for PhaseWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .no_proxy()
        .build()
        .expect("an HTTP client")
}

/// PUTs `{"value": <i>}` at `orders/<key>` with the admin token.
async fn put(http: &reqwest::Client, dataplane: &DataPlane, token: &str, key: &str, i: u32) {
    let response = http
        .put(format!("{}/api/v1/orders/{key}", dataplane.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(format!("{{\"value\": {i}}}"))
        .send()
        .await
        .expect("PUT");
    assert!(response.status().is_success(), "PUT: {}", response.status());
}

/// The data plane's own `GET /admin/backups`: its backups, and the archived log's span.
async fn listed(http: &reqwest::Client, dataplane: &DataPlane, token: &str) -> (Vec<Value>, Value) {
    let response = http
        .get(format!("{}/admin/backups", dataplane.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /admin/backups");
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let backups = body["backups"].as_array().expect("backups").clone();
    (backups, body["archive"].clone())
}

/// Waits until a KoruBackup reaches `phase` and returns its status.
fn wait_for_phase(k: &str, ns: &str, name: &str, phase: &str, operator: &mut Operator) -> Value {
    eventually(operator, 90, &format!("KoruBackup {name} {phase}"), || {
        let status = object(k, ns, &format!("korubackup/{name}"))["status"].clone();
        (status["phase"] == phase).then_some(status)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_waits_for_its_cluster_runs_and_the_status_shows_the_window() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "backups-run";
    fresh_namespace(&k, ns);
    let scratch = Scratch::new();
    let store = format!("file://{}", scratch.0.join("store").display());
    let mut operator = start_operator(&k, ns);
    apply(&k, ns, &backed_up_cluster("ledger", &store));

    // The operator makes the admin token; the "pod" starts with it, as the mounted Secret.
    let token = eventually(&mut operator, 60, "the ledger-admin Secret", || {
        admin_token(&k, ns, "ledger")
    });
    assert_eq!(token.len(), 64, "32 random bytes in hex: {token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let secret = object(&k, ns, "secret/ledger-admin");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "KoruCluster"
    );
    assert_eq!(
        field(
            &k,
            ns,
            "configmap/ledger-config",
            "{.data.KORU_ADMIN_TOKEN_FILE}"
        )
        .as_deref(),
        Some("/etc/koru/admin/token")
    );
    let dataplane = data_plane_for(&k, ns, "ledger", &token, &scratch.0, Some(&store));
    let http = http();
    let anonymous = http
        .put(format!("{}/api/v1/orders/a", dataplane.url))
        .body(r#"{"value": 0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "token auth is on");
    for i in 1..=3 {
        put(&http, &dataplane, &token, &format!("k{i}"), i).await;
    }

    // Created while the cluster has no ready pod: it waits.
    let watch = PhaseWatch::start(&k, ns, "first");
    apply(&k, ns, &backup_yaml("first", "ledger"));
    let pending = wait_for_phase(&k, ns, "first", "Pending", &mut operator);
    assert_eq!(
        pending["message"], "waiting for KoruCluster ledger to be ready (it is Provisioning)",
        "{pending}"
    );
    make_running(&k, ns, "ledger", &mut operator);
    let done = wait_for_phase(&k, ns, "first", "Completed", &mut operator);

    let (backups, archive) = listed(&http, &dataplane, &token).await;
    assert_eq!(backups.len(), 1, "{backups:?}");
    let b = &backups[0];
    assert_eq!(done["backupId"], b["id"], "{done}");
    assert_eq!(
        (&done["firstLsn"], &done["lastLsn"]),
        (&b["first_lsn"], &b["last_lsn"])
    );
    assert_eq!(b["last_lsn"], 3, "the three writes: {b}");
    assert_eq!(
        (&done["firstTime"], &done["lastTime"]),
        (&b["first_time"], &b["last_time"]),
        "{done}"
    );
    assert!(done["lastTime"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(done["attempts"], 1);
    let (started, finished) = (
        done["startedAt"].as_str().unwrap(),
        done["finishedAt"].as_str().unwrap(),
    );
    assert!(started <= finished, "{done}");
    assert_eq!(done.get("error"), None, "{done}");
    eventually(
        &mut operator,
        10,
        "the Completed phase in the watch",
        || (watch.phases().last().map(String::as_str) == Some("Completed")).then_some(()),
    );
    assert_eq!(watch.phases(), ["Pending", "Running", "Completed"]);
    let events = eventually(&mut operator, 30, "a BackupCompleted event", || {
        Some(backup_events(&k, ns, "first")).filter(|e| e.contains("BackupCompleted"))
    });
    assert!(
        events.contains(&format!(
            "Normal/BackupCompleted: base backup {} covers {} to {}",
            b["id"].as_str().unwrap(),
            b["first_time"].as_str().unwrap(),
            b["last_time"].as_str().unwrap()
        )),
        "{events}"
    );
    let printed = get(&k, &["get", "korubackup", "first", "-n", ns]).unwrap();
    assert!(
        printed.contains("RESTORES TO") && printed.contains(b["last_time"].as_str().unwrap()),
        "{printed}"
    );

    // The cluster's status shows the window the backup opened, without waiting a minute.
    let window = eventually(&mut operator, 30, "the recoverable window", || {
        let status = object(&k, ns, "kc/ledger")["status"]["backup"].clone();
        (status["lastBackupId"] == b["id"]).then_some(status)
    });
    // The backup sealed and archived everything written, so the archived log ends where it does.
    assert_eq!(
        (&archive["first_time"], &archive["last_time"]),
        (&b["first_time"], &b["last_time"]),
        "{archive}"
    );
    assert_eq!(window["firstRecoverableTime"], b["first_time"], "{window}");
    assert_eq!(window["lastRecoverableTime"], b["last_time"], "{window}");
    assert!(window["recoveryPointSeconds"].is_i64(), "{window}");

    // A second backup after another write moves the end of the window, not its start.
    put(&http, &dataplane, &token, "k4", 4).await;
    apply(&k, ns, &backup_yaml("second", "ledger"));
    let second = wait_for_phase(&k, ns, "second", "Completed", &mut operator);
    assert_eq!(second["lastLsn"], 4, "{second}");
    let window = eventually(&mut operator, 30, "the window to grow", || {
        let status = object(&k, ns, "kc/ledger")["status"]["backup"].clone();
        (status["lastBackupId"] == second["backupId"]).then_some(status)
    });
    assert_eq!(window["firstRecoverableTime"], b["first_time"], "{window}");
    assert_eq!(
        window["lastRecoverableTime"], second["lastTime"],
        "{window}"
    );
    let wide = get(&k, &["get", "kc", "ledger", "-n", ns, "-o", "wide"]).unwrap();
    assert!(
        wide.contains("RECOVERABLE FROM") && wide.contains(b["first_time"].as_str().unwrap()),
        "{wide}"
    );

    // The token is never rewritten by later reconciles.
    assert_eq!(
        admin_token(&k, ns, "ledger").as_deref(),
        Some(token.as_str())
    );
    assert_eq!(
        object(&k, ns, "secret/ledger-admin")["metadata"]["resourceVersion"],
        secret["metadata"]["resourceVersion"]
    );
    drop(dataplane);
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_retried_until_the_deadline_and_a_refusal_fails_at_once() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "backups-fail";
    fresh_namespace(&k, ns);
    let scratch = Scratch::new();
    let store = format!("file://{}", scratch.0.join("store").display());
    let mut operator = start_operator_with(&k, ns, &["--backup-deadline-secs", "8"]);

    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    apply(&k, ns, &backed_up_cluster("gone", &store));
    annotate_endpoint(&k, ns, "gone", &format!("http://127.0.0.1:{closed}"));
    // A token Secret made by hand before the operator gets to it: it is used as it is.
    let token = "hand-made-admin-token-0123456789abcdef0123456789";
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain-admin\nstringData:\n  token: {token}\n"
    );
    apply(&k, ns, &secret);
    apply(&k, ns, &backed_up_cluster("plain", &store));
    // No --backup-store: the data plane refuses backups with 409.
    let _plain = data_plane_for(&k, ns, "plain", token, &scratch.0, None);
    make_running(&k, ns, "gone", &mut operator);
    make_running(&k, ns, "plain", &mut operator);

    apply(&k, ns, &backup_yaml("doomed", "gone"));
    apply(&k, ns, &backup_yaml("refused", "plain"));
    let retrying = eventually(&mut operator, 60, "doomed retrying", || {
        let status = object(&k, ns, "korubackup/doomed")["status"].clone();
        (status["phase"] == "Running" && status["attempts"].as_i64() >= Some(2)).then_some(status)
    });
    let message = retrying["message"].as_str().unwrap();
    assert!(
        message.contains("retrying in")
            && message.contains(&format!("http://127.0.0.1:{closed} cannot be reached")),
        "{retrying}"
    );
    let failed = wait_for_phase(&k, ns, "doomed", "Failed", &mut operator);
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with("gave up after 8 s") && error.contains("cannot be reached"),
        "{failed}"
    );
    assert!(failed["finishedAt"].is_string(), "{failed}");
    let events = eventually(&mut operator, 30, "a BackupFailed event", || {
        Some(backup_events(&k, ns, "doomed")).filter(|e| e.contains("BackupFailed"))
    });
    assert!(
        events.contains("Warning/BackupFailed: gave up after 8 s"),
        "{events}"
    );

    let refused = wait_for_phase(&k, ns, "refused", "Failed", &mut operator);
    assert_eq!(
        refused["attempts"], 1,
        "a refusal is not retried: {refused}"
    );
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("409 (backups_not_configured)"),
        "the hand-made token was accepted and the data plane said why: {refused}"
    );
    assert_eq!(admin_token(&k, ns, "plain").as_deref(), Some(token));

    // An unreachable data plane leaves the cluster's window unset and its reconciles unharmed.
    let status = object(&k, ns, "kc/gone")["status"].clone();
    assert_eq!(status["phase"], "Running", "{status}");
    assert_eq!(status.get("backup"), None, "{status}");
    let reasons = get(
        &k,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            "involvedObject.kind=KoruCluster",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    )
    .unwrap_or_default();
    assert!(!reasons.contains("ReconcileFailed"), "{reasons}");
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

/// The reasons and messages of the events on a KoruCluster.
fn cluster_events(k: &str, ns: &str, name: &str) -> String {
    get(
        k,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={name},involvedObject.kind=KoruCluster"),
            "-o",
            "jsonpath={range .items[*]}{.type}/{.reason}: {.message}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default()
}

/// A KoruCluster's condition of `type_`, as JSON (Null without one).
fn condition(k: &str, ns: &str, cluster: &str, type_: &str) -> Value {
    let status = object(k, ns, &format!("kc/{cluster}"))["status"].clone();
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

/// POSTs to an admin route of the data plane with the admin token; the JSON answer.
async fn admin_post(
    http: &reqwest::Client,
    dataplane: &DataPlane,
    token: &str,
    path: &str,
) -> Value {
    let response = http
        .post(format!("{}{path}", dataplane.url))
        .bearer_auth(token)
        .send()
        .await
        .expect(path);
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Flips a byte near the end of the oldest archived segment under `store`; its file name.
fn damage_oldest_segment(store: &Path) -> String {
    let segment = std::fs::read_dir(store.join("wal"))
        .expect("the store's wal/ directory")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .min()
        .expect("an archived segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    segment.file_name().unwrap().to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_drills_set_backup_verified_and_a_failure_warns_once() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "backups-drills";
    fresh_namespace(&k, ns);
    let scratch = Scratch::new();
    let store_dir = scratch.0.join("store");
    let store = format!("file://{}", store_dir.display());
    // The cluster's backups are read every 2 s instead of every minute.
    let mut operator = start_operator_with(&k, ns, &["--backup-status-interval-secs", "2"]);
    let settings = "    schedule: \"0 3 * * *\"\n    retentionDays: 7\n    archiveTimeout: 30s\n";
    apply(&k, ns, &(backed_up_cluster("vault", &store) + settings));
    let token = eventually(&mut operator, 60, "the vault-admin Secret", || {
        admin_token(&k, ns, "vault")
    });
    // The "pod" runs with the settings the operator wrote for it (which the data plane would
    // refuse at start if malformed), but no --verify-schedule: this test runs the drills itself.
    let config = object(&k, ns, "configmap/vault-config")["data"].clone();
    let setting = |name: &str| config[name].as_str().expect(name).to_string();
    let (schedule, retention, timeout) = (
        setting("KORU_BACKUP_SCHEDULE"),
        setting("KORU_BACKUP_RETENTION"),
        setting("KORU_ARCHIVE_TIMEOUT"),
    );
    assert_eq!(
        (schedule.as_str(), retention.as_str(), timeout.as_str()),
        ("0 3 * * *", "7d", "30s")
    );
    assert_eq!(config.get("KORU_VERIFY_SCHEDULE"), None, "{config}");
    let dataplane = data_plane_with(
        &k,
        ns,
        "vault",
        &token,
        &scratch.0,
        Some(&store),
        &[
            "--backup-schedule",
            &schedule,
            "--backup-retention",
            &retention,
            "--archive-timeout",
            &timeout,
        ],
    );
    make_running(&k, ns, "vault", &mut operator);
    let http = http();
    for i in 1..=5 {
        put(&http, &dataplane, &token, &format!("k{i}"), i).await;
    }
    let manifest = admin_post(&http, &dataplane, &token, "/admin/backups").await;
    let id = manifest["id"].as_str().expect("a backup id").to_string();

    // Backups without drills: the window shows, and no BackupVerified condition.
    eventually(&mut operator, 30, "the window with the backup", || {
        let backup = object(&k, ns, "kc/vault")["status"]["backup"].clone();
        (backup["lastBackupId"] == id.as_str()).then_some(())
    });
    assert_eq!(condition(&k, ns, "vault", "BackupVerified"), Value::Null);

    // A drill passes: True, with the backup, its LSN and versions, and the time it ran.
    let passed = admin_post(&http, &dataplane, &token, "/admin/backups/verify").await;
    assert_eq!(passed["ok"], true, "{passed}");
    let at = passed["at"].as_str().unwrap().to_string();
    let verified = eventually(&mut operator, 30, "BackupVerified True", || {
        Some(condition(&k, ns, "vault", "BackupVerified")).filter(|c| c["status"] == "True")
    });
    assert_eq!(verified["reason"], "DrillPassed", "{verified}");
    let message = verified["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "restore drill at {at}: base backup {id} restored and checked, LSN 5, 5 versions"
        )),
        "{verified}"
    );
    let status = object(&k, ns, "kc/vault")["status"].clone();
    assert_eq!(
        status["backup"]["lastVerifiedTime"],
        at.as_str(),
        "{status}"
    );
    let wide = get(&k, &["get", "kc", "vault", "-n", ns, "-o", "wide"]).unwrap();
    assert!(wide.contains("VERIFIED") && wide.contains(&at), "{wide}");
    assert!(
        !cluster_events(&k, ns, "vault").contains("BackupVerificationFailed"),
        "a pass is no warning"
    );

    // A damaged archived segment fails the next drill: False with the drill's message naming
    // it, a Warning event, and the last passing drill's time kept.
    let segment = damage_oldest_segment(&store_dir);
    let failed = admin_post(&http, &dataplane, &token, "/admin/backups/verify").await;
    assert_eq!(failed["ok"], false, "{failed}");
    let failed_at = failed["at"].as_str().unwrap().to_string();
    let unverified = eventually(&mut operator, 30, "BackupVerified False", || {
        Some(condition(&k, ns, "vault", "BackupVerified")).filter(|c| c["status"] == "False")
    });
    assert_eq!(unverified["reason"], "DrillFailed", "{unverified}");
    let message = unverified["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "restore drill at {failed_at} failed: {}",
            failed["message"].as_str().unwrap()
        )
    );
    assert!(message.contains(&segment), "{message} names {segment}");
    let status = object(&k, ns, "kc/vault")["status"].clone();
    assert_eq!(
        status["backup"]["lastVerifiedTime"],
        at.as_str(),
        "{status}"
    );
    let events = eventually(
        &mut operator,
        30,
        "a BackupVerificationFailed event",
        || Some(cluster_events(&k, ns, "vault")).filter(|e| e.contains("BackupVerificationFailed")),
    );
    assert!(
        events.contains(&format!("Warning/BackupVerificationFailed: {message}")),
        "{events}"
    );

    // Failing again changes the message but is no new transition: no second event.
    let again = admin_post(&http, &dataplane, &token, "/admin/backups/verify").await;
    assert_eq!(again["ok"], false, "{again}");
    let again_at = again["at"].as_str().unwrap().to_string();
    eventually(
        &mut operator,
        30,
        "the second failure in the condition",
        || {
            let c = condition(&k, ns, "vault", "BackupVerified");
            c["message"]
                .as_str()
                .is_some_and(|m| m.contains(&again_at))
                .then_some(())
        },
    );
    assert_eq!(
        condition(&k, ns, "vault", "BackupVerified")["lastTransitionTime"],
        unverified["lastTransitionTime"]
    );
    // A few more reads, so a wrongly repeated event would have been published.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let events = cluster_events(&k, ns, "vault");
    assert_eq!(
        events.matches("BackupVerificationFailed").count(),
        1,
        "{events}"
    );
    assert!(!events.contains("ReconcileFailed"), "{events}");
    drop(dataplane);
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}
