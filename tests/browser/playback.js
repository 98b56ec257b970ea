// Plays Ogg Opus files in a real headless browser and prints what the
// browser saw as one JSON object on stdout. Driven by
// tests/tests/browser_playback.rs, which makes the recordings and asserts
// on the JSON; run by hand with
//
//   node tests/browser/playback.js chromium|firefox SPEC.json
//
// SPEC.json: {"files": [{"name": "call.opus", "path": "/abs/call.opus",
//              "windows": [[0.1, 1.4], ...]}]}
//
// The files are served by a tiny HTTP server on 127.0.0.1, port 0 (with
// byte ranges, as a media element asks for them), next to an empty page of
// the same origin. In that page, for every file at once:
//   * an <audio> element loads it until `canplaythrough`, reports its
//     duration, then plays it (muted) until `ended`;
//   * fetch + Web Audio `decodeAudioData` (OfflineAudioContext at 48 kHz,
//     Opus' own rate, so nothing is resampled) reports channel count,
//     sample rate, duration and the RMS level (dBFS) of each channel in
//     each window (seconds).
// Also `canPlayType('audio/ogg; codecs=opus')`. One browser launch for
// all files. Chromium is driven by playwright-core, Firefox by
// puppeteer-core over WebDriver BiDi; both use the Debian packages
// (/usr/bin/chromium, /usr/bin/firefox-esr; override with
// INSIGHTS_TEST_CHROMIUM / INSIGHTS_TEST_FIREFOX) and never download one.
//
// Exit status: 0 when the JSON was printed (whatever it says: the Rust
// test judges it), 1 with a message on stderr when the browser could not
// be run at all, 2 on bad usage.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

// Generous: CI runs many test processes at once on two cores.
const STEP_TIMEOUT_MS = 90_000;
const OVERALL_TIMEOUT_MS = 240_000;

function usage(msg) {
  console.error(`playback.js: ${msg}\nusage: node playback.js chromium|firefox SPEC.json`);
  process.exit(2);
}

// ---- the page side: runs inside the browser ---------------------------------
// Self-contained: it is serialised into the page by page.evaluate.
async function checkAll({ files, stepTimeoutMs }) {
  const withTimeout = (what, promise) => {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${stepTimeoutMs} ms`)), stepTimeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  };
  const errorText = (e) => (e && e.message ? e.message : String(e));

  // Resolves on the first of `events` (a name → value function), rejects
  // on the element's `error` event.
  const once = (el, events) =>
    new Promise((resolve, reject) => {
      const handlers = {};
      const off = () => {
        for (const [name, h] of Object.entries(handlers)) el.removeEventListener(name, h);
      };
      for (const [name, value] of Object.entries(events)) {
        handlers[name] = () => { off(); resolve(value()); };
      }
      handlers.error = () => {
        off();
        const err = el.error;
        reject(new Error(`media error ${err ? err.code : '?'}: ${err && err.message ? err.message : 'no message'}`));
      };
      for (const [name, h] of Object.entries(handlers)) el.addEventListener(name, h);
    });

  async function audioElement(file) {
    const out = { ok: false, error: null };
    const a = document.createElement('audio');
    a.preload = 'auto';
    a.muted = true;
    document.body.appendChild(a);
    try {
      const ready = once(a, { canplaythrough: () => true });
      a.src = file.url;
      await withTimeout('<audio> canplaythrough', ready);
      out.canPlayThrough = true;
      out.duration = a.duration;
      out.readyState = a.readyState;
      let playing = false;
      a.addEventListener('playing', () => { playing = true; });
      const ended = once(a, { ended: () => true });
      await withTimeout('<audio> play()', a.play());
      await withTimeout('<audio> ended', ended);
      out.playing = playing;
      out.ended = a.ended;
      out.endedAt = a.currentTime;
      out.ok = true;
    } catch (e) {
      out.error = errorText(e);
    } finally {
      a.removeAttribute('src');
      a.load();
      a.remove();
    }
    return out;
  }

  async function webAudio(file) {
    const out = { ok: false, error: null };
    try {
      const response = await withTimeout('fetch', fetch(file.url));
      if (!response.ok) throw new Error(`fetch answered ${response.status}`);
      const bytes = await response.arrayBuffer();
      const ctx = new OfflineAudioContext(1, 1, 48000);
      const buffer = await withTimeout('decodeAudioData', ctx.decodeAudioData(bytes));
      out.channels = buffer.numberOfChannels;
      out.sampleRate = buffer.sampleRate;
      out.length = buffer.length;
      out.duration = buffer.duration;
      out.windows = file.windows.map(([start, end]) => {
        const from = Math.max(0, Math.round(start * buffer.sampleRate));
        const to = Math.min(buffer.length, Math.round(end * buffer.sampleRate));
        const rmsDb = [];
        for (let ch = 0; ch < buffer.numberOfChannels; ch++) {
          const x = buffer.getChannelData(ch);
          let sum = 0;
          for (let i = from; i < to; i++) sum += x[i] * x[i];
          const rms = to > from ? Math.sqrt(sum / (to - from)) : 0;
          // -200 stands for digital silence (log of zero).
          rmsDb.push(rms > 0 ? 20 * Math.log10(rms) : -200);
        }
        return { start, end, rmsDb };
      });
      out.ok = true;
    } catch (e) {
      out.error = errorText(e);
    }
    return out;
  }

  const probe = document.createElement('audio');
  const canPlayType = probe.canPlayType('audio/ogg; codecs=opus');
  const results = await Promise.all(
    files.map(async (file) => {
      const [audio, decode] = await Promise.all([audioElement(file), webAudio(file)]);
      return { name: file.name, audio, decode };
    }),
  );
  return { userAgent: navigator.userAgent, canPlayType, files: results };
}

// ---- the server: the page and the files, over HTTP on port 0 -------------------
function serve(files) {
  const byName = new Map(files.map((f) => [f.name, fs.readFileSync(f.path)]));
  const requests = new Map(files.map((f) => [f.name, { full: 0, ranges: 0 }]));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end('<!doctype html><title>playback</title><body></body>');
      return;
    }
    const name = url.pathname.startsWith('/media/') ? decodeURIComponent(url.pathname.slice(7)) : null;
    const body = name !== null ? byName.get(name) : undefined;
    if (body === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    const headers = { 'content-type': 'audio/ogg', 'accept-ranges': 'bytes', 'cache-control': 'no-store' };
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
    if (!range || (range[1] === '' && range[2] === '')) {
      requests.get(name).full++;
      res.writeHead(200, { ...headers, 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    let start;
    let end;
    if (range[1] === '') {
      // Suffix range: the last N bytes.
      start = Math.max(0, body.length - Number(range[2]));
      end = body.length - 1;
    } else {
      start = Number(range[1]);
      end = range[2] === '' ? body.length - 1 : Math.min(Number(range[2]), body.length - 1);
    }
    if (start >= body.length || start > end) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${body.length}` });
      res.end();
      return;
    }
    requests.get(name).ranges++;
    res.writeHead(206, {
      ...headers,
      'content-range': `bytes ${start}-${end}/${body.length}`,
      'content-length': end - start + 1,
    });
    res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, requests, base: `http://127.0.0.1:${server.address().port}` }));
  });
}

