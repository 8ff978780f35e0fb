//! The real `koru` binary against the real `koru-controlplane dev` (with real data planes):
//! every command, the output formats, profiles and environment variables, session refresh,
//! error messages and exit codes, completions, and SSO login through the device flow approved
//! in the dashboard's HTML form with a session cookie.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{ControlPlane, Koru, PASSWORD, offline};
use serde_json::Value;

/// The exit codes documented in cli/README.md.
const EXIT_USAGE: i32 = 2;
const EXIT_AUTH: i32 = 3;
const EXIT_NOT_FOUND: i32 = 4;
const EXIT_FORBIDDEN: i32 = 5;
const EXIT_CONFLICT: i32 = 6;
const EXIT_UNREACHABLE: i32 = 8;

#[test]
fn completions_help_and_bad_input_need_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let koru = offline(dir.path());
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = koru.run(&["completion", shell]).ok();
        for word in [
            "clusters",
            "login",
            "restore",
            "connect",
            "audit",
            "use-profile",
        ] {
            assert!(run.stdout.contains(word), "{shell} completion lacks {word}");
        }
    }
    let run = koru.run(&["completion", "tcsh"]);
    assert_eq!(run.code, EXIT_USAGE, "{}", run.output());
    let help = koru.run(&["clusters", "--help"]).ok();
    for sub in [
        "create", "list", "get", "scale", "suspend", "resume", "delete",
    ] {
        assert!(help.stdout.contains(sub), "{}", help.output());
    }
    // Not logged in: said plainly, exit 3.
    let run = koru.run(&["clusters", "list", "--org", "acme"]);
    assert_eq!(run.code, EXIT_AUTH, "{}", run.output());
    assert!(
        run.stderr.contains("not logged in: run `koru login`"),
        "{}",
        run.output()
    );
    assert!(!run.stderr.contains("panicked"));
    // Nothing to change.
    let run = koru.run_with(
        &["clusters", "scale", "db", "--org", "acme"],
        &[("KORU_TOKEN", "x")],
        "",
    );
    assert_eq!(run.code, EXIT_USAGE, "{}", run.output());
    assert!(run.stderr.contains("nothing to change"), "{}", run.output());
    // A URL that is no URL, and one where nothing listens.
    let run = koru.run_with(&["clusters", "list"], &[("KORU_URL", "ftp://x")], "");
    assert_eq!(run.code, EXIT_USAGE, "{}", run.output());
    let run = koru.run_with(
        &["clusters", "list", "--org", "a"],
        &[("KORU_URL", "http://127.0.0.1:1"), ("KORU_TOKEN", "koru_x")],
        "",
    );
    assert_eq!(run.code, EXIT_UNREACHABLE, "{}", run.output());
    assert!(
        run.stderr.contains("could not reach http://127.0.0.1:1"),
        "{}",
        run.output()
    );
    // `..` is no cluster name (a URL would resolve it to the organization's path).
    let run = koru.run_with(
        &["clusters", "get", "..", "--org", "a"],
        &[("KORU_TOKEN", "x")],
        "",
    );
    assert_eq!(run.code, EXIT_USAGE, "{}", run.output());
    // Unknown flags and commands are clap's usage errors.
    assert_eq!(koru.run(&["clusters", "explode"]).code, EXIT_USAGE);
    // An API token needs its organization.
    let run = koru.run(&["login", "--token", "koru_x"]);
    assert_eq!(run.code, EXIT_USAGE, "{}", run.output());
    assert!(run.stderr.contains("--org"), "{}", run.output());
    // A broken config file is reported, not a panic.
    std::fs::create_dir_all(dir.path().join("koru")).unwrap();
    std::fs::write(dir.path().join("koru/config.toml"), "profiles = 3").unwrap();
    let run = koru.run(&["config", "list"]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(run.stderr.contains("is not valid"), "{}", run.output());
}

/// Writes a field of the profile in the config file (to age the session).
fn edit_profile(koru: &Koru, profile: &str, key: &str, value: &str) {
    let text = koru.config();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    let profiles = doc.get_mut("profiles").unwrap().as_table_mut().unwrap();
    let p = profiles.get_mut(profile).unwrap().as_table_mut().unwrap();
    let parsed: toml::Value = value
        .parse::<i64>()
        .map(toml::Value::Integer)
        .unwrap_or_else(|_| toml::Value::String(value.into()));
    p.insert(key.into(), parsed);
    std::fs::write(koru.config_path(), toml::to_string(&doc).unwrap()).unwrap();
}

