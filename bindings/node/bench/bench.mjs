// Throughput of the koru-delta package from Node: embedded puts/s and gets/s (one call in flight,
// many in flight, and batches), and client-mode requests/s against a koru-dataplane server.
//   node bench/bench.mjs [--seconds 3] [--url http://127.0.0.1:7878] [--value-bytes 32]
// Without --url it starts KORU_DATAPLANE_BIN (use a release build) on a temp directory. Run the
// addon built in release (`npm run build`): a debug addon measures the debug store. Prints a
// table and, with --json FILE, writes the figures there.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { KoruDelta } from "koru-delta";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    url: { type: "string" },
    "value-bytes": { type: "string", default: "32" },
    json: { type: "string" },
  },
});
const seconds = Number(opts.seconds);
const KEYS = 100_000;
const BATCH = 1000;
const CONCURRENCY = 32;
const pad = "x".repeat(Math.max(0, Number(opts["value-bytes"]) - 16));
const value = (i) => ({ n: i, p: pad });
const randomKey = () => `k${Math.floor(Math.random() * KEYS)}`;

/** Runs `op` with `inFlight` callers for `seconds`; ops/s counting `weight` per call. */
async function measure(inFlight, op, weight = 1) {
  const end = performance.now() + seconds * 1000;
  let calls = 0;
  const worker = async () => {
    while (performance.now() < end) {
      await op(calls);
      calls++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = (performance.now() - started) / 1000;
  return (calls * weight) / elapsed;
}

async function preload(db) {
  for (let start = 0; start < KEYS; start += BATCH) {
    await db.batchPut(Array.from({ length: BATCH }, (_, i) => ({ namespace: "bench", key: `k${start + i}`, value: value(start + i) })));
  }
}

/** The cases, the same for both modes. */
async function cases(db) {
  await preload(db);
  const rows = {};
  rows["put, 1 in flight (ops/s)"] = await measure(1, (i) => db.put("bench", randomKey(), value(i)));
  rows[`put, ${CONCURRENCY} in flight (ops/s)`] = await measure(CONCURRENCY, (i) => db.put("bench", randomKey(), value(i)));
  rows["get, 1 in flight (ops/s)"] = await measure(1, () => db.get("bench", randomKey()));
  rows[`get, ${CONCURRENCY} in flight (ops/s)`] = await measure(CONCURRENCY, () => db.get("bench", randomKey()));
  rows[`batchPut of ${BATCH}, 1 in flight (values/s)`] = await measure(
    1,
    (i) => db.batchPut(Array.from({ length: BATCH }, (_, j) => ({ namespace: "bench", key: randomKey(), value: value(i + j) }))),
    BATCH,
  );
  rows[`batchGet of ${BATCH}, 1 in flight (values/s)`] = await measure(
    1,
    () => db.batchGet(Array.from({ length: BATCH }, () => ({ namespace: "bench", key: randomKey() }))),
    BATCH,
  );
  return rows;
}

async function startServer(dir) {
  const bin = process.env.KORU_DATAPLANE_BIN;
  if (!bin) throw new Error("give --url, or KORU_DATAPLANE_BIN to start a server");
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("KORU_")));
  const child = spawn(bin, ["--data-dir", join(dir, "server"), "--listen", "127.0.0.1:0"], {
    env: { ...env, KORU_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`koru-dataplane exited (${code})`)));
  });
  return { url, child };
}

const dir = mkdtempSync(join(tmpdir(), "koru-delta-bench-"));
const results = {};
try {
  const embedded = await KoruDelta.startWithPath(join(dir, "embedded"));
  results.embedded = await cases(embedded);
  await embedded.close();
  let server;
  const url = opts.url ?? (server = await startServer(dir)).url;
  try {
    results.client = await cases(KoruDelta.connect(url));
  } finally {
    server?.child.kill("SIGTERM");
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const [mode, rows] of Object.entries(results)) {
  console.log(`\n${mode}`);
  for (const [name, rate] of Object.entries(rows)) console.log(`  ${name.padEnd(44)} ${Math.round(rate).toLocaleString("en-US").padStart(12)}`);
}
if (opts.json) writeFileSync(opts.json, `${JSON.stringify({ seconds, valueBytes: Number(opts["value-bytes"]), results }, null, 2)}\n`);
