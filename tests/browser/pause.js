// Issue 17 §1 in Debian's headless Chromium (playwright-core): the
// recorded user opens the page of their live call, pauses it with the
// button (the page says nothing is recorded, the timeline shows the
// paused interval), then resumes it (the interval is closed, who resumed
// is named). No Content-Security-Policy violation. Prints one JSON report
// {steps: [{name, ok, error?}]}.
//
//   node tests/browser/pause.js SPEC.json
//
// SPEC.json (written by tests/cli/pause.rs): base, tenant, password,
// user {email, seed}, recording, screenshots (a folder).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const STEP_TIMEOUT_MS = Number(process.env.INSIGHTS_WEB_UI_STEP_MS || 60_000);
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const report = { steps: [] };

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s).
function totp(seedBase32, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of seedBase32.replace(/=+$/, '').toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error('bad base32 seed');
    bits += v.toString(2).padStart(5, '0');
  }
  const key = Buffer.alloc(Math.floor(bits.length / 8));
  for (let i = 0; i < key.length; i++) key[i] = parseInt(bits.slice(i * 8, i * 8 + 8), 2);
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const h = crypto.createHmac('sha1', key).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}

async function step(name, fn) {
  try {
    await fn();
    report.steps.push({ name, ok: true });
  } catch (e) {
    report.steps.push({ name, ok: false, error: String(e && e.stack ? e.stack : e).slice(0, 2000) });
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function login(page, { email, seed }) {
  await page.goto(`${spec.base}/login`);
  await page.fill('#tenant', spec.tenant);
  await page.fill('#email', email);
  await page.fill('#password', spec.password);
  if (seed) await page.fill('#totp', totp(seed));
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: STEP_TIMEOUT_MS }), page.click('#sign-in')]);
}

(async () => {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({ executablePath, headless: true, timeout: STEP_TIMEOUT_MS, args: ['--no-sandbox', '--disable-gpu'] });
  const csp = [];
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = await ctx.newPage();
    page.on('console', (m) => { if (/Content Security Policy|Content-Security-Policy/i.test(m.text())) csp.push(m.text()); });
    await step('the recorded user pauses their live call from the recording page', async () => {
      await login(page, spec.user);
      await page.goto(`${spec.base}/recordings/${spec.recording}`);
      await page.waitForSelector('#live-box:not([hidden])');
      assert(await page.isVisible('#pause-recording'), 'pause button shown');
      assert(!(await page.isVisible('#resume-recording')), 'no resume button while recording');
      await page.click('#pause-recording');
      await page.waitForFunction(() => document.querySelector('#live-state').textContent.startsWith('Paused'));
      assert(await page.isVisible('#resume-recording'), 'resume button shown');
      await page.waitForSelector('#timeline-box:not([hidden]) #timeline .gap');
      const items = await page.$$eval('#gaps li', (l) => l.map((x) => x.textContent));
      assert(items.length === 1 && items[0].startsWith('Paused since') && items[0].endsWith('by you'), `one open gap listed: ${items}`);
      if (spec.screenshots) await page.screenshot({ path: path.join(spec.screenshots, 'recording-paused.png'), fullPage: true });
    });
    await step('and resumes it: the gap is closed and names who resumed', async () => {
      await page.waitForTimeout(1500);
      await page.click('#resume-recording');
      await page.waitForFunction(() => document.querySelector('#live-state').textContent === 'Recording.');
      assert(await page.isVisible('#pause-recording'), 'pause button shown again');
      const items = await page.$$eval('#gaps li', (l) => l.map((x) => x.textContent));
      assert(items.length === 1 && items[0].endsWith('by you, resumed by you') && !items[0].includes('since'), `the gap closed: ${items}`);
      const width = await page.$eval('#timeline .gap', (g) => g.getBoundingClientRect().width);
      assert(width >= 3, `the paused interval is drawn (${width}px)`);
    });
    await step('no Content-Security-Policy violation', async () => {
      assert(csp.length === 0, `CSP: ${csp.join(' | ')}`);
    });
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
})().catch((e) => {
  report.steps.push({ name: 'driver', ok: false, error: String(e && e.stack ? e.stack : e) });
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exitCode = 1;
});
