#!/usr/bin/env bash
# Builds and tests the koru-delta npm package (bindings/node): installs its pinned npm packages
# (package-lock.json: typescript, @types/node, playwright-core) once per lockfile into
# $KORU_CACHE/node-binding/<hash> and links bindings/node/node_modules there (never installed into
# the clone; npm's own cache is ~/.npm); builds koru-dataplane and the native addon (debug, in the
# shared CARGO_TARGET_DIR) and the TypeScript (ESM + CJS); then runs node's test runner: the API in
# both modes, every conformance vector embedded and against a real server, the roadmap snippet,
# and the browser client in headless Chromium (Debian's chromium, scripts/system-deps.sh browser).
# Idempotent. Under CI=true anything missing fails; locally it skips loudly.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
pkg=bindings/node

missing() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "bindings/node: $1 (CI=true: failing)" >&2
    exit 1
  fi
  echo "bindings/node: SKIPPED: $1" >&2
  exit 0
}
command -v node >/dev/null 2>&1 || missing "node is missing (scripts/system-deps.sh browser installs it)"
command -v npm >/dev/null 2>&1 || missing "npm is missing (scripts/system-deps.sh browser installs it)"
command -v cargo >/dev/null 2>&1 || missing "cargo is missing"
major="$(node -p 'process.versions.node.split(".")[0]')"
(( major >= 18 )) || missing "node $major is too old (the package needs 18 or later)"
chromium="${KORU_CHROMIUM:-/usr/bin/chromium}"
[[ -x "$chromium" ]] || missing "no chromium at $chromium for the browser test (scripts/system-deps.sh browser)"

# npm packages: one install per lockfile, shared by every clone.
hash="$(cat "$pkg/package.json" "$pkg/package-lock.json" | sha256sum | cut -c1-16)"
deps="$KORU_CACHE/node-binding/$hash"
if [[ ! -f "$deps/.installed" ]]; then
  mkdir -p "$(dirname "$deps")"
  work="$(mktemp -d "$deps.XXXX")"
  cp "$pkg/package.json" "$pkg/package-lock.json" "$work/"
  echo "==> bindings/node: installing npm packages into $deps" >&2
  (cd "$work" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  touch "$work/.installed"
  mv -T "$work" "$deps" 2>/dev/null || rm -rf "$work"
fi
if [[ -L "$pkg/node_modules" || ! -e "$pkg/node_modules" ]]; then
  ln -sfn "$deps/node_modules" "$pkg/node_modules"
else
  echo "bindings/node: using the node_modules an npm install left in $pkg" >&2
fi

echo "==> bindings/node: building koru-dataplane (unless KORU_DATAPLANE_BIN names one), the addon and the TypeScript" >&2
[[ -n "${KORU_DATAPLANE_BIN:-}" ]] || cargo build -p koru-dataplane --bin koru-dataplane
(cd "$pkg" && node scripts/build-ts.mjs && KORU_DELTA_PROFILE=debug node scripts/build-native.mjs)

echo "==> bindings/node: node --test" >&2
cd "$pkg"
export KORU_DATAPLANE_BIN="${KORU_DATAPLANE_BIN:-$CARGO_TARGET_DIR/debug/koru-dataplane}"
export KORU_CHROMIUM="$chromium"
node --test --test-concurrency=1 test/*.test.mjs
