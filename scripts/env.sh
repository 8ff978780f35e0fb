# Shared settings for the project's scripts (sourced, not run).
# Build output lives outside the clone so fresh clones (CI) reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/koru-delta-cloud/target}"
export KORU_CACHE="${KORU_CACHE:-$HOME/.cache/koru-delta-cloud}"
mkdir -p "$CARGO_TARGET_DIR" "$KORU_CACHE"
