# shellcheck shell=bash
# The nodes of the test Kubernetes (`scripts/testenv.sh up --nodes`): kube-scheduler, a kubelet on its
# own containerd + runc with CNI bridge networking, kube-proxy, CoreDNS and a pool of local volumes.
# Sourced by scripts/testenv.sh, whose helpers (log, die, start, stop, wait_ready, free_ports) it uses.
#
# Everything stays inside this machine: pods live in network namespaces of their own on 10.244.N.0/24,
# a subnet that exists only on the bridge this script makes; Services get VIPs in 10.96.0.0/16 that
# only kube-proxy's rules on this host know. The API server and CoreDNS listen on the first bridge's
# address (10.244.0.1), which pods reach through their default route and the host itself locally.

# Built beside the control plane's binaries, from the same module (CoreDNS from testenv/coredns).
NODE_COMPONENTS=(kube-scheduler kubelet kube-proxy coredns crictl expandable-provisioner)
# crictl stops pods through the CRI at `down`, so CNI releases what it made for each.
CRICTL_VERSION=v1.37.0
# The host's address on the first node's bridge: the API server, CoreDNS and the first kubelet.
NODES_HOST_IP=10.244.0.1
NODES_CLUSTER_CIDR=10.244.0.0/16
# Local volumes made per node for PersistentVolumeClaims (the pool's StorageClass is `local`).
NODES_VOLUMES="${KORU_TESTENV_VOLUMES:-40}"
# The sandbox image every pod's network namespace is held by, built by scripts/images.sh.
PAUSE_IMAGE=ghcr.io/koru/pause:3.10
# A network namespace on node 0's bridge whose resolver is the cluster's DNS: `ip netns exec
# koru-client <command>` runs a command where a pod would, seeing Service names and VIPs (the
# dashboard journey runs a copied snippet there). Its address is above the pods' range.
CLIENT_NETNS=koru-client
CLIENT_IP=10.244.0.250

node_name() { echo "koru-node$1"; }
node_bridge() { echo "koru-br$1"; }
node_ip() { echo "10.244.$1.1"; }

# Builds node component $1 into dir $2 with go $3.
build_component() {
  local c="$1" out="$2" go="$3" v=k8s.io/component-base/version
  case "$c" in
  kube-scheduler | kubelet | kube-proxy)
    (cd "$MODULE" && "$go" build -trimpath \
      -ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=$(echo "$K8S_VERSION" | cut -d. -f1 | tr -d v) -X $v.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $v.gitTreeState=clean" \
      -o "$out/$c" "k8s.io/kubernetes/cmd/$c")
    ;;
  coredns) (cd "$MODULE/coredns" && "$go" build -trimpath -ldflags "-s -w" -o "$out/coredns" .) ;;
  expandable-provisioner) (cd "$MODULE" && "$go" build -trimpath -ldflags "-s -w" -o "$out/$c" ./cmd/expandable-provisioner) ;;
  crictl) GOBIN="$out" "$go" install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" ;;
  esac
}

