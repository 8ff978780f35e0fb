#!/usr/bin/env bash
# Installs the system libraries the build needs and cargo cannot: samael (SAML SSO in the control
# plane) links libxmlsec1 (OpenSSL engine), libxml2 and OpenSSL, and generates its bindings with
# bindgen, which needs libclang; the Terraform provider's tf-provider compiles the plugin protocol
# with protoc (protobuf-compiler, libprotobuf-dev). Idempotent: installs only what is missing, with apt-get as root or
# through sudo. scripts/test.sh and scripts/run.sh call it before cargo.
set -euo pipefail

packages=(libxmlsec1-dev libxml2-dev libssl-dev libclang-dev clang pkg-config protobuf-compiler libprotobuf-dev)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]}, and this system has no apt-get; install them by hand" >&2
  exit 1
fi
if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "system-deps: missing ${missing[*]}; run as root or install sudo" >&2
  exit 1
fi

echo "==> installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
