// In-page helpers shared by the browser test pages (served as /common.js).
//
// A page defines `window.runTest = (params) => run(params, async (t) => {...})`.
// `params` has `weir` (weir's origin) and `waitMs` (the timeout of every
// single wait). The test body records checks with `t.check`/`t.eq`; the
// first thrown error (a timeout, a failed `t.must`) ends the body and is
// reported as `error`. The result is plain JSON for the Node harness.

export class Checks {
  constructor() {
    this.checks = [];
    this.notes = [];
  }

  /** Record one expectation; returns `ok`. */
  check(name, ok, detail) {
    const c = { name, ok: !!ok };
    if (detail !== undefined) c.detail = detail;
    this.checks.push(c);
    return !!ok;
  }

  /** Deep equality through JSON (key order ignored). */
  eq(name, got, want) {
    const ok = stable(got) === stable(want);
    return this.check(name, ok, ok ? undefined : { got, want });
  }

  /** Like `eq`, but the test cannot go on without it. */
  must(name, got, want) {
    if (!this.eq(name, got, want)) throw new Error(`${name}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }

  note(text) {
    this.notes.push(text);
  }

  /** Run one independent part: an error in it is a failed check, and the
   * next part still runs. */
  async section(name, fn) {
    try {
      await fn();
    } catch (e) {
      this.check(`${name}: ran to the end`, false, String(e && e.message ? e.message : e));
    }
  }
}

function stable(v) {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stable(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Run a test body and collect its result. Never rejects. */
export async function run(params, body) {
  const t = new Checks();
  const cleanups = [];
  t.waitMs = params.waitMs || 5000;
  // Run `fn` when the test ends, whatever happened (close what it opened).
  t.defer = (fn) => cleanups.push(fn);
  t.stream = (url, types) => {
    const s = new Stream(url, types, t.waitMs);
    t.defer(() => s.close());
    return s;
  };
  let error;
  try {
    await body(t, params);
  } catch (e) {
    error = String(e && e.message ? e.message : e);
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        fn();
      } catch (e) {
        t.note(`cleanup: ${e}`);
      }
    }
  }
  return { checks: t.checks, notes: t.notes, error };
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function timeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** `fetch` with a timeout; resolves to { status, text, headers }. */
export async function request(url, init, ms) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  try {
    const res = await fetch(url, { ...init, signal: ctl.signal });
    const text = await res.text();
    return { status: res.status, text, headers: res.headers };
  } catch (e) {
    throw new Error(`${init && init.method ? init.method : 'GET'} ${url}: ${e.name === 'AbortError' ? `timeout after ${ms} ms` : e.message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Status and type of a GET like EventSource's; the body is not read. */
async function diagnose(url, ms) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  try {
    const res = await fetch(url, { headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: ctl.signal });
    return `status ${res.status}, Content-Type ${res.headers.get('Content-Type')} (EventSource needs 200 and text/event-stream)`;
  } catch (e) {
    return `a fetch of it failed too: ${e.message}`;
  } finally {
    ctl.abort();
    clearTimeout(timer);
  }
}

/**
 * A FIFO of values with waits that time out: `push` from a callback,
 * `next(what)` from the test. `fail(err)` makes every wait reject.
 */
export class Mailbox {
  constructor(waitMs) {
    this.waitMs = waitMs;
    this.items = [];
    this.waiters = [];
    this.error = null;
  }

  push(v) {
    const w = this.waiters.shift();
    if (w) w.resolve(v);
    else this.items.push(v);
  }

  fail(err) {
    if (!this.error) this.error = err;
    this.waiters.splice(0).forEach((w) => w.reject(err));
  }

  get length() {
    return this.items.length;
  }

  next(what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.error) return Promise.reject(this.error);
    let entry;
    const p = new Promise((resolve, reject) => {
      entry = { resolve, reject };
      this.waiters.push(entry);
    });
    return timeout(p, this.waitMs, what).catch((e) => {
      const i = this.waiters.indexOf(entry);
      if (i >= 0) this.waiters.splice(i, 1);
      throw e;
    });
  }
}

/**
 * An EventSource whose events are queued per type, so none is lost between
 * two waits. An `error` event fails every wait at once: none is expected
 * here (and a reconnect to /signal would make a new swarm).
 */
export class Stream {
  constructor(url, types, waitMs) {
    this.url = url;
    this.waitMs = waitMs;
    this.queues = new Map();
    this.waiters = new Map();
    this.errors = [];
    this.isOpen = false;
    this.openWaiters = [];
    this.es = new EventSource(url);
    this.es.onopen = () => {
      this.isOpen = true;
      this.openWaiters.splice(0).forEach((w) => w.resolve());
    };
    this.es.onerror = async () => {
      const closed = this.es.readyState === EventSource.CLOSED;
      let msg = `EventSource ${url}: error event (readyState ${this.es.readyState})`;
      // CLOSED means the browser refused the response for good: anything
      // but status 200 with Content-Type text/event-stream (WHATWG HTML,
      // "fail the connection"). Ask once more with fetch to say which.
      if (closed) msg += `; the response was refused: ${await diagnose(url, waitMs)}`;
      const err = new Error(msg);
      this.errors.push(err.message);
      this.openWaiters.splice(0).forEach((w) => w.reject(err));
      for (const ws of this.waiters.values()) ws.splice(0).forEach((w) => w.reject(err));
    };
    for (const type of types) {
      this.queues.set(type, []);
      this.waiters.set(type, []);
      this.es.addEventListener(type, (e) => {
        const w = this.waiters.get(type).shift();
        if (w) w.resolve(e);
        else this.queues.get(type).push(e);
      });
    }
  }

  /** Resolves when the response head arrived (the `open` event). */
  opened() {
    if (this.isOpen) return Promise.resolve();
    if (this.errors.length) return Promise.reject(new Error(this.errors[0]));
    const p = new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
    return timeout(p, this.waitMs, `open of ${this.url}`);
  }

  /** The next event of `type` (a MessageEvent), waiting at most waitMs. */
  next(type) {
    const q = this.queues.get(type);
    if (!q) throw new Error(`type ${type} not registered on ${this.url}`);
    if (q.length) return Promise.resolve(q.shift());
    if (this.errors.length) return Promise.reject(new Error(this.errors[0]));
    let entry;
    const p = new Promise((resolve, reject) => {
      entry = { resolve, reject };
      this.waiters.get(type).push(entry);
    });
    return timeout(p, this.waitMs, `event "${type}" on ${this.url}`).catch((e) => {
      const ws = this.waiters.get(type);
      const i = ws.indexOf(entry);
      if (i >= 0) ws.splice(i, 1);
      throw e;
    });
  }

  /** Events of `type` received and not yet taken. */
  pending(type) {
    return this.queues.get(type).length;
  }

  close() {
    this.es.close();
  }
}
