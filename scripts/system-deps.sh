#!/usr/bin/env bash
# Installs the system packages the build and the tests need and cargo cannot. Groups:
#   build (the default): samael (SAML SSO in the control plane) links libxmlsec1 (OpenSSL engine),
#     libxml2 and OpenSSL and generates its bindings with bindgen, which needs libclang; the
#     Terraform provider's tf-provider compiles the plugin protocol with protoc (protobuf-compiler,
#     libprotobuf-dev).
#   browser: the dashboard's browser test (controlplane/tests/dashboard/) drives Debian's headless
#     chromium from node (nodejs).
#   dns: the control plane's domain-verification tests (controlplane/tests/sso_domains.rs) run
#     dnsmasq (dnsmasq-base: the binary only, no system service) as a real DNS server on loopback.
#   nodes: the test Kubernetes' nodes (scripts/testenv.sh up --nodes) run pods on containerd + runc
#     with CNI bridge networking; scripts/images.sh imports the images with containerd's `ctr`.
# Idempotent: installs only what is missing, with apt-get as root or through sudo. scripts/run.sh
# calls it for `build`, scripts/test.sh for `build browser dns`.
set -euo pipefail

packages=()
for group in "${@:-build}"; do
  case "$group" in
    build) packages+=(libxmlsec1-dev libxml2-dev libssl-dev libclang-dev clang pkg-config protobuf-compiler libprotobuf-dev) ;;
    browser)
      packages+=(chromium nodejs)
      # Debian ships npm as its own package; NodeSource's nodejs bundles it (and conflicts with it).
      command -v npm >/dev/null 2>&1 || packages+=(npm)
      ;;
    dns) packages+=(dnsmasq-base) ;;
    nodes) packages+=(containerd runc containernetworking-plugins) ;;
    *) echo "system-deps: unknown group $group (build, browser, dns, nodes)" >&2; exit 2 ;;
  esac
done
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
