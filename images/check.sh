#!/usr/bin/env bash
# Checks image archives written by scripts/images.sh against what the charts and the operator rely
# on; exits non-zero naming every mismatch.
#
#   images/check.sh ARCHIVE...     e.g. images/check.sh $(scripts/images.sh build --profile dev)
#
# For each archive: one image tagged ghcr.io/koru/<name>:<tag>, platform linux/amd64, the expected
# user (65532:65532 for koru-*, 65535:65535 for pause), the entrypoint /usr/local/bin/<name> (or
# /pause), the OCI labels (title = name, version = tag, a 40-hex revision, source), a single layer
# whose files are all root-owned, holding the executable entrypoint and every shared library it and
# its libraries need (by ELF DT_NEEDED), the CA bundle and the nonroot user for koru-*, and no shell.
set -euo pipefail

log() { echo "check.sh: $*" >&2; }
[[ $# -gt 0 ]] || {
  sed -n '5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
command -v python3 >/dev/null 2>&1 || { log "error: python3 not found"; exit 1; }
command -v readelf >/dev/null 2>&1 || { log "error: readelf not found (apt-get install binutils)"; exit 1; }

failed=0
for archive in "$@"; do
  if python3 - "$archive" <<'PY'; then
import io, json, re, subprocess, sys, tarfile, tempfile, os

archive = sys.argv[1]
errors = []

def fail(message):
    errors.append(message)

with tarfile.open(archive) as outer:
    manifest = json.load(outer.extractfile("manifest.json"))
    if len(manifest) != 1:
        sys.exit(f"{archive}: {len(manifest)} images in manifest.json, expected 1")
    entry = manifest[0]
    tags = entry.get("RepoTags") or []
    match = re.fullmatch(r"ghcr\.io/koru/([a-z0-9-]+):([A-Za-z0-9._-]+)", tags[0]) if len(tags) == 1 else None
    if not match:
        sys.exit(f"{archive}: tags {tags}, expected exactly one ghcr.io/koru/<name>:<tag>")
    name, tag = match.groups()
    config = json.load(outer.extractfile(entry["Config"]))
    layers = entry.get("Layers") or []
    if len(layers) != 1:
        sys.exit(f"{archive}: {len(layers)} layers, expected 1")
    layer_bytes = outer.extractfile(layers[0]).read()

pause = name == "pause"
want_user = "65535:65535" if pause else "65532:65532"
want_entrypoint = ["/pause"] if pause else [f"/usr/local/bin/{name}"]
if (config.get("os"), config.get("architecture")) != ("linux", "amd64"):
    fail(f"platform {config.get('os')}/{config.get('architecture')}, expected linux/amd64")
cfg = config.get("config") or {}
if cfg.get("User") != want_user:
    fail(f"user {cfg.get('User')!r}, expected {want_user!r}")
if cfg.get("Entrypoint") != want_entrypoint:
    fail(f"entrypoint {cfg.get('Entrypoint')}, expected {want_entrypoint}")
if cfg.get("Cmd"):
    fail(f"cmd {cfg.get('Cmd')}, expected none (the pod or the operator passes the arguments)")
labels = cfg.get("Labels") or {}
for key, want in [("org.opencontainers.image.title", name), ("org.opencontainers.image.version", tag)]:
    if labels.get(key) != want:
        fail(f"label {key}={labels.get(key)!r}, expected {want!r}")
if not re.fullmatch(r"[0-9a-f]{40}", labels.get("org.opencontainers.image.revision", "")):
    fail(f"label org.opencontainers.image.revision={labels.get('org.opencontainers.image.revision')!r}, expected a git commit")
if not labels.get("org.opencontainers.image.source", "").startswith("https://"):
    fail("label org.opencontainers.image.source missing")

with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(layer_bytes)) as layer:
    members = {m.name.removeprefix("./").rstrip("/"): m for m in layer.getmembers()}
    for path, m in members.items():
        if (m.uid, m.gid) != (0, 0):
            fail(f"{path} owned by {m.uid}:{m.gid}, expected root")
        if os.path.basename(path) in {"sh", "bash", "dash", "ash", "busybox"}:
            fail(f"{path}: a shell in the image")
    entry_path = want_entrypoint[0].lstrip("/")
    binary = members.get(entry_path)
    if binary is None or not binary.isfile() or not binary.mode & 0o111:
        fail(f"no executable {want_entrypoint[0]} in the layer")
    if not pause:
        for path in ["etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group"]:
            if path not in members or not members[path].isfile():
                fail(f"no {path} in the layer")
        if "etc/passwd" in members:
            passwd = layer.extractfile(members["etc/passwd"]).read().decode()
            if not re.search(r"^nonroot:x:65532:65532:", passwd, re.M):
                fail("/etc/passwd has no nonroot user 65532")
    # Every library the entrypoint needs, directly or through another library, is in the layer
    # where the loader looks (its default directories; the images carry no ld.so.cache).
    if binary is not None and binary.isfile():
        search = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"]
        todo, seen, loaders = [entry_path], set(), set()
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            copy = os.path.join(tmp, "elf")
            with open(copy, "wb") as f:
                f.write(layer.extractfile(members[path]).read())
            out = subprocess.run(["readelf", "-d", "-l", copy],
                                 capture_output=True, text=True, check=True).stdout
            interp = re.search(r"Requesting program interpreter: (/[^\]]+)\]", out)
            if pause and interp:
                fail("pause is dynamically linked, expected a static binary")
            if interp and interp.group(1).lstrip("/") not in members:
                fail(f"{path}: loader {interp.group(1)} not in the layer")
            if interp:
                loaders.add(os.path.basename(interp.group(1)))
            for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out):
                # The loader, already mapped, answers for its own soname.
                if lib in loaders:
                    continue
                found = next((f"{d}/{lib}" for d in search if f"{d}/{lib}" in members), None)
                if found is None:
                    fail(f"{path} needs {lib}, which is not in the layer")
                else:
                    todo.append(found)

if errors:
    for e in errors:
        print(f"check.sh: {archive} ({name}:{tag}): {e}", file=sys.stderr)
    sys.exit(1)
print(f"check.sh: {archive}: ghcr.io/koru/{name}:{tag} ok", file=sys.stderr)
PY
    :
  else
    failed=1
  fi
done
exit "$failed"
