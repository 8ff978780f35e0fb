#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL server on a free loopback port for the control plane's
# tests, from the machine's PostgreSQL binaries (installed from Debian's packages when missing).
#
#   scripts/pgenv.sh up [dir]     start one; the last stdout line is `export KORU_TEST_POSTGRES_URL=...`
#   scripts/pgenv.sh down [dir]   stop the one of that state dir (default: the last `up`)
#
# Only the export line goes to stdout, so `eval "$(scripts/pgenv.sh up)"` works.
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud"
log() { echo "pgenv: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }
  done
  return 1
}

ensure_installed() {
  pg_bin >/dev/null && return 0
  log "PostgreSQL not found; installing Debian's postgresql package"
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  fi
  pg_bin >/dev/null || die "postgresql is still missing after installing it"
}

# PostgreSQL refuses to run as root; as root, run it as the `postgres` user.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cmd_up() {
  ensure_installed
  local bin dir port
  bin="$(pg_bin)"
  if [[ $# -ge 1 ]]; then
    dir="$1"
    mkdir -p "$dir"
  else
    dir="$(mktemp -d "${TMPDIR:-/tmp}/koru-pgenv.XXXX")"
  fi
  dir="$(cd "$dir" && pwd)"
  [[ $(id -u) -eq 0 ]] && chown postgres "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 ||
      { tail -20 "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  port="$(free_port)"
  # Durability is irrelevant for throwaway test databases; fsync off makes them fast.
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2 || { tail -20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
  mkdir -p "$CACHE"
  echo "$dir" >"$CACHE/pgenv-last"
  log "PostgreSQL up on 127.0.0.1:$port (stop it with: scripts/pgenv.sh down $dir)"
  echo "export KORU_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
}

cmd_down() {
  local dir bin
  if [[ $# -ge 1 ]]; then dir="$1"; else dir="$(cat "$CACHE/pgenv-last" 2>/dev/null || true)"; fi
  [[ -n "$dir" && -d "$dir/data" ]] || die "no pgenv state dir given or recorded"
  bin="$(pg_bin)"
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
  log "stopped PostgreSQL of $dir"
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) shift; cmd_down "$@" ;;
*) die "usage: scripts/pgenv.sh up|down [dir]" ;;
esac
