#!/usr/bin/env node
// weir in headless Chromium: EventSource to signal swarms and event topics.
//
//   node sse.mjs http://127.0.0.1:PORT      (or WEIR_URL=... node sse.mjs)
//
// The page (pages/sse.html) is served from another origin than weir's, so
// every request exercises CORS. Prints one JSON line; exit 0 only if every
// check held. See lib/harness.mjs for the timeouts and the chromium flags.
import { runBrowserTest } from './lib/harness.mjs';

await runBrowserTest({ name: 'sse', page: 'sse.html' });
