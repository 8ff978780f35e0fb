#!/usr/bin/env bash
# Builds the Python package korudelta (bindings/python) as a wheel, installs it into a venv under
# ~/.cache/koru-delta-cloud/python, and runs its pytest suite (embedded and client modes, the
# conformance vectors, the roadmap's snippet) against a real koru-dataplane.
#
# Idempotent: the venv (pinned maturin and pytest from PyPI) is made once per pin set; the wheel is
# built in the shared CARGO_TARGET_DIR (debug profile: the tests need no optimizations; set
# KORU_PY_PROFILE=release for a release wheel) and written outside the clone. Under CI=true a
# missing python3 (>= 3.9, with venv) fails the run; locally it skips loudly.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh

MATURIN_VERSION=1.16.0
PYTEST_VERSION=9.2.0
profile="${KORU_PY_PROFILE:-debug}"
py_cache="$KORU_CACHE/python"
venv="$py_cache/venv-maturin$MATURIN_VERSION-pytest$PYTEST_VERSION"
wheels="$py_cache/wheels-$profile"

missing() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "python.sh: $1 (required under CI=true)" >&2
    exit 1
  fi
  echo "python.sh: SKIPPING the Python binding's tests: $1" >&2
  exit 0
}

command -v python3 >/dev/null || missing "python3 not found"
python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 9))' 2>/dev/null ||
  missing "python3 >= 3.9 with the venv module is needed"

if [[ ! -x "$venv/bin/pytest" || ! -x "$venv/bin/maturin" ]]; then
  echo "==> python venv with maturin $MATURIN_VERSION and pytest $PYTEST_VERSION ($venv, once)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin==$MATURIN_VERSION" "pytest==$PYTEST_VERSION"
fi

echo "==> korudelta wheel ($profile profile, abi3 for CPython >= 3.9) into $wheels"
rm -rf "$wheels"
maturin_args=(build --manifest-path bindings/python/Cargo.toml --out "$wheels"
  --interpreter "$venv/bin/python")
[[ "$profile" == "release" ]] && maturin_args+=(--release)
"$venv/bin/maturin" "${maturin_args[@]}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
  "$wheels"/korudelta-*.whl

if [[ -z "${KORU_DATAPLANE_BIN:-}" ]]; then
  echo "==> koru-dataplane for the client-mode tests"
  cargo build -p koru-dataplane --bin koru-dataplane
  export KORU_DATAPLANE_BIN="$CARGO_TARGET_DIR/debug/koru-dataplane"
fi

echo "==> pytest bindings/python/tests"
# No __pycache__ left in the clone.
export PYTHONDONTWRITEBYTECODE=1
cd bindings/python
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
