// The `nodejs` package of the WASM build: the roadmap's snippet and an error's code, in Node.
// Usage: node node-smoke.cjs <pkg dir>/nodejs
const assert = require("node:assert/strict");
const path = require("node:path");
const { KoruDelta } = require(path.resolve(process.argv[2], "koru_delta_wasm.js"));

(async () => {
  const db = await KoruDelta.startWithPath("./data");
  await db.put("users", "alice", { name: "Alice", age: 30 });
  const user = await db.get("users", "alice");
  assert.deepEqual(user.value(), { name: "Alice", age: 30 });
  assert.throws(() => db.get("users", "nobody"), (e) => e instanceof Error && e.code === "not_found");
  db.close();
  console.log("ok   nodejs package: roadmap snippet and error codes");
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