fn profile_field(koru: &Koru, profile: &str, key: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(&koru.config()).unwrap();
    doc.get("profiles")?.get(profile)?.get(key).map(|v| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_against_the_dev_control_plane() {
    let cp = ControlPlane::start();
    let org = cp.signup("ada@example.com", "Analytical Engines").await;
    let koru = cp.cli("ada");

    // Login: a wrong password is the API's message and exit 3; the right one writes a 0600 file.
    let bad = koru.run_with(
        &["login", "--email", "ada@example.com", "--password-stdin"],
        &[],
        "wrong password\n",
    );
    assert_eq!(bad.code, EXIT_AUTH, "{}", bad.output());
    assert!(
        bad.stderr.contains("wrong email or password"),
        "{}",
        bad.output()
    );
    let login = koru.login("ada@example.com").ok();
    assert_eq!(login.json()["organization"], org.as_str());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(koru.config_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(koru.config().contains("refresh_token"));

    // Output formats: JSON when not a terminal, YAML and tables on request.
    let orgs = koru.run(&["orgs"]).ok().json();
    assert_eq!(orgs[0]["slug"], org.as_str());
    assert_eq!(orgs[0]["role"], "owner");
    let listed = koru.run(&["orgs", "list", "-o", "table"]).ok();
    assert!(listed.stdout.starts_with("SLUG"), "{}", listed.output());
    assert!(listed.stdout.contains(&org) && listed.stdout.contains("owner"));
    let yaml = koru.run(&["orgs", "-o", "yaml"]).ok();
    assert!(
        yaml.stdout.contains(&format!("slug: {org}")),
        "{}",
        yaml.output()
    );

    // Clusters: create waits until Running.
    let created = koru
        .run(&["clusters", "create", "db1", "--replicas", "1"])
        .ok()
        .json();
    assert_eq!(created["name"], "db1");
    assert_eq!(created["phase"], "Running", "{created}");
    assert!(created["endpoint"].as_str().unwrap().starts_with("http://"));
    let list = koru.run(&["clusters", "list"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let table = koru.run(&["clusters", "list", "-o", "table"]).ok();
    assert!(
        table.stdout.starts_with("NAME") && table.stdout.contains("Running"),
        "{}",
        table.output()
    );
    let got = koru.run(&["clusters", "get", "db1", "-o", "yaml"]).ok();
    assert!(got.stdout.contains("name: db1"), "{}", got.output());
    let scaled = koru
        .run(&["clusters", "scale", "db1", "--replicas", "3"])
        .ok()
        .json();
    assert_eq!(scaled["replicas"], 3, "{scaled}");
    let allowed = koru
        .run(&[
            "clusters",
            "scale",
            "db1",
            "--allow",
            "10.0.0.0/8,2001:db8::/32",
        ])
        .ok()
        .json();
    assert_eq!(
        allowed["allowed_cidrs"],
        serde_json::json!(["10.0.0.0/8", "2001:db8::/32"]),
        "{allowed}"
    );
    let open = koru
        .run(&["clusters", "scale", "db1", "--allow-any"])
        .ok()
        .json();
    assert_eq!(open["allowed_cidrs"], serde_json::json!([]), "{open}");
    let both = koru.run(&[
        "clusters",
        "scale",
        "db1",
        "--allow",
        "10.0.0.0/8",
        "--allow-any",
    ]);
    assert_eq!(both.code, EXIT_USAGE, "{}", both.output());
    let suspended = koru.run(&["clusters", "suspend", "db1"]).ok().json();
    assert_eq!(suspended["phase"], "Suspended", "{suspended}");
    let resumed = koru.run(&["clusters", "resume", "db1"]).ok().json();
    assert_eq!(resumed["phase"], "Running", "{resumed}");
    let started = koru
        .run(&["clusters", "scale", "db1", "--replicas", "5", "--no-wait"])
        .ok()
        .json();
    assert_eq!(started["operation"]["status"], "running", "{started}");
    assert!(started["operation"]["id"].is_string());

    // Errors carry the API's message and map to exit codes.
    let missing = koru.run(&["clusters", "get", "nope"]);
    assert_eq!(missing.code, EXIT_NOT_FOUND, "{}", missing.output());
    assert!(
        missing.stderr.starts_with("koru: ") && missing.stderr.contains("nope"),
        "{}",
        missing.output()
    );
    let bad_name = koru.run(&["clusters", "create", "Bad_Name"]);
    assert_eq!(bad_name.code, EXIT_USAGE, "{}", bad_name.output());
    assert!(
        bad_name.stderr.contains("lower-case"),
        "{}",
        bad_name.output()
    );
    let quota = koru.run(&["clusters", "scale", "db1", "--replicas", "7"]);
    assert!(
        quota.code == EXIT_FORBIDDEN || quota.code == EXIT_CONFLICT,
        "{}",
        quota.output()
    );
    let odd = koru.run(&["clusters", "scale", "db1", "--replicas", "2"]);
    assert_eq!(odd.code, EXIT_USAGE, "{}", odd.output());
    assert!(
        odd.stderr.contains("replicas must be 1, 3, 5 or 7"),
        "{}",
        odd.output()
    );

    // API tokens: created (the secret once), used through KORU_TOKEN, revoked.
    let token = koru
        .run(&["tokens", "create", "ci", "--role", "member"])
        .ok()
        .json();
    let secret = token["token"].as_str().unwrap().to_string();
    let token_id = token["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("koru_"));
    let tokens = koru.run(&["tokens", "list"]).ok().json();
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == token_id.as_str())
    );
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["token"].is_null()),
        "no secrets listed"
    );
    let ci = cp.cli("ci");
    let env = [("KORU_TOKEN", secret.as_str()), ("KORU_ORG", org.as_str())];
    let seen = ci.run_with(&["clusters", "list"], &env, "").ok().json();
    assert_eq!(seen[0]["name"], "db1");
    let forbidden = ci.run_with(&["tokens", "create", "x", "--role", "owner"], &env, "");
    assert_eq!(forbidden.code, EXIT_FORBIDDEN, "{}", forbidden.output());
    koru.run(&["tokens", "revoke", &token_id]).ok();
    let refused = ci.run_with(&["clusters", "list"], &env, "");
    assert_eq!(refused.code, EXIT_AUTH, "{}", refused.output());
    // `login --token` checks the token before storing it.
    let stored = ci.run_with(&["login", "--token", &secret, "--org", &org], &[], "");
    assert_eq!(stored.code, EXIT_AUTH, "{}", stored.output());
    let fresh = koru.run(&["tokens", "create", "ci2"]).ok().json();
    ci.run(&[
        "login",
        "--token",
        fresh["token"].as_str().unwrap(),
        "--org",
        &org,
    ])
    .ok();
    assert_eq!(
        ci.run(&["clusters", "get", "db1"]).ok().json()["name"],
        "db1"
    );
    let orgs_by_token = ci.run(&["orgs"]);
    assert_eq!(orgs_by_token.code, EXIT_USAGE, "{}", orgs_by_token.output());

    // Session refresh: an expired access token is refreshed before the call, a refused one
    // after it; both save the rotated refresh token.
    let before = profile_field(&koru, "default", "refresh_token").unwrap();
    edit_profile(&koru, "default", "access_expires_at", "1");
    koru.run(&["clusters", "list"]).ok();
    let after = profile_field(&koru, "default", "refresh_token").unwrap();
    assert_ne!(before, after, "rotated");
    edit_profile(&koru, "default", "access_token", "not-a-token");
    koru.run(&["clusters", "list"]).ok();
    assert_ne!(
        profile_field(&koru, "default", "refresh_token").unwrap(),
        after
    );

    // Connect: printed, exported, and in a shell.
    let conn = koru.run(&["connect", "db1"]).ok().json();
    let url = conn["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("http://") && conn["token"].is_string(),
        "{conn}"
    );
    assert_eq!(conn["scope"], "write");
    // The write token writes (so the backups below hold data).
    let put = cp
        .http
        .put(format!("{url}/api/v1/ledger/k1"))
        .bearer_auth(conn["token"].as_str().unwrap())
        .json(&serde_json::json!({"value": "v1"}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let export = koru
        .run(&["connect", "db1", "--export", "--scope", "read"])
        .ok();
    assert!(
        export
            .stdout
            .starts_with(&format!("export KORU_URL='{url}' KORU_TOKEN='")),
        "{}",
        export.output()
    );
    // The token works against the cluster's data plane.
    let token = export
        .stdout
        .split("KORU_TOKEN='")
        .nth(1)
        .unwrap()
        .trim_end()
        .trim_end_matches('\'');
    let status = cp
        .http
        .get(format!("{url}/api/v1/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let out = koru.home.join("shell.out");
    let script = format!("echo \"$KORU_URL $KORU_TOKEN\" > {}\n", out.display());
    koru.run_with(
        &["connect", "db1", "--shell"],
        &[("SHELL", "/bin/sh")],
        &script,
    )
    .ok();
    let seen = std::fs::read_to_string(&out).unwrap();
    assert!(seen.starts_with(&format!("{url} ey")), "{seen}");

    // Backups and a point-in-time restore into a new cluster.
    let backup = koru.run(&["backups", "create", "db1"]).ok().json();
    assert!(backup["id"].is_string(), "{backup}");
    let backups = koru.run(&["backups", "list", "db1"]).ok().json();
    assert!(
        !backups["backups"].as_array().unwrap().is_empty(),
        "{backups}"
    );
    let latest = backups["window"]["latest"].as_str().unwrap().to_string();
    let table = koru.run(&["backups", "list", "db1", "-o", "table"]).ok();
    assert!(
        table.stdout.contains("recoverable window"),
        "{}",
        table.output()
    );
    let future = koru.run(&[
        "restore",
        "--from",
        "db1",
        "--name",
        "db2",
        "--at",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(future.code, EXIT_USAGE, "{}", future.output());
    let restored = koru
        .run(&[
            "restore",
            "--from",
            "db1",
            "--name",
            "db1-restored",
            "--at",
            &latest,
        ])
        .ok()
        .json();
    assert_eq!(restored["name"], "db1-restored");
    assert_eq!(restored["phase"], "Running", "{restored}");

    // Usage and the audit log.
    let usage = koru.run(&["usage"]).ok().json();
    assert!(
        usage.as_array().unwrap().iter().any(|c| c["name"] == "db1"),
        "{usage}"
    );
    koru.run(&["usage", "-o", "table"]).ok();
    let file = koru.home.join("audit.ndjson");
    koru.run(&["audit", "export", "-f", file.to_str().unwrap()])
        .ok();
    let exported = std::fs::read_to_string(&file).unwrap();
    assert!(exported.lines().count() > 5, "{exported}");
    assert!(exported.contains("/clusters"));
    let verified = koru.run(&["audit", "verify"]).ok().json();
    assert_eq!(verified["intact"], true, "{verified}");

    // Delete waits; deleting again is the API's 404.
    let deleted = koru
        .run(&["clusters", "delete", "db1-restored"])
        .ok()
        .json();
    assert_eq!(deleted["status"], "deleted");
    let again = koru.run(&["clusters", "delete", "db1-restored"]);
    assert_eq!(again.code, EXIT_NOT_FOUND, "{}", again.output());

    // Logout ends the session on the server too, and forgets it.
    let access = profile_field(&koru, "default", "access_token").unwrap();
    koru.run(&["logout"]).ok();
    assert!(!koru.config().contains("refresh_token"));
    let me = cp
        .http
        .get(format!("{}/api/v1/me", cp.url))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 401);
    let after = koru.run(&["clusters", "list"]);
    assert_eq!(after.code, EXIT_AUTH, "{}", after.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_config_and_environment() {
    let cp = ControlPlane::start();
    let org = cp.signup("grace@example.com", "Compilers").await;
    let koru = cp.cli("grace");
    // A profile pointing nowhere: KORU_URL (set for every run) still wins over it.
    koru.run(&["config", "use-profile", "work"]).ok();
    koru.login("grace@example.com").ok();
    koru.run(&["config", "set", "url", "http://127.0.0.1:1"])
        .ok();
    koru.run(&["config", "set", "output", "yaml"]).ok();
    assert_eq!(
        koru.run(&["config", "get", "profile"]).ok().stdout.trim(),
        "work"
    );
    assert_eq!(
        koru.run(&["config", "get", "url"]).ok().stdout.trim(),
        "http://127.0.0.1:1"
    );
    assert_eq!(
        koru.run(&["config", "get", "org"]).ok().stdout.trim(),
        org,
        "set at login"
    );
    assert_eq!(koru.run(&["config", "get", "colour"]).code, EXIT_USAGE);
    assert_eq!(koru.run(&["config", "set", "colour", "x"]).code, EXIT_USAGE);
    assert_eq!(
        koru.run(&["config", "set", "output", "xml"]).code,
        EXIT_USAGE
    );
    assert_eq!(koru.run(&["config", "use-profile", "a b"]).code, EXIT_USAGE);
    // The profile's output format is YAML.
    let orgs = koru.run(&["orgs"]).ok();
    assert!(
        orgs.stdout.contains(&format!("slug: {org}")),
        "{}",
        orgs.output()
    );
    // Without KORU_URL the profile's URL is used (and nothing listens there).
    let mut nowhere = koru.clone();
    nowhere.env.clear();
    let run = nowhere.run(&["orgs"]);
    assert_eq!(run.code, EXIT_UNREACHABLE, "{}", run.output());
    // Another profile, chosen by flag and by KORU_PROFILE, has no credentials.
    let other = koru.run(&["--profile", "other", "clusters", "list", "--org", &org]);
    assert_eq!(other.code, EXIT_AUTH, "{}", other.output());
    let other = koru.run_with(
        &["clusters", "list", "--org", &org],
        &[("KORU_PROFILE", "other")],
        "",
    );
    assert_eq!(other.code, EXIT_AUTH, "{}", other.output());
    // KORU_CONFIG names another file altogether.
    let elsewhere = koru.home.join("elsewhere.toml");
    let run = koru.run_with(
        &["config", "list"],
        &[("KORU_CONFIG", elsewhere.to_str().unwrap())],
        "",
    );
    assert_eq!(run.ok().json(), Value::Array(vec![]));
    // `config list` shows the profiles, which one is used, and never a secret.
    let list = koru.run(&["config", "list", "-o", "json"]).ok();
    let profiles = list.json();
    let work = profiles
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "work")
        .unwrap();
    assert_eq!(work["current"], true);
    assert_eq!(work["credentials"], "session");
    assert_eq!(work["email"], "grace@example.com");
    assert!(!list.stdout.contains("kr_"), "no refresh token shown");
    // KORU_ORG names an organization the caller is not in: the API's 404.
    let run = koru.run_with(&["clusters", "list"], &[("KORU_ORG", "someone-else")], "");
    assert_eq!(run.code, EXIT_NOT_FOUND, "{}", run.output());
}

/// Runs `koru login --sso <org>` in the background; returns the child and the code it printed.
fn start_device_login(
    koru: &Koru,
    org: &str,
) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    let mut child = koru
        .command(&["login", "--sso", org])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if let Some(code) =
                line.strip_prefix("To sign in, open this link and approve the code ")
            {
                let _ = tx.send(code.trim_end_matches(':').to_string());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let code = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("koru printed a code");
    (child, code, reader)
}

/// A browser session of the dashboard: logs in through the form, keeps cookies.
async fn dashboard(cp: &ControlPlane, email: &str) -> (reqwest::Client, String) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser
        .get(format!("{}/login", cp.url))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let done = browser
        .post(format!("{}/login", cp.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert!(done.status().is_redirection(), "{}", done.status());
    // The CSRF cookie is renewed at login: read the new one from a page.
    let page = browser
        .get(format!("{}/device", cp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    (browser, csrf)
}

#[tokio::test(flavor = "multi_thread")]
async fn sso_login_through_the_device_flow() {
    let cp = ControlPlane::start();
    let org = cp.signup("linus@example.com", "Kernels").await;
    let koru = cp.cli("linus");
    let (browser, csrf) = dashboard(&cp, "linus@example.com").await;
    assert!(!csrf.is_empty());

    let (child, code, reader) = start_device_login(&koru, &org);
    assert_eq!(code.len(), 9, "{code}");
    // The page shows the request; the approval is a form post with the CSRF token.
    let page = browser
        .get(format!("{}/device/{code}", cp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("koru CLI"));
    // Without the CSRF token nothing happens.
    let forged = browser
        .post(format!("{}/device/approve", cp.url))
        .form(&[("user_code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let approved = browser
        .post(format!("{}/device/approve", cp.url))
        .form(&[("csrf", csrf.as_str()), ("user_code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status().as_u16(), 200);
    let out = child.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["email"], "linus@example.com");
    assert_eq!(summary["organization"], org.as_str());
    assert!(
        stderr.contains("/login/sso?org="),
        "the link goes through SSO: {stderr}"
    );
    // The session works, and refreshes like any other.
    assert_eq!(koru.run(&["orgs"]).ok().json()[0]["slug"], org.as_str());

    // Denied in the browser: the CLI says so and exits 3.
    let (child, code, reader) = start_device_login(&koru, &org);
    let denied = browser
        .post(format!("{}/device/deny", cp.url))
        .form(&[("csrf", csrf.as_str()), ("user_code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 200);
    let out = child.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(out.status.code(), Some(EXIT_AUTH), "{stderr}");
    assert!(stderr.contains("denied"), "{stderr}");
}
