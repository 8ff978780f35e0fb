// Every bindings/conformance/*.json scenario, in both modes: embedded (a fresh temp directory per
// file) and client (a fresh `koru-dataplane` child per file).
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";

import { KoruDelta } from "koru-delta";

import { runScenario } from "./conformance-runner.js";
import { dataplaneBin, scenarios, startServer, tempDir } from "./helpers.mjs";

const all = scenarios();
test("the conformance vectors are there", () => assert.ok(all.length >= 8, `only ${all.length} vectors`));

for (const [file, scenario] of all) {
  test(`embedded: ${file}`, async (t) => {
    const db = await KoruDelta.startWithPath(join(tempDir(t), "data"));
    try {
      assert.equal(await runScenario(db, scenario), scenario.steps.length);
    } finally {
      await db.close();
    }
  });

  test(`client: ${file}`, { skip: dataplaneBin() ? false : "koru-dataplane is not built" }, async (t) => {
    const server = await startServer(t);
    const db = KoruDelta.connect(server.url);
    assert.equal(await runScenario(db, scenario), scenario.steps.length);
    await db.close();
  });
}
