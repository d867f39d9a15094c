#!/usr/bin/env node
// weir's page receiving what curl sends (a file with its name, a text
// shown inline), and `/noscript` with JavaScript disabled sending a file
// and a text to curl; screenshots of `/noscript`, phone and desktop.
//
//   node page-receive.mjs http://127.0.0.1:PORT
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DESKTOP, PHONE, WAIT_MS, curl, randomFile, runPageTest, sha256, unique,
} from './lib/weirpage.mjs';

await runPageTest('page-receive', async (t) => {
  // 1. A file from curl -F, received by the page opened on its receive link.
  const file = await randomFile(t.tmp, 'report 2026.bin', 3_000_000);
  const p1 = unique('pr-file');
  const page = await t.newPage({ viewport: DESKTOP });
  await page.goto(`${t.weir}/#receive=${p1}`, { waitUntil: 'load' });
  await page.waitForSelector('body[data-receive="waiting"]', { timeout: WAIT_MS });
  t.check('the receive link opens the page receiving', /Waiting for the sender/.test(await page.textContent('#receive-state')));
  const s1 = curl(['-F', `file=@${file.file}`, `${t.weir}/${p1}`]);
  await page.waitForSelector('body[data-receive="done"]', { timeout: WAIT_MS * 2 });
  const sent1 = await s1.done;
  t.check('curl -F: sent', sent1.code === 0 && /Sent successfully/.test(sent1.out.toString()), sent1.out.toString());
  t.check('the page got every byte', Number(await page.evaluate(() => document.body.dataset.received)) === file.size);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
  t.check('offered under its sent name', download.suggestedFilename() === 'report 2026.bin', download.suggestedFilename());
  const saved = path.join(t.tmp, 'saved.bin');
  await download.saveAs(saved);
  t.check('the saved file matches (SHA-256)', sha256(await readFile(saved)) === file.hash);

  await page.close();

  // 2. A text from curl, shown inline.
  const text = 'hello from curl\n<b>not bold</b> ✓\n';
  const p3 = unique('pr-text');
  const page3 = await t.newPage({ viewport: DESKTOP });
  await page3.goto(`${t.weir}/#receive=${p3}`, { waitUntil: 'load' });
  await page3.waitForSelector('body[data-receive="waiting"]', { timeout: WAIT_MS });
  const textFile = path.join(t.tmp, 'note.txt');
  await writeFile(textFile, text);
  const s3 = curl(['-T', textFile, '-H', 'Content-Type: text/plain; charset=utf-8', `${t.weir}/${p3}`]);
  await page3.waitForSelector('body[data-receive="done"]', { timeout: WAIT_MS * 2 });
  await s3.done;
  const shown = await page3.textContent('#received-text');
  t.check('text from curl is shown inline, as text', shown === text && (await page3.isVisible('#received-text')), JSON.stringify(shown));
  t.check('no markup from the text reached the page', (await page3.$$('#received-text b')).length === 0);
  await page3.close();

  // 3. /noscript with JavaScript off: a file, then a text.
  const ns = await t.newPage({ viewport: DESKTOP, javaScriptEnabled: false });
  await ns.goto(`${t.weir}/noscript`, { waitUntil: 'load' });
  await t.shot(ns, 'noscript-desktop.png');
  await ns.setViewportSize(PHONE);
  await t.shot(ns, 'noscript-phone.png');
  const action1 = await ns.getAttribute('form[method="post"]', 'action');
  const r1 = curl(['-D', '-', `${t.weir}${action1}`]);
  await ns.setInputFiles('#file', file.file);
  await Promise.all([ns.waitForLoadState('load'), ns.waitForURL(`${t.weir}${action1}`), ns.click('button[type="submit"].primary')]);
  const after1 = await ns.textContent('body');
  t.check('noscript file: the sender page says sent', /Sent successfully/.test(after1), after1);
  const got1 = await r1.done;
  const i1 = got1.out.indexOf('\r\n\r\n');
  t.check('noscript file: curl got it (SHA-256)', sha256(got1.out.subarray(i1 + 4)) === file.hash);
  t.check('noscript file: with its name', /filename="report 2026\.bin"/.test(got1.out.subarray(0, i1).toString()), got1.out.subarray(0, i1).toString());

  await ns.goto(`${t.weir}/noscript`, { waitUntil: 'load' });
  const action2 = await ns.getAttribute('form[method="post"]', 'action');
  t.check('noscript: a new path each time', action2 !== action1, `${action1} ${action2}`);
  const r2 = curl(['-D', '-', `${t.weir}${action2}`]);
  await ns.fill('#text', 'typed with JavaScript off ✓');
  await Promise.all([ns.waitForURL(`${t.weir}${action2}`), ns.click('button[type="submit"].primary')]);
  const got2 = await r2.done;
  const raw2 = got2.out.toString();
  t.check('noscript text: curl got the text', raw2.endsWith('\r\n\r\ntyped with JavaScript off ✓'), JSON.stringify(raw2.slice(-60)));
  t.check('noscript text: as text/plain', /content-type: text\/plain; charset=utf-8/i.test(raw2), raw2.slice(0, 300));
  await ns.close();
});
