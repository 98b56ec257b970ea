// Issue 17 §3 in Debian's headless Chromium (playwright-core): the
// completeness page of a compliance officer after a reconciliation run
// shows the totals, draws the coverage per day as an SVG bar chart (one
// bar per day, heights from the API's figures, bars under the threshold
// marked), lists the gaps and drills down to a call (its gaps and
// recordings), with no serious accessibility violation (axe-core, evaluated
// through the DevTools protocol so the CSP stays on). Prints one JSON
// report {steps: [{name, ok, error?}], csp, axe}.
//
//   node tests/browser/completeness.js SPEC.json
//
// SPEC.json (written by tests/cli/completeness.rs): base, tenant,
// password, officer {email, seed}, from, to (YYYY-MM-DD, `to` inclusive),
// crash_call (a call id with a node-crash gap), screenshots (a folder, or
// null).
'use strict';

const fs = require('fs');
const { assert, signIn, stepper } = require('./support');
const path = require('path');

const STEP_TIMEOUT_MS = Number(process.env.INSIGHTS_WEB_UI_STEP_MS || 60_000);
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const report = { steps: [], csp: [], axe: [] };
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const step = stepper(report);
const login = signIn(spec, STEP_TIMEOUT_MS);

(async () => {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({ executablePath, headless: true, timeout: STEP_TIMEOUT_MS, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = await ctx.newPage();
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) report.csp.push(m.text()); });
    await step('an officer opens the completeness page from the navigation', async () => {
      await login(page, spec.officer);
      await page.waitForSelector('nav a[href="/completeness"]');
      await page.goto(`${spec.base}/completeness?from=${spec.from}&to=${spec.to}`);
      await page.waitForSelector('#totals dd[data-total="calls"]');
    });
    let api = null;
    await step('the totals are the API\'s', async () => {
      const end = new Date(`${spec.to}T00:00:00Z`);
      end.setUTCDate(end.getUTCDate() + 1);
      const to = end.toISOString().slice(0, 10);
      api = await page.evaluate(async (q) => (await fetch(`/api/completeness?${q}`)).json(), `from=${spec.from}&to=${to}`);
      const shown = await page.textContent('#totals dd[data-total="calls"]');
      assert(shown === String(api.totals.calls), `calls ${shown} vs ${api.totals.calls}`);
      const cov = await page.textContent('#totals dd[data-total="coverage"]');
      assert(cov === `${(api.totals.coverage_permille / 10).toFixed(1)} %`, cov);
    });
    await step('the chart draws one bar per day, as high as its coverage, red under the threshold', async () => {
      await page.waitForSelector('#coverage-chart rect.bar');
      const bars = await page.$$eval('#coverage-chart rect.bar', (rs) => rs.map((r) => ({
        day: r.getAttribute('data-day'), coverage: Number(r.getAttribute('data-coverage')),
        height: r.getBBox().height, below: r.classList.contains('below'),
        width: r.getBoundingClientRect().width,
      })));
      assert(bars.length === api.days.length && bars.length >= 2, `${bars.length} bars for ${api.days.length} days`);
      for (const [i, b] of bars.entries()) {
        const d = api.days[i];
        assert(b.day === d.day && b.coverage === d.totals.coverage_permille, JSON.stringify([b, d]));
        assert(b.width > 0, 'visible');
        assert(b.below === (d.totals.in_scope > 0 && d.totals.coverage_permille < api.threshold_permille), JSON.stringify(b));
      }
      // Heights are proportional to coverage (the tallest is the best day).
      const max = bars.reduce((a, b) => (b.coverage > a.coverage ? b : a));
      assert(bars.every((b) => b.height <= max.height + 0.01), 'the best day is the tallest');
      const th = await page.$('#coverage-chart line.threshold');
      assert(th, 'the threshold line is drawn');
    });
    if (spec.screenshots) {
      await page.setViewportSize({ width: 1280, height: 1500 });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(spec.screenshots, 'completeness.png') });
      await page.setViewportSize({ width: 1280, height: 1000 });
    }
    await step('the gaps are listed and a call drills down to its gaps and recordings', async () => {
      const rows = await page.$$eval('#calls tbody tr', (trs) => trs.map((t) => t.dataset.status));
      const want = api.calls.filter((c) => c.status === 'partial' || c.status === 'not-recorded').length;
      assert(rows.length === want && rows.every((s) => s === 'partial' || s === 'not-recorded'), `${rows.length} rows, ${want} gaps`);
      await page.click(`#calls tbody tr[data-call="${spec.crash_call}"] button`);
      await page.waitForSelector('#call-detail:not([hidden])');
      const text = await page.textContent('#detail-gaps');
      assert(/Recording node lost/.test(text), text);
      const link = await page.getAttribute('#detail a[href^="/recordings/"]', 'href');
      assert(link && link.length > 12, 'links the recording');
    });
    await step('no serious or critical accessibility violation (axe-core)', async () => {
      await page.evaluate(AXE_SOURCE);
      const res = await page.evaluate(async () => {
        // eslint-disable-next-line no-undef
        const r = await axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
      });
      report.axe = res.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      assert(!report.axe.length, JSON.stringify(report.axe));
    });
    await step('the .xlsx link carries the period', async () => {
      const href = await page.getAttribute('#download', 'href');
      assert(href.startsWith('/api/completeness/export.xlsx?from='), href);
      const res = await page.evaluate(async (h) => { const r = await fetch(h); return { s: r.status, t: r.headers.get('content-type') }; }, href);
      assert(res.s === 200 && res.t.includes('spreadsheetml'), JSON.stringify(res));
    });
    await ctx.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.steps.every((s) => s.ok) && !report.csp.length ? 0 : 1);
})().catch((e) => {
  report.steps.push({ name: 'driver', ok: false, error: String(e && e.stack ? e.stack : e) });
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(1);
});
