#!/usr/bin/env node
// End-to-end check of the dashboard in headless Chromium, against a running Depot server.
//
//   node tests/e2e.mjs [BASE_URL] [USERNAME] [PASSWORD]
//   E2E_BASE_URL=http://127.0.0.1:8000 E2E_USERNAME=demo E2E_PASSWORD=demo node tests/e2e.mjs
//
// Signs in through /login/, creates a collection (and checks that a second one with the same
// name is refused with NAME_TAKEN), uploads a PNG made here, then waits for its job to succeed
// and for the asset to be READY with a loaded thumbnail. SCREENSHOT=path saves a screenshot.
// CHROMIUM=path overrides /usr/bin/chromium. Exits non-zero with a message on any failure, and
// gives up on its own after TOTAL_TIMEOUT_MS.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

const TOTAL_TIMEOUT_MS = 55_000;
const started = Date.now();

const [argBase, argUser, argPassword] = process.argv.slice(2);
const baseUrl = (argBase || process.env.E2E_BASE_URL || "").replace(/\/+$/, "");
const username = argUser || process.env.E2E_USERNAME || "demo";
const password = argPassword || process.env.E2E_PASSWORD || "demo";
const screenshotPath = process.env.SCREENSHOT || "";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

if (!baseUrl) {
  console.error("usage: node tests/e2e.mjs BASE_URL [USERNAME] [PASSWORD] (or E2E_BASE_URL, E2E_USERNAME, E2E_PASSWORD)");
  process.exit(2);
}

