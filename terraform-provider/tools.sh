#!/usr/bin/env bash
# Installs what the Terraform provider's build and end-to-end tests need beyond Rust, when missing,
# and prints the path of the Terraform-compatible CLI the tests should run (KORU_TERRAFORM):
#   - protoc and the well-known .proto files (Debian's protobuf-compiler and libprotobuf-dev):
#     tf-provider's build script compiles the plugin protocol with them;
#   - `terraform` or `tofu` from the PATH, else OpenTofu built once from the Go module pinned in
#     tofu/go.mod into ~/.cache/koru-delta-cloud/tofu/<version> (about 5 minutes cold).
# Progress goes to stderr, so scripts/test.sh can take the path from stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE="$HERE/tofu"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/koru-delta-cloud/tofu"

log() { echo "terraform-provider/tools.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

install_protoc() {
  if command -v protoc >/dev/null 2>&1 && [[ -f /usr/include/google/protobuf/empty.proto ]]; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "protoc is missing and this system has no apt-get: install protoc and its include files"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "protoc is missing: run as root or install protobuf-compiler and libprotobuf-dev"
    sudo=(sudo)
  fi
  log "installing protobuf-compiler and libprotobuf-dev"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends protobuf-compiler libprotobuf-dev >&2
}

go_bin() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    die "no terraform or tofu, and no go to build OpenTofu with"
  fi
}

# Builds the pinned OpenTofu unless it is cached, and prints its path.
build_tofu() {
  local version bin go partial start
  version="$(awk '$1 == "require" && $2 == "github.com/opentofu/opentofu" { print $3 }' "$MODULE/go.mod")"
  [[ -n "$version" ]] || die "$MODULE/go.mod requires no github.com/opentofu/opentofu version"
  bin="$CACHE/$version/tofu"
  mkdir -p "$CACHE"
  # Concurrent runs: one builds, the others wait for it and then find the binary.
  exec 9>"$CACHE/build.lock"
  flock 9
  if [[ ! -x "$bin" ]]; then
    go="$(go_bin)"
    partial="$bin.partial.$$"
    rm -f "$CACHE/$version"/tofu.partial.*
    mkdir -p "$CACHE/$version"
    start=$SECONDS
    log "building OpenTofu $version with $("$go" version) (about 5 minutes cold; later runs reuse $bin)"
    # dev=no makes `tofu version` report the release rather than a -dev build.
    (cd "$MODULE" && CGO_ENABLED=0 "$go" build -trimpath \
      -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
      -o "$partial" github.com/opentofu/opentofu/cmd/tofu) >&2 || {
      rm -f "$partial"
      die "building OpenTofu failed"
    }
    # Moved in only once complete, so a killed build is never taken for a finished one.
    mv -f "$partial" "$bin"
    log "built OpenTofu $version in $((SECONDS - start))s"
  fi
  echo "$bin"
}

install_protoc
if command -v terraform >/dev/null 2>&1; then
  command -v terraform
elif command -v tofu >/dev/null 2>&1; then
  command -v tofu
else
  build_tofu
fi
