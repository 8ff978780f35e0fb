#!/usr/bin/env bash
# Fetches Prometheus and promtool once, from Debian's `prometheus` package (unpacked into the
# cache: nothing installed, no service started), for the monitoring tests (charts/koru-controlplane/
# monitoring: `promtool test rules`, and a real Prometheus scraping test processes). Building them
# from their Go module instead takes about 15 minutes cold on 2 cores; the package takes seconds.
#
#   scripts/prometheus.sh build        fetch and unpack if not cached yet
#   scripts/prometheus.sh bin-dir      fetch if needed, then print the dir holding both binaries
#
# Progress goes to stderr, so `$(scripts/prometheus.sh bin-dir)` is only the path.
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud/prometheus"

log() { echo "prometheus.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# The newest unpacked version, if any (a later package version unpacks beside it).
cached_bin() {
  local dir
  for dir in "$CACHE"/deb-*/usr/bin; do
    [[ -x "$dir/prometheus" && -x "$dir/promtool" ]] && echo "$dir"
  done | sort -V | tail -n 1
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "apt's package lists are missing and this user cannot update them: run 'apt-get update' as root"
  fi
}

work=""

cmd_build() {
  [[ -n "$(cached_bin)" ]] && return 0
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install Prometheus 2.x by hand and put prometheus and promtool in $CACHE/deb-manual/usr/bin"
  mkdir -p "$CACHE"
  # Several tests may ask at once; one fetches, the others wait and then find the binaries.
  exec 9>"$CACHE/fetch.lock"
  flock 9
  [[ -n "$(cached_bin)" ]] && return 0
  local deb version
  work="$(mktemp -d "$CACHE/fetch.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  # `apt-get download` needs only the package lists; a fresh machine may not have them yet.
  if ! (cd "$work" && apt-get download -q prometheus >&2 2>/dev/null); then
    log "updating apt's package lists"
    as_root apt-get update -qq >&2
    (cd "$work" && apt-get download -q prometheus >&2) || die "apt-get download prometheus failed"
  fi
  deb="$(ls "$work"/prometheus_*.deb)"
  version="$(dpkg-deb -f "$deb" Version)"
  dpkg-deb -x "$deb" "$work/root"
  [[ -x "$work/root/usr/bin/prometheus" && -x "$work/root/usr/bin/promtool" ]] || die "$deb holds no prometheus and promtool"
  # Moved in only once fully unpacked, so a half-finished fetch is never taken as done.
  mkdir -p "$CACHE/deb-$version/usr"
  mv "$work/root/usr/bin" "$CACHE/deb-$version/usr/bin"
  log "unpacked Prometheus and promtool $version into $CACHE/deb-$version/usr/bin"
}

case "${1:-}" in
build) cmd_build ;;
bin-dir)
  cmd_build
  cached_bin
  ;;
*) die "usage: scripts/prometheus.sh build | bin-dir" ;;
esac
