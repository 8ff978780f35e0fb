#!/usr/bin/env bash
# Starts and stops a throwaway S3-compatible server (MinIO, built once from its Go module and cached)
# on a free loopback port for the data plane's backup tests, with a fresh data directory, fixed test
# credentials and one bucket.
#
#   scripts/s3env.sh build        build the pinned MinIO if it is not cached yet
#   scripts/s3env.sh up [dir]     start one; stdout is only shell lines (`export ...`, `unset ...`)
#   scripts/s3env.sh down [dir]   stop the one of that state dir (default: the last `up`)
#
# `eval "$(scripts/s3env.sh up)"` sets KORU_TEST_S3_ENDPOINT and KORU_TEST_S3_BUCKET (which switch
# the backup tests' S3 variants on) and the AWS_* variables the data plane reads for an s3:// store.
# KORU_S3ENV_ADDRESS=<ip> listens on that address instead of 127.0.0.1 (pods reach the nodes' host).
# MinIO because it is the most widely used S3-compatible server and checks requests as strictly as
# S3 does (SigV4, ListObjectsV2); its module has no `replace` directives, so `go install` builds it
# (about 3.5 minutes cold on 2 cores; later runs reuse the cached binary and start in under a second).
set -euo pipefail

# MinIO tags its releases RELEASE.<date>, not semver, so the module proxy serves it by pseudo-version.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud"
BIN="$CACHE/minio/$MINIO_VERSION/bin"
# Fixed test credentials: the server only listens on loopback and holds throwaway data.
ACCESS_KEY=koru-test
SECRET_KEY=koru-test-secret
BUCKET=koru-test
REGION=us-east-1
# Seconds the server gets to become ready.
TIMEOUT="${KORU_S3ENV_TIMEOUT:-60}"

log() { echo "s3env: $*" >&2; }
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
    die "go not found (MinIO is built from its Go module; install Go >= 1.24)"
  fi
}

