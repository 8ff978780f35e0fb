#!/usr/bin/env bash
# Builds and runs KoruDelta Cloud on its embedded defaults: the control plane with SQLite, the
# local provisioner (clusters are koru-dataplane processes) and keys generated into ./koru-cloud.
# Extra arguments go to `koru-controlplane dev` (e.g. `--suspend-after free=1m` to watch a free
# cluster suspend and wake). Ctrl-C stops the gateway and the local clusters it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/system-deps.sh
# The gateway `dev` runs in front of the clusters (on 127.0.0.1:8081), where it is part of the tree.
gateway=()
if [ -f gateway/Cargo.toml ]; then gateway=(-p koru-gateway --bin koru-gateway); fi
cargo build --release -p koru-dataplane --bin koru-dataplane -p koru-controlplane --bin koru-controlplane "${gateway[@]}"
exec "$CARGO_TARGET_DIR/release/koru-controlplane" dev "$@"
