#!/usr/bin/env bash
# Builds the browser build of the embedded store (bindings/wasm) and runs its browser test:
# every bindings/conformance vector and the roadmap's TypeScript snippet against the WASM store in
# headless Chromium. Idempotent; installs what it needs once into $KORU_CACHE (the wasm32 target,
# wasm-bindgen-cli at the exact version of the wasm-bindgen crate in Cargo.lock, playwright-core).
# Under CI=true anything missing fails; locally a missing system tool (node, chromium) skips loudly.
# Env: KORU_WASM_PROFILE=release|dev (default release: smaller and faster .wasm).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh

missing() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "wasm.sh: $1 is missing (CI=true: failing)" >&2
    exit 1
  fi
  echo "wasm.sh: SKIPPING the WASM tests: $1 is missing" >&2
  exit 0
}

command -v cargo >/dev/null || missing "cargo"
command -v node >/dev/null || missing "node (scripts/system-deps.sh browser installs it)"
chromium="${KORU_CHROMIUM:-/usr/bin/chromium}"
[[ -x "$chromium" ]] || missing "chromium ($chromium; scripts/system-deps.sh browser installs it)"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  command -v rustup >/dev/null || missing "rustup (to add the wasm32-unknown-unknown target)"
  echo "==> rustup target add wasm32-unknown-unknown" >&2
  rustup target add wasm32-unknown-unknown >&2
fi

# wasm-bindgen-cli must match the wasm-bindgen crate exactly (its schema version is checked).
version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[[ -n "$version" ]] || { echo "wasm.sh: wasm-bindgen is not in Cargo.lock" >&2; exit 1; }
tools="$KORU_CACHE/tools/wasm-bindgen-$version"
if [[ ! -x "$tools/bin/wasm-bindgen" ]]; then
  echo "==> installing wasm-bindgen-cli $version into $tools" >&2
  # Not --locked: its lockfile names a webpki-roots release the registry no longer serves.
  # Its own target dir: the build's artefacts are not worth keeping once the binary is in place.
  CARGO_TARGET_DIR="$KORU_CACHE/tools/wasm-bindgen-build" \
    cargo install --quiet wasm-bindgen-cli --version "=$version" --root "$tools" >&2
  rm -rf "$KORU_CACHE/tools/wasm-bindgen-build"
fi

profile="${KORU_WASM_PROFILE:-release}"
dir="$([[ "$profile" == dev ]] && echo debug || echo release)"
echo "==> cargo build -p koru-delta-wasm --target wasm32-unknown-unknown --profile $profile" >&2
cargo build -p koru-delta-wasm --target wasm32-unknown-unknown --profile "$profile" >&2
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/$dir/koru_delta_wasm.wasm"
pkg="$KORU_CACHE/wasm-pkg/$profile"
rm -rf "$pkg" && mkdir -p "$pkg"
"$tools/bin/wasm-bindgen" --target web --out-dir "$pkg" "$wasm"
"$tools/bin/wasm-bindgen" --target nodejs --out-dir "$pkg/nodejs" "$wasm"
echo "==> $(du -b "$pkg/koru_delta_wasm_bg.wasm" | cut -f1) bytes of .wasm ($profile) in $pkg" >&2

modules="$(scripts/browser-test-deps.sh)"
echo "==> browser test (headless chromium)" >&2
NODE_PATH="$modules" KORU_CHROMIUM="$chromium" node bindings/wasm/test/run.cjs "$pkg" bindings/conformance
node bindings/wasm/test/node-smoke.cjs "$pkg/nodejs"
