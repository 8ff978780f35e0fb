#!/usr/bin/env bash
# Keeps the shared build cache bounded. Every fresh clone builds the workspace's own crates under a
# new fingerprint, so their old test binaries and incremental caches pile up in
# $CARGO_TARGET_DIR; this removes incremental caches not touched for an hour and the workspace's
# own artifacts not touched for an hour (each fresh clone leaves ~10 GB of test binaries). Third-party crates are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
debug="$CARGO_TARGET_DIR/debug"
[[ -d "$debug" ]] || exit 0
find "$debug/incremental" -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf {} + 2>/dev/null || true
# Test binaries and our own libraries only: proc-macro libraries (`*.so`) are third-party crates
# that every build needs, and deleting one rebuilds everything that depends on it.
find "$debug/deps" -maxdepth 1 -type f -mmin +60 ! -name '*.so' \
  \( -perm -u+x -o -name 'libkoru_*' -o -name 'koru_*' -o -name 'libterraform_provider_koru*' \) \
  -delete 2>/dev/null || true
