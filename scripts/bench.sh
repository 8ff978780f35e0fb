#!/usr/bin/env bash
# Runs every benchmark of the data plane in one go and prints the table of targets with PASS/FAIL
# (what each figure means: dataplane/BENCHMARKS.md). Everything runs on 127.0.0.1 only.
#
# Settings (environment):
#   BENCH_SECS=10               measured seconds per HTTP figure (split over BENCH_ROUNDS rounds)
#   BENCH_ROUNDS=2              rounds of the ratio pairs, interleaved so load from other processes
#                               hits both sides of a ratio alike
#   BENCH_SKIP_KDELTA=1         skip the koru-delta 3.0.1 comparison (and its one-time install)
#   BENCH_SKIP_WRK=1            skip the wrk cross-check
#   BENCH_RESTART_VERSIONS=N    versions for the restart figure (default 10000000)
#   BENCH_RESTART_DIR=dir       keep the restart store there and reuse it across runs
#   BENCH_COLD_RESTART=1        drop the page cache before timing the restart (needs root)
#   BENCH_PARTITION_SECS=60     how long `koru-bench regions` cuts the link between two regions
#   BENCH_STRICT=1              exit 1 when a target fails
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

SECS="${BENCH_SECS:-10}"
ROUNDS="${BENCH_ROUNDS:-2}"
CONNS=32
KEYS=100000
VALUE_BYTES=32
RESTART_VERSIONS="${BENCH_RESTART_VERSIONS:-10000000}"
KDELTA_VERSION="$KORU_KDELTA_VERSION"
KDELTA="$KORU_KDELTA"
# koru-delta 3.0.1 stops answering GETs (and holds ~160 kB per key) once it holds some thousands
# of keys, so its figures use a smaller key space; see dataplane/BENCHMARKS.md.
KDELTA_KEYS=1000

case "$SECS$ROUNDS" in *[!0-9]*) echo "BENCH_SECS and BENCH_ROUNDS must be integers" >&2; exit 2 ;; esac
if (( SECS < 1 || ROUNDS < 1 || ROUNDS > SECS )); then
  echo "need 1 <= BENCH_ROUNDS <= BENCH_SECS" >&2
  exit 2
fi
ROUND_SECS=$(( SECS / ROUNDS ))

