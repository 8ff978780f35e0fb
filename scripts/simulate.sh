#!/usr/bin/env bash
# Runs the simulations for more seeds than `make test` does, in a release build: the power-loss
# properties (dataplane/tests/power_loss.rs), SEEDS each (default 10000), the Raft journal under
# power loss (raft::journal::tests), SEEDS seeds of three power losses each, and the replicated
# cluster (dataplane/tests/raft_sim.rs), RAFT_SEEDS per cluster size (default SEEDS/50: each
# seed is 30 simulated seconds). A failure names its seeds; KORU_SIM_SEED=<n> runs one again.
# Usage: scripts/simulate.sh [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

seeds="${1:-${SEEDS:-10000}}"
raft_seeds="${RAFT_SEEDS:-$(( seeds / 50 > 0 ? seeds / 50 : 1 ))}"
echo "==> power loss at the I/O layer: $seeds seeds per property (release build)"
KORU_SIM_SEEDS="$seeds" cargo test --release -p koru-dataplane --test power_loss -- --nocapture --test-threads 1
echo "==> the Raft journal under power loss: $seeds seeds (release build)"
KORU_JOURNAL_SEEDS="$seeds" cargo test --release -p koru-dataplane --lib raft::journal::tests -- --nocapture --test-threads 1
echo "==> a replicated cluster under faults: $raft_seeds seeds per cluster size (release build)"
KORU_SIM_SEEDS="$raft_seeds" cargo test --release -p koru-dataplane --test raft_sim -- --nocapture --test-threads 1
