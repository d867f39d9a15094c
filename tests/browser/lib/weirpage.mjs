// Shared by page-send.mjs and page-receive.mjs: weir's own page (served by
// weir on `/`, not by a test server) in Debian's chromium, with curl as the
// other party. Launch, checks, console and CSP watch, screenshots, curl,
// SHA-256; one JSON report line; exit 0 only if every check held.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_FLAGS, HERE, LAUNCH_MS, WAIT_MS, weirUrl, withTimeout } from './harness.mjs';

// Longer than the other browser tests (20 MB through the page); tests/it/browser.rs
// allows 40 s.
const TOTAL_MS = Number(process.env.WEIR_BROWSER_TOTAL_MS) || 35_000;

export { WAIT_MS };

/** Where screenshots go: <repo>/target/screenshots. */
export const SHOTS = path.join(HERE, '..', '..', 'target', 'screenshots');

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

export const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
export const unique = (prefix) => `${prefix}-${randomBytes(6).toString('hex')}`;

/**
 * Run curl (bounded by --max-time) and collect its stdout as a Buffer.
 * Resolves to { code, out, err } when it exits.
 */
export function curl(args) {
  const child = spawn('/usr/bin/curl', ['--max-time', '20', '-sS', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  const err = [];
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => err.push(d));
  const done = new Promise((resolve) => {
    child.on('close', (code) => resolve({ code, out: Buffer.concat(out), err: Buffer.concat(err).toString() }));
  });
  return { child, done, bytes: () => out.reduce((n, b) => n + b.length, 0) };
}

/** Poll `f` (async) until it returns a truthy value, or fail after `ms`. */
export async function until(f, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timeout after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * `body(t)` gets { weir, browser, newPage(opts), check(name, ok, detail),
 * note, shot(page, name), tmp }. Pages from newPage are watched for console
 * errors, page errors and CSP violations, each a failed check at the end.
 */
export async function runPageTest(name, body) {
  const started = Date.now();
  const report = { test: name, ok: false, weir: null, chromium: null, timings_ms: {}, checks: [], notes: [], console: [], errors: [] };
  const fail = (m) => report.errors.push(m);
  let browser = null;
  let userDataDir = null;
  let tmp = null;
  const violations = [];
  const consoleErrors = [];
  const t = {
    weir: null,
    check(n, ok, detail) {
      report.checks.push({ name: n, ok: Boolean(ok), detail: detail === undefined ? undefined : String(detail).slice(0, 300) });
    },
    note(m) { report.notes.push(m); },
    // Console errors a step causes on purpose (Chrome logs a refused
    // request's status), each a RegExp; everything else is a failure.
    expectedConsole: [],
    async newPage(opts = {}) {
      const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true, ...opts });
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS * 2);
      page.on('console', (m) => {
        report.console.push(`${m.type()}: ${m.text()}`);
        if (m.type() === 'error' && !t.expectedConsole.some((re) => re.test(m.text()))) consoleErrors.push(m.text());
      });
      page.on('pageerror', (e) => fail(`page error: ${e.message}`));
      // Reported through the console too, but also counted here: the event
      // the page's own policy raises (init scripts are not subject to it).
      await page.exposeBinding('__weirViolation', (_, v) => violations.push(v));
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (e) => {
          window.__weirViolation(`${e.violatedDirective} ${e.blockedURI}`);
        });
      });
      return page;
    },
    async shot(page, file) {
      await mkdir(SHOTS, { recursive: true });
      const p = path.join(SHOTS, file);
      await page.screenshot({ path: p, fullPage: false });
      report.notes.push(`screenshot ${p}`);
    },
    tmp: null,
  };
  const run = async () => {
    t.weir = report.weir = weirUrl();
    tmp = t.tmp = await mkdtemp(path.join(tmpdir(), 'weir-page-'));
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
    t.browser = browser;
    await body(t);
    t.check('no console error', consoleErrors.length === 0, consoleErrors.join(' | '));
    t.check('no CSP violation', violations.length === 0, violations.join(' | '));
  };
  try {
    await withTimeout(run(), TOTAL_MS - 5000, `${name}`);
  } catch (e) {
    fail(String(e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e));
  } finally {
    if (browser) await withTimeout(browser.close(), 5000, 'browser.close()').catch((e) => fail(String(e)));
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    if (tmp) await rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
  report.timings_ms.total = Date.now() - started;
  report.ok = report.errors.length === 0 && report.checks.length > 0 && report.checks.every((c) => c.ok);
  const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
  if (failed.length) report.failed = failed;
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.ok ? 0 : 1);
}

/** A file of `size` random bytes in `dir`; resolves to { file, hash }. */
export async function randomFile(dir, name, size) {
  const data = randomBytes(size);
  const file = path.join(dir, name);
  await writeFile(file, data);
  return { file, hash: sha256(data), size };
}

export { readFile };
