#!/usr/bin/env bash
# Runs the `helm` pinned in testenv/helm/go.mod, building it from the Go module proxy first if it is
# not in the cache yet (no helm release binary or Debian package can be fetched here). See
# testenv/README.md.
#
#   scripts/helm.sh lint charts/koru-operator     any helm command line
#   scripts/helm.sh --build-only                  only make sure the binary is built
#
# Build progress goes to stderr, so `scripts/helm.sh template ...` prints only helm's own output.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="$ROOT/testenv/helm"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud/helm"
# The release is whatever testenv/helm/go.mod pins, so the cache dir changes with it.
HELM_VERSION="$(awk '{ for (i = 1; i < NF; i++) if ($i == "helm.sh/helm/v4") { print $(i + 1); exit } }' "$MODULE/go.mod")"
[[ -n "$HELM_VERSION" ]] || {
  echo "helm.sh: error: $MODULE/go.mod requires no helm.sh/helm/v4 version" >&2
  exit 1
}
BIN="$CACHE/$HELM_VERSION/bin"

log() { echo "helm.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

go_bin() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    die "go not found (install Go >= the version in testenv/helm/go.mod)"
  fi
}

build() {
  mkdir -p "$CACHE"
  # Tests may call this script several at a time; one builds, the others wait and then find the binary.
  exec 9>"$CACHE/build.lock"
  flock 9
  if [[ -x "$BIN/helm" ]]; then
    return 0
  fi
  local go partial start
  go="$(go_bin)"
  partial="$BIN.partial.$$"
  # Under the lock no other build runs, so any partial dir is left over from a killed one.
  rm -rf "$BIN".partial.*
  mkdir -p "$partial"
  # shellcheck disable=SC2064 # expanded now: the path is fixed
  trap "rm -rf '$partial'" EXIT
  start=$SECONDS
  log "building helm $HELM_VERSION with $("$go" version) (about 3 minutes cold; later runs reuse $BIN)"
  # The ldflags are the ones Helm's Makefile sets for a tagged release, so `helm version` reports it.
  if ! (cd "$MODULE" && CGO_ENABLED=0 "$go" build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    -o "$partial/helm" helm.sh/helm/v4/cmd/helm); then
    rm -rf "$partial"
    die "build failed"
  fi
  # Moved in only once fully built, so a half-finished build is never taken as done.
  mkdir -p "$BIN"
  mv -f "$partial/helm" "$BIN/helm"
  rm -rf "$partial"
  trap - EXIT
  log "built helm $HELM_VERSION in $((SECONDS - start))s into $BIN"
}

if [[ ! -x "$BIN/helm" ]]; then
  build
fi
if [[ "${1:-}" == "--build-only" ]]; then
  exit 0
fi
exec "$BIN/helm" "$@"
