#!/usr/bin/env bash
# Builds the container images of koru-dataplane, koru-operator, koru-controlplane and koru-gateway, and the pods'
# sandbox (pause) image, as image archives without a container daemon, and imports them into the
# nodes of the test Kubernetes. See images/README.md.
#
#   scripts/images.sh build [--profile dev|release]    binaries + all five archives; prints their paths
#   scripts/images.sh pause                             the pause archive only; prints its path
#   scripts/images.sh import [--profile dev|release]   build, then import every image into each node's
#                                                       containerd of the test Kubernetes at $KUBECONFIG
#
# Each image is one layer (the binary, the shared libraries `ldd` names, CA certificates, /etc/passwd
# and /etc/group with the nonroot user 65532) written by GNU tar with fixed owners and times, turned
# into an image by `crane` (built from the Go module proxy and cached) through a registry it serves
# on loopback for the length of the run. Archives land in $CARGO_TARGET_DIR/images/ and are rebuilt
# only when their binary, this script, the version or the commit changed. `--profile dev` packs the
# debug binaries with their debug info stripped, so tests need no second, release, compile.
# Progress goes to stderr; stdout carries only the archive paths.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
# Run by a test, this script inherits the variables cargo sets for the test (CARGO_PKG_NAME, ...).
# Some build scripts watch them (ring's does), so a build with them would run those again and
# rebuild everything above them at the next plain build: drop them.
for var in $(compgen -e); do
  case "$var" in
    CARGO_PKG_* | CARGO_MANIFEST_* | CARGO_CRATE_* | CARGO_BIN_* | CARGO_PRIMARY_PACKAGE | CARGO_TARGET_TMPDIR | CARGO_RUSTC_CURRENT_DIR) unset "$var" ;;
  esac
done

CRANE_VERSION=v0.22.1
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud/tools"
CRANE="$TOOLS/crane-$CRANE_VERSION/crane"
REGISTRY=ghcr.io/koru
SOURCE_URL=https://github.com/korudelta/koru-delta-cloud
PLATFORM=linux/amd64
# The sandbox image's tag follows the upstream pause release it stands in for.
PAUSE_TAG=3.10
BINARIES=(koru-dataplane koru-operator koru-controlplane koru-gateway)
IMAGES="$CARGO_TARGET_DIR/images"
# Every file in a layer gets this time, so the same inputs give the same layer digest.
EPOCH=0

log() { echo "images.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
usage() {
  sed -n '6,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

go_bin() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    die "go not found (it builds crane and the pause program)"
  fi
}

# Installs crane into the cache once; concurrent runs wait for the first.
ensure_crane() {
  [[ -x "$CRANE" ]] && return 0
  mkdir -p "$TOOLS"
  exec 8>"$TOOLS/crane.lock"
  flock 8
  if [[ ! -x "$CRANE" ]]; then
    local partial="$TOOLS/crane-$CRANE_VERSION.partial.$$"
    rm -rf "$TOOLS"/crane-"$CRANE_VERSION".partial.*
    log "installing crane $CRANE_VERSION from the Go module proxy (about 30 s cold)"
    GOBIN="$partial" "$(go_bin)" install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" >&2 ||
      die "go install of crane $CRANE_VERSION failed"
    mkdir -p "$(dirname "$CRANE")"
    mv -f "$partial/crane" "$CRANE"
    rm -rf "$partial"
  fi
  exec 8>&-
}

WORK=""
REGISTRY_PID=""
cleanup() {
  if [[ -n "$REGISTRY_PID" ]]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
  fi
  if [[ -n "$WORK" ]]; then
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
# exit runs the EXIT trap, so an interrupted run stops its registry and removes its files too.
trap 'exit 130' INT
trap 'exit 143' TERM

work_dir() {
  if [[ -z "$WORK" ]]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/koru-images.XXXXXX")"
  fi
}

# crane edits image configs only in a registry, so one serves in memory on a free loopback port
# while this script runs; LOCAL is its host:port.
LOCAL=""
start_registry() {
  [[ -n "$LOCAL" ]] && return 0
  ensure_crane
  work_dir
  "$CRANE" registry serve --address 127.0.0.1:0 >"$WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  local port="" _
  for _ in $(seq 50); do
    port="$(sed -n 's/.*serving on port \([0-9][0-9]*\).*/\1/p' "$WORK/registry.log")"
    [[ -n "$port" ]] && break
    kill -0 "$REGISTRY_PID" 2>/dev/null || die "crane registry exited: $(cat "$WORK/registry.log")"
    sleep 0.1
  done
  [[ -n "$port" ]] || die "crane registry did not report its port: $(cat "$WORK/registry.log")"
  LOCAL="127.0.0.1:$port"
}

# The version every image is tagged with: the data plane crate's (the workspace's) version, which
# the charts' appVersion and the KoruCluster examples' spec.version also carry.
crate_version() {
  cargo metadata --no-deps --format-version 1 --manifest-path "$ROOT/Cargo.toml" |
    python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "koru-dataplane"))'
}