# --- tools ---------------------------------------------------------------------------------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
command -v redis-cli >/dev/null || missing+=(redis-tools)
[[ "${BENCH_SKIP_WRK:-0}" == 1 ]] || command -v wrk >/dev/null || missing+=(wrk)
if (( ${#missing[@]} )); then
  echo "==> installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ "${BENCH_SKIP_KDELTA:-0}" != 1 ]]; then
  scripts/install-kdelta.sh
fi

echo "==> building (release)"
cargo build --release -p koru-dataplane --bin koru-dataplane -p koru-bench --bin koru-bench \
  -p koru-gateway --bin koru-gateway
BENCH="$CARGO_TARGET_DIR/release/koru-bench"
SERVER="$CARGO_TARGET_DIR/release/koru-dataplane"

# --- servers -------------------------------------------------------------------------------------
WORK="$(mktemp -d -t koru-bench.XXXXXX)"
RESULTS="$WORK/results"
mkdir -p "$RESULTS"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (at most 10 s) for a server started on port 0 to print its URL, and echoes the URL.
url_of() {
  local out="$1" i
  for i in $(seq 100); do
    if grep -qo 'http://[0-9.:]*' "$out" 2>/dev/null; then
      grep -o 'http://[0-9.:]*' "$out" | head -1
      return 0
    fi
    sleep 0.1
  done
  echo "server did not start; its output:" >&2
  cat "$out" "$out.err" >&2 || true
  return 1
}

# Starts a data plane server with the given fsync mode; echoes nothing, sets $DP_URL.
start_dataplane() {
  local name="$1" fsync="$2"
  mkdir -p "$WORK/$name"
  KORU_LOG=warn "$SERVER" --data-dir "$WORK/$name/data" --listen 127.0.0.1:0 --fsync "$fsync" \
    >"$WORK/$name/out" 2>"$WORK/$name/out.err" &
  PIDS+=($!)
  DP_URL="$(url_of "$WORK/$name/out")"
}

echo "==> starting servers"
start_dataplane dataplane interval=100
DATAPLANE="$DP_URL"
"$BENCH" ceiling --listen 127.0.0.1:0 --keys "$KEYS" --value-bytes "$VALUE_BYTES" >"$WORK/ceiling.out" 2>"$WORK/ceiling.out.err" &
PIDS+=($!)
CEILING="$(url_of "$WORK/ceiling.out")"
REDIS_PORT="$("$BENCH" free-port)"
mkdir -p "$WORK/redis"
# AOF with fsync every second is Redis' closest match to our default --fsync interval=100.
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
  --appendfsync everysec --dir "$WORK/redis" --daemonize no >"$WORK/redis/log" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  (( i < 100 )) || { echo "redis did not start" >&2; cat "$WORK/redis/log" >&2; exit 1; }
  sleep 0.1
done
echo "    dataplane $DATAPLANE, ceiling $CEILING, redis 127.0.0.1:$REDIS_PORT"

# --- helpers -------------------------------------------------------------------------------------
# http <result-name> <url> <mode> [extra args]: one measurement appended to results/<name>.json.
http() {
  local name="$1" url="$2" mode="$3"
  shift 3
  # A failed measurement shows as n/a (and FAIL) in the table instead of stopping the run.
  "$BENCH" http --url "$url" --mode "$mode" --connections "$CONNS" --keys "${HTTP_KEYS:-$KEYS}" \
    --value-bytes "$VALUE_BYTES" --name "$name" --json "$@" >>"$RESULTS/$name.json" \
    || echo "$name: measurement failed" >&2
}

# redis <result-name> <test> <seconds> <pipeline>: redis-benchmark sized to run about that long,
# its CSV turned into the same JSON record.
REDIS_RATE_set=80000
REDIS_RATE_get=80000
REDIS_RATE_pset=500000
redis_bench() {
  local name="$1" test="$2" secs="$3" pipeline="$4" rate_var="REDIS_RATE_$5"
  local n=$(( ${!rate_var} * secs ))
  local line
  line="$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNS" -n "$n" -P "$pipeline" \
    -t "$test" -d "$VALUE_BYTES" -r "$KEYS" --csv 2>/dev/null | grep -i "^\"$test\"" | tail -1)"
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  echo "$line" | tr -d '"' | awk -F, -v name="$name" -v n="$n" -v p="$pipeline" -v test="$test" '{
    # With -P, redis-benchmark still counts commands, so each SET is one version either way.
    rps = $2; per_req = (test == "set") ? 1 : 0
    printf "{\"name\":\"%s\",\"requests_per_sec\":%f,\"versions_per_sec\":%f,\"p50_us\":%f,\"p99_us\":%f,\"max_us\":%f,\"requests\":%d,\"errors\":0,\"elapsed_secs\":%f}\n",
      name, rps, rps * per_req, $5 * 1000, $7 * 1000, $8 * 1000, n, n / rps
  }' >>"$RESULTS/$name.json"
  local rps
  rps="$(echo "$line" | tr -d '"' | cut -d, -f2 | cut -d. -f1)"
  [[ -n "$rps" && "$rps" -gt 0 ]] || { echo "redis-benchmark gave no figure" >&2; return 1; }
  printf -v "$rate_var" '%s' "$rps"
  echo "$name: $rps req/s (redis-benchmark -c $CONNS -P $pipeline, $n requests)" >&2
}

# wrk_put <result-name> <url>: the same PUT load from wrk, as a cross-check of our load tool.
wrk_put() {
  local name="$1" url="$2"
  cat >"$WORK/put.lua" <<'LUA'
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/api/v1/bench/k" .. math.random(0, 99999), nil,
    '{"value":{"n":' .. n .. ',"pad":"xx"}}')
end
LUA
  wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$WORK/put.lua" "$url" >"$WORK/$name.wrk" 2>&1
  awk -v name="$name" -v secs="$SECS" '
    /Requests\/sec:/ { rps = $2 }
    /Non-2xx/ { errors = $NF }
    END { printf "{\"name\":\"%s\",\"requests_per_sec\":%f,\"errors\":%d,\"elapsed_secs\":%d}\n", name, rps, errors, secs }
  ' "$WORK/$name.wrk" >>"$RESULTS/$name.json"
  echo "$name: $(grep 'Requests/sec' "$WORK/$name.wrk")" >&2
}

# --- HTTP: PUT and GET against the ceiling, the data plane and Redis, interleaved ---------------
for round in $(seq "$ROUNDS"); do
  echo "==> HTTP round $round/$ROUNDS (${ROUND_SECS} s per figure)"
  http ceiling_put "$CEILING" put --duration-secs "$ROUND_SECS"
  http dataplane_put "$DATAPLANE" put --duration-secs "$ROUND_SECS"
  redis_bench redis_set set "$ROUND_SECS" 1 set
  http ceiling_get "$CEILING" get --preload none --duration-secs "$ROUND_SECS"
  http dataplane_get "$DATAPLANE" get --duration-secs "$ROUND_SECS"
  redis_bench redis_get get "$ROUND_SECS" 1 get
done

echo "==> HTTP batches of 1000"
http dataplane_batch "$DATAPLANE" batch --batch-size 1000 --duration-secs "$SECS"
redis_bench redis_set_pipelined set "$SECS" 16 pset

