#!/usr/bin/env bash
# Installs the published koru-delta 3.0.1 (`kdelta`, the client our API must keep working) into
# the cache, once. The compatibility tests and the benchmarks use it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [[ ! -x "$KORU_KDELTA" ]]; then
  echo "==> installing koru-delta $KORU_KDELTA_VERSION into $KORU_CACHE/kdelta (once, a few minutes)"
  CARGO_TARGET_DIR="$KORU_CACHE/kdelta-build" \
    cargo install koru-delta --version "$KORU_KDELTA_VERSION" --locked --root "$KORU_CACHE/kdelta"
fi
