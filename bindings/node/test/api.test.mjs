// The API in both modes: answers, timestamps, compare-and-set, errors with the same codes,
// close, the event loop staying free in embedded mode, and client mode's auth forms and retries.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";

import { KoruDelta, KoruDeltaError, Versioned, connect } from "koru-delta";

import { dataplaneBin, startServer, tempDir, token } from "./helpers.mjs";

const noServer = dataplaneBin() ? false : "koru-dataplane is not built";

/** Runs `body` once per mode, each on a fresh database. */
function bothModes(name, body) {
  test(`embedded: ${name}`, async (t) => {
    const db = await KoruDelta.startWithPath(join(tempDir(t), "data"));
    t.after(() => db.close());
    await body(db, "embedded");
  });
  test(`client: ${name}`, { skip: noServer }, async (t) => {
    const server = await startServer(t);
    await body(KoruDelta.connect(server.url), "client");
  });
}

/** Awaits `promise` and returns the KoruDeltaError it must reject with. */
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof KoruDeltaError, `not a KoruDeltaError: ${e}`);
    return e;
  }
  assert.fail("the call succeeded");
}

bothModes("put, get and the roadmap's value()", async (db, mode) => {
  const w = await db.put("users", "alice", { name: "Alice", age: 30 });
  assert.equal(w.previousVersion, null);
  assert.match(w.timestampText, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.ok(w.timestamp instanceof Date);
  assert.equal(w.timestamp.getTime(), Date.parse(w.timestampText));
  const user = await db.get("users", "alice");
  assert.ok(user instanceof Versioned);
  assert.deepEqual(user.value(), { name: "Alice", age: 30 });
  assert.equal(user.versionId, w.versionId);
  assert.equal(user.timestampText, w.timestampText);
  assert.equal(user.previousVersion, null);
  assert.equal(user.deleted, false);

  const w2 = await db.put("users", "alice", { name: "Alice", age: 31 });
  assert.equal(w2.previousVersion, w.versionId);
  assert.deepEqual((await db.getAt("users", "alice", w.timestampText)).value(), { name: "Alice", age: 30 });
  assert.deepEqual((await db.getAt("users", "alice", new Date(Date.now() + 60_000))).value().age, 31);
  // Values keep every JSON shape, and unicode, in both modes.
  const odd = { s: "ünïcödé \"q\" \u2028", n: -0.5, big: 12345678901234, a: [null, true, {}] };
  await db.put("users", "odd key/with slash", odd);
  assert.deepEqual((await db.get("users", "odd key/with slash")).value(), odd);
  assert.deepEqual(JSON.parse(JSON.stringify(user)).value, { name: "Alice", age: 30 }, mode);
});

bothModes("history, keys, batches, changes and namespaces", async (db) => {
  const b = await db.batchPut([
    { namespace: "m", key: "cpu", value: 1 },
    { namespace: "m", key: "mem", value: 2 },
  ]);
  assert.equal(b.results.length, 2);
  assert.equal(b.results[1].key, "mem");
  await db.put("m", "cpu", 3);
  await db.delete("m", "mem");
  const h = await db.history("m", "cpu", { limit: 1 });
  assert.deepEqual(h.versions.map((v) => v.value()), [1]);
  const rest = await db.history("m", "cpu", { cursor: h.nextCursor });
  assert.deepEqual(rest.versions.map((v) => v.value()), [3]);
  assert.equal(rest.nextCursor, null);
  const mem = await db.history("m", "mem");
  assert.deepEqual(mem.versions.map((v) => v.deleted), [false, true]);
  assert.deepEqual(await db.keys("m"), { keys: ["cpu"], nextCursor: null });
  const found = await db.batchGet([
    { namespace: "m", key: "cpu" },
    { namespace: "m", key: "cpu", at: b.timestampText },
    { namespace: "m", key: "mem" },
  ]);
  assert.deepEqual(found.map((f) => f.found), [true, true, false]);
  assert.deepEqual(found.map((f) => f.entry?.value()), [3, 1, undefined]);
  const feed = await db.changes();
  assert.deepEqual(feed.changes.map((c) => c.ops.map((o) => o.op)), [["put", "put"], ["put"], ["delete"]]);
  assert.equal(feed.nextSince, feed.lastLsn);
  assert.deepEqual((await db.changes({ since: feed.lastLsn })).changes, []);
  assert.deepEqual(await db.namespaces(), ["m"]);
  const q = await db.query("m", { filter: { field: "", op: "exists" } });
  assert.equal(typeof q.total, "number");
});

bothModes("compare-and-set with ifMatch", async (db) => {
  const w1 = await db.put("acct", "x", { balance: 10 });
  const w2 = await db.put("acct", "x", { balance: 20 }, { ifMatch: w1.versionId });
  const lost = await refusal(db.put("acct", "x", { balance: 99 }, { ifMatch: w1.versionId }));
  assert.equal(lost.code, "version_mismatch");
  assert.deepEqual((await db.get("acct", "x")).value(), { balance: 20 });
  await db.delete("acct", "x", { ifMatch: w2.versionId });
});

bothModes("errors carry the same codes", async (db, mode) => {
  const cases = [
    [() => db.get("users", "nobody"), "not_found", 404],
    [() => db.put("bad name!", "k", 1), "invalid_name", 400],
    [() => db.getAt("users", "k", "yesterday"), "bad_request", 400],
    [() => db.history("users", "k", { cursor: "garbage" }), "bad_request", 400],
    [() => db.keys("users", { limit: 0 }), "bad_request", 400],
    [() => db.changes({ limit: 0 }), "bad_request", 400],
    [() => db.batchPut([]), "bad_request", 400],
    [() => db.batchPut([{ namespace: "a", key: "b" }]), "bad_request", 400],
    [() => db.query("users", { filter: { field: "a", op: "nope", value: 1 } }), "bad_request", 400],
    [() => db.put("users", "k", undefined), "malformed_json", undefined],
    [() => db.put("users", "k", 1n), "malformed_json", undefined],
    [() => db.delete("users", "never"), "not_found", 404],
  ];
  for (const [call, code, status] of cases) {
    const e = await refusal(call());
    assert.equal(e.code, code, `${mode}: ${e.message}`);
    assert.equal(e.name, "KoruDeltaError");
    assert.ok(e.message.length > 0);
    assert.equal(e.status, mode === "client" ? status : undefined, `${mode} ${code}`);
  }
});

bothModes("close: later calls fail with shutting_down", async (db) => {
  await db.put("a", "b", 1);
  await db.close();
  assert.equal((await refusal(db.get("a", "b"))).code, "shutting_down");
  assert.equal((await refusal(db.put("a", "b", 2))).code, "shutting_down");
  await db.close();
});

test("embedded: calls run off the event loop, and the data outlives a reopen", async (t) => {
  const dir = join(tempDir(t), "data");
  const db = await KoruDelta.startWithPath(dir);
  const writes = Array.from({ length: 10_000 }, (_, i) => ({ namespace: "n", key: `k${i}`, value: { i, pad: "x".repeat(100) } }));
  await db.batchPut(writes);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const started = performance.now();
  // Many concurrent reads and a full scan: the timer must keep firing while they run.
  const reads = Array.from({ length: 2000 }, (_, i) => db.get("n", `k${i}`));
  const answer = await db.query("n", { filter: { field: "i", op: "gte", value: 0 }, limit: 1 });
  await Promise.all(reads);
  const elapsed = performance.now() - started;
  clearInterval(timer);
  assert.equal(answer.total, 10_000);
  assert.ok(ticks > 0, `the event loop never ran in ${elapsed.toFixed(0)} ms`);
  await db.close();
  const again = await KoruDelta.startWithPath(dir);
  assert.equal((await again.get("n", "k9999")).value().i, 9999);
  await again.close();
});

test("embedded: a directory already open is refused with a code", async (t) => {
  const dir = join(tempDir(t), "data");
  const db = await KoruDelta.startWithPath(dir);
  t.after(() => db.close());
  const e = await refusal(KoruDelta.startWithPath(dir));
  assert.equal(typeof e.code, "string");
});

test("CommonJS: require('koru-delta') gives the same API", async (t) => {
  const require = createRequire(import.meta.url);
  const cjs = require("koru-delta");
  assert.equal(typeof cjs.KoruDelta.startWithPath, "function");
  const db = await cjs.KoruDelta.startWithPath(join(tempDir(t), "data"));
  await db.put("a", "b", [1]);
  assert.deepEqual((await db.get("a", "b")).value(), [1]);
  const e = await db.get("a", "zz").catch((x) => x);
  assert.ok(e instanceof cjs.KoruDeltaError);
  assert.equal(e.code, "not_found");
  await db.close();
  assert.equal(typeof require("koru-delta/client").connect, "function");
});

test("client: Bearer token, a token in the URL as Basic, and none", { skip: noServer }, async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const keyFile = join(tempDir(t), "public.pem");
  writeFileSync(keyFile, publicKey.export({ type: "spki", format: "pem" }));
  const server = await startServer(t, ["--auth-public-key", keyFile, "--cluster-id", "c-1"]);
  const bearer = KoruDelta.connect(server.url, { token: token(privateKey) });
  await bearer.put("users", "alice", { age: 30 });
  const url = new URL(server.url);
  url.username = "token";
  url.password = token(privateKey);
  const basic = connect(url.toString());
  assert.deepEqual((await basic.get("users", "alice")).value(), { age: 30 });
  const anonymous = await refusal(KoruDelta.connect(server.url).get("users", "alice"));
  assert.equal(anonymous.code, "unauthorized");
  assert.equal(anonymous.status, 401);
  const reader = KoruDelta.connect(server.url, { token: token(privateKey, "read") });
  assert.equal((await refusal(reader.put("users", "bob", 1))).code, "forbidden");
});

