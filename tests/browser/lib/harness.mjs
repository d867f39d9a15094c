// Shared harness for weir's browser tests (sse.mjs, and later sockjs.mjs).
//
// A test script calls `runBrowserTest({ name, page, files, params })`:
//   1. weir's URL comes from argv[2] or WEIR_URL;
//   2. a tiny HTTP server on 127.0.0.1:0 serves the test page and any extra
//      files (another port than weir's, so every request to weir is
//      cross-origin and CORS is exercised);
//   3. Debian's chromium is launched through playwright-core with exactly
//      the flags the project allows plus a fresh --user-data-dir (and
//      --remote-debugging-pipe, the channel playwright drives it through);
//   4. the page is loaded and its `window.runTest(params)` is awaited; it
//      returns `{ checks: [{ name, ok, detail }], notes }` (see pages/common.js);
//   5. one JSON line is printed to stdout; the exit code is 0 only if every
//      check held, no page error happened and nothing timed out.
// Every wait has a timeout, and chromium is always closed (browser.close()).

import { createServer } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

export const CHROMIUM = process.env.WEIR_CHROMIUM || '/usr/bin/chromium';

// The flags of the issue, and nothing else from playwright's defaults.
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const num = (v, d) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : d);

// Whole script (launch + page + close), per-wait in the page, browser launch.
export const TOTAL_MS = num(process.env.WEIR_BROWSER_TOTAL_MS, 25_000);
export const WAIT_MS = num(process.env.WEIR_BROWSER_WAIT_MS, 5_000);
export const LAUNCH_MS = num(process.env.WEIR_BROWSER_LAUNCH_MS, 15_000);
const CLOSE_MS = 5_000;

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
};

/** weir's base URL, without a trailing slash. */
export function weirUrl() {
  const raw = process.argv[2] || process.env.WEIR_URL;
  if (!raw) {
    throw new Error('usage: node <script>.mjs http://127.0.0.1:PORT (or WEIR_URL=...)');
  }
  const u = new URL(raw);
  return u.origin;
}

/**
 * Serve `files` ({ '/url-path': '/abs/file' }) on 127.0.0.1:0.
 * Resolves to { server, origin }.
 */
export function servePages(files) {
  const server = createServer(async (req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    if (p === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const file = files[p];
    if (req.method !== 'GET' || !file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, {
        'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
        'Cache-Control': 'no-store',
      });
      res.end(body);
    } catch (e) {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(e));
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ server, origin: `http://127.0.0.1:${port}` });
    });
  });
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/**
 * Run one browser test and exit the process.
 *
 * @param {object} o
 * @param {string} o.name      test name for the report
 * @param {string} o.page      the page's file, relative to tests/browser/pages
 * @param {object} [o.files]   extra files to serve: { '/url-path': 'path relative to tests/browser' }
 * @param {object} [o.params]  extra fields for window.runTest (weir and waitMs are added)
 */
export async function runBrowserTest({ name, page, files = {}, params = {} }) {
  const started = Date.now();
  const report = {
    test: name,
    ok: false,
    weir: null,
    page: null,
    chromium: null,
    timings_ms: {},
    checks: [],
    notes: [],
    console: [],
    errors: [],
  };
  const fail = (msg) => report.errors.push(msg);

  let browser = null;
  let server = null;
  let userDataDir = null;

  const body = async () => {
    report.weir = weirUrl();
    const served = { '/': path.join(HERE, 'pages', page), '/common.js': path.join(HERE, 'pages', 'common.js') };
    for (const [u, f] of Object.entries(files)) served[u] = path.join(HERE, f);
    const s = await servePages(served);
    server = s.server;
    report.page = `${s.origin}/`;

    userDataDir = await mkdtemp(path.join(tmpdir(), 'weir-chromium-'));
    const t0 = Date.now();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      ignoreDefaultArgs: true,
      args: [...CHROMIUM_FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
      timeout: LAUNCH_MS,
    });
    report.timings_ms.launch = Date.now() - t0;
    report.chromium = browser.version();

    const context = await browser.newContext();
    const tab = await context.newPage();
    tab.setDefaultTimeout(WAIT_MS * 2);
    tab.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
    tab.on('pageerror', (e) => fail(`page error: ${e.message}`));
    tab.on('requestfailed', (r) => {
      // An EventSource closed by the page shows as net::ERR_ABORTED: expected.
      const f = r.failure();
      if (!f || !/ERR_ABORTED/.test(f.errorText)) {
        report.notes.push(`request failed: ${r.method()} ${r.url()} ${f ? f.errorText : ''}`);
      }
    });

    const t1 = Date.now();
    await tab.goto(report.page, { waitUntil: 'load', timeout: WAIT_MS * 2 });
    await tab.waitForFunction(() => typeof window.runTest === 'function', null, { timeout: WAIT_MS });
    const result = await tab.evaluate(
      (p) => window.runTest(p),
      { ...params, weir: report.weir, waitMs: WAIT_MS },
    );
    report.timings_ms.page = Date.now() - t1;
    report.checks = result.checks || [];
    report.notes.push(...(result.notes || []));
    if (result.error) fail(`page: ${result.error}`);
  };

  try {
    // The deadline leaves room for closing the browser.
    await withTimeout(body(), TOTAL_MS - CLOSE_MS, `${name} (launch + page)`);
  } catch (e) {
    fail(String(e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e));
  } finally {
    if (browser) {
      const t2 = Date.now();
      await withTimeout(browser.close(), CLOSE_MS, 'browser.close()').catch((e) => fail(String(e)));
      report.timings_ms.close = Date.now() - t2;
    }
    if (server) {
      server.closeAllConnections();
      server.close();
    }
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  }

  report.timings_ms.total = Date.now() - started;
  report.ok =
    report.errors.length === 0 && report.checks.length > 0 && report.checks.every((c) => c.ok);
  const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
  if (failed.length) report.failed = failed;
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.ok ? 0 : 1);
}