// ---- the browsers ----------------------------------------------------------------
async function launchChromium() {
  const executablePath = process.env.INSIGHTS_TEST_CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new Error(`Chromium is not installed at ${executablePath} (Debian package "chromium"; scripts/test.sh installs it)`);
  }
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: STEP_TIMEOUT_MS,
    args: ['--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required'],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  return { name: 'chromium', version: browser.version(), page, close: () => browser.close() };
}

async function launchFirefox() {
  const executablePath = process.env.INSIGHTS_TEST_FIREFOX || '/usr/bin/firefox-esr';
  if (!fs.existsSync(executablePath)) {
    throw new Error(`Firefox is not installed at ${executablePath} (Debian package "firefox-esr"; scripts/test.sh installs it)`);
  }
  const puppeteer = require('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath,
    headless: true,
    timeout: STEP_TIMEOUT_MS,
    protocolTimeout: STEP_TIMEOUT_MS,
    extraPrefsFirefox: { 'media.autoplay.default': 0, 'media.autoplay.blocking_policy': 0 },
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  return { name: 'firefox', version: await browser.version(), page, close: () => browser.close() };
}

async function main() {
  const [which, specPath] = process.argv.slice(2);
  const launch = { chromium: launchChromium, firefox: launchFirefox }[which];
  if (!launch || !specPath) usage('expected a browser name and a spec file');
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
  if (!Array.isArray(spec.files) || spec.files.length === 0) usage('the spec names no files');

  const { server, requests, base } = await serve(spec.files);
  let browser;
  try {
    browser = await launch();
    await browser.page.goto(`${base}/`);
    const files = spec.files.map((f) => ({
      name: f.name,
      url: `${base}/media/${encodeURIComponent(f.name)}`,
      windows: f.windows || [],
    }));
    const result = await browser.page.evaluate(checkAll, { files, stepTimeoutMs: STEP_TIMEOUT_MS });
    for (const f of result.files) f.requests = requests.get(f.name);
    process.stdout.write(`${JSON.stringify({ browser: browser.name, version: browser.version, ...result })}\n`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.close();
  }
}

const overall = setTimeout(() => {
  console.error(`playback.js: gave up after ${OVERALL_TIMEOUT_MS} ms`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
overall.unref();

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`playback.js: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
