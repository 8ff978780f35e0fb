// The browser client in a real headless Chromium (Debian's, driven by playwright-core as the
// dashboard's tests do): a page served from a local static server on one port imports
// `koru-delta/client` (dist/esm/client, unbundled ES modules) and runs every conformance vector
// against a real `koru-dataplane` on another port started with --cors-allow-origin for the
// page's origin. A server without the flag is refused by the browser (no CORS), which shows
// the page really is cross-origin.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { after, before, test } from "node:test";

import { dataplaneBin, packageRoot, scenarios, startServer, tempDir, token, vectorsDir } from "./helpers.mjs";

const chromiumPath = process.env.KORU_CHROMIUM ?? "/usr/bin/chromium";
let skip = false;
if (!existsSync(chromiumPath)) skip = `no chromium at ${chromiumPath}`;
else if (!dataplaneBin()) skip = "koru-dataplane is not built";
if (skip && process.env.CI === "true") throw new Error(`browser test cannot run under CI: ${skip}`);

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>koru-delta browser client</title>
<script type="module">
  import { connect, KoruDeltaError } from "/dist/esm/client/index.js";
  import { runScenario } from "/test/conformance-runner.js";
  window.runVector = async (url, file) => {
    const scenario = await (await fetch("/vectors/" + file)).json();
    return runScenario(connect(url), scenario);
  };
  window.tryGet = async (url) => {
    try {
      await connect(url, { retry: { attempts: 1 } }).get("users", "alice");
      return "answered";
    } catch (e) {
      return (e instanceof KoruDeltaError ? "" : "not a KoruDeltaError: ") + e.code;
    }
  };
  window.withToken = async (url, options) => {
    const db = connect(url, options);
    await db.put("users", "alice", { from: "browser" });
    return (await db.get("users", "alice")).value();
  };
  window.ready = true;
</script>`;

const TYPES = { ".js": "text/javascript", ".json": "application/json", ".map": "application/json" };

/** Serves the page, dist/, the runner and the vectors (nothing else) on a free port. */
function staticServer() {
  const roots = { "/dist/": join(packageRoot, "dist"), "/vectors/": vectorsDir };
  return createServer((request, response) => {
    const path = new URL(request.url, "http://x").pathname;
    let file;
    if (path === "/") {
      response.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      return;
    }
    if (path === "/test/conformance-runner.js") file = join(packageRoot, "test", "conformance-runner.js");
    for (const [prefix, root] of Object.entries(roots)) {
      if (path.startsWith(prefix)) {
        const candidate = normalize(join(root, path.slice(prefix.length)));
        if (candidate.startsWith(root)) file = candidate;
      }
    }
    if (!file || !existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    response.end(readFileSync(file));
  });
}

let browser;
let page;
let site;
let origin;
const consoleLines = [];

before(async () => {
  if (skip) return;
  site = staticServer();
  await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${site.address().port}`;
  const { chromium } = await import("playwright-core");
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // As root (CI) Chromium's sandbox cannot start; the page is our own. Nothing but loopback:
    // no background fetches, updates or field trials.
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-default-apps",
      "--disable-sync",
      "--disable-domain-reliability",
      "--no-first-run",
      "--metrics-recording-only",
      "--disable-field-trial-config",
    ],
  });
  page = await browser.newPage();
  page.on("console", (m) => consoleLines.push(m.text()));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30_000 });
});

after(async () => {
  await browser?.close();
  if (site) await new Promise((resolve) => site.close(resolve));
});

for (const [file, scenario] of scenarios()) {
  test(`browser: ${file}`, { skip }, async (t) => {
    const server = await startServer(t, ["--cors-allow-origin", origin]);
    const steps = await page.evaluate(([url, f]) => window.runVector(url, f), [server.url, file]).catch((e) => {
      throw new Error(`${e.message}\npage console:\n${consoleLines.join("\n")}`);
    });
    assert.equal(steps, scenario.steps.length);
  });
}

test("browser: a server without --cors-allow-origin is out of the page's reach", { skip }, async (t) => {
  const closed = await startServer(t);
  assert.equal(await page.evaluate((url) => window.tryGet(url), closed.url), "network_error");
  const open = await startServer(t, ["--cors-allow-origin", origin]);
  assert.equal(await page.evaluate((url) => window.tryGet(url), open.url), "not_found");
});

test("browser: tokens cross the preflight, as Bearer and as Basic from the URL", { skip }, async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const keyFile = join(tempDir(t), "public.pem");
  writeFileSync(keyFile, publicKey.export({ type: "spki", format: "pem" }));
  const server = await startServer(t, ["--auth-public-key", keyFile, "--cluster-id", "c-1", "--cors-allow-origin", origin]);
  const bearer = await page.evaluate(([url, tok]) => window.withToken(url, { token: tok }), [server.url, token(privateKey)]);
  assert.deepEqual(bearer, { from: "browser" });
  const inUrl = new URL(server.url);
  inUrl.username = "token";
  inUrl.password = token(privateKey);
  assert.deepEqual(await page.evaluate((url) => window.withToken(url, {}), inUrl.toString()), { from: "browser" });
  assert.equal(await page.evaluate((url) => window.tryGet(url), server.url), "unauthorized");
});
