//! The committed OpenAPI document (`controlplane/openapi.json`) equals the one the handlers
//! generate, so a change to the API shows up in review as a change to the document.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::path::{Path, PathBuf};

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

#[test]
fn the_committed_openapi_document_matches_the_handlers() {
    let generated = koru_controlplane::http::openapi_json().expect("render the OpenAPI document");
    if std::env::var_os("KORU_BLESS").is_some_and(|v| v == "1") {
        // CI checks the committed document; it never writes it.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "KORU_BLESS=1 rewrites controlplane/openapi.json: not under CI=true"
        );
        std::fs::write(committed_path(), &generated).expect("write controlplane/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        generated == committed,
        "controlplane/openapi.json is stale or missing: regenerate it with \
         `KORU_BLESS=1 cargo test -p koru-controlplane --test openapi` and commit it"
    );
}
