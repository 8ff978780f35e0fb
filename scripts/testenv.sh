#!/usr/bin/env bash
# Builds and runs a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on
# loopback for the operator tests, and with --nodes real nodes too. See testenv/README.md.
#
#   scripts/testenv.sh build [--nodes]        build the binaries of the pinned release if they are missing
#   scripts/testenv.sh up [--nodes[=N]] [dir] start a control plane; the last stdout line is `export KUBECONFIG=...`
#   scripts/testenv.sh down [dir]             stop the Kubernetes of that state dir (default: the last `up`)
#   scripts/testenv.sh stop-node|start-node dir N   cut node N's power (kill its kubelet, containers
#                                             and containerd) / start it again
#
# --nodes adds kube-scheduler, N (default 1) kubelets on containerd with CNI bridge networking,
# kube-proxy, CoreDNS and a pool of local volumes (scripts/testenv-nodes.sh); it needs root.
#
# Only the `export KUBECONFIG=...` line goes to stdout, so `eval "$(scripts/testenv.sh up)"` works.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="$ROOT/testenv"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud/testenv"
# The release is whatever testenv/go.mod pins, so the cache dir changes with it.
K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$MODULE/go.mod")"
BIN="$CACHE/$K8S_VERSION/bin"
COMPONENTS=(etcd kube-apiserver kube-controller-manager)
# How many nodes `up --nodes` starts; 0 is the API-server-only environment.
NODE_COUNT=0
# Seconds each component gets to become ready.
TIMEOUT="${KORU_TESTENV_TIMEOUT:-90}"

log() { echo "testenv: $*" >&2; }
# shellcheck source=scripts/testenv-nodes.sh
source "$ROOT/scripts/testenv-nodes.sh"
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
    die "go not found (install Go >= the version in testenv/go.mod)"
  fi
}

binaries_present() {
  local c
  for c in "${COMPONENTS[@]}"; do
    [[ -x "$BIN/$c" ]] || return 1
  done
}

