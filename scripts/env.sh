# Shared settings for the project's scripts (sourced, not run).
# Build output lives outside the clone so fresh clones (CI) reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/koru-delta-cloud/target}"
export KORU_CACHE="${KORU_CACHE:-$HOME/.cache/koru-delta-cloud}"
mkdir -p "$CARGO_TARGET_DIR" "$KORU_CACHE"
# The published koru-delta client and server, installed by scripts/install-kdelta.sh.
export KORU_KDELTA_VERSION=3.0.1
export KORU_KDELTA="${KORU_KDELTA:-$KORU_CACHE/kdelta/bin/kdelta}"
