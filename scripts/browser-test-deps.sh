#!/usr/bin/env bash
# Installs the npm packages of the dashboard's browser test (dashboard/tests/browser: playwright-core,
# which drives the system's chromium) into the cache, once per lockfile, and prints the
# node_modules directory. Never writes into the clone. Idempotent: a second run only prints.
# controlplane/tests/dashboard/browser.rs runs it; scripts/test.sh runs it first so a failed
# install shows up front.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
src=dashboard/tests/browser
hash="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)"
dir="$KORU_CACHE/dashboard-browser/$hash"
if [[ ! -f "$dir/.installed" ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "browser-test-deps: npm is missing (scripts/system-deps.sh browser installs it)" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$dir")"
  work="$(mktemp -d "$dir.XXXX")"
  cp "$src/package.json" "$src/package-lock.json" "$work/"
  echo "==> installing the browser test's npm packages into $dir" >&2
  (cd "$work" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  touch "$work/.installed"
  # Another run may have finished first; either copy is complete.
  if ! mv -T "$work" "$dir" 2>/dev/null; then
    rm -rf "$work"
  fi
fi
echo "$dir/node_modules"
