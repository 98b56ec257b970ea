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

const fs = require('fs');
const { assert, signIn, stepper } = require('./support');
const path = require('path');

const STEP_TIMEOUT_MS = Number(process.env.INSIGHTS_WEB_UI_STEP_MS || 60_000);
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const report = { steps: [] };

const step = stepper(report);
const login = signIn(spec, STEP_TIMEOUT_MS);

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
