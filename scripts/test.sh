#!/usr/bin/env bash
# Runs every test of the workspace. CI runs exactly this (through `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
echo "==> test tools"
scripts/install-kdelta.sh
echo "==> formatting"
cargo fmt --all -- --check
echo "==> clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> tests"
cargo test --workspace --all-targets
