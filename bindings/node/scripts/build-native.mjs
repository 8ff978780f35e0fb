// Builds the native addon with cargo and copies it to the package root as
// koru-delta.<platform>-<arch>[-gnu|-musl].node, where src/native.cts looks first.
// Release by default (what `npm run build` in a checkout should give); KORU_DELTA_PROFILE=debug
// for a quicker build in tests. Uses CARGO_TARGET_DIR when set, so the workspace's deps are shared.
import { spawnSync } from "node:child_process";
import { copyFileSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const profile = process.env.KORU_DELTA_PROFILE ?? "release";
const args = ["build", "-p", "koru-delta-node", "--lib", "--message-format=json-render-diagnostics"];
if (profile === "release") args.push("--release");
else if (profile !== "debug") args.push("--profile", profile);
const cargo = spawnSync("cargo", args, { cwd: root, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", maxBuffer: 1 << 28 });
if (cargo.error) {
  console.error(`build-native: cannot run cargo (${cargo.error.message}); install Rust from https://rustup.rs`);
  process.exit(1);
}
if (cargo.status !== 0) process.exit(cargo.status ?? 1);
let library;
for (const line of cargo.stdout.split("\n")) {
  if (!line.startsWith("{")) continue;
  const message = JSON.parse(line);
  if (message.reason === "compiler-artifact" && message.target?.name === "koru_delta_node") {
    library = message.filenames.find((f) => /\.(so|dylib|dll)$/.test(f));
  }
}
if (!library) {
  console.error("build-native: cargo built no koru_delta_node library");
  process.exit(1);
}
const { platformTriple } = createRequire(import.meta.url)("../dist/cjs/native.cjs");
const target = join(root, `koru-delta.${platformTriple()}.node`);
// Copy then rename: a running process that loaded the old file keeps its mapping intact.
copyFileSync(library, `${target}.tmp`);
renameSync(`${target}.tmp`, target);
console.error(`build-native: ${library} -> ${target}`);
