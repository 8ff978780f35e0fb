// What the tests share: temp directories, the conformance vectors, and real `koru-dataplane`
// child processes on free loopback ports (binary from KORU_DATAPLANE_BIN, else
// $CARGO_TARGET_DIR/debug/koru-dataplane).
import { spawn } from "node:child_process";
import { sign } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
export const vectorsDir = join(packageRoot, "..", "conformance");

/** Every conformance scenario: [file name, parsed scenario]. */
export function scenarios() {
  return readdirSync(vectorsDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => [f, JSON.parse(readFileSync(join(vectorsDir, f), "utf8"))]);
}

/** A fresh temp directory, removed when the test ends. */
export function tempDir(t, prefix = "koru-delta-node-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The server binary, or undefined when it is not built (the caller skips, or fails under CI). */
export function dataplaneBin() {
  const bin =
    process.env.KORU_DATAPLANE_BIN ??
    (process.env.CARGO_TARGET_DIR ? join(process.env.CARGO_TARGET_DIR, "debug", "koru-dataplane") : undefined);
  if (bin && existsSync(bin)) return bin;
  if (process.env.CI === "true") throw new Error(`koru-dataplane not found (KORU_DATAPLANE_BIN=${bin}); CI needs it`);
  return undefined;
}

/** Starts `koru-dataplane` on a fresh data directory; stopped (SIGTERM) when the test ends. */
export async function startServer(t, extraArgs = []) {
  const bin = dataplaneBin();
  const dir = tempDir(t, "koru-delta-server-");
  // Only the test's arguments count: the server also reads KORU_* variables.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("KORU_")));
  const child = spawn(bin, ["--data-dir", join(dir, "data"), "--listen", "127.0.0.1:0", ...extraArgs], {
    env: { ...env, KORU_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`koru-dataplane printed no URL in 60 s:\n${stderr}`)), 60_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/koru-dataplane listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`koru-dataplane exited (${code}) before listening:\n${stderr}`));
    });
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  t.after(async () => {
    child.kill("SIGTERM");
    await exited;
  });
  return { url, child, stderr: () => stderr };
}

/** An EdDSA data-plane token for cluster c-1 (dataplane/API.md "Auth"). */
export function token(privateKey, scope = "write") {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "EdDSA", typ: "JWT" })}.${b64({
    sub: "node-test",
    cluster: "c-1",
    aud: "koru-dataplane:c-1",
    jti: `t-${now}-${Math.random()}`,
    scope,
    iat: now,
    exp: now + 600,
  })}`;
  return `${body}.${sign(null, Buffer.from(body), privateKey).toString("base64url")}`;
}
