//! The published `kdelta` CLI through the gateway's path prefix, with its token as the URL's
//! password (Basic auth), verified at the edge and by the member.

use koru_testkit::{DataPlane, kdelta_binary, run_kdelta};

use crate::support::{Gateway, Keys, route, write_routes};

#[test]
fn kdelta_works_through_the_path_prefix_with_its_token_in_the_url() {
    let Some(k) = kdelta_binary() else { return };
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

    let (ok, out) = run_kdelta(
        &k,
        &url,
        &["set", "users/alice", r#"{"name":"Alice","age":30}"#],
    );
    assert!(ok && out.contains("Stored: users/alice"), "{out}");
    let (ok, out) = run_kdelta(&k, &url, &["get", "users/alice"]);
    assert!(ok && out.contains("\"age\": 30"), "{out}");
    let (ok, out) = run_kdelta(&k, &url, &["query", "users", "--filter", "age > 18"]);
    assert!(ok && out.contains("alice"), "{out}");
    let (ok, out) = run_kdelta(&k, &url, &["status"]);
    assert!(ok && out.contains("Keys: 1"), "{out}");
    // Without the token, the edge refuses.
    let bare = format!("{}/c/acme/cli", gw.url);
    let (ok, out) = run_kdelta(&k, &bare, &["get", "users/alice"]);
    assert!(!ok, "{out}");
}