git_commit() {
  git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown
}

# Puts FILE into the staging root at the same path, as a regular file (symlinks followed) owned by
# whoever runs this; tar rewrites owners. Modes keep only the execute bits that matter.
stage_file() {
  local root="$1" file="$2" mode=0644
  [[ -x "$file" ]] && mode=0755
  install -D -m "$mode" "$(readlink -f "$file")" "$root$file"
}

# Writes the nonroot user's files, the CA bundle and, for a dynamic binary, every library it loads.
stage_runtime() {
  local root="$1" bin="$2"
  mkdir -p "$root/etc/ssl/certs"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  # glibc's default without this file asks DNS before /etc/hosts; pods expect files first.
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  [[ -r /etc/ssl/certs/ca-certificates.crt ]] || die "/etc/ssl/certs/ca-certificates.crt missing (apt-get install ca-certificates)"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  # ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader; the vDSO has
  # no file. The libraries go where ldd found them, which is on the loader's default search path.
  local lib
  while read -r lib; do
    stage_file "$root" "$lib"
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# Writes the layer tar of the staged root: root-owned, fixed times, sorted, so it is reproducible.
write_layer() {
  local root="$1" layer="$2"
  find "$root" -type d -exec chmod 0755 {} +
  (cd "$root" && find . -mindepth 1 | sed 's,^\./,,' | LC_ALL=C sort) >"$layer.list"
  tar --no-recursion --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" --format=gnu \
    -C "$root" -cf "$layer" -T "$layer.list"
}

# Turns LAYER into the image archive OUT tagged TAG, run as USER with ENTRYPOINT and the OCI labels.
write_image() {
  local name="$1" layer="$2" tag="$3" user="$4" entrypoint="$5" version="$6" out="$7"
  start_registry
  "$CRANE" append --oci-empty-base -f "$layer" -t "$LOCAL/$name:build" >/dev/null 2>"$WORK/crane.log" ||
    die "crane append $name failed: $(cat "$WORK/crane.log")"
  # Without a platform `ctr images import` finds no image for the node and imports nothing.
  "$CRANE" mutate --set-platform "$PLATFORM" --user "$user" --entrypoint "$entrypoint" \
    -l "org.opencontainers.image.title=$name" \
    -l "org.opencontainers.image.version=$version" \
    -l "org.opencontainers.image.revision=$(git_commit)" \
    -l "org.opencontainers.image.source=$SOURCE_URL" \
    -t "$tag" -o "$out.partial" "$LOCAL/$name:build" >/dev/null 2>"$WORK/crane.log" ||
    die "crane mutate $name failed: $(cat "$WORK/crane.log")"
  mv -f "$out.partial" "$out"
}

# What an archive was built from; the archive is rebuilt when any of it changes.
stamp_of() {
  local bin="$1" version="$2"
  echo "binary $(sha256sum "$bin" | cut -d' ' -f1)"
  echo "script $(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
  echo "version $version"
  echo "commit $(git_commit)"
}

# Paths of the archives this run built or found up to date, printed at the end.
ARCHIVES=()

# Builds (if its inputs changed) the archive of one workspace binary.
build_binary_image() {
  local name="$1" bin="$2" profile="$3" version="$4"
  local out="$IMAGES/$profile/$name.tar" stamp
  stamp="$(stamp_of "$bin" "$version")"
  ARCHIVES+=("$out")
  if [[ -f "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$stamp" ]]; then
    log "$REGISTRY/$name:$version ($profile) is up to date: $out"
    return 0
  fi
  local start=$SECONDS root
  work_dir
  root="$WORK/$name/root"
  mkdir -p "$root/usr/local/bin"
  if [[ "$profile" == dev ]]; then
    # Debug info is most of a debug binary (hundreds of MB); stack traces keep function names.
    objcopy --strip-debug "$bin" "$root/usr/local/bin/$name"
  else
    install -m 0755 "$bin" "$root/usr/local/bin/$name"
  fi
  chmod 0755 "$root/usr/local/bin/$name"
  stage_runtime "$root" "$bin"
  write_layer "$root" "$WORK/$name/layer.tar"
  mkdir -p "$IMAGES/$profile"
  write_image "$name" "$WORK/$name/layer.tar" "$REGISTRY/$name:$version" 65532:65532 \
    "/usr/local/bin/$name" "$version" "$out"
  echo "$stamp" >"$out.stamp"
  rm -rf "${WORK:?}/$name"
  log "built $REGISTRY/$name:$version ($profile) in $((SECONDS - start))s: $out ($(du -h "$out" | cut -f1))"
}

# Builds the static pause program and (if the program changed) its archive.
build_pause() {
  local out="$IMAGES/pause.tar" go start=$SECONDS
  go="$(go_bin)"
  work_dir
  mkdir -p "$WORK/pause/root" "$IMAGES"
  # No VCS stamp, so the binary (and the image) change only when the program does.
  (cd "$ROOT/images/pause" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 "$go" build -trimpath -buildvcs=false \
    -ldflags "-s -w" -o "$WORK/pause/root/pause" .) >&2 || die "go build of images/pause failed"
  local stamp
  stamp="$(stamp_of "$WORK/pause/root/pause" "$PAUSE_TAG")"
  ARCHIVES+=("$out")
  if [[ -f "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$stamp" ]]; then
    log "$REGISTRY/pause:$PAUSE_TAG is up to date: $out"
    return 0
  fi
  write_layer "$WORK/pause/root" "$WORK/pause/layer.tar"
  write_image pause "$WORK/pause/layer.tar" "$REGISTRY/pause:$PAUSE_TAG" 65535:65535 /pause "$PAUSE_TAG" "$out"
  echo "$stamp" >"$out.stamp"
  log "built $REGISTRY/pause:$PAUSE_TAG in $((SECONDS - start))s: $out ($(du -h "$out" | cut -f1))"
}

# Compiles the four binaries in PROFILE and builds all five archives.
build_all() {
  local profile="$1" dir cargo_profile=()
  case "$profile" in
    release) dir=release cargo_profile=(--release) ;;
    dev) dir=debug ;;
    *) die "unknown profile $profile (dev or release)" ;;
  esac
  local version name packages=()
  for name in "${BINARIES[@]}"; do
    packages+=(-p "$name" --bin "$name")
  done
  log "cargo build ($profile) of ${BINARIES[*]}"
  cargo build --manifest-path "$ROOT/Cargo.toml" "${cargo_profile[@]}" "${packages[@]}" >&2 ||
    die "cargo build failed"
  version="$(crate_version)"
  for name in "${BINARIES[@]}"; do
    build_binary_image "$name" "$CARGO_TARGET_DIR/$dir/$name" "$profile" "$version"
  done
  build_pause
}