cmd_build() {
  if binaries_present; then
    log "binaries for Kubernetes $K8S_VERSION present in $BIN"
    return 0
  fi
  local go partial start v
  go="$(go_bin)"
  partial="$BIN.partial.$$"
  mkdir -p "$partial"
  start=$SECONDS
  log "building etcd, kube-apiserver, kube-controller-manager for Kubernetes $K8S_VERSION with $("$go" version)"
  log "(a cold build takes about 6 minutes and a few GiB of memory on 2 cores; later runs reuse $BIN)"
  v=k8s.io/component-base/version
  # The version ldflags make the servers report the pinned release instead of v0.0.0-master.
  if ! (cd "$MODULE" && "$go" build -trimpath \
    -ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=$(echo "$K8S_VERSION" | cut -d. -f1 | tr -d v) -X $v.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $v.gitTreeState=clean" \
    -o "$partial/" ./cmd/etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager); then
    rm -rf "$partial"
    die "build failed"
  fi
  # Move into place only once all three built, so a half-finished build is never taken as done.
  mkdir -p "$BIN"
  local c
  for c in "${COMPONENTS[@]}"; do
    mv -f "$partial/$c" "$BIN/$c"
  done
  rm -rf "$partial"
  log "built in $((SECONDS - start))s into $BIN"
}

# Prints N free loopback TCP ports, distinct from each other.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Writes a CA, the apiserver serving cert, client certs and the service-account key into $1/pki.
make_pki() {
  local pki="$1/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 \
      -subj "/CN=koru-testenv-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    # name subject extensions
    sign() {
      openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
      "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.244.0.1,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
    local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    sign admin "/O=system:masters/CN=admin" "$client"
    sign controller-manager "/CN=system:kube-controller-manager" "$client"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

# name server user
write_kubeconfig() {
  local pki="$DIR/pki"
  cat >"$DIR/$3.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $1
  cluster:
    server: $2
    certificate-authority: $pki/ca.crt
users:
- name: $3
  user:
    client-certificate: $pki/$3.crt
    client-key: $pki/$3.key
contexts:
- name: $1
  context:
    cluster: $1
    user: $3
current-context: $1
EOF
}

# Starts component $1 with args, in its own session, logging to $DIR/logs/$1.log.
start() {
  local name="$1"
  shift
  start_as "$name" "$name" "$@"
}

# Starts command $2 (from $BIN, else the PATH) under the name $1, with args.
start_as() {
  local name="$1" cmd="$2"
  shift 2
  [[ -x "$BIN/$cmd" ]] && cmd="$BIN/$cmd"
  # No inherited stdout: a caller's $(scripts/testenv.sh up) must not wait for the servers to exit.
  setsid "$cmd" "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name.pid"
  log "started $name (pid $!), log $DIR/logs/$name.log"
}

# Stops component $1 of state dir $2: SIGTERM, then SIGKILL after 10s.
stop() {
  local name="$1" dir="$2" pidfile pid i
  pidfile="$dir/pids/$name.pid"
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  # Only signal the pid if it is still our process (its command line names the state dir), never a
  # recycled pid.
  if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not stop on SIGTERM, killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop_all() {
  local dir="$1"
  if [[ -d "$dir/nodes" ]]; then
    nodes_down "$dir"
  fi
  stop kube-controller-manager "$dir"
  stop kube-apiserver "$dir"
  stop etcd "$dir"
}

# Waits until the command after $1 and $2 succeeds for component $1 ($2 says what success shows); on
# timeout or exit of the component, stops everything started for $DIR, shows the tail of its log and fails.
wait_ready() {
  local name="$1" what="$2" start=$SECONDS pid
  shift 2
  pid="$(cat "$DIR/pids/$name.pid")"
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      fail_component "$name" "exited before becoming ready"
    fi
    if ((SECONDS - start >= TIMEOUT)); then
      fail_component "$name" "not ready after ${TIMEOUT}s"
    fi
    sleep 0.5
  done
  log "$name $what after $((SECONDS - start))s"
}

fail_component() {
  log "error: $1 $2; last lines of $DIR/logs/$1.log:"
  tail -n 30 "$DIR/logs/$1.log" >&2 || true
  stop_all "$DIR"
  die "$1 did not start (state dir $DIR kept for inspection)"
}

cmd_up() {
  local begin=$SECONDS
  while [[ "${1:-}" == --nodes* ]]; do
    NODE_COUNT="${1#--nodes}"
    NODE_COUNT="${NODE_COUNT#=}"
    NODE_COUNT="${NODE_COUNT:-${KORU_TESTENV_NODES:-1}}"
    [[ "$NODE_COUNT" =~ ^[1-4]$ ]] || die "--nodes takes 1 to 4 nodes, not $NODE_COUNT"
    shift
  done
  cmd_build
  if ((NODE_COUNT > 0)); then
    nodes_check_system
    nodes_build
    PAUSE_TAR="${KORU_PAUSE_IMAGE_TAR:-$("$ROOT/scripts/images.sh" pause)}"
    [[ -f "$PAUSE_TAR" ]] || die "scripts/images.sh pause made no image archive"
  fi
  if [[ $# -ge 1 ]]; then
    DIR="$1"
    mkdir -p "$DIR"
  else
    DIR="$(mktemp -d "${TMPDIR:-/tmp}/koru-testenv.XXXX")"
  fi
  DIR="$(cd "$DIR" && pwd)"
  local c
  for c in "${COMPONENTS[@]}"; do
    if [[ -f "$DIR/pids/$c.pid" ]] && kill -0 "$(cat "$DIR/pids/$c.pid")" 2>/dev/null; then
      die "$c is already running for $DIR; run: scripts/testenv.sh down $DIR"
    fi
  done
  mkdir -p "$DIR/logs" "$DIR/pids" "$CACHE"
  # Whatever fails from here on, nothing started by this `up` outlives it.
  trap 'rc=$?; if ((rc != 0)); then stop_all "$DIR"; fi' EXIT
  echo "$DIR" >"$CACHE/last"
  log "state dir $DIR"
  # A reused state dir keeps its keys, so the data in its etcd stays valid across down/up.
  if [[ ! -f "$DIR/pki/complete" ]]; then
    make_pki "$DIR"
    touch "$DIR/pki/complete"
  fi
  local pki="$DIR/pki" etcd_port peer_port api_port kcm_port
  read -r etcd_port peer_port api_port kcm_port <<<"$(free_ports 4)"
  # Without nodes everything listens on loopback; with nodes the API server listens on the first
  # bridge, which pods reach (the `kubernetes` Service's endpoint) and this host too.
  local api_ip=127.0.0.1 api_flags=(--endpoint-reconciler-type none --authorization-mode RBAC)
  if ((NODE_COUNT > 0)); then
    mkdir -p "$DIR/nodes"
    nodes_pki
    local i
    for ((i = 0; i < NODE_COUNT; i++)); do
      nodes_bridge "$i"
    done
    if ((NODE_COUNT > 1)); then
      # Pods of one node reach another's through this host.
      cat /proc/sys/net/ipv4/ip_forward >"$DIR/nodes/ip_forward"
      echo 1 >/proc/sys/net/ipv4/ip_forward
    fi
    api_ip="$NODES_HOST_IP"
    api_flags=(--endpoint-reconciler-type lease --authorization-mode "Node,RBAC"
      --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key"
      --kubelet-preferred-address-types InternalIP)
  fi

  start etcd --name testenv --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "testenv=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_ready etcd healthy curl -fsS --max-time 5 "http://127.0.0.1:$etcd_port/health"

  local server="https://$api_ip:$api_port"
  SERVER="$server"
  start kube-apiserver \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$api_ip" --advertise-address "$api_ip" --secure-port "$api_port" \
    "${api_flags[@]}" \
    --cert-dir "$DIR/apiserver" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --allow-privileged=true --profiling=false
  wait_ready kube-apiserver ready curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$server/readyz"

  write_kubeconfig testenv "$server" admin
  write_kubeconfig testenv "$server" controller-manager
  local kcm_kubeconfig="$DIR/controller-manager.kubeconfig"
  start kube-controller-manager \
    --kubeconfig "$kcm_kubeconfig" \
    --authentication-kubeconfig "$kcm_kubeconfig" --authorization-kubeconfig "$kcm_kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$DIR/controller-manager" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials=true \
    --controllers '*' --leader-elect=false --profiling=false
  wait_ready kube-controller-manager healthy curl -fsSk --max-time 5 "https://127.0.0.1:$kcm_port/healthz"
  # The controllers are working once the service-account controller has made `default` in `default`,
  # which pods need before admission accepts them.
  wait_ready kube-controller-manager "running controllers" curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "$server/api/v1/namespaces/default/serviceaccounts/default"

  if ((NODE_COUNT > 0)); then
    nodes_up
  fi
  log "up in $((SECONDS - begin))s: $server (stop it with: scripts/testenv.sh down $DIR)"
  echo "export KUBECONFIG=$DIR/admin.kubeconfig"
}

cmd_down() {
  local dir
  if [[ $# -ge 1 ]]; then
    dir="$(cd "$1" && pwd)" || die "no such state dir: $1"
  else
    [[ -f "$CACHE/last" ]] || die "no state dir given and no recent one recorded in $CACHE/last"
    dir="$(cat "$CACHE/last")"
  fi
  [[ -d "$dir/pids" ]] || die "$dir is not a testenv state dir (no pids/)"
  stop_all "$dir"
  if [[ -f "$CACHE/last" && "$(cat "$CACHE/last")" == "$dir" ]]; then
    rm -f "$CACHE/last"
  fi
  log "stopped the control plane of $dir (files kept)"
}

case "${1:-}" in
build)
  cmd_build
  if [[ "${2:-}" == --nodes ]]; then
    nodes_build
  fi
  ;;
up)
  shift
  cmd_up "$@"
  ;;
down)
  shift
  cmd_down "$@"
  ;;
stop-node)
  [[ $# -eq 3 ]] || die "usage: $0 stop-node <state-dir> <node index>"
  nodes_stop_node "$(cd "$2" && pwd)" "$3"
  ;;
start-node)
  [[ $# -eq 3 ]] || die "usage: $0 start-node <state-dir> <node index>"
  nodes_start_node "$(cd "$2" && pwd)" "$3"
  ;;
*)
  echo "usage: $0 build [--nodes] | up [--nodes[=N]] [state-dir] | down [state-dir] | stop-node|start-node state-dir N" >&2
  exit 2
  ;;
esac
