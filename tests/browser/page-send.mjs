#!/usr/bin/env node
// weir's page (`/`) sending, with curl receiving:
//   - a 20 MB file from the page, received by curl, checked by SHA-256;
//     the bar never shows 100 % before the page says "done", and "done"
//     comes from the sender's last line;
//   - a text from the page to curl, as text/plain;
//   - cancel mid-way: the receiver (curl) sees a cut transfer;
//   - screenshots of `/` and of a transfer in progress, phone and desktop.
//
//   node page-send.mjs http://127.0.0.1:PORT
import {
  DESKTOP, PHONE, WAIT_MS, curl, randomFile, runPageTest, sha256, unique, until,
} from './lib/weirpage.mjs';

const MB = 1_000_000;

await runPageTest('page-send', async (t) => {
  const page = await t.newPage({ viewport: DESKTOP });
  await page.goto(`${t.weir}/`, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="1"]', { timeout: WAIT_MS });
  const proposed = await page.inputValue('#path');
  t.check('a random path is proposed', /^[A-Za-z0-9_-]{16}$/.test(proposed), proposed);
  t.check('the share box shows the curl command', (await page.inputValue('#share-curl')) === `curl ${t.weir}/${proposed}`);
  t.check('the share box shows the receive link', (await page.inputValue('#share-link')) === `${t.weir}/#receive=${proposed}`);
  const qrOk = await page.$eval('#qr', (img) => img.complete && img.naturalWidth > 0);
  t.check('the QR code image loads', qrOk);
  await t.shot(page, 'page-desktop.png');
  await page.setViewportSize(PHONE);
  await t.shot(page, 'page-phone.png');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  t.check('no horizontal scrolling at 390 px', overflow <= 0, overflow);
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  t.check('dark colours under prefers-color-scheme: dark', dark === 'rgb(22, 24, 27)', dark);
  await t.shot(page, 'page-phone-dark.png');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize(DESKTOP);

  // Record the bar and the page's verdict every 10 ms, in the page.
  await page.evaluate(() => {
    window.__samples = [];
    const bar = document.getElementById('send-bar');
    window.__sampler = setInterval(() => {
      window.__samples.push([bar.hasAttribute('value') ? bar.value : -1, document.body.dataset.send || '']);
    }, 10);
  });

  // 1. A 20 MB file, received by curl at a bounded rate so the transfer is seen moving.
  const big = await randomFile(t.tmp, 'twenty.bin', 20 * MB);
  const p1 = unique('pg-file');
  await page.fill('#path', p1);
  await page.setInputFiles('#file', big.file);
  await page.click('#send-button');
  await until(async () => /Waiting for the receiver/.test(await page.textContent('#send-state')), WAIT_MS, 'waiting for the receiver');
  t.check('parked: "waiting for the receiver"', true);
  const r1 = curl(['-D', '-', '--limit-rate', '8M', `${t.weir}/${p1}`]);
  await until(async () => Number(await page.evaluate(() => document.body.dataset.delivered || 0)) > 4 * MB, WAIT_MS, 'progress past 4 MB');
  const detail = await page.textContent('#send-detail');
  t.check('progress shows bytes, rate and time left', / of 20\.0 MB \(\d+ %\) · [\d.]+ [kM]B\/s · .* left/.test(detail), detail);
  await t.shot(page, 'progress-desktop.png');
  await page.setViewportSize(PHONE);
  await t.shot(page, 'progress-phone.png');
  await page.setViewportSize(DESKTOP);
  await page.waitForSelector('body[data-send="done"]', { timeout: 15_000 });
  const got1 = await r1.done;
  const head1 = got1.out.subarray(0, got1.out.indexOf('\r\n\r\n') + 4).toString();
  const body1 = got1.out.subarray(head1.length);
  t.check('curl got the 20 MB file (SHA-256)', got1.code === 0 && sha256(body1) === big.hash, `${got1.code} ${body1.length}`);
  t.check('curl got the file name', /content-disposition: attachment; filename="twenty\.bin"/i.test(head1), head1);
  t.check('the page says done', /^Done/.test(await page.textContent('#send-state')), await page.textContent('#send-state'));
  const samples = await page.evaluate(() => { clearInterval(window.__sampler); return window.__samples; });
  const early = samples.filter(([v, s]) => v >= 1 && s !== 'done');
  const before = samples.filter(([, s]) => s === 'running').map(([v]) => v);
  t.check('the bar reaches 100 % only when done', early.length === 0 && (await page.$eval('#send-bar', (b) => b.value)) === 1, JSON.stringify(early.slice(0, 3)));
  t.check('the bar moved before done', Math.max(...before) > 0.2 && Math.max(...before) < 1, Math.max(...before));

  // 2. A text, from the page to curl.
  const p2 = unique('pg-text');
  const text = 'héllo from the page\nline 2 ✓';
  const r2 = curl(['-D', '-', `${t.weir}/${p2}`]);
  await page.check('input[name="mode"][value="text"]');
  await page.fill('#text', text);
  await page.fill('#path', p2);
  await page.click('#send-button');
  await page.waitForSelector('body[data-send="done"]', { timeout: WAIT_MS * 2 });
  const got2 = await r2.done;
  const raw2 = got2.out.toString();
  const [head2, body2] = [raw2.slice(0, raw2.indexOf('\r\n\r\n')), raw2.slice(raw2.indexOf('\r\n\r\n') + 4)];
  t.check('curl got the text', body2 === text, JSON.stringify(body2));
  t.check('as text/plain; charset=utf-8', /content-type: text\/plain; charset=utf-8/i.test(head2), head2);

  // A refused send says so: another sender waits on the path (409).
  const p4 = unique('pg-busy');
  const small = await randomFile(t.tmp, 'small.bin', 1000);
  const waiting = curl(['-T', small.file, `${t.weir}/${p4}`]);
  await until(async () => (await (await fetch(`${t.weir}/status/${p4}`)).json()).sender, WAIT_MS, 'a parked curl sender');
  await page.fill('#path', p4);
  // Chrome logs the refused request itself; the page adds nothing.
  t.expectedConsole.push(/status of 409 \(Conflict\)/);
  await page.click('#send-button');
  await page.waitForSelector('body[data-send="cut"]', { timeout: WAIT_MS });
  const refused = await page.textContent('#send-state');
  t.check('a refused send says "Not sent" and why', /^Not sent: Another sender is already waiting/.test(refused), refused);
  // The parked sender is served, so the path is free again.
  const drained = await curl([`${t.weir}/${p4}`]).done;
  await waiting.done;
  t.check('the waiting sender is unaffected', sha256(drained.out) === small.hash);

  // 3. Cancel mid-way: curl, the receiver, sees a cut. The file is larger
  // than what loopback's socket buffers can hold in flight, so bytes are
  // still in the browser when it is cancelled.
  await page.check('input[name="mode"][value="file"]');
  const huge = await randomFile(t.tmp, 'sixty.bin', 60 * MB);
  const p3 = unique('pg-cancel');
  await page.fill('#path', p3);
  await page.setInputFiles('#file', huge.file);
  const r3 = curl(['--limit-rate', '2M', '-o', '/dev/null', '-w', '%{size_download}', `${t.weir}/${p3}`]);
  await page.click('#send-button');
  await until(async () => Number(await page.evaluate(() => document.body.dataset.delivered || 0)) > 1 * MB, WAIT_MS, 'cancel: progress past 1 MB');
  await page.click('#cancel');
  await page.waitForSelector('body[data-send="cut"]', { timeout: WAIT_MS });
  const got3 = await r3.done;
  const size3 = Number(got3.out.toString());
  t.check('cancel: the receiver sees a cut (curl fails, short)', got3.code !== 0 && size3 < 60 * MB, `curl exit ${got3.code}, ${size3} bytes, ${got3.err.trim()}`);
  t.check('cancel: the page says cut', /^Cut: cancelled after [1-9][\d.]* [kM]B of 60\.0 MB reached the relay/.test(await page.textContent('#send-state')), await page.textContent('#send-state'));
  await page.close();
});