# The containerd sockets of the test Kubernetes' nodes at $KUBECONFIG, found before any build so a
# missing cluster fails fast.
SOCKETS=()
find_nodes() {
  [[ -n "${KUBECONFIG:-}" ]] || die "KUBECONFIG is not set; start a test Kubernetes with nodes (eval \"\$(scripts/testenv.sh up --nodes)\")"
  local dir sock
  dir="$(dirname "$KUBECONFIG")"
  for sock in "$dir"/nodes/*/containerd/containerd.sock; do
    [[ -S "$sock" ]] && SOCKETS+=("$sock")
  done
  [[ ${#SOCKETS[@]} -gt 0 ]] || die "no node containerd socket under $dir/nodes/*/containerd/ (was the test Kubernetes started with --nodes?)"
  command -v ctr >/dev/null 2>&1 || die "ctr not found (scripts/system-deps.sh nodes installs containerd)"
}

# Imports each archive into every node's containerd.
import_all() {
  local sock tar
  for sock in "${SOCKETS[@]}"; do
    for tar in "$@"; do
      ctr --address "$sock" -n k8s.io images import --platform "$PLATFORM" "$tar" >&2 ||
        die "importing $tar into $sock failed"
    done
    log "imported $# images into $sock"
  done
}

command="${1:-}"
[[ $# -gt 0 ]] && shift
profile=release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile)
      [[ $# -ge 2 ]] || usage
      profile="$2"
      shift 2
      ;;
    --profile=*)
      profile="${1#--profile=}"
      shift
      ;;
    *) usage ;;
  esac
done

# Tests may run this script several at a time; one builds, the others wait and then find the
# archives up to date.
lock() {
  mkdir -p "$IMAGES"
  exec 7>"$IMAGES/.lock"
  flock 7
}

case "$command" in
  build)
    lock
    build_all "$profile"
    printf '%s\n' "${ARCHIVES[@]}"
    ;;
  pause)
    lock
    build_pause
    printf '%s\n' "${ARCHIVES[@]}"
    ;;
  import)
    find_nodes
    lock
    build_all "$profile"
    import_all "${ARCHIVES[@]}"
    ;;
  *) usage ;;
esac
