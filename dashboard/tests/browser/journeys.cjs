// The dashboard's journeys in a real headless Chromium, driven by playwright-core.
// Run by controlplane/tests/dashboard/browser.rs against a real `koru-controlplane dev`:
//   KORU_URL         the control plane, e.g. http://127.0.0.1:40123
//   KORU_CHROMIUM    the chromium binary (Debian's /usr/bin/chromium)
//   KORU_SCREENSHOTS where each page's screenshot goes
//   KORU_JOURNEYS    "local" (default: the journeys above, against `koru-controlplane dev`) or
//                    "kubernetes" (a cluster created with the Kubernetes provisioner runs on real
//                    pods; e2e/tests/journeys/dashboard.rs)
//   KORU_SNIPPET_NETNS  a network namespace to run copied snippets in, where the cluster's DNS
//                    names resolve (the test Kubernetes's `koru-client`)
// Exits non-zero at the first failed step, naming it.
"use strict";

const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const base = process.env.KORU_URL;
const executablePath = process.env.KORU_CHROMIUM || "/usr/bin/chromium";
const shots = process.env.KORU_SCREENSHOTS || path.join(process.cwd(), "dashboard-screenshots");
const password = "correct horse battery";
const started = Date.now();
let shotCount = 0;

function log(step) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${step}`);
}

async function shot(page, name) {
  shotCount += 1;
  const file = path.join(shots, `${String(shotCount).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

/** Runs a copied shell snippet as a user would paste it; returns each output line. */
function runSnippet(snippet) {
  const shell = ["bash", "-euo", "pipefail", "-c", snippet];
  const netns = process.env.KORU_SNIPPET_NETNS;
  const [program, ...args] = netns ? ["ip", "netns", "exec", netns, ...shell] : shell;
  const out = execFileSync(program, args, {
    encoding: "utf8",
    timeout: 20000,
  });
  return out.split("\n").filter((line) => line.trim() !== "");
}

/** The value a `KORU_*=...` line of a snippet exports. */
function exported(snippet, name) {
  const line = snippet.split("\n").find((l) => l.startsWith(`export ${name}=`));
  assert.ok(line, `the snippet exports ${name}`);
  return line.slice(`export ${name}=`.length);
}

async function signUp(page, email, org, tier) {
  await page.goto(`${base}/signup`);
  await page.getByLabel("Work email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Organization name").fill(org);
  await page.locator(`#tier-${tier}`).check();
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(/\/orgs\/[a-z0-9-]+\/clusters$/);
  return new URL(page.url()).pathname.split("/")[2];
}

async function createCluster(page, slug, name) {
  await page.goto(`${base}/orgs/${slug}/clusters`);
  await page.getByRole("link", { name: "New cluster" }).click();
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Create cluster" }).click();
}

/** Waits on a cluster's page until the page (refreshing itself) says Running. */
async function waitRunning(page) {
  await page.locator("#phase", { hasText: "Running" }).waitFor({ timeout: 60000 });
  await page.locator("#snippet").waitFor();
}

/** Issues a data-plane token of `scope` on the cluster's page; returns the copied snippet. */
async function copySnippet(page, scope) {
  if (scope) {
    await page.getByLabel("Scope").selectOption(scope);
    await page.getByRole("button", { name: "Issue token" }).click();
    await page.locator("#token-scope", { hasText: scope }).waitFor();
  }
  await page.locator("[data-copy=snippet]").click();
  await page.locator("#snippet-copied", { hasText: "Copied" }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, await page.locator("#snippet").textContent(), "the clipboard holds the snippet");
  return copied;
}

async function freeJourney(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("dialog", (dialog) => dialog.accept());

  log("free: sign up");
  await page.goto(`${base}/signup`);
  await shot(page, "signup");
  const email = `free-${Date.now()}@example.com`;
  const slug = await signUp(page, email, "Free Journey", "free");
  await page.getByText("No clusters yet").waitFor();
  await page.getByText("Welcome to KoruDelta Cloud").waitFor();
  await shot(page, "clusters-empty");

  log("free: create a cluster");
  await page.getByRole("link", { name: "New cluster" }).first().click();
  await page.locator("#quota-note", { hasText: "1 of 1 cluster left on the free plan" }).waitFor();
  await shot(page, "cluster-new");
  await page.getByLabel("Name", { exact: true }).fill("hello");
  await page.getByRole("button", { name: "Create cluster" }).click();
  await page.waitForURL(`${base}/orgs/${slug}/clusters/hello`);
  await waitRunning(page);
  await shot(page, "cluster-running");

  log("free: copy the connection snippet and use it");
  const snippet = await copySnippet(page, "write");
  const lines = runSnippet(snippet);
  const read = JSON.parse(lines[lines.length - 1]);
  assert.deepEqual(read.value, { name: "Alice" }, `the snippet read back the write: ${lines}`);
  await shot(page, "cluster-connect");

  log("free: the list shows it running");
  await page.getByRole("navigation", { name: "Organization" }).getByRole("link", { name: "Clusters" }).click();
  const row = page.getByRole("row", { name: /hello/ });
  await row.getByText("Running").waitFor();
  await row.getByText(exported(snippet, "KORU_URL")).waitFor();
  await shot(page, "clusters");

  log("free: a second cluster hits the quota");
  await createCluster(page, slug, "second");
  await page
    .locator(".form-error", { hasText: "The free tier allows 1 cluster(s) per organization, and this organization has 1." })
    .waitFor();
  assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "second", "the form keeps its input");
  await shot(page, "cluster-quota");

  log("free: create an API token and revoke it");
  await page.getByRole("link", { name: "API tokens" }).click();
  await page.getByLabel("Name").fill("ci");
  await page.getByLabel("Role").selectOption("member");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = (await page.locator("#token-secret").textContent()).trim();
  assert.match(secret, /^koru_/);
  await page.locator("[data-copy=token-secret]").click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  const api = (token) =>
    fetch(`${base}/api/v1/orgs/${slug}/clusters`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await api(secret)).status, 200, "the new token works");
  await shot(page, "token-created");
  await page.goto(`${base}/orgs/${slug}/tokens`);
  assert.equal(await page.locator("#token-secret").count(), 0, "the secret is shown once");
  await page.getByRole("button", { name: "Revoke ci" }).click();
  await page.getByText("The token is revoked").waitFor();
  await page.getByRole("row", { name: /ci/ }).getByText("revoked").waitFor();
  assert.equal((await api(secret)).status, 401, "the revoked token fails");
  await shot(page, "tokens");

  log("free: log out, a wrong password, log in again");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(`${base}/login`);
  await page.goto(`${base}/orgs/${slug}/clusters`);
  await page.waitForURL(`${base}/login?next=/orgs/${slug}/clusters`);
  await page.getByLabel("Email").fill("nobody@example.com");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("alert").getByText("Wrong email or password.").waitFor();
  await shot(page, "login-error");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(`${base}/orgs/${slug}/clusters`);
  await page.getByRole("row", { name: /hello/ }).getByText("Running").waitFor();
  await context.close();
}