echo "==> HTTP PUT with --fsync always"
start_dataplane dataplane_always always
http dataplane_put_always "$DP_URL" put --duration-secs "$SECS"

if [[ "${BENCH_SKIP_WRK:-0}" != 1 ]]; then
  echo "==> wrk cross-check"
  wrk_put wrk_ceiling_put "$CEILING"
  wrk_put wrk_dataplane_put "$DATAPLANE"
fi

if [[ "${BENCH_SKIP_KDELTA:-0}" != 1 ]]; then
  echo "==> koru-delta $KDELTA_VERSION (kdelta serve)"
  KDELTA_PORT="$("$BENCH" free-port)"
  mkdir -p "$WORK/kdelta"
  "$KDELTA" --db-path "$WORK/kdelta/db" serve --bind 127.0.0.1 --port "$KDELTA_PORT" \
    >"$WORK/kdelta/out" 2>&1 &
  PIDS+=($!)
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$KDELTA_PORT") 2>/dev/null && break
    (( i < 100 )) || { echo "kdelta did not start" >&2; cat "$WORK/kdelta/out" >&2; exit 1; }
    sleep 0.1
  done
  HTTP_KEYS="$KDELTA_KEYS" http kdelta_put "http://127.0.0.1:$KDELTA_PORT" put --duration-secs "$SECS"
  HTTP_KEYS="$KDELTA_KEYS" http kdelta_get "http://127.0.0.1:$KDELTA_PORT" get --duration-secs "$SECS" \
    --preload put
fi

# --- embedded --------------------------------------------------------------------------------------
echo "==> embedded writes"
embedded() {
  local name="$1"
  shift
  "$BENCH" embedded --data-dir "$WORK/$name" --name "$name" --json "$@" >>"$RESULTS/$name.json" \
    || echo "$name: measurement failed" >&2
  rm -rf "${WORK:?}/$name"
}
embedded embedded_batch_interval --fsync interval --batch-size 100 --writers 8 --versions 5000000 --max-secs 30
embedded embedded_interval --fsync interval --batch-size 1 --writers 32 --versions 2000000 --max-secs "$SECS"
embedded embedded_always --fsync always --batch-size 1 --writers 32 --versions 2000000 --max-secs "$SECS"
embedded embedded_interval_b100 --fsync interval --batch-size 100 --writers 32 --versions 5000000 --max-secs "$SECS"
embedded embedded_always_b100 --fsync always --batch-size 100 --writers 32 --versions 5000000 --max-secs "$SECS"

# --- restart ---------------------------------------------------------------------------------------
echo "==> restart with $RESTART_VERSIONS versions"
RESTART_DIR="${BENCH_RESTART_DIR:-$WORK/restart}"
COLD=()
[[ "${BENCH_COLD_RESTART:-0}" == 1 ]] && COLD=(--cold)
"$BENCH" restart --data-dir "$RESTART_DIR" --versions "$RESTART_VERSIONS" "${COLD[@]}" --json \
  >>"$RESULTS/restart.json" || echo "restart: measurement failed" >&2

# --- backups -------------------------------------------------------------------------------------
echo "==> archive throughput, restore speed, recovery point"
"$BENCH" backup --work-dir "$WORK/backup" --json >>"$RESULTS/backup.json" \
  || echo "backup: measurement failed" >&2

# --- replication ---------------------------------------------------------------------------------
echo "==> replication: 3-member cluster vs one node (fsync always), leader failover"
"$BENCH" raft --work-dir "$WORK/raft" --server "$SERVER" --json >>"$RESULTS/raft.json" \
  || echo "raft: measurement failed" >&2

# --- regions -------------------------------------------------------------------------------------
echo "==> regions: lag over a delayed link, catch-up after a partition, CRDT vs PUT, the streams' cost"
"$BENCH" regions --work-dir "$WORK/regions" --server "$SERVER" \
  --partition-secs "${BENCH_PARTITION_SECS:-60}" --json >>"$RESULTS/regions.json" \
  || echo "regions: measurement failed" >&2

# --- gateway -------------------------------------------------------------------------------------
echo "==> gateway: PUT and GET through koru-gateway vs direct"
"$BENCH" gateway --server "$SERVER" --gateway "$CARGO_TARGET_DIR/release/koru-gateway" --secs "$SECS" --json \
  >>"$RESULTS/gateway.json" || echo "gateway: measurement failed" >&2

# --- table ---------------------------------------------------------------------------------------
KEEP="$KORU_CACHE/bench-last"
rm -rf "$KEEP"
cp -r "$RESULTS" "$KEEP"
echo "==> results (JSON kept in $KEEP)"
status=0
"$BENCH" table --dir "$RESULTS" || status=$?
if [[ "${BENCH_STRICT:-0}" == 1 ]]; then
  exit "$status"
fi
