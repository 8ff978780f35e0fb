#!/usr/bin/env bash
# Runs every test of the workspace. CI runs exactly this (through `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# Every clone builds the workspace's crates under a new fingerprint, so incremental caches would
# only pile up (several GB a run) without ever being reused; third-party crates are unaffected.
export CARGO_INCREMENTAL=0
echo "==> system packages (scripts/system-deps.sh: libraries for samael, protoc, chromium and node, dnsmasq)"
scripts/system-deps.sh build browser dns
echo "==> pruning stale build output (scripts/prune-cache.sh)"
scripts/prune-cache.sh
echo "==> test tools"
scripts/install-kdelta.sh
# helm for the chart test, built once from its Go module (about 2-3 minutes cold; see testenv/README.md).
scripts/helm.sh version
# MinIO for the data plane's S3 backup tests, built once from its Go module (about 3.5 minutes cold).
scripts/s3env.sh build
# playwright-core for the dashboard's browser test, installed once per lockfile under ~/.cache.
scripts/browser-test-deps.sh >/dev/null
# protoc for the Terraform provider's build, and the terraform (or OpenTofu, built once) its tests run.
KORU_TERRAFORM="$(terraform-provider/tools.sh)"
export KORU_TERRAFORM
echo "==> formatting"
cargo fmt --all -- --check
echo "==> clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> test control plane (etcd, kube-apiserver, kube-controller-manager; see testenv/README.md)"
eval "$(scripts/testenv.sh up)"
testenv_dir="$(dirname "$KUBECONFIG")"
trap 'scripts/testenv.sh down "$testenv_dir" >/dev/null 2>&1 || true; rm -rf "$testenv_dir"' EXIT
echo "==> PostgreSQL for the control plane's tests (scripts/pgenv.sh)"
eval "$(scripts/pgenv.sh up)"
pgenv_dir="$(cat "${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud/pgenv-last")"
trap 'scripts/testenv.sh down "$testenv_dir" >/dev/null 2>&1 || true; rm -rf "$testenv_dir"; scripts/pgenv.sh down "$pgenv_dir" >/dev/null 2>&1 || true; rm -rf "$pgenv_dir"' EXIT
echo "==> MinIO for the data plane's S3 backup tests (scripts/s3env.sh)"
# Our own state dir, so a concurrent run's `up` cannot swap it.
s3env_dir="$(mktemp -d "${TMPDIR:-/tmp}/koru-s3env.XXXX")"
trap 'scripts/testenv.sh down "$testenv_dir" >/dev/null 2>&1 || true; rm -rf "$testenv_dir"; scripts/pgenv.sh down "$pgenv_dir" >/dev/null 2>&1 || true; rm -rf "$pgenv_dir"; scripts/s3env.sh down "$s3env_dir" >/dev/null 2>&1 || true; rm -rf "$s3env_dir"' EXIT
# Assigned first so a failed `up` stops the run here (an `eval` of nothing would succeed).
s3env_exports="$(scripts/s3env.sh up "$s3env_dir")"
eval "$s3env_exports"
echo "==> tests"
cargo test --workspace --all-targets
