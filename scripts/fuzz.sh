#!/usr/bin/env bash
# Runs each fuzz target of the data plane (dataplane/fuzz) for FUZZ_SECONDS (default 60) with
# cargo-fuzz on the nightly toolchain, installing cargo-fuzz into the cache on first use.
# Usage: scripts/fuzz.sh [target...]   (default: every target). Crashes land in
# dataplane/fuzz/artifacts/<target>/; the script runs every target, then fails if any crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

fuzz_root="$KORU_CACHE/cargo-fuzz"
if [ ! -x "$fuzz_root/bin/cargo-fuzz" ]; then
    echo "==> installing cargo-fuzz into $fuzz_root"
    # A throwaway build dir: installing must not wait on, or evict, the workspace's build cache.
    env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --root "$fuzz_root"
fi
export PATH="$fuzz_root/bin:$PATH"
# Sanitizer builds on nightly share nothing with the workspace's stable builds; a separate target
# dir keeps them from locking or invalidating each other.
export CARGO_TARGET_DIR="$KORU_CACHE/fuzz-target"

seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(record_decode request_bodies query_parse)
fi

cd dataplane
failed=()
for target in "${targets[@]}"; do
    echo "==> fuzzing $target for ${seconds}s"
    mkdir -p "fuzz/corpus/$target"
    extra=()
    if [ -f "fuzz/$target.dict" ]; then
        extra+=("-dict=fuzz/$target.dict")
    fi
    # The first corpus dir grows; the committed seeds are read only.
    if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" "${extra[@]}"; then
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "==> crashes in: ${failed[*]} (inputs in dataplane/fuzz/artifacts/)" >&2
    exit 1
fi
echo "==> no crashes"
