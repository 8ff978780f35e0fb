//! The operator tests' own helpers; those shared with the control plane's tests are in
//! `koru-testkit`.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::Path;

use koru_testkit::Operator;

/// Starts this crate's `koru-operator` against `kubeconfig`, watching only `namespace`.
pub fn start_operator(kubeconfig: &str, namespace: &str) -> Operator {
    Operator::start_with(
        Path::new(env!("CARGO_BIN_EXE_koru-operator")),
        kubeconfig,
        namespace,
    )
}

/// [`start_operator`] with more command-line arguments.
pub fn start_operator_with(kubeconfig: &str, namespace: &str, args: &[&str]) -> Operator {
    Operator::start_with_args(
        Path::new(env!("CARGO_BIN_EXE_koru-operator")),
        kubeconfig,
        namespace,
        args,
    )
}

/// A KoruCluster manifest with the given spec lines (indented by the caller under `spec:`).
pub fn cluster_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}
