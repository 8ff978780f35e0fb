#!/usr/bin/env bash
# Builds Prometheus and promtool once from their Go module (no release binary can be fetched here)
# and caches them, for the monitoring tests (charts/monitoring: `promtool test rules` and a real
# Prometheus scraping test processes).
#
#   scripts/prometheus.sh build        build the pinned version if it is not cached yet
#   scripts/prometheus.sh bin-dir      build if needed, then print the dir holding both binaries
#
# Build progress goes to stderr, so `$(scripts/prometheus.sh bin-dir)` is only the path.
set -euo pipefail

MODULE=github.com/prometheus/prometheus
# Prometheus 3.x publishes its Go module as v0.3xx.y (v0.316.0 is release 3.16.0).
VERSION=v0.316.0
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud/prometheus"
BIN="$CACHE/$VERSION/bin"

log() { echo "prometheus.sh: $*" >&2; }
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
    die "go not found (Prometheus is built from its Go module; install Go >= 1.24)"
  fi
}

built() { [[ -x "$BIN/prometheus" && -x "$BIN/promtool" ]]; }

cmd_build() {
  built && return 0
  mkdir -p "$CACHE"
  # Several tests may ask at once; one builds, the others wait and then find the binaries.
  exec 9>"$CACHE/build.lock"
  flock 9
  built && return 0
  local go partial start
  go="$(go_bin)"
  partial="$BIN.partial.$$"
  # Under the lock no other build runs, so any partial dir is left over from a killed one.
  rm -rf "$BIN".partial.*
  mkdir -p "$partial"
  start=$SECONDS
  log "building Prometheus and promtool $VERSION with $("$go" version) (several minutes cold; later runs reuse $BIN)"
  # No `builtinassets` tag: the web UI is not needed, only the HTTP API the tests query.
  if ! CGO_ENABLED=0 GOBIN="$partial" "$go" install -trimpath -ldflags "-s -w" \
    "$MODULE/cmd/prometheus@$VERSION" "$MODULE/cmd/promtool@$VERSION" >&2; then
    rm -rf "$partial"
    die "building Prometheus $VERSION failed"
  fi
  # Moved in only once fully built, so a half-finished build is never taken as done.
  mkdir -p "$BIN"
  mv -f "$partial/prometheus" "$partial/promtool" "$BIN/"
  rm -rf "$partial"
  log "built Prometheus and promtool in $((SECONDS - start))s into $BIN"
}

case "${1:-}" in
build) cmd_build ;;
bin-dir)
  cmd_build
  echo "$BIN"
  ;;
*) die "usage: scripts/prometheus.sh build | bin-dir" ;;
esac
