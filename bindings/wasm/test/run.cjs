// Drives the WASM test: serves the generated package, the conformance vectors and test/page from
// a local static server, loads the page in headless Chromium (playwright-core on Debian's
// chromium, as the dashboard's browser tests do) and checks what it reports.
//
// Usage: node run.cjs <pkg dir> <conformance dir>
// Env:   KORU_CHROMIUM  the chromium binary (default /usr/bin/chromium)
//        NODE_PATH      where playwright-core is installed (scripts/browser-test-deps.sh)

const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { chromium } = require("playwright-core");

const [pkgDir, conformanceDir] = process.argv.slice(2);
const pageDir = path.join(__dirname, "page");
const executablePath = process.env.KORU_CHROMIUM || "/usr/bin/chromium";
const TYPES = { ".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

function serve() {
  const vectors = fs.readdirSync(conformanceDir).filter((f) => f.endsWith(".json")).sort();
  const roots = { "/pkg/": pkgDir, "/conformance/": conformanceDir, "/": pageDir };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost").pathname;
    if (url === "/conformance/index.json") {
      res.writeHead(200, { "content-type": TYPES[".json"] });
      return res.end(JSON.stringify(vectors));
    }
    const prefix = Object.keys(roots).find((p) => url.startsWith(p));
    const rel = (url === "/" ? "index.html" : url.slice(prefix.length));
    const file = path.join(roots[prefix], rel);
    if (rel.includes("..") || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, vectors })));
}

async function main() {
  const { server, vectors } = await serve();
  const base = `http://127.0.0.1:${server.address().port}/`;
  const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const logs = [];
    page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(base);
    await page.waitForFunction(() => window.__results !== undefined, null, { timeout: 120_000 });
    const results = await page.evaluate(() => window.__results);
    let failed = results.errors.length > 0;
    for (const e of results.errors) console.error(`ERROR ${e}`);
    assert.equal(results.vectors.length, vectors.length, "every vector file ran");
    for (const v of results.vectors) {
      console.log(`${v.failures.length ? "FAIL" : "ok  "} ${v.file} (${v.steps} steps)`);
      for (const f of v.failures) console.log(`     ${f}`);
      failed ||= v.failures.length > 0;
    }
    console.log(`roadmap snippet: ${JSON.stringify(results.roadmap)}`);
    assert.deepEqual(results.roadmap, { value: { name: "Alice", age: 30 }, after: { name: "Alice", age: 30 } });
    assert.ok(logs.some((l) => l.includes("Alice")), `console.log(user.value()) printed: ${logs.join("\n")}`);
    assert.deepEqual(results.notFound, { code: "not_found", isError: true });
    console.log(`browser throughput (${results.bench.n} ops): ${results.bench.puts_per_sec} puts/s, ${results.bench.gets_per_sec} gets/s`);
    if (failed) {
      console.error(logs.join("\n"));
      process.exitCode = 1;
    }
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