# Builds the node components that are missing, each moved into place only once built.
nodes_build() {
  local go partial start c missing=()
  for c in "${NODE_COMPONENTS[@]}"; do
    [[ -x "$BIN/$c" ]] || missing+=("$c")
  done
  ((${#missing[@]} == 0)) && return 0
  go="$(go_bin)"
  partial="$BIN.nodes.partial.$$"
  mkdir -p "$partial" "$BIN"
  start=$SECONDS
  log "building ${missing[*]} (about 3 minutes after the control plane's build)"
  for c in "${missing[@]}"; do
    if ! build_component "$c" "$partial" "$go"; then
      rm -rf "$partial"
      die "build of $c failed"
    fi
    mv -f "$partial/$c" "$BIN/$c"
  done
  rm -rf "$partial"
  log "built ${missing[*]} in $((SECONDS - start))s into $BIN"
}

# Fails with what to install when a system part of the nodes is missing.
nodes_check_system() {
  local missing=() t
  for t in containerd runc ctr ip iptables iptables-save kubectl; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap && -x /usr/lib/cni/loopback ]] ||
    missing+=("/usr/lib/cni plugins")
  ((${#missing[@]} == 0)) || die "missing for the nodes: ${missing[*]} (install them with: scripts/system-deps.sh nodes)"
  [[ "$(id -u)" == 0 ]] || die "the nodes need root (network namespaces, mounts, iptables)"
}

# Client certificates of the node components, signed by the test CA (run in $DIR/pki).
nodes_pki() {
  local pki="$DIR/pki"
  [[ -f "$pki/nodes-complete" ]] && return 0
  (
    cd "$pki" || exit 1
    sign() {
      openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=clientAuth" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign scheduler "/CN=system:kube-scheduler"
    sign kube-proxy "/CN=system:kube-proxy"
    # The API server's identity towards the kubelets (logs, exec, port-forward).
    sign kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    local i
    for ((i = 0; i < NODE_COUNT; i++)); do
      sign "$(node_name "$i")" "/O=system:nodes/CN=system:node:$(node_name "$i")"
    done
  )
  touch "$pki/nodes-complete"
}

# Makes node $1's bridge with the host's address on it, so the API server can listen there first.
nodes_bridge() {
  local br ip
  br="$(node_bridge "$1")"
  ip="$(node_ip "$1")"
  if ip link show "$br" >/dev/null 2>&1; then
    die "bridge $br exists: another test Kubernetes with nodes runs (or a crashed one left it); stop it with scripts/testenv.sh down <its dir>, or delete the bridge with: ip link del $br"
  fi
  ip link add "$br" type bridge
  ip addr add "$ip/24" dev "$br"
  ip link set "$br" up
  echo "$br" >>"$DIR/nodes/bridges"
}

# Writes node $1's containerd config and CNI network, starts its containerd and imports the pause image.
nodes_containerd() {
  local i="$1" nd
  nd="$DIR/nodes/$(node_name "$i")"
  mkdir -p "$nd/containerd" "$nd/cni/conf" "$nd/cni/ipam"
  cat >"$nd/containerd/config.toml" <<EOF
version = 2
root = "$nd/containerd/root"
state = "$nd/containerd/state"
[grpc]
  address = "$nd/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$nd/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # This VM may not lower oom_score_adj, which the CRI asks runc to do for every sandbox.
  restrict_oom_score_adj = true
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$nd/cni/conf"
EOF
  cat >"$nd/cni/conf/10-koru.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$(node_name "$i")",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$(node_bridge "$i")",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$nd/cni/ipam",
        "ranges": [[{"subnet": "10.244.$i.0/24", "gateway": "$(node_ip "$i")", "rangeEnd": "10.244.$i.239"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  start_as "containerd-$i" containerd --config "$nd/containerd/config.toml" --log-level warn
  wait_ready "containerd-$i" serving ctr --address "$nd/containerd/containerd.sock" version
  ctr --address "$nd/containerd/containerd.sock" -n k8s.io images import "$PAUSE_TAR" >/dev/null ||
    die "importing the pause image into containerd-$i failed"
}

# Starts node $1's kubelet.
nodes_kubelet() {
  local i="$1" name nd port
  name="$(node_name "$i")"
  nd="$DIR/nodes/$name"
  read -r port <<<"$(free_ports 1)"
  write_kubeconfig testenv "$SERVER" "$name"
  # Pods get cgroups of their own, as on a real node, under a root per node (/<node> in every
  # hierarchy), so two kubelets on this host never clean up each other's: an in-place pod resize
  # changes the pod's cgroup, and without pod cgroups the kubelet crashes on one.
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    mkdir -p "$hierarchy$name" 2>/dev/null || true
  done
  cat >"$nd/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# PID 1 is not systemd and the hierarchy is cgroup v1 on the machines this runs on.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: true
cgroupRoot: /$name
enforceNodeAllocatable: []
failSwapOn: false
address: $(node_ip "$i")
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$NODES_HOST_IP]
resolvConf: ""
containerRuntimeEndpoint: unix://$nd/containerd/containerd.sock
# A developer's disk may be fuller than the defaults allow; the images must never be collected.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
EOF
  echo "$port" >"$nd/healthz-port"
  start_as "kubelet-$i" kubelet --config "$nd/kubelet.yaml" --kubeconfig "$DIR/$name.kubeconfig" \
    --root-dir "$nd/kubelet" --cert-dir "$nd/kubelet/pki" \
    --hostname-override "$name" --node-ip "$(node_ip "$i")"
  wait_ready "kubelet-$i" healthy curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz"
}

# The local volumes of node $1 and, once, the `local` StorageClass (the default).
nodes_volumes() {
  local i="$1" name nd v manifest
  name="$(node_name "$i")"
  nd="$DIR/nodes/$name"
  manifest="$nd/volumes.yaml"
  if ((i == 0)); then
    cat >"$manifest" <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
---
# Volumes that really grow: a tmpfs per claim, made and grown under the running pod by
# testenv/cmd/expandable-provisioner.
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: expandable
provisioner: koru.dev/expandable
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
allowVolumeExpansion: true
EOF
  else
    : >"$manifest"
  fi
  for ((v = 0; v < NODES_VOLUMES; v++)); do
    mkdir -p "$nd/volumes/pv-$v"
    cat >>"$manifest" <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name-pv-$v
spec:
  capacity: {storage: 1Ti}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: $nd/volumes/pv-$v}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$name]}
EOF
  done
  kubectl --kubeconfig "$DIR/admin.kubeconfig" apply -f "$manifest" >/dev/null
}

nodes_proxy_and_dns() {
  local proxy_health proxy_metrics dns_ready
  read -r proxy_health proxy_metrics dns_ready <<<"$(free_ports 3)"
  write_kubeconfig testenv "$SERVER" kube-proxy
  start_as kube-proxy kube-proxy --kubeconfig "$DIR/kube-proxy.kubeconfig" \
    --hostname-override "$(node_name 0)" --proxy-mode iptables \
    --cluster-cidr "$NODES_CLUSTER_CIDR" \
    --healthz-bind-address "127.0.0.1:$proxy_health" --metrics-bind-address "127.0.0.1:$proxy_metrics" \
    --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0
  wait_ready kube-proxy healthy curl -fsS --max-time 5 "http://127.0.0.1:$proxy_health/healthz"
  cat >"$DIR/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODES_HOST_IP
    errors
    ready 127.0.0.1:$dns_ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $DIR/admin.kubeconfig testenv
        pods insecure
        ttl 2
    }
}
# Nothing outside the cluster is resolved: traffic stays on this machine.
.:53 {
    bind $NODES_HOST_IP
    errors
}
EOF
  start_as coredns coredns -conf "$DIR/Corefile"
  wait_ready coredns ready curl -fsS --max-time 5 "http://127.0.0.1:$dns_ready/ready"
}

# Starts the nodes once the control plane serves at $SERVER.
nodes_up() {
  local i begin=$SECONDS
  write_kubeconfig testenv "$SERVER" scheduler
  local sched_port
  read -r sched_port <<<"$(free_ports 1)"
  start kube-scheduler --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
  wait_ready kube-scheduler healthy curl -fsSk --max-time 5 "https://127.0.0.1:$sched_port/healthz"
  for ((i = 0; i < NODE_COUNT; i++)); do
    nodes_containerd "$i"
    nodes_kubelet "$i"
  done
  for ((i = 0; i < NODE_COUNT; i++)); do
    wait_ready "kubelet-$i" "node Ready" node_ready "$(node_name "$i")"
    nodes_volumes "$i"
  done
  nodes_proxy_and_dns
  nodes_client
  start expandable-provisioner --kubeconfig "$DIR/admin.kubeconfig" --dir "$DIR/expandable"
  wait_ready expandable-provisioner ready grep -q "expandable-provisioner ready" "$DIR/logs/expandable-provisioner.log"
  log "$NODE_COUNT node(s) up in $((SECONDS - begin))s"
}

nodes_client() {
  if ip netns list | grep -qw "$CLIENT_NETNS"; then
    die "network namespace $CLIENT_NETNS exists: another test Kubernetes with nodes runs (or a crashed one left it); delete it with: ip netns del $CLIENT_NETNS"
  fi
  ip netns add "$CLIENT_NETNS"
  echo "$CLIENT_NETNS" >"$DIR/nodes/client-netns"
  ip link add koru-cl0 type veth peer name eth0 netns "$CLIENT_NETNS"
  ip link set koru-cl0 master "$(node_bridge 0)" up
  ip -n "$CLIENT_NETNS" addr add "$CLIENT_IP/24" dev eth0
  ip -n "$CLIENT_NETNS" link set eth0 up
  ip -n "$CLIENT_NETNS" link set lo up
  ip -n "$CLIENT_NETNS" route add default via "$NODES_HOST_IP"
  # `ip netns exec` mounts this over /etc/resolv.conf for the commands it runs.
  mkdir -p "/etc/netns/$CLIENT_NETNS"
  printf 'nameserver %s\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n' \
    "$NODES_HOST_IP" >"/etc/netns/$CLIENT_NETNS/resolv.conf"
}

node_ready() {
  [[ "$(kubectl --kubeconfig "$DIR/admin.kubeconfig" get node "$1" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# Stops what `nodes_up` started in state dir $1 and removes its containers, mounts, network
# namespaces, iptables rules and bridges. Safe to run twice and on a half-started state dir.
nodes_down() {
  local dir="$1" nd sock ids
  stop expandable-provisioner "$dir"
  stop coredns "$dir"
  # Pods are stopped through the CRI so that CNI releases each one's address, veth, namespace and
  # port mappings; only then do the kubelets and containerds go.
  for nd in "$dir"/nodes/*/; do
    [[ -d "$nd" ]] || continue
    local i
    i="$(basename "$nd" | sed 's/^koru-node//')"
    stop "kubelet-$i" "$dir"
    sock="$nd/containerd/containerd.sock"
    if [[ -S "$sock" ]] && [[ -x "$BIN/crictl" ]]; then
      ids="$("$BIN/crictl" --runtime-endpoint "unix://$sock" pods -q 2>/dev/null || true)"
      if [[ -n "$ids" ]]; then
        # shellcheck disable=SC2086
        "$BIN/crictl" --runtime-endpoint "unix://$sock" --timeout 20s stopp $ids >/dev/null 2>&1 || true
        # shellcheck disable=SC2086
        "$BIN/crictl" --runtime-endpoint "unix://$sock" --timeout 20s rmp -f $ids >/dev/null 2>&1 || true
      fi
    fi
    stop "containerd-$i" "$dir"
    kill_shims "$nd"
  done
  stop kube-proxy "$dir"
  if [[ -x "$BIN/kube-proxy" ]] && [[ -d "$dir/nodes" ]]; then
    "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
    remove_kubelet_chains
  fi
  stop kube-scheduler "$dir"
  unmount_under "$dir"
  remove_netns "$dir"
  if [[ -f "$dir/nodes/client-netns" ]]; then
    ip netns del "$CLIENT_NETNS" 2>/dev/null || true
    rm -rf "/etc/netns/$CLIENT_NETNS"
    rm -f "$dir/nodes/client-netns"
  fi
  if [[ -f "$dir/nodes/bridges" ]]; then
    local br
    while read -r br; do
      ip link del "$br" 2>/dev/null || true
    done <"$dir/nodes/bridges"
    rm -f "$dir/nodes/bridges"
  fi
  if [[ -f "$dir/nodes/ip_forward" ]]; then
    cat "$dir/nodes/ip_forward" >/proc/sys/net/ipv4/ip_forward
    rm -f "$dir/nodes/ip_forward"
  fi
}

# Kills the containerd shims of node dir $1 and every process under them (the containers).
kill_shims() {
  local nd="$1" pids=() p
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $nd" 2>/dev/null || true); do
    pids+=("$p")
    mapfile -t -O "${#pids[@]}" pids < <(descendants "$p")
  done
  ((${#pids[@]} == 0)) && return 0
  log "killing ${#pids[@]} leftover shim and container processes of $nd"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 0.5
}

descendants() {
  local c
  for c in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$c"
    descendants "$c"
  done
}

# Unmounts, deepest first, everything mounted under state dir $1 (overlays, shm, secrets, volumes).
unmount_under() {
  local m
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

# Deletes the network namespaces CNI made for this state dir's pods (recorded by their sandboxes'
# addresses in the host-local IPAM dirs, which name the namespace's container id).
remove_netns() {
  local dir="$1" ns
  [[ -d "$dir/nodes" ]] || return 0
  for ns in $(ip netns ls 2>/dev/null | awk '{print $1}' | grep '^cni-' || true); do
    # A namespace still holding one of our bridges' veth peers, or an address of our subnets, is ours.
    if ip netns exec "$ns" ip -4 -o addr show 2>/dev/null | grep -q ' 10\.244\.'; then
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

# Removes the chains a kubelet makes in the host's iptables (kube-proxy's own go with --cleanup).
remove_kubelet_chains() {
  local tool table chain rule
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null 2>&1 || continue
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
        "$tool-save" -t "$table" 2>/dev/null | grep -- "-j $chain\$" | sed 's/^-A /-D /' |
          while read -r rule; do
            # shellcheck disable=SC2086
            "$tool" -t "$table" $rule 2>/dev/null || true
          done || true
        "$tool" -t "$table" -F "$chain" 2>/dev/null || true
        "$tool" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

# Node $2 of state dir $1 loses power: its kubelet, its containers and its containerd are killed
# at once (SIGKILL, no pod is stopped gracefully); the node's pods stay in the API until the
# control plane notices, as with a real machine.
nodes_stop_node() {
  local dir="$1" i="$2" nd pid name
  nd="$dir/nodes/$(node_name "$i")"
  [[ -d "$nd" ]] || die "no node $i in $dir"
  for name in "kubelet-$i" "containerd-$i"; do
    pid="$(cat "$dir/pids/$name.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  kill_shims "$nd"
  log "node $i ($(node_name "$i")) stopped"
}

# Starts node $2 of state dir $1 again after nodes_stop_node: containerd cleans up the sandboxes it
# knew, and the kubelet restarts the node's pods that still exist.
nodes_start_node() {
  DIR="$1"
  local i="$2"
  [[ -d "$DIR/nodes/$(node_name "$i")" ]] || die "no node $i in $DIR"
  SERVER="$(awk '/server:/ { print $2; exit }' "$DIR/admin.kubeconfig")"
  PAUSE_TAR="${KORU_PAUSE_IMAGE_TAR:-$("$ROOT/scripts/images.sh" pause)}"
  nodes_containerd "$i"
  nodes_kubelet "$i"
  wait_ready "kubelet-$i" "node Ready" node_ready "$(node_name "$i")"
}
