// Issue 13 §5 in Debian's headless Chromium (playwright-core): on a tenant
// that requires a reason for access and four-eyes approval, the recording
// page shows no transcript text of any kind (summary, segments) before
// the reason; a supervisor who gives the reason reaches the approval
// form; once an officer approves, the same page shows the summary and
// the transcript. Prints one JSON report {steps: [{name, ok, error?}]}.
//
//   node tests/browser/content_access.js SPEC.json
//
// SPEC.json (written by tests/cli/content_access.rs): base, tenant,
// password, supervisor {email, seed}, officer {email, seed}, recording,
// spoken (the transcript text that must not show early).
'use strict';

const fs = require('fs');
const { assert, signIn, stepper } = require('./support');

const STEP_TIMEOUT_MS = Number(process.env.INSIGHTS_WEB_UI_STEP_MS || 60_000);
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const report = { steps: [] };

const step = stepper(report);
const login = signIn(spec, STEP_TIMEOUT_MS);

// Everything the page shows or holds as text, hidden parts included.
async function pageText(page) {
  return page.evaluate(() => document.body.textContent);
}

(async () => {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({ executablePath, headless: true, timeout: STEP_TIMEOUT_MS, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const supCtx = await browser.newContext();
    supCtx.setDefaultTimeout(STEP_TIMEOUT_MS);
    const sup = await supCtx.newPage();
    const recording = `${spec.base}/recordings/${spec.recording}`;
    await step('the reason comes first: no summary or transcript before it', async () => {
      await login(sup, spec.supervisor);
      await sup.goto(recording);
      await sup.waitForSelector('#meta dt');
      await sup.waitForSelector('#reason-box:not([hidden])');
      assert(await sup.isHidden('#insights-box'), 'no summary box before the reason');
      assert(!(await pageText(sup)).includes(spec.spoken), 'no transcript text before the reason');
    });
    await step('after the reason, a supervisor reaches the approval form', async () => {
      await sup.fill('#reason', 'Case 77');
      await sup.click('#reason-form button[type=submit]');
      await sup.waitForSelector('#approval-box:not([hidden])');
      assert(await sup.isVisible('#request-form'), 'the request form is shown');
      assert(await sup.isHidden('#reason-box'), 'the reason is not asked again');
      assert(!(await pageText(sup)).includes(spec.spoken), 'no transcript text before an approval');
      await sup.fill('#request-reason', 'Case 77 coaching');
      await sup.click('#request-form button[type=submit]');
      await sup.waitForSelector('#request-state:not([hidden])');
    });
    await step('an officer approves; the supervisor then reads summary and transcript', async () => {
      const offCtx = await browser.newContext();
      offCtx.setDefaultTimeout(STEP_TIMEOUT_MS);
      const off = await offCtx.newPage();
      await login(off, spec.officer);
      await off.goto(`${spec.base}/access-requests`);
      await off.waitForSelector('#requests tbody tr button');
      await off.click('#requests tbody tr button:has-text("Approve")');
      await off.waitForFunction(() => document.querySelector('#requests tbody').textContent.includes('approved'));
      await offCtx.close();
      await sup.goto(recording);
      await sup.waitForSelector('#reason-box:not([hidden])');
      assert(!(await pageText(sup)).includes(spec.spoken), 'still nothing before the reason');
      await sup.fill('#reason', 'Case 77');
      await sup.click('#reason-form button[type=submit]');
      await sup.waitForSelector('#insights-box:not([hidden])');
      await sup.waitForFunction((w) => document.querySelector('#segments').textContent.includes(w), spec.spoken);
      assert((await sup.textContent('#insights')).includes(spec.spoken), 'the summary is shown');
      assert(await sup.isHidden('#approval-box'), 'no approval prompt once approved');
    });
    await supCtx.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.steps.every((s) => s.ok) ? 0 : 1);
})().catch((e) => {
  report.steps.push({ name: 'driver', ok: false, error: String(e && e.stack ? e.stack : e) });
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(1);
});
