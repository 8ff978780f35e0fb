// Runs one scenario of bindings/conformance (format: bindings/conformance/README.md) against a
// koru-delta database object: embedded or client in Node, or the browser client in a page. Plain
// ESM with no imports, so the browser test serves this very file to Chromium.

/** Calls the binding's own method for `op` and returns the canonical result. */
async function call(db, op, a) {
  const page = (o) => {
    const out = {};
    for (const [name, value] of Object.entries(o)) if (value !== undefined) out[name] = value;
    return out;
  };
  const written = (w) => ({ version_id: w.versionId, timestamp: w.timestampText, previous_version: w.previousVersion });
  const entry = (e) => ({
    value: e.value(),
    version_id: e.versionId,
    timestamp: e.timestampText,
    previous_version: e.previousVersion,
    ...(e.deleted ? { deleted: true } : {}),
  });
  switch (op) {
    case "put":
      return written(await db.put(a.namespace, a.key, a.value, page({ ifMatch: a.if_match })));
    case "delete":
      return written(await db.delete(a.namespace, a.key, page({ ifMatch: a.if_match })));
    case "get":
      return entry(await db.get(a.namespace, a.key));
    case "get_at":
      return entry(await db.getAt(a.namespace, a.key, a.at));
    case "history": {
      const h = await db.history(a.namespace, a.key, page({ cursor: a.cursor, limit: a.limit }));
      return { versions: h.versions.map(entry), next_cursor: h.nextCursor };
    }
    case "query":
      return db.query(a.namespace, a.query);
    case "batch_put": {
      const b = await db.batchPut(a.writes);
      return {
        lsn: b.lsn,
        timestamp: b.timestampText,
        results: b.results.map((r) => ({
          namespace: r.namespace,
          key: r.key,
          version_id: r.versionId,
          previous_version: r.previousVersion,
        })),
      };
    }
    case "batch_get": {
      const found = await db.batchGet(a.keys);
      return {
        results: found.map((f) => ({
          namespace: f.namespace,
          key: f.key,
          found: f.found,
          ...(f.entry ? entry(f.entry) : {}),
        })),
      };
    }
    case "keys": {
      const k = await db.keys(a.namespace, page({ prefix: a.prefix, cursor: a.cursor, limit: a.limit }));
      return { keys: k.keys, next_cursor: k.nextCursor };
    }
    case "changes": {
      const c = await db.changes(page({ since: a.since, limit: a.limit }));
      return {
        changes: c.changes.map((r) => ({
          lsn: r.lsn,
          timestamp: r.timestampText,
          ops: r.ops.map((o) => ({
            op: o.op,
            namespace: o.namespace,
            key: o.key,
            version_id: o.versionId,
            ...(o.value !== undefined ? { value: o.value } : {}),
          })),
        })),
        next_since: c.nextSince,
        last_lsn: c.lastLsn,
      };
    }
    case "namespaces":
      return { namespaces: await db.namespaces() };
    default:
      throw new Error(`unknown op ${op}`);
  }
}

/** Replaces every "$name.field..." string by that field of a saved result ("$any" stays). */
function substitute(value, saved, where) {
  if (typeof value === "string" && value.startsWith("$") && value !== "$any") {
    const [name, ...fields] = value.slice(1).split(".");
    if (!(name in saved)) throw new Error(`${where}: ${value} names no saved result`);
    let out = saved[name];
    for (const field of fields) {
      if (out === null || typeof out !== "object" || !(field in out)) {
        throw new Error(`${where}: ${value}: no field ${field}`);
      }
      out = out[field];
    }
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, saved, where));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, saved, where)]));
  }
  return value;
}

/** Subset matching: throws naming the first path where `actual` does not contain `expected`. */
function match(actual, expected, where, path) {
  const fail = () => {
    throw new Error(`${where}: at ${path || "the result"} expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  };
  if (expected === "$any") return;
  if (expected === null) {
    if (actual !== null && actual !== undefined) fail();
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) fail();
    expected.forEach((e, i) => match(actual[i], e, where, `${path}[${i}]`));
    return;
  }
  if (typeof expected === "object") {
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) fail();
    for (const [k, e] of Object.entries(expected)) match(actual[k], e, where, path ? `${path}.${k}` : k);
    return;
  }
  if (actual !== expected) fail();
}

/** Runs every step of `scenario` on `db`; throws at the first step that does not conform. */
export async function runScenario(db, scenario) {
  const saved = {};
  const control = new Set(["op", "save", "expect", "expect_error"]);
  for (const [i, step] of scenario.steps.entries()) {
    const where = `${scenario.name} step ${i} (${step.op})`;
    const args = substitute(
      Object.fromEntries(Object.entries(step).filter(([k]) => !control.has(k))),
      saved,
      where,
    );
    let result;
    let error;
    try {
      result = await call(db, step.op, args);
    } catch (e) {
      error = e;
    }
    if (step.expect_error !== undefined) {
      if (error === undefined) throw new Error(`${where}: expected error ${step.expect_error}, got ${JSON.stringify(result)}`);
      if (error.code !== step.expect_error) {
        throw new Error(`${where}: expected error ${step.expect_error}, got ${error.code}: ${error.message}`);
      }
      continue;
    }
    if (error !== undefined) throw new Error(`${where}: failed with ${error.code}: ${error.message}`);
    if (step.expect !== undefined) match(result, substitute(step.expect, saved, where), where, "");
    if (step.save !== undefined) saved[step.save] = result;
  }
  return scenario.steps.length;
}