async function restoreJourney(browser) {
  // A phone-sized screen: the same pages must work there too.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  log("pro: sign up and create a cluster");
  const slug = await signUp(page, `pro-${Date.now()}@example.com`, "Pro Journey", "pro");
  await createCluster(page, slug, "orders");
  await page.waitForURL(`${base}/orgs/${slug}/clusters/orders`);
  await waitRunning(page);

  log("pro: write two versions");
  const snippet = await copySnippet(page, "write");
  const lines = runSnippet(snippet);
  const first = JSON.parse(lines[0]);
  assert.ok(first.timestamp, `a PUT answers its commit time: ${lines[0]}`);
  const url = `${exported(snippet, "KORU_URL")}/api/v1/users/alice`;
  const token = exported(snippet, "KORU_TOKEN");
  const put = await fetch(url, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ value: { name: "Alice", version: 2 } }),
  });
  assert.equal(put.status, 200);
  await shot(page, "phone-cluster");

  log("pro: take a backup");
  await page.getByRole("button", { name: "Take a backup now" }).click();
  await page.getByText(/Backup .* taken/).waitFor({ timeout: 60000 });
  await page.locator("#backup-list tbody tr").first().waitFor();
  await page.locator("#window strong").first().waitFor();
  await shot(page, "backups");

  log("pro: restore to a new cluster as of the first version");
  await page.getByLabel("New cluster name").fill("orders-then");
  await page.getByLabel("Restore to time T").fill(first.timestamp);
  await page.getByRole("button", { name: "Restore to a new cluster" }).click();
  await page.waitForURL(`${base}/orgs/${slug}/clusters/orders-then`);
  await waitRunning(page);
  const restored = runSnippet(await copySnippet(page, null));
  const value = JSON.parse(restored[restored.length - 1]).value;
  assert.deepEqual(value, { name: "Alice" }, "the restored cluster holds the first version only");
  await page.getByText("Restored from", { exact: true }).waitFor();
  await shot(page, "restored");

  log("pro: let only two networks reach the restored cluster");
  await page.getByLabel("Allowed networks").fill("203.0.113.0/24\n2001:DB8::/32");
  await page.getByRole("button", { name: "Apply changes" }).click();
  await page.getByText("reachable from 2 networks").waitFor();
  await page.locator("#allowed-cidrs", { hasText: "203.0.113.0/24, 2001:db8::/32" }).waitFor();
  await waitRunning(page);
  await shot(page, "allow-list");

  log("pro: the plan, members and audit pages");
  await page.goto(`${base}/orgs/${slug}/plan`);
  await page.locator("#current-plan", { hasText: "pro" }).waitFor();
  await shot(page, "plan");
  await page.goto(`${base}/orgs/${slug}/members`);
  await page.getByLabel("Email").fill("colleague@example.com");
  await page.getByRole("button", { name: "Invite" }).click();
  await page.locator("#invite-link", { hasText: `${base}/invitations/ki_` }).waitFor();
  await shot(page, "members");
  await page.goto(`${base}/orgs/${slug}/audit`);
  await page.getByRole("button", { name: "Verify the chain" }).click();
  await page.locator("#verification", { hasText: "The chain is intact" }).waitFor();
  await page.locator("#audit-list").getByText("POST /orgs/{org}/clusters/{id}/restore").waitFor();
  await page.locator("#audit-list").getByText("POST /orgs/{org}/clusters/{id}/settings").waitFor();
  await shot(page, "audit");
  await context.close();
}

