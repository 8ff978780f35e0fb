#!/usr/bin/env bash
# Proves the test control plane works end to end: up, namespaces, a StatefulSet whose Pod object the
# controller-manager creates, garbage collection of that Pod, down, and no process left behind.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTENV="$ROOT/scripts/testenv.sh"
STATE="$(mktemp -d "${TMPDIR:-/tmp}/koru-testenv-smoke.XXXX")"

log() { echo "smoke: $*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}
trap '"$TESTENV" down "$STATE" >/dev/null 2>&1 || true' EXIT

# Polls `$@` every 0.2s for up to 30s until it prints $expected.
wait_for() {
  local expected="$1" i out
  shift
  for ((i = 0; i < 150; i++)); do
    out="$("$@" 2>/dev/null || true)"
    [[ "$out" == "$expected" ]] && return 0
    sleep 0.2
  done
  fail "waited 30s for '$expected' from: $* (last output: '$out')"
}

start=$SECONDS
eval "$("$TESTENV" up "$STATE")"
log "up took $((SECONDS - start))s, KUBECONFIG=$KUBECONFIG"

kubectl get ns >&2
kubectl get ns default -o name | grep -qx namespace/default || fail "no default namespace"
kubectl create ns t1 >&2
kubectl apply -n t1 -f - >&2 <<'EOF'
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 1
  serviceName: web
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
EOF
t=$SECONDS
# No kubelet: the Pod object exists (made by the StatefulSet controller) but stays Pending.
wait_for "web-0 Pending" kubectl get pods -n t1 -o 'jsonpath={range .items[*]}{.metadata.name} {.status.phase}{end}'
log "StatefulSet controller created web-0 (Pending) in $((SECONDS - t))s"
kubectl get pods -n t1 >&2

t=$SECONDS
kubectl delete statefulset web -n t1 --cascade=background >&2
# The garbage collector in kube-controller-manager removes the Pod owned by the deleted StatefulSet.
wait_for "" kubectl get pods -n t1 -o 'jsonpath={.items[*].metadata.name}'
log "garbage collector removed web-0 in $((SECONDS - t))s"

pids="$(cat "$STATE"/pids/*.pid)"
"$TESTENV" down "$STATE"
for pid in $pids; do
  if kill -0 "$pid" 2>/dev/null; then fail "pid $pid still running after down"; fi
done
trap - EXIT
log "PASS in $((SECONDS - start))s (state dir $STATE kept)"
