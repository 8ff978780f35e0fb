#!/usr/bin/env bash
# Runs every test of the workspace. CI runs exactly this (through `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
# CI builds in a checkout at a fixed path, so a warm run rebuilds only what changed (see the script).
if [[ "${CI:-}" == true && -z "${KORU_CI_CHECKOUT:-}" ]]; then
  exec scripts/ci-checkout.sh
fi
source scripts/env.sh
# Each step says how far into the run it starts, so slow steps show in CI's log.
step() { printf '==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
# Every clone builds the workspace's crates under a new fingerprint, so incremental caches would
# only pile up (several GB a run) without ever being reused; third-party crates are unaffected.
export CARGO_INCREMENTAL=0
step "system packages (scripts/system-deps.sh: libraries for samael, protoc, chromium and node, dnsmasq, containerd/runc/CNI)"
scripts/system-deps.sh build browser dns nodes
step "pruning stale build output (scripts/prune-cache.sh)"
scripts/prune-cache.sh
step "test tools"
scripts/install-kdelta.sh
# helm for the chart test, built once from its Go module (about 2-3 minutes cold; see testenv/README.md).
scripts/helm.sh version
# MinIO for the data plane's S3 backup tests, built once from its Go module (about 3.5 minutes cold).
scripts/s3env.sh build
# Prometheus and promtool for the monitoring tests, unpacked once from Debian's package (seconds).
scripts/prometheus.sh build
# playwright-core for the dashboard's browser test, installed once per lockfile under ~/.cache.
scripts/browser-test-deps.sh >/dev/null
# protoc for the Terraform provider's build, and the terraform (or OpenTofu, built once) its tests run.
KORU_TERRAFORM="$(terraform-provider/tools.sh)"
export KORU_TERRAFORM
step "formatting"
cargo fmt --all -- --check
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
# Every environment started below is stopped and removed however the run ends.
testenv_dir="" nodes_dir="" pgenv_dir="" s3env_dir=""
cleanup() {
  if [[ -n "$nodes_dir" ]]; then
    scripts/testenv.sh down "$nodes_dir" >/dev/null 2>&1 || true
    rm -rf --one-file-system "$nodes_dir"
  fi
  if [[ -n "$testenv_dir" ]]; then
    scripts/testenv.sh down "$testenv_dir" >/dev/null 2>&1 || true
    rm -rf "$testenv_dir"
  fi
  if [[ -n "$pgenv_dir" ]]; then
    scripts/pgenv.sh down "$pgenv_dir" >/dev/null 2>&1 || true
    rm -rf "$pgenv_dir"
  fi
  if [[ -n "$s3env_dir" ]]; then
    scripts/s3env.sh down "$s3env_dir" >/dev/null 2>&1 || true
    rm -rf "$s3env_dir"
  fi
}
trap cleanup EXIT
step "test control plane (etcd, kube-apiserver, kube-controller-manager; see testenv/README.md)"
# Each environment gets a state dir of our own, so a concurrent run's `up` cannot swap it, and is
# assigned first so a failed `up` stops the run here (an `eval` of nothing would succeed).
testenv_dir="$(mktemp -d "${TMPDIR:-/tmp}/koru-testenv.XXXX")"
testenv_exports="$(scripts/testenv.sh up "$testenv_dir")"
eval "$testenv_exports"
step "test Kubernetes with two real nodes for the end-to-end journeys (scripts/testenv.sh up --nodes=2)"
nodes_dir="$(mktemp -d "${TMPDIR:-/tmp}/koru-nodes.XXXX")"
nodes_exports="$(scripts/testenv.sh up --nodes=2 "$nodes_dir")"
KORU_NODES_KUBECONFIG="${nodes_exports#export KUBECONFIG=}"
export KORU_NODES_KUBECONFIG
step "PostgreSQL for the control plane's tests (scripts/pgenv.sh)"
pgenv_exports="$(scripts/pgenv.sh up)"
eval "$pgenv_exports"
pgenv_dir="$(cat "${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud/pgenv-last")"
step "MinIO for the data plane's S3 backup tests (scripts/s3env.sh)"
s3env_dir="$(mktemp -d "${TMPDIR:-/tmp}/koru-s3env.XXXX")"
s3env_exports="$(scripts/s3env.sh up "$s3env_dir")"
eval "$s3env_exports"
step "tests"
cargo test --workspace --all-targets
# The language bindings (issue 19): each script builds its package, runs its tests in every mode
# and the conformance vectors (bindings/conformance), and fails under CI=true when a toolchain is missing.
# They share one server binary, built once here.
cargo build -p koru-dataplane --bin koru-dataplane
export KORU_DATAPLANE_BIN="$CARGO_TARGET_DIR/debug/koru-dataplane"
step "Python package korudelta (scripts/bindings/python.sh)"
scripts/bindings/python.sh
step "npm package koru-delta: Node addon, TypeScript client, browser (scripts/bindings/node.sh)"
scripts/bindings/node.sh
step "Go client (scripts/bindings/go.sh)"
scripts/bindings/go.sh
step "the embedded store in WebAssembly, in headless Chromium (scripts/bindings/wasm.sh)"
scripts/bindings/wasm.sh
step "done"
