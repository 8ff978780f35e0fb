#!/usr/bin/env bash
# Tests the Go client (bindings/go) against a real koru-dataplane: gofmt, go vet, go test.
#
#   scripts/bindings/go.sh          build koru-dataplane (debug) if needed, then vet and test
#   scripts/bindings/go.sh bench    build a release koru-dataplane and run the client benchmarks
#
# Idempotent: cargo rebuilds only what changed; Go keeps its build cache and module cache where
# it always does (GOCACHE under ~/.cache/go-build, GOMODCACHE under ~/go/pkg/mod), outside the
# clone. The module needs nothing from the network (standard library only). KORU_DATAPLANE_BIN
# names a server binary to use instead of building one. Under CI=true a missing Go toolchain
# fails; elsewhere it skips loudly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source scripts/env.sh

log() { echo "bindings/go.sh: $*" >&2; }

GO=""
if command -v go >/dev/null 2>&1; then
  GO="$(command -v go)"
elif [[ -x /usr/local/go/bin/go ]]; then
  GO=/usr/local/go/bin/go
fi
if [[ -z "$GO" ]]; then
  if [[ "${CI:-}" == "true" ]]; then
    log "error: no Go toolchain (go on PATH or /usr/local/go/bin/go); the Go client cannot be tested"
    exit 1
  fi
  log "SKIPPING the Go client's tests: no Go toolchain found (install Go >= 1.21)"
  exit 0
fi

mode="${1:-test}"
case "$mode" in
  test) profile=debug cargo_args=() ;;
  bench) profile=release cargo_args=(--release) ;;
  *)
    log "usage: $0 [test|bench]"
    exit 2
    ;;
esac

if [[ -z "${KORU_DATAPLANE_BIN:-}" ]]; then
  log "building koru-dataplane ($profile)"
  cargo build -p koru-dataplane --bin koru-dataplane "${cargo_args[@]}"
  export KORU_DATAPLANE_BIN="$CARGO_TARGET_DIR/$profile/koru-dataplane"
fi
[[ -x "$KORU_DATAPLANE_BIN" ]] || {
  log "error: KORU_DATAPLANE_BIN=$KORU_DATAPLANE_BIN is not an executable"
  exit 1
}

cd bindings/go
# No cgo: the client must build wherever Go cross-compiles; the local toolchain only, no downloads.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
log "$("$GO" version), server $KORU_DATAPLANE_BIN"
if [[ "$mode" == bench ]]; then
  # -run '^$' skips the tests; -benchtime bounds each benchmark's run.
  "$GO" test -run '^$' -bench . -benchtime "${KORU_BENCH_TIME:-3s}" -count 1 ./...
  exit 0
fi
unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
  log "error: gofmt would change: $unformatted"
  exit 1
fi
"$GO" vet ./...
# -count=1: the tests start an external server, which Go's test cache cannot see change.
"$GO" test -count=1 ./...
