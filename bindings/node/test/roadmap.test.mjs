// The roadmap's TypeScript snippet (ROADMAP.md, Phase 4, section 4.2), exactly as written,
// compiled by tsc as an ES module (top-level await) in a fresh directory where 'koru-delta'
// resolves to this package, then run with node: it prints Alice's value.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { packageRoot, tempDir } from "./helpers.mjs";

const SNIPPET = `import { KoruDelta } from 'koru-delta';

const db = await KoruDelta.startWithPath('./data');
await db.put('users', 'alice', { name: 'Alice', age: 30 });
const user = await db.get('users', 'alice');
console.log(user.value());
`;

test("the roadmap's TypeScript snippet runs verbatim", (t) => {
  const dir = tempDir(t, "koru-delta-roadmap-");
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "roadmap-snippet", type: "module", private: true }));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        outDir: "out",
        types: [],
      },
      files: ["snippet.ts"],
    }),
  );
  writeFileSync(join(dir, "snippet.ts"), SNIPPET);
  // As `npm install <path>` would link it: node_modules/koru-delta is the package.
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(packageRoot, join(dir, "node_modules", "koru-delta"), "dir");
  const tsc = join(packageRoot, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", "."], { cwd: dir, stdio: "pipe" });
  const out = execFileSync(process.execPath, ["out/snippet.js"], { cwd: dir, encoding: "utf8" });
  assert.equal(out, "{ name: 'Alice', age: 30 }\n");
  // './data' is the snippet's own: a second run reads the same database and writes a version.
  execFileSync(process.execPath, ["out/snippet.js"], { cwd: dir, encoding: "utf8" });
  const history = execFileSync(
    process.execPath,
    ["--input-type=module", "-e", "import { KoruDelta } from 'koru-delta'; const db = await KoruDelta.startWithPath('./data'); console.log((await db.history('users', 'alice')).versions.length);"],
    { cwd: dir, encoding: "utf8" },
  );
  assert.equal(history.trim(), "2");
});
