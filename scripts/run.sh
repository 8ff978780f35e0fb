#!/usr/bin/env bash
# Builds and runs KoruDelta Cloud on its embedded defaults: the control plane with SQLite, the
# local provisioner (clusters are koru-dataplane processes) and keys generated into ./koru-cloud.
# Extra arguments go to `koru-controlplane dev` (e.g. `--suspend-after free=1m` to watch a free
# cluster suspend and wake). Ctrl-C stops the gateway and the local clusters it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/system-deps.sh
# `dev` runs the gateway (koru-gateway, on 127.0.0.1:8081) in front of the clusters.
cargo build --release -p koru-dataplane --bin koru-dataplane -p koru-controlplane --bin koru-controlplane \
  -p koru-gateway --bin koru-gateway
exec "$CARGO_TARGET_DIR/release/koru-controlplane" dev "$@"
