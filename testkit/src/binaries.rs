//! Our binaries built for a test of another crate: a `cargo test -p` builds only the binaries of
//! the package under test, so a test that runs another package's asks cargo for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Binary `bin` of package `package` beside the running test's target directory, built once per
/// test process: cargo is asked the first time (a no-op when it is fresh), so a test never runs a
/// binary older than its sources.
pub fn binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    // Held while cargo runs: tests asking for the same binary at once build it once.
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    let exe = std::env::current_exe().expect("the test's path");
    // <target>/debug/deps/<test> -> <target>/debug/<bin>
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let target = profile.parent().expect("<target>/<profile>");
    let status = crate::cargo()
        .args(["build", "-p", package, "--bin", bin])
        .env("CARGO_TARGET_DIR", target)
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building {bin} failed");
    let path = profile.join(bin);
    assert!(path.is_file(), "no {bin} at {}", path.display());
    built.insert(bin.to_string(), path.clone());
    path
}

/// The `koru-dataplane` binary, built once per test process (see [`binary`]).
pub fn dataplane_binary() -> PathBuf {
    binary("koru-dataplane", "koru-dataplane")
}

/// The `koru-controlplane` binary, built once per test process (see [`binary`]).
pub fn controlplane_binary() -> PathBuf {
    binary("koru-controlplane", "koru-controlplane")
}
