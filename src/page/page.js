'use strict';
// weir's page: send a file or a text to a path, receive a path.
// Served inline with a per-response nonce (src/page/mod.rs); talks only to
// this origin: PUT /<path> to send, GET /<path> to receive, GET
// /status/<path> for what the relay knows while a send is running.
(() => {
  const $ = (id) => document.getElementById(id);
  const origin = location.origin;

  // --- formatting -----------------------------------------------------------
  const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];
  function bytes(n) {
    let i = 0;
    while (n >= 1000 && i < UNITS.length - 1) { n /= 1000; i += 1; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + UNITS[i];
  }
  function duration(s) {
    if (!Number.isFinite(s) || s < 0) return '';
    if (s < 60) return Math.ceil(s) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
  }

  // --- paths ----------------------------------------------------------------
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // 16 characters of 6 random bits each: 96 bits, not guessable.
  function randomPath() {
    const raw = new Uint8Array(16);
    crypto.getRandomValues(raw);
    return Array.from(raw, (b) => ALPHABET[b & 63]).join('');
  }
  const RESERVED = ['', 'help', 'version', 'healthz', 'metrics', 'robots.txt', 'favicon.ico', 'noscript', 'qr'];
  const RESERVED_PREFIX = ['s', 'reserve', 'signal', 'events', 'sockjs', 'status'];
  // The path as typed, without leading or trailing slashes; or an error.
  function cleanPath(raw) {
    const p = raw.trim().replace(/^\/+|\/+$/g, '');
    if (!p) return { error: 'Choose a path first.' };
    if (!/^[A-Za-z0-9._~\-/]+$/.test(p)) return { error: 'A path may hold letters, digits and - _ . ~ /.' };
    if (p.length > 200) return { error: 'A path is 200 characters at most.' };
    if (RESERVED.includes(p) || RESERVED_PREFIX.includes(p.split('/')[0])) {
      return { error: '/' + p + ' is the relay\'s own; choose another path.' };
    }
    return { path: p };
  }
  const pipeUrl = (p) => origin + '/' + p;
  const receiveLink = (p) => origin + '/#receive=' + p;

  // --- tabs -----------------------------------------------------------------
  function show(which) {
    for (const t of ['send', 'receive']) {
      $('tab-' + t).setAttribute('aria-selected', String(t === which));
      $(t).hidden = t !== which;
    }
  }
  $('tab-send').addEventListener('click', () => show('send'));
  $('tab-receive').addEventListener('click', () => show('receive'));
  $('origin').textContent = origin + '/';
  $('rorigin').textContent = origin + '/';

  // --- progress display -----------------------------------------------------
  // A progress box: bar, one state line, one detail line (bytes, rate, time left).
  function Progress(prefix) {
    const bar = $(prefix + '-bar');
    const state = $(prefix + '-state');
    const detail = $(prefix + '-detail');
    let samples = [];
    return {
      start() {
        $(prefix + '-progress').hidden = false;
        bar.removeAttribute('value');
        samples = [];
        this.say('', '');
      },
      say(text, kind) {
        state.textContent = text;
        state.className = 'state' + (kind ? ' ' + kind : '');
      },
      // `done` bytes of `total` (null: unknown); the bar stays short of
      // full until `complete` says the receiver has everything.
      update(done, total, complete) {
        const now = performance.now();
        samples.push([now, done]);
        while (samples.length > 2 && now - samples[0][0] > 3000) samples.shift();
        const [t0, d0] = samples[0];
        const rate = now > t0 ? ((done - d0) * 1000) / (now - t0) : 0;
        let text = bytes(done);
        if (total !== null) {
          let frac = total > 0 ? done / total : 1;
          if (!complete) frac = Math.min(frac, 0.999);
          bar.value = frac;
          text += ' of ' + bytes(total) + ' (' + Math.floor(frac * 100) + ' %)';
        } else if (complete) {
          bar.value = 1;
        } else {
          bar.removeAttribute('value');
        }
        if (!complete && rate > 0) {
          text += ' · ' + bytes(Math.round(rate)) + '/s';
          if (total !== null) text += ' · ' + duration((total - done) / rate) + ' left';
        }
        detail.textContent = text;
      },
      finish(ok) {
        if (ok) bar.value = 1;
      },
    };
  }

  // --- copy buttons ---------------------------------------------------------
  document.addEventListener('click', (e) => {
    const id = e.target instanceof HTMLElement && e.target.dataset.copy;
    if (!id) return;
    const input = $(id);
    const done = () => { e.target.textContent = 'Copied'; setTimeout(() => { e.target.textContent = 'Copy'; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, () => {});
    } else {
      input.select();
      try { if (document.execCommand('copy')) done(); } catch (_) { /* selected: copy by hand */ }
    }
  });

  // --- send -----------------------------------------------------------------
  const sendForm = $('send-form');
  const fileInput = $('file');
  const pathInput = $('path');
  const sendProgress = Progress('send');
  let sending = null;

  const mode = () => sendForm.elements.mode.value;
  function syncMode() {
    $('file-box').hidden = mode() !== 'file';
    $('text-box').hidden = mode() !== 'text';
  }
  for (const r of sendForm.elements.mode) r.addEventListener('change', syncMode);
  syncMode();
  function syncFileLabel() {
    const f = fileInput.files[0];
    $('drop-label').textContent = f ? f.name + ' (' + bytes(f.size) + ')' : 'Drop a file here, or tap to choose one';
  }
  fileInput.addEventListener('change', syncFileLabel);
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer && e.dataTransfer.files.length) {
      fileInput.files = e.dataTransfer.files;
      syncFileLabel();
    }
  });

  function share(p, name) {
    const link = receiveLink(p);
    const out = name ? name.replace(/[^A-Za-z0-9._-]/g, '_') : '';
    $('share-curl').value = 'curl ' + pipeUrl(p) + (out ? ' > ' + out : '');
    $('share-link').value = link;
    $('qr').src = '/qr?t=' + encodeURIComponent(link);
    $('share').hidden = false;
  }
  function proposePath() {
    pathInput.value = randomPath();
    share(pathInput.value, '');
  }
  $('fresh').addEventListener('click', proposePath);
  pathInput.addEventListener('change', () => {
    const c = cleanPath(pathInput.value);
    if (c.path) share(c.path, '');
  });

  // `attachment; filename="<ascii>"; filename*=UTF-8''<pct>` (RFC 6266).
  function disposition(name) {
    const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
    const ext = encodeURIComponent(name).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
    return 'attachment; filename="' + ascii + '"; filename*=UTF-8\'\'' + ext;
  }

  function setSending(on) {
    $('send-button').disabled = on;
    $('cancel').hidden = !on;
    for (const el of sendForm.querySelectorAll('input, textarea, #fresh')) el.disabled = on;
  }

  sendForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (sending) return;
    const c = cleanPath(pathInput.value);
    if (c.error) { sendProgress.start(); sendProgress.say(c.error, 'bad'); return; }
    const n = Math.max(1, Math.min(16, Number($('n').value) || 1));
    let body;
    let type;
    let name = '';
    if (mode() === 'file') {
      const f = fileInput.files[0];
      if (!f) { sendProgress.start(); sendProgress.say('Choose a file first.', 'bad'); return; }
      body = f;
      type = f.type || 'application/octet-stream';
      name = f.name;
    } else {
      type = 'text/plain; charset=utf-8';
      body = new Blob([$('text').value], { type });
    }
    share(c.path, name);
    send(c.path, n, body, type, name);
  });

  function send(p, n, body, type, name) {
    const total = body.size;
    const xhr = new XMLHttpRequest();
    const s = { xhr, p, n, total, over: false, read: 0, timer: 0, streaming: false };
    sending = s;
    delete document.body.dataset.delivered;
    setSending(true);
    sendProgress.start();
    sendProgress.say('Connecting…');
    xhr.open('PUT', pipeUrl(p) + (n > 1 ? '?n=' + n : ''));
    xhr.setRequestHeader('Content-Type', type);
    if (name) xhr.setRequestHeader('Content-Disposition', disposition(name));
    const end = (ok, text) => {
      if (s.over) return;
      s.over = true;
      clearTimeout(s.timer);
      sending = null;
      setSending(false);
      if (ok) sendProgress.update(total, total, true);
      sendProgress.finish(ok);
      sendProgress.say(text, ok ? 'ok' : 'bad');
      document.body.dataset.send = ok ? 'done' : 'cut';
    };
    xhr.onload = () => {
      // The last line tells the truth: written once every receiver has everything.
      const lines = xhr.responseText.trim().split('\n');
      const last = lines[lines.length - 1] || '';
      if (xhr.status === 200 && /^\[INFO\] Sent successfully/.test(last)) {
        end(true, 'Done: ' + (n > 1 ? 'all ' + n + ' receivers have' : 'the receiver has') + ' everything (' + bytes(total) + ').');
      } else if (xhr.status !== 200) {
        // Refused before anything moved (a busy path, a limit): nothing was sent.
        end(false, 'Not sent: ' + (last.replace(/^\[ERROR\] /, '') || 'the relay answered ' + xhr.status));
      } else {
        end(false, 'Cut: ' + (last.replace(/^\[ERROR\] /, '') || 'the transfer ended early'));
      }
    };
    xhr.onerror = () => end(false, 'Cut: the connection to the relay failed; the receiver got an incomplete transfer.');
    // Bytes already handed to the network still reach the relay after an
    // abort: only when it had not read them all is the receiver's copy cut.
    xhr.onabort = () => end(false, s.read >= total && total > 0
      ? 'Cancelled too late: the relay had already read every byte, so the receiver gets it all.'
      : 'Cut: cancelled after ' + bytes(s.read) + ' of ' + bytes(total) + ' reached the relay. The receiver sees an incomplete transfer.');
    xhr.send(body);
    document.body.dataset.send = 'running';
    poll(s);
  }

  // Ask the relay how far the receivers are, until the send ends.
  async function poll(s) {
    if (s.over) return;
    try {
      const r = await fetch('/status/' + s.p, { cache: 'no-store' });
      const st = await r.json();
      if (s.over) return;
      if (st.state === 'waiting') {
        const want = st.n - st.receivers;
        sendProgress.say(st.receivers === 0
          ? 'Waiting for the receiver' + (st.n > 1 ? 's (' + st.n + ')' : '') + '…'
          : 'Waiting for ' + want + ' more receiver' + (want > 1 ? 's' : '') + '…');
        sendProgress.update(0, s.total, false);
      } else if (st.state === 'streaming' || st.state === 'finishing') {
        s.streaming = true;
        s.read = st.read;
        sendProgress.say('Sending to ' + st.receivers + ' receiver' + (st.receivers > 1 ? 's' : '') + '…');
        sendProgress.update(st.delivered, s.total, false);
        document.body.dataset.delivered = String(st.delivered);
      } else if (s.streaming) {
        sendProgress.say('Finishing…');
      }
    } catch (_) {
      // A missed poll is retried; the send's own end decides the outcome.
    }
    if (!s.over) s.timer = setTimeout(() => poll(s), 250);
  }

  $('cancel').addEventListener('click', () => {
    if (sending) sending.xhr.abort();
  });

  // --- receive --------------------------------------------------------------
  const receiveForm = $('receive-form');
  const rpath = $('rpath');
  const receiveProgress = Progress('receive');
  let receiving = null;
  const canSaveToDisk = typeof window.showSaveFilePicker === 'function';
  $('receive-disk').hidden = !canSaveToDisk;
  $('memory-note').textContent = canSaveToDisk
    ? 'Receive keeps the file in this tab\'s memory until it is complete; "Receive to a file" writes it to disk as it arrives.'
    : 'This browser cannot write to disk as the bytes arrive: it keeps the file in memory until it is complete, then offers to save it.';

  // The name from `Content-Disposition` (filename* wins), else the path's last part.
  function filenameOf(cd, p) {
    if (cd) {
      const ext = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(cd);
      if (ext) { try { return decodeURIComponent(ext[1].trim()); } catch (_) { /* fall back */ } }
      const plain = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(cd) || /filename\s*=\s*([^;\s]+)/i.exec(cd);
      if (plain) return plain[1].replace(/\\(.)/g, '$1');
    }
    return p.split('/').pop() || 'download';
  }

  function setReceiving(on) {
    $('receive-button').disabled = on;
    $('receive-disk').disabled = on;
    $('receive-cancel').hidden = !on;
    rpath.disabled = on;
  }

  async function receive(toDisk) {
    if (receiving) return;
    const c = cleanPath(rpath.value);
    if (c.error) { receiveProgress.start(); receiveProgress.say(c.error, 'bad'); return; }
    let writable = null;
    if (toDisk) {
      try {
        const handle = await window.showSaveFilePicker({ suggestedName: c.path.split('/').pop() });
        writable = await handle.createWritable();
      } catch (_) {
        return; // the person closed the picker
      }
    }
    const ctl = new AbortController();
    receiving = ctl;
    setReceiving(true);
    $('received-text').hidden = true;
    const save = $('save');
    save.hidden = true;
    if (save.href) URL.revokeObjectURL(save.href);
    receiveProgress.start();
    receiveProgress.say('Waiting for the sender…');
    document.body.dataset.receive = 'waiting';
    let got = 0;
    let total = null;
    try {
      const res = await fetch(pipeUrl(c.path), { signal: ctl.signal, cache: 'no-store' });
      if (!res.ok) {
        const why = (await res.text()).trim().replace(/^\[ERROR\] /, '');
        throw new Error(why || 'the relay answered ' + res.status);
      }
      const type = res.headers.get('Content-Type') || 'application/octet-stream';
      const len = res.headers.get('Content-Length');
      total = len === null ? null : Number(len);
      const name = filenameOf(res.headers.get('Content-Disposition'), c.path);
      receiveProgress.say('Receiving ' + name + '…');
      document.body.dataset.receive = 'running';
      const reader = res.body.getReader();
      const chunks = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.length;
        if (writable) await writable.write(value); else chunks.push(value);
        receiveProgress.update(got, total, false);
      }
      if (total !== null && got !== total) throw new Error('the sender left: ' + got + ' of ' + total + ' bytes');
      receiveProgress.update(got, total === null ? got : total, true);
      if (writable) {
        await writable.close();
        receiveProgress.say('Done: ' + name + ' (' + bytes(got) + ') is saved.', 'ok');
      } else {
        const blob = new Blob(chunks, { type });
        if (/^text\//i.test(type)) {
          const pre = $('received-text');
          pre.textContent = await blob.slice(0, 1 << 20).text();
          pre.hidden = false;
        }
        save.href = URL.createObjectURL(blob);
        save.download = name;
        save.textContent = 'Save ' + name + ' (' + bytes(got) + ')';
        save.hidden = false;
        receiveProgress.say('Done: ' + bytes(got) + ' received.', 'ok');
      }
      receiveProgress.finish(true);
      document.body.dataset.receive = 'done';
      document.body.dataset.received = String(got);
    } catch (err) {
      if (writable) await writable.abort().catch(() => {});
      const why = ctl.signal.aborted ? 'cancelled' : (err && err.message) || String(err);
      receiveProgress.say('Cut: ' + why + '. What arrived is incomplete' + (got ? ' (' + bytes(got) + ')' : '') + '.', 'bad');
      document.body.dataset.receive = 'cut';
    } finally {
      receiving = null;
      setReceiving(false);
    }
  }
  receiveForm.addEventListener('submit', (e) => { e.preventDefault(); receive(false); });
  $('receive-disk').addEventListener('click', () => receive(true));
  $('receive-cancel').addEventListener('click', () => { if (receiving) receiving.abort(); });

  // --- start ----------------------------------------------------------------
  const m = /^#receive=(.+)$/.exec(location.hash);
  if (m) {
    let p = m[1];
    try { p = decodeURIComponent(p); } catch (_) { /* as is */ }
    rpath.value = p;
    show('receive');
    receive(false);
  } else {
    proposePath();
  }
  document.body.dataset.ready = '1';
})();
