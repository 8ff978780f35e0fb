#!/usr/bin/env bash
# Runs the power-loss simulation (dataplane/tests/power_loss.rs) for more seeds than `make test`
# does: SEEDS per property (default 10000), release build. A failure names its seeds;
# KORU_SIM_SEED=<n> scripts/simulate.sh runs one of them again.
# Usage: scripts/simulate.sh [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

export KORU_SIM_SEEDS="${1:-${SEEDS:-10000}}"
echo "==> power loss at the I/O layer: $KORU_SIM_SEEDS seeds per property (release build)"
exec cargo test --release -p koru-dataplane --test power_loss -- --nocapture --test-threads 1