/** A fake server: answers each request with the next of `replies` ([status, headers, body]). */
async function fakeServer(t, replies) {
  const seen = [];
  const server = createServer((request, response) => {
    seen.push({ method: request.method, url: request.url, at: performance.now(), headers: request.headers });
    const [status, headers, body] = replies[Math.min(seen.length - 1, replies.length - 1)];
    response.writeHead(status, { "content-type": "application/json", ...headers });
    response.end(JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${server.address().port}`, seen };
}

const noLeader = [503, { "retry-after": "1" }, { error: { code: "no_leader", message: "electing" } }];
const entry = { value: { ok: true }, version_id: "7.0", timestamp: "2026-01-02T03:04:05.123456Z", previous_version: null };

test("client: 503 no_leader is retried after Retry-After, then answers", async (t) => {
  const fake = await fakeServer(t, [noLeader, [503, {}, { error: { code: "shutting_down", message: "bye" } }], [200, {}, entry]]);
  const db = KoruDelta.connect(fake.url, { retry: { baseDelayMs: 10 } });
  const got = await db.get("users", "alice");
  assert.deepEqual(got.value(), { ok: true });
  assert.equal(got.timestampText, "2026-01-02T03:04:05.123456Z");
  assert.equal(fake.seen.length, 3);
  assert.ok(fake.seen[1].at - fake.seen[0].at >= 950, "Retry-After: 1 was not honoured");
  assert.equal(fake.seen[2].url, "/api/v1/users/alice");
});

test("client: retries are bounded in count and wait, and other errors are not retried", async (t) => {
  const fake = await fakeServer(t, [[503, { "retry-after": "3600" }, { error: { code: "no_leader", message: "electing" } }]]);
  const db = KoruDelta.connect(fake.url, { retry: { attempts: 3, maxDelayMs: 20 } });
  const started = performance.now();
  const e = await refusal(db.put("users", "alice", 1, { ifMatch: "3.0" }));
  assert.equal(e.code, "no_leader");
  assert.equal(e.status, 503);
  assert.equal(e.retryAfter, 3600);
  assert.equal(fake.seen.length, 3);
  assert.ok(performance.now() - started < 2000);
  assert.equal(fake.seen[0].headers["if-match"], "3.0");
  assert.equal(fake.seen[0].headers["content-type"], "application/json");

  const other = await fakeServer(t, [[429, { "retry-after": "1" }, { error: { code: "rate_limited", message: "slow down" } }]]);
  const limited = await refusal(KoruDelta.connect(other.url).get("a", "b"));
  assert.equal(limited.code, "rate_limited");
  assert.equal(other.seen.length, 1);

  const proxy = await fakeServer(t, [[502, {}, "<html>bad gateway</html>"]]);
  assert.equal((await refusal(KoruDelta.connect(proxy.url).get("a", "b"))).code, "http_502");
  const down = await refusal(KoruDelta.connect("http://127.0.0.1:1").get("a", "b"));
  assert.equal(down.code, "network_error");
});
