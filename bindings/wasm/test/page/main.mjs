// The browser side of the WASM test: loads the generated package, runs every conformance vector,
// the roadmap's TypeScript snippet and a small throughput figure, and leaves the results on
// `window.__results` for the driver (test/run.cjs) to read.
import init, { KoruDelta } from "/pkg/koru_delta_wasm.js";
import { runVector } from "./conformance.mjs";

async function roadmapSnippet() {
  // ROADMAP.md 4.2, as written (the import is the generated package's).
  const db = await KoruDelta.startWithPath("./data");
  await db.put("users", "alice", { name: "Alice", age: 30 });
  const user = await db.get("users", "alice");
  console.log(user.value());
  const value = user.value();
  db.close();
  // A restart on the same path finds the write (the memory volume outlives the handle).
  const again = await KoruDelta.startWithPath("./data");
  const after = again.get("users", "alice").value();
  again.close();
  KoruDelta.destroy("./data");
  return { value, after };
}

function throughput() {
  const db = KoruDelta.open("bench");
  const n = 20000;
  let t = performance.now();
  for (let i = 0; i < n; i++) db.put("bench", `k${i}`, { i, name: "value" });
  const puts = n / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let i = 0; i < n; i++) db.get("bench", `k${i}`).value();
  const gets = n / ((performance.now() - t) / 1000);
  db.close();
  KoruDelta.destroy("bench");
  return { n, puts_per_sec: Math.round(puts), gets_per_sec: Math.round(gets) };
}

async function main() {
  const results = { vectors: [], errors: [] };
  try {
    await init();
    const names = await (await fetch("/conformance/index.json")).json();
    for (const [i, name] of names.entries()) {
      const vector = await (await fetch(`/conformance/${name}`)).json();
      results.vectors.push({ file: name, ...runVector(KoruDelta, vector, `vector-${i}`) });
    }
    results.roadmap = await roadmapSnippet();
    try {
      const db = KoruDelta.open("err");
      db.get("users", "nobody");
      results.errors.push("get of a missing key did not fail");
    } catch (e) {
      results.notFound = { code: e.code, isError: e instanceof Error };
    }
    results.bench = throughput();
  } catch (e) {
    results.errors.push(`${e && e.code ? e.code + ": " : ""}${e && e.stack ? e.stack : e}`);
  }
  window.__results = results;
}

main();
