//! Helpers the operator and control-plane tests share to talk to the real test API server
//! (`scripts/testenv.sh`), helm (`scripts/helm.sh`) and the real `koru-operator` binary.
//!
//! Test-only code: it panics (fails the test) with a clear message instead of returning errors.

mod helm;
mod kubectl;
mod operator;
mod release;
mod wait;

use std::path::{Path, PathBuf};

pub use helm::{
    assert_lint_refuses, assert_lints_strictly, assert_template_refuses, chart_path, documents,
    helm, helm_available, helm_on, kinds, one, render, rule, rules,
};
pub use kubectl::{
    NamespaceGuard, apply, field, fresh_namespace, get, install_crds, kubeconfig, kubectl,
    mark_pods_ready, unique, wait_for_crds,
};
pub use operator::{Operator, eventually, operator_binary};
pub use release::{
    can_i_as, delete_release_leftovers, install_rendered, object_names, remove_release,
    wait_for_pods,
};
pub use wait::{eventually_async, wait_until};

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