// -- a small valid PNG (64x48, RGB gradient), made with zlib ---------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function makePng(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then pixels
    for (let x = 0; x < width; x++) {
      row[1 + x * 3] = Math.round((x / (width - 1)) * 255);
      row[2 + x * 3] = Math.round((y / (height - 1)) * 200);
      row[3 + x * 3] = 220;
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

// -- helpers ---------------------------------------------------------------------------------

class E2EFailure extends Error {}

function remaining() {
  return Math.max(1_000, TOTAL_TIMEOUT_MS - (Date.now() - started) - 3_000);
}

function step(message) {
  console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${message}`);
}

/**
 * Poll `probe` in the page until it returns {ok: true, ...} (resolved with it) or {fail: msg}
 * (thrown at once): waits end early on a failure the page already shows, or when the
 * dashboard's own script or stylesheet failed to load.
 */
async function waitInPage(page, what, probe, arg) {
  const deadline = Date.now() + remaining();
  for (;;) {
    const result = await page.evaluate(probe, arg).catch((error) => {
      // A navigation destroys the context mid-evaluate; anything else is a real problem.
      if (/context was destroyed|navigation/i.test(error.message)) return null;
      throw error;
    });
    if (result?.fail) throw new E2EFailure(`${what}: ${result.fail}`);
    if (result?.ok) return result;
    const broken = pageProblems.find((p) => p.includes("/static/"));
    if (broken) throw new E2EFailure(`the dashboard's files did not load (${broken}); was the server started after \`npm run build\`?`);
    if (Date.now() > deadline) throw new E2EFailure(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// -- the test --------------------------------------------------------------------------------

const userDataDir = mkdtempSync(join(tmpdir(), "depot-e2e-chromium-"));
let context;
let page;
const pageProblems = [];

async function run() {
  step(`launching ${executablePath}`);
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1440, height: 900 },
    timeout: 20_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  context.setDefaultTimeout(15_000);
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => {
    // Failed loads are reported with their URL by the response listener below.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      pageProblems.push(`console: ${message.text()}`);
    }
  });
  page.on("response", (response) => {
    const url = new URL(response.url());
    if (response.status() >= 400 && url.pathname !== "/favicon.ico") {
      pageProblems.push(`HTTP ${response.status()} for ${response.request().method()} ${url.pathname}`);
    }
  });
  page.on("requestfailed", (request) => {
    pageProblems.push(`request failed: ${request.method()} ${request.url()} (${request.failure()?.errorText})`);
  });
  page.on("pageerror", (error) => pageProblems.push(`page error: ${error.message}`));

  step(`signing in at ${baseUrl}/login/ as ${username}`);
  await page.goto(`${baseUrl}/login/?next=/`, { timeout: remaining() });
  await page.fill("input[name=username]", username);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForLoadState("load"), page.click("form button[type=submit]")]);
  if (new URL(page.url()).pathname.startsWith("/login")) {
    throw new E2EFailure(`sign-in failed: still on ${page.url()}`);
  }

  step("waiting for the dashboard and its live connection");
  await waitInPage(page, "the dashboard", (user) => {
    const viewer = document.querySelector("[data-testid=viewer]");
    const status = document.querySelector("[data-testid=connection-status]")?.getAttribute("data-status");
    const boot = document.querySelector(".boot.error");
    if (boot) return { fail: boot.textContent };
    if (status === "signed-out") return { fail: "the server refused the websocket (closed 4403: session or Origin not accepted)" };
    if (viewer && !viewer.textContent.includes(user)) return { fail: `header shows ${viewer.textContent}` };
    return viewer && status === "connected" ? { ok: true } : null;
  }, username);

  const name = `e2e ${new Date().toISOString().slice(0, 19)} ${Math.random().toString(36).slice(2, 8)}`;
  step(`creating collection "${name}"`);
  const collectionForm = page.locator("[data-testid=collection-form]");
  await collectionForm.locator("input[name=name]").fill(name);
  await collectionForm.locator("input[name=description]").fill("Made by the browser test");
  await collectionForm.locator("button[type=submit]").click();
  await waitInPage(page, `collection "${name}" to be listed and selected`, (wanted) => {
    const errors = document.querySelector("[data-testid=collection-errors]");
    if (errors && !errors.hidden && errors.textContent) return { fail: errors.textContent };
    const selected = document.querySelector(".collection.selected .collection-name");
    return selected?.textContent === wanted ? { ok: true } : null;
  }, name);

  step("creating it again: expecting NAME_TAKEN");
  await collectionForm.locator("input[name=name]").fill(name);
  await collectionForm.locator("button[type=submit]").click();
  const taken = await waitInPage(page, "the NAME_TAKEN error", () => {
    const errors = document.querySelector("[data-testid=collection-errors]");
    return errors && !errors.hidden && errors.textContent ? { ok: true, text: errors.textContent } : null;
  });
  if (!taken.text.includes("NAME_TAKEN")) throw new E2EFailure(`expected NAME_TAKEN, the form shows "${taken.text}"`);
  const sameName = await page.locator(".collection-name", { hasText: name }).count();
  if (sameName !== 1) throw new E2EFailure(`expected one collection named "${name}", found ${sameName}`);
  step(`form shows: ${taken.text.trim()}`);

  step("uploading a 64x48 PNG");
  const uploadForm = page.locator("[data-testid=upload-form]");
  await uploadForm.locator("select[name=collection]").selectOption({ label: name });
  await uploadForm.locator("input[type=file]").setInputFiles({
    name: "e2e-gradient.png",
    mimeType: "image/png",
    buffer: makePng(64, 48),
  });
  await uploadForm.locator("button[type=submit]").click();
  const upload = await waitInPage(page, "the upload to finish", () => {
    const row = document.querySelector("[data-testid=upload-row]");
    if (!row) return null;
    if (row.dataset.state === "failed") return { fail: row.textContent };
    return row.dataset.state === "done" ? { ok: true, jobId: row.dataset.jobId } : null;
  });
  step(`upload finished, job ${upload.jobId}`);

  step("waiting for the job to succeed in the jobs panel");
  await waitInPage(page, `job ${upload.jobId} to succeed`, (jobId) => {
    const row = [...document.querySelectorAll("[data-testid=job-row]")].find((r) => r.dataset.jobId === jobId);
    if (!row) return null;
    if (row.dataset.state === "FAILED" || row.dataset.state === "CANCELLED") {
      return { fail: `job ended ${row.dataset.state}: ${row.textContent}` };
    }
    const badge = row.querySelector("[data-testid=badge]")?.textContent;
    return row.dataset.state === "SUCCEEDED" && badge === "SUCCEEDED" ? { ok: true } : null;
  }, upload.jobId);

  step("waiting for the asset to be READY with a loaded thumbnail");
  const asset = await waitInPage(page, "the asset card", () => {
    const cards = [...document.querySelectorAll("[data-testid=asset-card]")];
    const card = cards.find((c) => c.querySelector(".asset-title")?.textContent === "e2e-gradient.png");
    if (!card) return null;
    if (card.dataset.state === "FAILED") return { fail: `asset FAILED: ${card.textContent}` };
    const img = card.querySelector("img[data-testid=asset-thumb]");
    if (card.dataset.state !== "READY" || !img || !img.complete || img.naturalWidth === 0) return null;
    return { ok: true, facts: card.querySelector(".asset-facts")?.textContent ?? "", naturalWidth: img.naturalWidth };
  });
  if (!asset.facts.includes("64×48")) throw new E2EFailure(`asset card facts lack 64×48: "${asset.facts}"`);
  step(`asset READY (${asset.facts}; thumbnail ${asset.naturalWidth}px wide)`);

  await waitInPage(page, "job.succeeded in the event log", () => {
    const types = [...document.querySelectorAll("[data-testid=event-log] .type")].map((e) => e.textContent);
    return types.includes("job.succeeded") && types.includes("asset.ready") ? { ok: true } : null;
  });

  if (pageProblems.length) throw new E2EFailure(`the page reported errors:\n  ${pageProblems.join("\n  ")}`);
}

async function screenshot() {
  if (!screenshotPath || !page) return;
  try {
    await page.screenshot({ path: screenshotPath, fullPage: true, timeout: 5_000 });
    step(`screenshot saved to ${screenshotPath}`);
  } catch (error) {
    console.error(`could not save the screenshot: ${error.message}`);
  }
}

async function cleanup() {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}

const watchdog = setTimeout(async () => {
  console.error(`FAIL: the test did not finish within ${TOTAL_TIMEOUT_MS / 1000}s`);
  await Promise.race([screenshot().then(cleanup), new Promise((r) => setTimeout(r, 4_000))]);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

try {
  await run();
  await screenshot();
  step("PASS");
  process.exitCode = 0;
} catch (error) {
  console.error(`FAIL: ${error instanceof E2EFailure ? error.message : error.stack || error}`);
  if (pageProblems.length) console.error(`page problems:\n  ${pageProblems.join("\n  ")}`);
  if (page) console.error(`page URL: ${page.url()}`);
  await screenshot();
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
