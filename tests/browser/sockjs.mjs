#!/usr/bin/env node
// weir in headless Chromium: sockjs-client against weir's SockJS endpoints.
//
//   node sockjs.mjs http://127.0.0.1:PORT   (or WEIR_URL=... node sockjs.mjs)
//   WEIR_SOCKJS_TRANSPORTS=xhr-polling,eventsource node sockjs.mjs ...
//
// The page (pages/sockjs.html) loads sockjs-client's browser bundle
// (node_modules/sockjs-client/dist/sockjs.min.js) from another origin than
// weir's and, for each transport on its own (websocket, xhr-streaming,
// xhr-polling, eventsource), talks to the echo and close services and
// bridges it with a websocket member on a channel. Prints one JSON line;
// exit 0 only if every check held.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { HERE, runBrowserTest } from './lib/harness.mjs';

const pkg = JSON.parse(readFileSync(path.join(HERE, 'node_modules/sockjs-client/package.json'), 'utf8'));
const transports = (process.env.WEIR_SOCKJS_TRANSPORTS || 'websocket,xhr-streaming,xhr-polling,eventsource')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

await runBrowserTest({
  name: 'sockjs',
  page: 'sockjs.html',
  files: { '/sockjs.min.js': 'node_modules/sockjs-client/dist/sockjs.min.js' },
  params: { transports, sockjsVersion: pkg.version },
});
