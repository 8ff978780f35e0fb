#!/usr/bin/env bash
# Builds and runs KoruDelta Cloud on its embedded defaults: the control plane with SQLite, the
# local provisioner (clusters are koru-dataplane processes) and keys generated into ./koru-cloud.
# Extra arguments go to `koru-controlplane dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/system-deps.sh
cargo build --release -p koru-dataplane --bin koru-dataplane -p koru-controlplane --bin koru-controlplane
exec "$CARGO_TARGET_DIR/release/koru-controlplane" dev "$@"
