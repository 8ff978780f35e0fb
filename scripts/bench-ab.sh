#!/usr/bin/env bash
# Interleaved A/B of data-plane binaries against the bare axum ceiling: GET and PUT rounds of
# `koru-bench http` (32 connections, 100,000 keys, 32-byte values, as scripts/bench.sh), printing
# req/s and the server's CPU µs per request (utime + stime from /proc/<pid>/stat around the run,
# divided by the requests answered), the figure that survives load from other processes.
#
#   scripts/bench-ab.sh ROUNDS SECS BINARY...     e.g. scripts/bench-ab.sh 3 5 /tmp/old /tmp/new
#
# BENCH=<koru-bench> picks the load generator and ceiling (default: the release build);
# OLD_CEILING=<koru-bench> adds a second ceiling (e.g. one built before a ceiling change).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
(( $# >= 3 )) || { echo "usage: $0 ROUNDS SECS BINARY..." >&2; exit 2; }
ROUNDS=$1
SECS=$2
shift 2
BENCH=${BENCH:-$CARGO_TARGET_DIR/release/koru-bench}
WORK=$(mktemp -d -t koru-ab.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits for a server started on port 0 to print its URL, and echoes it.
url_of() {
  local i
  for i in $(seq 100); do
    if grep -qo 'http://[0-9.:]*' "$1" 2>/dev/null; then
      grep -o 'http://[0-9.:]*' "$1" | head -1
      return 0
    fi
    sleep 0.1
  done
  cat "$1" "$1.err" >&2 || true
  return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)
LOAD=(--connections 32 --keys 100000 --value-bytes 32)

names=() urls=() pids=()
start() { # name out-file command...
  local name=$1 out=$2
  shift 2
  "$@" >"$out" 2>"$out.err" &
  PIDS+=($!)
  pids+=($!)
  names+=("$name")
  urls+=("$(url_of "$out")")
}
start ceiling "$WORK/ceiling" "$BENCH" ceiling --listen 127.0.0.1:0 --keys 100000 --value-bytes 32
if [[ -n "${OLD_CEILING:-}" ]]; then
  start ceiling-old "$WORK/ceiling-old" "$OLD_CEILING" ceiling --listen 127.0.0.1:0
fi
n=0
for binary in "$@"; do
  n=$((n + 1))
  mkdir -p "$WORK/s$n"
  start "$n:$(basename "$binary")" "$WORK/s$n/out" env KORU_LOG=warn "$binary" \
    --data-dir "$WORK/s$n/data" --listen 127.0.0.1:0 --fsync interval=100
  # Writes the keys once (batches); the measured GET rounds then preload nothing.
  "$BENCH" http --url "${urls[-1]}" --mode get "${LOAD[@]}" --duration-secs 1 --warmup-secs 0 \
    >/dev/null 2>&1
done

measure() { # index mode
  local i=$1 mode=$2 extra=() before after line
  [[ $mode == get ]] && extra=(--preload none)
  before=$(cpu_ticks "${pids[$i]}")
  line=$("$BENCH" http --url "${urls[$i]}" --mode "$mode" "${extra[@]}" "${LOAD[@]}" \
    --duration-secs "$SECS" --warmup-secs 0 --json 2>/dev/null | tail -1)
  after=$(cpu_ticks "${pids[$i]}")
  python3 - "$line" "$before" "$after" "$TICKS" "${names[$i]}" "$mode" <<'PY'
import json, sys
figures = json.loads(sys.argv[1])
secs = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
per = 1e6 * secs / max(figures["requests"], 1)
print(f"{sys.argv[5]:<28} {sys.argv[6]:<4} {figures['requests_per_sec']:>9.0f} req/s  "
      f"server cpu {per:6.1f} us/req  errors {figures['errors']}")
PY
}
for round in $(seq "$ROUNDS"); do
  echo "--- round $round/$ROUNDS ($(uptime | sed 's/.*load/load/'))"
  for mode in get put; do
    for i in "${!urls[@]}"; do measure "$i" "$mode"; done
  done
done
