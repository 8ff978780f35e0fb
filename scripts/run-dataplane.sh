#!/usr/bin/env bash
# Builds and runs the data plane alone on its embedded defaults; extra arguments go to the server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -p koru-dataplane --bin koru-dataplane
exec "$CARGO_TARGET_DIR/release/koru-dataplane" "$@"
