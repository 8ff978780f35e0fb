// Runs the language-neutral vectors (bindings/conformance/*.json, format in its README) against
// the WASM build: each file on a fresh database (a new memory volume), each op through the
// binding's own method, its answer turned into the canonical JSON and matched against `expect`.

/** Calls the binding's method for one step and returns the canonical result. */
function call(db, step) {
  switch (step.op) {
    case "put":
      return db.put(step.namespace, step.key, step.value, step.if_match);
    case "delete":
      return db.delete(step.namespace, step.key, step.if_match);
    case "get":
      return db.get(step.namespace, step.key).toJSON();
    case "get_at":
      return db.getAt(step.namespace, step.key, step.at).toJSON();
    case "history":
      return db.history(step.namespace, step.key, step.cursor, step.limit);
    case "query":
      return db.query(step.namespace, step.query);
    case "batch_put":
      return db.batchPut(step.writes);
    case "batch_get":
      return db.batchGet(step.keys);
    case "keys":
      return db.keys(step.namespace, step.prefix, step.cursor, step.limit);
    case "changes":
      return db.changes(step.since, step.limit);
    case "namespaces":
      return { namespaces: db.namespaces() };
    default:
      throw new Error(`unknown op ${step.op}`);
  }
}

/** Replaces "$name.field.sub" strings with saved fields (whole strings keep the field's type). */
function substitute(value, saved) {
  if (typeof value === "string" && value.startsWith("$") && value !== "$any") {
    const [name, ...path] = value.slice(1).split(".");
    if (!(name in saved)) throw new Error(`nothing saved as ${name}`);
    let v = saved[name];
    for (const p of path) v = v == null ? undefined : v[p];
    return v;
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, saved));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, saved)]));
  }
  return value;
}

/** Why `actual` does not contain `expected` (README "expect"), or null when it does. */
function mismatch(expected, actual, at = "") {
  if (expected === "$any") return null;
  if (expected === null) return actual === null || actual === undefined ? null : `${at}: expected null, got ${JSON.stringify(actual)}`;
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      return `${at}: expected ${expected.length} elements, got ${JSON.stringify(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const m = mismatch(expected[i], actual[i], `${at}[${i}]`);
      if (m) return m;
    }
    return null;
  }
  if (typeof expected === "object") {
    if (!actual || typeof actual !== "object") return `${at}: expected an object, got ${JSON.stringify(actual)}`;
    for (const [k, v] of Object.entries(expected)) {
      const m = mismatch(v, actual[k], `${at}.${k}`);
      if (m) return m;
    }
    return null;
  }
  return expected === actual ? null : `${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

/** Runs one vector file on a fresh database; returns {name, steps, failures}. */
export function runVector(KoruDelta, vector, dbName) {
  const failures = [];
  const saved = {};
  const db = KoruDelta.open(dbName);
  try {
    vector.steps.forEach((raw, i) => {
      let step;
      try {
        step = substitute(raw, saved);
      } catch (e) {
        failures.push(`step ${i} (${raw.op}): ${e.message}`);
        return;
      }
      let result;
      try {
        result = call(db, step);
      } catch (e) {
        if (raw.expect_error) {
          if (e.code !== raw.expect_error) failures.push(`step ${i} (${raw.op}): expected error ${raw.expect_error}, got ${e.code}: ${e.message}`);
        } else {
          failures.push(`step ${i} (${raw.op}): failed with ${e.code}: ${e.message}`);
        }
        return;
      }
      if (raw.expect_error) {
        failures.push(`step ${i} (${raw.op}): expected error ${raw.expect_error}, got ${JSON.stringify(result)}`);
        return;
      }
      if (raw.save) saved[raw.save] = result;
      if (step.expect !== undefined) {
        const m = mismatch(step.expect, result);
        if (m) failures.push(`step ${i} (${raw.op}): ${m}`);
      }
    });
  } finally {
    db.close();
    KoruDelta.destroy(dbName);
  }
  return { name: vector.name, steps: vector.steps.length, failures };
}
