#!/usr/bin/env bash
# Runs scripts/test.sh for CI in a checkout of the same commit at a fixed path under the cache.
#
# CI clones afresh into a new directory every time, and Cargo keys the workspace's own crates by
# their path: built in the clone, every crate and test binary of the workspace compiled again on
# every run (about half of a warm run). This checkout stays at one path and is moved to the new
# commit by git, which rewrites only the files that changed, so Cargo's mtime check rebuilds only
# the crates that changed. Its build directory is its own (seeded once from the shared cache's
# third-party artefacts, as hard links), so pruning the shared cache never costs it a rebuild.
# A checkout with uncommitted changes is tested in place: the commit would not be what it holds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if ! git rev-parse -q --verify HEAD >/dev/null 2>&1 || [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
  echo "==> CI checkout: this checkout has uncommitted changes (or is no git checkout); testing it in place"
  exec env KORU_CI_CHECKOUT=in-place scripts/test.sh
fi
checkout="$KORU_CACHE/ci-checkout"
target="$KORU_CACHE/target-ci"
exec 9>"$KORU_CACHE/ci-checkout.lock"
if ! flock -w 3600 9; then
  echo "another CI run has held $checkout for an hour" >&2
  exit 1
fi
[[ -d "$checkout/.git" ]] || git init -q "$checkout"
git -C "$checkout" fetch -q --no-tags "$PWD" HEAD
git -C "$checkout" checkout -q -f --detach FETCH_HEAD
# What the last run left (test output, package builds) goes; ignored files too.
git -C "$checkout" clean -q -f -d -x
if [[ ! -e "$target/.seeded" ]]; then
  shared="$CARGO_TARGET_DIR/debug"
  mkdir -p "$target/debug/deps" "$target/debug/.fingerprint" "$target/debug/build"
  if [[ -d "$shared/deps" ]]; then
    echo "==> CI checkout: seeding $target with the shared cache's third-party artefacts (hard links)"
    # Not our crates, and no executables (our test binaries carry no "koru" in their names).
    (cd "$shared/deps" && find . -maxdepth 1 -type f ! -perm -u+x ! -iname '*koru*' ! -name '*terraform_provider*' -print0 \
      | xargs -0 -r cp -al -n -t "$target/debug/deps/") 2>/dev/null || true
    for dir in .fingerprint build; do
      (cd "$shared/$dir" && for d in *; do
        case "$d" in *koru*|terraform-provider*) ;; *) cp -a -n "$d" "$target/debug/$dir/" ;; esac
      done) 2>/dev/null || true
    done
  fi
  touch "$target/.seeded"
fi
echo "==> CI checkout: testing $(git -C "$checkout" rev-parse --short HEAD) in $checkout (build output in $target)"
cd "$checkout"
# The lock stays with this shell: the tests get no copy of its descriptor, so a process a test
# leaves behind cannot hold the checkout against the next run.
KORU_CI_CHECKOUT=1 CARGO_TARGET_DIR="$target" scripts/test.sh 9>&-
