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
# The workspace's own artefacts (test binaries, our libraries; not proc-macro `*.so`s, which are
# third-party), then the extra `find` arguments: tests and actions come after the selection, so
# an action such as -delete only ever sees our own files.
own() {
  find "$debug/deps" -maxdepth 1 -type f ! -name '*.so' \
    \( -perm -u+x -o -name 'libkoru_*' -o -name 'koru_*' -o -name 'libterraform_provider_koru*' \) "$@"
}
prune_own() { own "$@" -delete 2>/dev/null || true; }
if [[ "${KORU_CI_CHECKOUT:-}" == 1 ]]; then
  # CI's checkout reuses its artefacts run after run (scripts/ci-checkout.sh), and an unchanged one
  # keeps its old mtime, so age says nothing there. Only a dependency update leaves a stale set;
  # past 25 GB of them (one set is about 10) they all go, and the next run builds them once.
  if (( $(own -printf '%s\n' | awk '{ s += $1 } END { print int(s / 2^30) }') > 25 )); then
    echo "$debug holds more than 25 GB of the workspace's own artefacts: removing them"
    prune_own
  fi
  exit 0
fi
find "$debug/incremental" -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf {} + 2>/dev/null || true
# Test binaries and our own libraries only: proc-macro libraries (`*.so`) are third-party crates
# that every build needs, and deleting one rebuilds everything that depends on it.
prune_own -mmin +60
