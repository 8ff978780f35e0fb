//! The published `kdelta` CLI through the gateway's path prefix, with its token as the URL's
//! password (Basic auth), verified at the edge and by the member.

use std::path::PathBuf;
use std::process::Command;

use koru_testkit::DataPlane;

use crate::support::{Gateway, Keys, route, write_routes};

/// The kdelta binary, or None (after saying so) when it is missing outside CI.
fn kdelta() -> Option<PathBuf> {
    let path = std::env::var_os("KORU_KDELTA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/koru-delta-cloud/kdelta/bin/kdelta")
        });
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "kdelta not found at {}: run scripts/install-kdelta.sh",
        path.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("\n!!! SKIPPING the kdelta test: {message} !!!\n");
    None
}

/// Runs `kdelta --url <url> <args>`: (success, output).
fn run(kdelta: &PathBuf, url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(kdelta)
        .arg("--url")
        .arg(url)
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("running kdelta");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn kdelta_works_through_the_path_prefix_with_its_token_in_the_url() {
    let Some(k) = kdelta() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(3);
    let key_file = dir.path().join("public.pem");
    std::fs::write(&key_file, &keys.public_pem).unwrap();
    let member = DataPlane::start(
        &dir.path().join("data"),
        &[
            "--auth-public-key",
            key_file.to_str().unwrap(),
            "--cluster-id",
            "c-cli",
        ],
    );
    let routes = dir.path().join("routes.json");
    let mut cli = route("cli", &[&member.url]);
    cli.token_public_key_pem = keys.public_pem.clone();
    write_routes(&routes, vec![cli]);
    let gw = Gateway::start(&routes, &[]);
    let token = keys.token("c-cli", "cli-1", 600);
    let url = format!(
        "http://token:{token}@{}/c/acme/cli",
        gw.url.trim_start_matches("http://")
    );

    let (ok, out) = run(
        &k,
        &url,
        &["set", "users/alice", r#"{"name":"Alice","age":30}"#],
    );
    assert!(ok && out.contains("Stored: users/alice"), "{out}");
    let (ok, out) = run(&k, &url, &["get", "users/alice"]);
    assert!(ok && out.contains("\"age\": 30"), "{out}");
    let (ok, out) = run(&k, &url, &["query", "users", "--filter", "age > 18"]);
    assert!(ok && out.contains("alice"), "{out}");
    let (ok, out) = run(&k, &url, &["status"]);
    assert!(ok && out.contains("Keys: 1"), "{out}");
    // Without the token, the edge refuses.
    let bare = format!("{}/c/acme/cli", gw.url);
    let (ok, out) = run(&k, &bare, &["get", "users/alice"]);
    assert!(!ok, "{out}");
}