/** Journey 6 of the real-pods issue: a cluster made on the dashboard runs on Kubernetes. */
async function kubernetesJourney(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  log("kubernetes: sign up and create a cluster");
  const slug = await signUp(page, `kube-${Date.now()}@example.com`, "Kubernetes Journey", "free");
  assert.equal(slug, "kubernetes-journey");
  await createCluster(page, slug, "hello");
  await page.waitForURL(`${base}/orgs/${slug}/clusters/hello`);
  await waitRunning(page);
  await shot(page, "kubernetes-cluster-running");

  log("kubernetes: copy the connection snippet and run it where the cluster's names resolve");
  const snippet = await copySnippet(page, "write");
  assert.match(exported(snippet, "KORU_URL"), /^http:\/\/hello\.[a-z0-9-]+\.svc:7878$/);
  const lines = runSnippet(snippet);
  const read = JSON.parse(lines[lines.length - 1]);
  assert.deepEqual(read.value, { name: "Alice" }, `the snippet read back the write: ${lines}`);
  await shot(page, "kubernetes-cluster-connect");
  await context.close();
}

/** Waits until `locator` matches exactly `count` elements. */
async function waitCount(locator, count, what) {
  const deadline = Date.now() + 15000;
  let seen = -1;
  while (Date.now() < deadline) {
    seen = await locator.count();
    if (seen === count) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: expected ${count}, saw ${seen}`);
}

/** A moment as a `datetime-local` input takes it, in UTC (the dashboard reads it as UTC). */
function utcInput(date) {
  return date.toISOString().slice(0, 23);
}

/** The page has nothing wider than the screen (a phone scrolls down, never sideways). */
async function fitsTheScreen(page, what) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= width + 1, `${what} is ${scroll}px wide on a ${width}px screen`);
}

async function explorerJourney(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  log("explorer: sign up and a running cluster");
  const email = `explorer-${Date.now()}@example.com`;
  const slug = await signUp(page, email, "Explorer Journey", "free");
  await createCluster(page, slug, "books");
  await page.waitForURL(`${base}/orgs/${slug}/clusters/books`);
  await waitRunning(page);
  const data = `${base}/orgs/${slug}/clusters/books/data`;

  log("explorer: three versions of a key, written with the page's snippet");
  const snippet = await copySnippet(page, "write");
  const original = `{"value": {"name": "Alice"}}`;
  assert.ok(snippet.includes(original), `the snippet writes ${original}`);
  const write = (value) => runSnippet(snippet.replace(original, JSON.stringify({ value })));
  write({ name: "Alice" });
  await new Promise((r) => setTimeout(r, 1100));
  const beforeSecond = new Date();
  await new Promise((r) => setTimeout(r, 1100));
  write({ name: "Alice", city: "Paris" });
  write({ name: "Alice", city: "Lyon", books: 3 });

  log("explorer: open the key and see three versions, each by its author");
  await page.locator("#explore-data").click();
  await page.waitForURL(data);
  await page.locator("#namespaces").getByRole("link", { name: "users" }).click();
  await page.locator("#keys").getByRole("link", { name: "alice", exact: true }).click();
  const versions = page.locator("#timeline .version");
  await waitCount(versions, 3, "versions in the timeline");
  for (const author of await versions.locator(".author").allTextContents()) {
    assert.equal(author.trim(), email, "every version names its author");
  }
  assert.match(await page.locator("#value").textContent(), /Lyon/);
  await shot(page, "explorer-key");

  log("explorer: diff the first and the last version");
  const ids = await versions.evaluateAll((els) => els.map((e) => e.dataset.version));
  await page.locator("#compare-from").selectOption(ids[ids.length - 1]);
  await page.locator("#compare-to").selectOption(ids[0]);
  await page.locator("#compare-form").getByRole("button").click();
  const diff = await page.locator("#diff-lines").textContent();
  assert.match(diff, /city/, "the diff names the added field");
  assert.match(diff, /books/, "the diff names the other added field");
  await shot(page, "explorer-diff");

  log("explorer: scrub the namespace's slider to before the second write");
  await page.goto(`${data}/ns/users/slider`);
  await page.locator("#slider").waitFor();
  await page.locator("#slider-at").fill(utcInput(beforeSecond));
  await page.locator("#slider-at-form").getByRole("button").click();
  const then = page.locator('#slider-table tr.slider-row[data-key="alice"] .slider-new');
  await then.waitFor();
  assert.doesNotMatch(await then.textContent(), /city/, "before the second write alice had no city");
  assert.match(await then.textContent(), /Alice/);
  await shot(page, "explorer-slider");

  log("explorer: rewind the key to that moment through the dry run, watched live");
  const live = await context.newPage();
  live.setDefaultTimeout(15000);
  await live.goto(`${data}/live`);
  await live.locator("#live-status[data-following]").waitFor();
  await page.goto(`${data}/rewind`);
  await page.locator("#rewind-ns").fill("users");
  await page.locator("#rewind-key").fill("alice");
  await page.locator("#rewind-as-of").fill(beforeSecond.toISOString());
  await page.locator("#rewind-plan").click();
  await page.locator('#rewind-changes tr.rewind-change[data-key="alice"][data-action="restore"]').waitFor();
  await shot(page, "explorer-rewind-plan");
  await page.locator("#rewind-confirm").click();
  await page.locator(".flash[role=status]", { hasText: "went back" }).waitFor();
  await waitCount(page.locator("#timeline .version"), 4, "versions after the rewind");
  assert.doesNotMatch(await page.locator("#value").textContent(), /city/, "the key holds its old value again");
  await live.locator("#live-rows tr.live-row", { hasText: "rewind" }).filter({ hasText: "alice" }).first().waitFor();
  await shot(live, "explorer-live");

  log("explorer: the phone layout");
  const phone = await browser.newContext({
    storageState: await context.storageState(),
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
  });
  const small = await phone.newPage();
  small.setDefaultTimeout(15000);
  for (const [path, name] of [
    [`/ns/users/key?key=alice`, "explorer-phone-key"],
    [`/ns/users/slider`, "explorer-phone-slider"],
    [`/live`, "explorer-phone-live"],
  ]) {
    await small.goto(`${data}${path}`);
    await small.locator("nav.explorer-nav").waitFor();
    await fitsTheScreen(small, name);
    await shot(small, name);
  }
  await phone.close();
  await context.close();
}

async function main() {
  assert.ok(base, "KORU_URL names the control plane");
  fs.mkdirSync(shots, { recursive: true });
  // As root (CI) Chromium's sandbox cannot start; the pages are our own.
  // The clipboard needs a secure context: loopback is one, the nodes' host address (the
  // Kubernetes journey's control plane, which pods must reach) is made one.
  const args = ["--no-sandbox", `--unsafely-treat-insecure-origin-as-secure=${new URL(base).origin}`];
  const browser = await chromium.launch({ executablePath, headless: true, args });
  try {
    if (process.env.KORU_JOURNEYS === "kubernetes") {
      await kubernetesJourney(browser);
    } else {
      await freeJourney(browser);
      await restoreJourney(browser);
      await explorerJourney(browser);
    }
  } finally {
    await browser.close();
  }
  log(`done: ${shotCount} screenshots in ${shots}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