cmd_build() {
  [[ -x "$BIN/minio" ]] && return 0
  mkdir -p "$CACHE/minio"
  # Several callers may build at once; one builds, the others wait and then find the binary.
  exec 9>"$CACHE/minio/build.lock"
  flock 9
  [[ -x "$BIN/minio" ]] && return 0
  local go partial start
  go="$(go_bin)"
  partial="$BIN.partial.$$"
  # Under the lock no other build runs, so any partial dir is left over from a killed one.
  rm -rf "$BIN".partial.*
  mkdir -p "$partial"
  start=$SECONDS
  log "building MinIO $MINIO_VERSION with $("$go" version) (about 3.5 minutes cold; later runs reuse $BIN)"
  if ! CGO_ENABLED=0 GOBIN="$partial" "$go" install -trimpath -ldflags "-s -w" \
    "$MINIO_MODULE@$MINIO_VERSION" >&2; then
    rm -rf "$partial"
    die "building MinIO failed"
  fi
  # Moved in only once fully built, so a half-finished build is never taken as done.
  mkdir -p "$BIN"
  mv -f "$partial/minio" "$BIN/minio"
  rm -rf "$partial"
  log "built MinIO in $((SECONDS - start))s into $BIN"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Stops the server of state dir $1: SIGTERM, then SIGKILL after 10 s. Only signals the pid if it is
# still our process (its command line names the state dir), never a recycled pid.
stop() {
  local dir="$1" pid i
  [[ -f "$dir/minio.pid" ]] || return 0
  pid="$(cat "$dir/minio.pid")"
  if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "MinIO (pid $pid) did not stop on SIGTERM, killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$dir/minio.pid"
}

cmd_up() {
  cmd_build
  local dir port endpoint pid start
  if [[ $# -ge 1 ]]; then
    dir="$1"
    mkdir -p "$dir"
  else
    dir="$(mktemp -d "${TMPDIR:-/tmp}/koru-s3env.XXXX")"
  fi
  dir="$(cd "$dir" && pwd)"
  if [[ -f "$dir/minio.pid" ]] && kill -0 "$(cat "$dir/minio.pid")" 2>/dev/null; then
    die "MinIO is already running for $dir; run: scripts/s3env.sh down $dir"
  fi
  # A fresh data directory every time: no test sees objects of an earlier run.
  rm -rf "$dir/data"
  mkdir -p "$dir/data"
  port="$(free_port)"
  # Loopback unless told otherwise: the end-to-end tests give the nodes' host address, which pods
  # reach.
  local address="${KORU_S3ENV_ADDRESS:-127.0.0.1}"
  endpoint="http://$address:$port"
  start=$SECONDS
  # No inherited stdout: a caller's $(scripts/s3env.sh up) must not wait for the server to exit.
  MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" MINIO_BROWSER=off MINIO_UPDATE=off \
    setsid "$BIN/minio" server --quiet --anonymous --address "$address:$port" "$dir/data" \
    </dev/null >"$dir/minio.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/minio.pid"
  # Whatever fails from here on, the server started by this `up` does not outlive it.
  STATE_DIR="$dir"
  trap 'rc=$?; if ((rc != 0)); then stop "$STATE_DIR"; fi' EXIT
  # Ready once CreateBucket succeeds: MinIO answers its health check before its object layer is
  # initialized (503 XMinioServerNotInitialized meanwhile). The request is signed with SigV4 by curl
  # itself (no S3 client needed); curl does not send the payload hash header that S3 requires, so it
  # is given: the SHA-256 of the empty body.
  local status
  until
    status="$(curl -sS --max-time 5 -o "$dir/create-bucket.txt" -w '%{http_code}' -X PUT \
      -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
      --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" "$endpoint/$BUCKET" 2>/dev/null)"
    [[ "$status" == 200 ]]
  do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/minio.log" >&2 || true
      die "MinIO exited before becoming ready (log $dir/minio.log)"
    fi
    ((SECONDS - start < TIMEOUT)) || {
      tail -n 30 "$dir/minio.log" >&2 || true
      die "MinIO not ready after ${TIMEOUT}s; creating bucket $BUCKET: HTTP ${status:-none}: $(cat "$dir/create-bucket.txt" 2>/dev/null)"
    }
    sleep 0.1
  done
  mkdir -p "$CACHE"
  echo "$dir" >"$CACHE/s3env-last"
  log "MinIO up on $endpoint with bucket $BUCKET in $((SECONDS - start))s (stop it with: scripts/s3env.sh down $dir)"
  echo "export KORU_TEST_S3_ENDPOINT=$endpoint"
  echo "export KORU_TEST_S3_BUCKET=$BUCKET"
  # What the data plane reads for an s3:// store (AmazonS3Builder::from_env reads the same names);
  # a session token of the caller's own would make every request fail against this server.
  echo "export AWS_ENDPOINT_URL=$endpoint"
  echo "export AWS_REGION=$REGION"
  echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
  echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
  echo "export AWS_ALLOW_HTTP=true"
  echo "unset AWS_SESSION_TOKEN"
}

cmd_down() {
  local dir
  if [[ $# -ge 1 ]]; then dir="$1"; else dir="$(cat "$CACHE/s3env-last" 2>/dev/null || true)"; fi
  [[ -n "$dir" && -d "$dir" ]] || die "no s3env state dir given or recorded"
  dir="$(cd "$dir" && pwd)"
  stop "$dir"
  if [[ -f "$CACHE/s3env-last" && "$(cat "$CACHE/s3env-last")" == "$dir" ]]; then
    rm -f "$CACHE/s3env-last"
  fi
  log "stopped MinIO of $dir (files kept)"
}

case "${1:-}" in
build) cmd_build ;;
up) shift; cmd_up "$@" ;;
down) shift; cmd_down "$@" ;;
*) die "usage: scripts/s3env.sh build | up [dir] | down [dir]" ;;
esac
