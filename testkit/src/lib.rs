//! The process harness every test and benchmark starts our binaries with ([`Process`]), and the
//! helpers the operator and control-plane tests share to talk to the real test API server
//! (`scripts/testenv.sh`), helm (`scripts/helm.sh`) and the real `koru-operator`,
//! `koru-dataplane` and `koru-controlplane` binaries.
//!
//! Test-only code: it panics (fails the test) with a clear message instead of returning errors,
//! except where a benchmark needs the error ([`Process::try_start`]).

mod binaries;
mod browser;
mod dataplane;
mod helm;
mod kdelta;
mod kubectl;
mod operator;
pub mod otlp;
mod process;
mod procs;
mod release;
mod wait;

use std::path::{Path, PathBuf};

pub use binaries::{binary, controlplane_binary, dataplane_binary};
pub use browser::{JourneyRun, run_browser_journeys};
pub use dataplane::DataPlane;
pub use helm::{
    assert_lint_refuses, assert_lints_strictly, assert_template_refuses, chart_path, documents,
    helm, helm_available, helm_on, kinds, one, render, rule, rules,
};
pub use kdelta::{kdelta_binary, run_kdelta};
pub use kubectl::{
    NamespaceGuard, apply, field, fresh_namespace, get, install_crds, kubeconfig, kubectl,
    mark_pods_ready, unique, wait_for_crds,
};
pub use operator::{Operator, eventually, operator_binary};
pub use process::{
    CONTROLPLANE_READY, DATAPLANE_READY, Exited, Process, ProcessSpec, START_TIMEOUT, STOP_TIMEOUT,
    StartError,
};
pub use procs::{kill_dataplanes_under, pids_where};
pub use release::{
    can_i_as, delete_release_leftovers, install_rendered, object_names, remove_release,
    wait_for_pods,
};
pub use wait::{eventually_async, wait_until};

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A `cargo` command run from the workspace root, as a test runs it to build a binary of another
/// crate. The variables cargo sets for the running test (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`, ...)
/// are removed: some build scripts watch them, so passing them on would rebuild those crates at
/// every switch between a test's build and a shell's.
pub fn cargo() -> std::process::Command {
    let mut command =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|p| name.starts_with(p))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name.as_ref());
        if set_for_tests {
            command.env_remove(name.as_ref());
        }
    }
    command.current_dir(root());
    command
}
