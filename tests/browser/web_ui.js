// Drives the Insights web UI in Debian's headless Chromium (playwright-core)
// against a server the Rust test (tests/cli/web_ui.rs) started with real
// recordings, and prints one JSON report on stdout:
//   {steps: [{name, ok, error?}], playback: {...}, axe: {page: [violations]},
//    export_file, csp_violations: [...]}
// Every step runs even when an earlier independent one failed, so one
// report names every failure. Run by hand with
//
//   node tests/browser/web_ui.js SPEC.json
//
// SPEC.json (written by the Rust test): base, tenant, password,
// admin {email, seed}, admin2 {email, seed}, officer {email, seed}, supervisor {email, seed},
// operator {email, seed}, dpo {email, seed},
// recording, other_recording, number, word, export_columns, screenshots,
// downloads.
//
// axe-core is evaluated in the page through the DevTools protocol (not a
// <script> tag), so the page's strict CSP stays on. Exit status: 0 when
// the report was printed and every step passed, 1 otherwise.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const STEP_TIMEOUT_MS = Number(process.env.INSIGHTS_WEB_UI_STEP_MS || 60_000);

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const report = { steps: [], playback: {}, axe: {}, export_file: null, csp_violations: [] };
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), as authenticator apps compute it.
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
  const t0 = Date.now();
  try {
    await fn();
    report.steps.push({ name, ok: true, ms: Date.now() - t0 });
  } catch (e) {
    report.steps.push({ name, ok: false, error: String(e && e.stack ? e.stack : e).slice(0, 2000) });
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(spec.screenshots, `${name}.png`), fullPage: true });
}

async function axe(page, name) {
  await page.evaluate(AXE_SOURCE);
  const res = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  report.axe[name] = res.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

function watch(page, who) {
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) report.csp_violations.push(`${who}: ${m.text()}`);
  });
  page.on('pageerror', (e) => report.csp_violations.push(`${who}: page error: ${e.message}`));
}

// The 30 s step each seed last signed in with: a code is accepted once,
// so a second sign-in of the same account waits for the next step.
const lastStep = new Map();

async function login(page, who, { tenant, email, seed }) {
  await page.goto(`${spec.base}/login`);
  if (tenant) await page.fill('#tenant', tenant);
  await page.fill('#email', email);
  await page.fill('#password', spec.password);
  if (seed) {
    while (lastStep.get(seed) === Math.floor(Date.now() / 30000)) {
      await new Promise((r) => setTimeout(r, 1000));
    }
    lastStep.set(seed, Math.floor(Date.now() / 30000));
    await page.fill('#totp', totp(seed));
  }
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: STEP_TIMEOUT_MS }), page.click('#sign-in')]);
}

// Plays once the player has its source and metadata (the page sets the
// source after the transcript, or from a blob after a reason is given).
async function playNow(page) {
  await page.waitForFunction(() => { const a = document.querySelector('#player'); return a.currentSrc !== '' && a.readyState >= 1; });
  await page.evaluate(() => document.querySelector('#player').play());
}

async function resultIds(page) {
  return page.$$eval('#results tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
}

async function search(page, fill) {
  for (const sel of ['#f-participant', '#f-words', '#f-min', '#f-max']) {
    if (await page.$(sel)) await page.fill(sel, '');
  }
  for (const [sel, v] of Object.entries(fill)) await page.fill(sel, v);
  await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
  await page.click('#search-button');
  await page.waitForFunction(() => document.querySelector('#status').textContent.includes('found'));
}

// Issue 19 §4: an administrator adds a DPO in the users page (the
// least privileged role preselected; an internationalised e-mail); the
// DPO's first sign-in enrols TOTP from the key shown to them (typed with
// a space, the organisation in capitals), sets a password and reaches
// their pages; a reused code gets its own message; role and active
// changes ask first and Cancel puts them back; resetting the DPO's
// second factor signs them out and makes them enrol again; resetting an
// administrator's password waits for a second administrator.
async function usersAndFirstSignIn(browser, page) {
  const NEW_DPO = 'zoë.dpo@contoso.com';
  const INITIAL = 'initial password typed in the UI';
  const OWN = 'the new DPO chose this passphrase';
  await page.goto(`${spec.base}/admin/users`);
  await page.waitForSelector('#users tbody tr[data-id]');
  const preselected = await page.$eval('#u-role', (s) => s.value);
  assert(preselected === 'user', `the add-user role defaults to ${preselected}`);
  await page.fill('#u-email', NEW_DPO);
  await page.fill('#u-password', INITIAL);
  await page.selectOption('#u-role', 'dpo');
  await page.click('#add-user');
  await page.waitForSelector('#enrolment:not([hidden])');
  const next = await page.textContent('#enrolment');
  assert(next.includes(NEW_DPO) && /authenticator/.test(next), `enrolment step: ${next}`);
  // A DPO has permissions an administrator does not hold (gdpr-actions):
  // a second administrator approves the new account.
  assert(await page.isVisible('#enrolment-pending'), 'the account waits for a second administrator');
  await page.waitForFunction((e) => document.querySelector('#changes tbody').textContent.includes(e), NEW_DPO);
  await axe(page, 'users-added');
  await shot(page, 'users-added');
  const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  ctx2.setDefaultTimeout(STEP_TIMEOUT_MS);
  const second = await ctx2.newPage();
  watch(second, 'admin2');
  await login(second, 'admin2', { tenant: spec.tenant, email: spec.admin2.email, seed: spec.admin2.seed });
  await second.goto(`${spec.base}/admin/users`);
  await second.waitForFunction((e) => document.querySelector('#changes tbody').textContent.includes(e), NEW_DPO);
  await second.click('#changes tbody tr button:has-text("Approve")');
  await second.waitForSelector(`#users tbody tr[data-email="${NEW_DPO}"]`);
  await page.reload();
  const row = `#users tbody tr[data-email="${NEW_DPO}"]`;
  await page.waitForSelector(row);

  // Role change (of the supervisor): Cancel reverts the select, OK saves
  // it (and back again).
  const supRow = `#users tbody tr[data-email="${spec.supervisor.email}"]`;
  let asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.dismiss(); });
  await page.selectOption(`${supRow} select.role-select`, 'user');
  await page.waitForFunction((r) => document.querySelector(`${r} select.role-select`).value === 'supervisor', supRow);
  assert(/supervisor to user/.test(asked), `confirmation: ${asked}`);
  for (const to of ['user', 'supervisor']) {
    await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
    page.once('dialog', (d) => d.accept());
    await page.selectOption(`${supRow} select.role-select`, to);
    await page.waitForFunction(() => document.querySelector('#status').textContent.includes('saved'));
    await page.waitForFunction(([r, t]) => { const x = document.querySelector(`${r} select.role-select`); return x && x.value === t; }, [supRow, to]);
  }

  // Switching off: Cancel leaves it on.
  page.once('dialog', (d) => d.dismiss());
  await page.click(`${row} input.active-box`);
  await page.waitForFunction((r) => document.querySelector(`${r} input.active-box`).checked === true, row);

  // The DPO's first sign-in, in a browser of their own.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
  const d = await ctx.newPage();
  watch(d, 'new-dpo');
  const signIn = async (code) => {
    await d.goto(`${spec.base}/login`);
    await d.fill('#tenant', spec.tenant.toUpperCase());
    await d.fill('#email', NEW_DPO);
    await d.fill('#password', OWN);
    if (code) await d.fill('#totp', code);
    await d.click('#sign-in');
  };
  await d.goto(`${spec.base}/login`);
  await d.fill('#tenant', spec.tenant.toUpperCase());
  await d.fill('#email', NEW_DPO);
  await d.fill('#password', INITIAL);
  await d.click('#sign-in');
  await d.waitForSelector('#first-card:not([hidden])');
  await d.waitForSelector('#enrol:not([hidden])');
  const seed = (await d.textContent('#totp-secret')).trim();
  const href = await d.getAttribute('#totp-uri', 'href');
  assert(/^[A-Z2-7]{16,}=*$/.test(seed), `the key shown: ${seed}`);
  assert(href.startsWith('otpauth://totp/') && href.includes(`secret=${seed}`), `the link: ${href}`);
  await axe(d, 'first-sign-in');
  await shot(d, 'first-sign-in');
  const code = totp(seed);
  lastStep.set(seed, Math.floor(Date.now() / 30000));
  await d.fill('#first-totp', `${code.slice(0, 3)} ${code.slice(3)}`);
  await d.fill('#new-password', OWN);
  await d.fill('#new-password-again', OWN);
  await d.click('#finish');
  await d.waitForSelector('#codes-card:not([hidden])');
  const codes = await d.$$eval('#recovery-codes li', (l) => l.length);
  assert(codes === 10, `recovery codes: ${codes}`);
  await Promise.all([d.waitForURL((u) => !u.pathname.startsWith('/login')), d.click('#codes-done')]);
  await d.goto(`${spec.base}/gdpr`);
  await d.waitForSelector('#g-phone');
  assert(new URL(d.url()).pathname === '/gdpr', `the DPO reached ${d.url()}`);

  // The same code again: its own message.
  await d.click('#logout');
  await d.waitForURL('**/login');
  await signIn(code);
  await d.waitForSelector('#error:not([hidden])');
  const reused = await d.textContent('#error');
  assert(/already used/i.test(reused) && /next code/i.test(reused), `reused code: ${reused}`);

  // A fresh code (with a space, as apps show it) signs them in.
  while (lastStep.get(seed) === Math.floor(Date.now() / 30000)) await new Promise((r) => setTimeout(r, 1000));
  lastStep.set(seed, Math.floor(Date.now() / 30000));
  const fresh = totp(seed);
  await signIn(`${fresh.slice(0, 3)} ${fresh.slice(3)}`);
  await d.waitForURL((u) => !u.pathname.startsWith('/login'));

  // The admin resets the DPO's second factor (the DPO has permissions
  // administrators lack, so a second administrator approves): the DPO is
  // signed out and enrols a new authenticator at the next sign-in (no
  // new password).
  await page.reload();
  await page.waitForSelector(row);
  await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
  page.once('dialog', (x) => x.accept());
  await page.click(`${row} button.reset-factor`);
  await page.waitForFunction(() => document.querySelector('#status').textContent.includes('second administrator'));
  const still = await d.goto(`${spec.base}/gdpr`);
  assert(new URL(d.url()).pathname === '/gdpr', `not yet reset: ${d.url()} (${still.status()})`);
  await second.reload();
  await second.waitForFunction(() => document.querySelector('#changes tbody').textContent.includes('Reset the second factor of'));
  await second.click('#changes tbody tr:has-text("Reset the second factor of") button:has-text("Approve")');
  await second.waitForFunction(() => !document.querySelector('#changes tbody').textContent.includes('Reset the second factor of'));
  await ctx2.close();
  const res = await d.goto(`${spec.base}/gdpr`);
  assert(new URL(d.url()).pathname === '/login', `after the reset the DPO is at ${d.url()} (${res.status()})`);
  await signIn('');
  await d.waitForSelector('#enrol:not([hidden])');
  assert(await d.isHidden('#new-password-fields'), 'no new password after a second-factor reset');
  const seed2 = (await d.textContent('#totp-secret')).trim();
  assert(seed2 !== seed, 'a new key');
  await ctx.close();

  // An administrator's password: a second administrator must approve.
  const adminRow = `#users tbody tr[data-email="${spec.admin.email}"]`;
  const others = await page.$$eval('#users tbody tr[data-email]', (r) => r.map((x) => x.dataset.email));
  assert(others.includes(spec.admin.email), `users: ${others}`);
  await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
  await page.click(`${adminRow} button.reset-password`);
  await page.waitForSelector('#reset-dialog[open]');
  await axe(page, 'users-reset');
  await page.click('#reset-cancel');
  assert(!(await page.$('#reset-dialog[open]')), 'cancel closes the dialog');
}

// Issue 19 §3: people by name and role (audit log, recording trail),
// the audit log newest first with details and an actor filter by e-mail;
// times with their zone and a display time zone that matches UTC; "From"
// later than "To" refused; Back and "Back to search" keep the search; a
// deep link opened while signed out returns there after sign-in (and
// only to this site).
async function namesTimesNavigation(browser, page) {
  await page.goto(`${spec.base}/audit`);
  await page.waitForSelector('#events tbody tr td.actor');
  const heads = await page.$$eval('#events thead th', (t) => t.map((x) => x.textContent));
  assert(heads.includes('Details'), `columns: ${heads}`);
  const seqs = await page.$$eval('#events tbody tr td:first-child', (t) => t.map((x) => Number(x.textContent)));
  assert(seqs.length > 2 && seqs.every((v, i) => i === 0 || v < seqs[i - 1]), `newest first: ${seqs.slice(0, 5)}`);
  const actors = await page.$$eval('#events tbody td.actor span.person', (t) => t.map((x) => [x.textContent, x.title]));
  assert(actors.some(([t, title]) => t.includes(spec.admin.email) && t.includes('tenant-admin') && /Account id [0-9a-f-]{36}/.test(title)), `actors: ${JSON.stringify(actors.slice(0, 3))}`);
  // The actor filter by e-mail.
  await page.fill('#a-actor', spec.officer.email);
  await page.click('#audit-form button[type=submit]');
  await page.waitForFunction((e) => { const c = [...document.querySelectorAll('#events tbody td.actor')]; return c.length > 0 && c.every((x) => x.textContent.includes(e)); }, spec.officer.email);
  assert(!page.url().includes('@'), `no e-mail in the URL: ${page.url()}`);
  // From later than To: refused with a message.
  await page.fill('#a-actor', '');
  await page.fill('#a-from', '2026-12-07T10:00');
  await page.fill('#a-to', '2026-12-06T10:00');
  await page.click('#audit-form button[type=submit]');
  await page.waitForSelector('#error:not([hidden])');
  assert(/later than/.test(await page.textContent('#error')), 'audit: from after to');
  const api = await page.evaluate(async () => (await fetch('/api/audit?from=2026-12-07T10:00:00Z&to=2026-12-06T10:00:00Z')).status);
  assert(api === 400, `API audit with from after to: ${api}`);
  // Times carry their zone; UTC shows what the API (and the export) says.
  await page.fill('#a-from', '');
  await page.fill('#a-to', '');
  const zone = async (z) => {
    await Promise.all([page.waitForNavigation(), page.selectOption('#time-zone', z)]);
  };
  await zone('UTC');
  await page.waitForSelector('#events tbody tr td.actor');
  const first = await page.$eval('#events tbody tr td:nth-child(2)', (t) => t.textContent);
  const at = await page.evaluate(async () => (await (await fetch('/api/audit?newest_first=true&limit=1')).json()).events[0].at);
  assert(first === `${at.slice(0, 19).replace('T', ' ')} UTC`, `UTC shown ${first}, API ${at}`);
  await zone('Asia/Tokyo');
  await page.waitForSelector('#events tbody tr td.actor');
  const tokyo = await page.$eval('#events tbody tr td:nth-child(2)', (t) => t.textContent);
  const shift = (Date.parse(`${tokyo.slice(0, 19).replace(' ', 'T')}Z`) - Date.parse(at.slice(0, 19) + 'Z')) / 3600000;
  assert(/GMT\+9$/.test(tokyo) && shift === 9, `Tokyo shown ${tokyo} (shift ${shift} h)`);
  await axe(page, 'audit-newest');
  await shot(page, 'audit-people');
  await zone('UTC');

  // The recording trail names people.
  await page.goto(`${spec.base}/recordings/${spec.recording}`);
  await page.waitForSelector('#trail tbody tr');
  assert((await page.textContent('#trail tbody')).includes(spec.admin.email), 'trail by e-mail');
  // One clock: the custom clock shows whole seconds rounded down, as the
  // native controls do (1.7 s is 0:01, not 0:02).
  await page.waitForFunction(() => { const a = document.querySelector('#player'); return a.readyState >= 1 && a.duration > 2; });
  await page.evaluate(() => { const a = document.querySelector('#player'); a.pause(); a.currentTime = 1.7; });
  await page.waitForFunction(() => document.querySelector('#clock').textContent.startsWith('0:01 / '));
  const clock = await page.evaluate(() => { const a = document.querySelector('#player'); return [document.querySelector('#clock').textContent, Math.floor(a.duration)]; });
  const [m, ss] = [Math.floor(clock[1] / 60), String(clock[1] % 60).padStart(2, '0')];
  assert(clock[0] === `0:01 / ${m}:${ss}`, `clock ${clock[0]}, duration ${clock[1]} s`);

  // Search: From after To refused; Back and "Back to search" keep it.
  await page.goto(`${spec.base}/search`);
  await page.waitForFunction(() => document.querySelector('#status').textContent.includes('found'));
  await page.fill('#f-from', '2026-12-07T10:00');
  await page.fill('#f-to', '2026-12-06T10:00');
  await page.click('#search-button');
  await page.waitForSelector('#error:not([hidden])');
  assert(/later than/.test(await page.textContent('#error')), 'search: from after to');
  const apiSearch = await page.evaluate(async () => {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    return (await fetch('/api/recordings/search', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: JSON.stringify({ from: '2026-12-07T10:00:00Z', to: '2026-12-06T10:00:00Z' }) })).status;
  });
  assert(apiSearch === 400, `API search with from after to: ${apiSearch}`);
  await page.fill('#f-from', '');
  await page.fill('#f-to', '');
  await search(page, { '#f-participant': spec.number });
  const want = await resultIds(page);
  assert(want.length === 1 && want[0] === spec.recording, `search: ${want}`);
  await Promise.all([page.waitForURL(`**/recordings/${spec.recording}`), page.click(`#results tr[data-id="${spec.recording}"] a.open-recording`)]);
  await page.waitForSelector('#meta dt');
  await Promise.all([page.waitForURL('**/search'), page.click('a[href="/search"]')]);
  await page.waitForFunction((id) => document.querySelector(`#results tr[data-id="${id}"]`) !== null && document.querySelectorAll('#results tbody tr[data-id]').length === 1, spec.recording);
  assert((await page.inputValue('#f-participant')) === spec.number, 'the query kept after "Back to search"');
  await Promise.all([page.waitForURL(`**/recordings/${spec.recording}`), page.click(`#results tr[data-id="${spec.recording}"] a.open-recording`)]);
  await page.waitForSelector('#meta dt');
  await page.goBack();
  await page.waitForFunction((id) => document.querySelector(`#results tr[data-id="${id}"]`) !== null && document.querySelectorAll('#results tbody tr[data-id]').length === 1, spec.recording);
  assert((await page.inputValue('#f-participant')) === spec.number, 'the query kept after Back');
  await page.click('#reset-button');
  await page.waitForFunction(() => document.querySelectorAll('#results tbody tr[data-id]').length > 1);

  // Export: From after To refused.
  await page.goto(`${spec.base}/export`);
  await page.waitForSelector('#columns input');
  await page.fill('#x-from', '2026-12-07T10:00');
  await page.fill('#x-to', '2026-12-06T10:00');
  await page.click('#start-export');
  await page.waitForSelector('#error:not([hidden])');
  assert(/later than/.test(await page.textContent('#error')), 'export: from after to');

  // A deep link while signed out: back there after the sign-in; a link
  // to another site lands on this one.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  ctx.setDefaultTimeout(STEP_TIMEOUT_MS);
  const v = await ctx.newPage();
  watch(v, 'deep-link');
  const signInHere = async () => {
    await v.fill('#tenant', spec.tenant);
    await v.fill('#email', spec.admin2.email);
    await v.fill('#password', spec.password);
    while (lastStep.get(spec.admin2.seed) === Math.floor(Date.now() / 30000)) await new Promise((r) => setTimeout(r, 1000));
    lastStep.set(spec.admin2.seed, Math.floor(Date.now() / 30000));
    await v.fill('#totp', totp(spec.admin2.seed));
    await Promise.all([v.waitForURL((u) => !u.pathname.startsWith('/login')), v.click('#sign-in')]);
  };
  await v.goto(`${spec.base}/recordings/${spec.recording}`);
  assert(new URL(v.url()).pathname === '/login', `signed out: ${v.url()}`);
  await signInHere();
  assert(new URL(v.url()).pathname === `/recordings/${spec.recording}`, `after sign-in: ${v.url()}`);
  await v.click('#logout');
  await v.waitForURL('**/login');
  await v.goto(`${spec.base}/login?next=${encodeURIComponent('//evil.example/x')}`);
  await signInHere();
  const landed = new URL(v.url());
  assert(landed.origin === new URL(spec.base).origin && landed.pathname === '/search', `open redirect: ${v.url()}`);
  await ctx.close();
}

// Issue 19 §5: erasures list their reference; executing one whose every
// recording is on legal hold says that nothing was erased (not
// "executed") and the card shows the erasure as it is afterwards.
async function dpoErasureHeld(dpo) {
  await dpo.goto(`${spec.base}/admin/holds`);
  await dpo.waitForSelector('#holds tbody tr');
  await dpo.fill('#h-case', 'DSR hold');
  await dpo.fill('#h-recordings', spec.recording);
  await dpo.click('#place-hold');
  await dpo.waitForFunction(() => document.querySelector('#holds tbody').textContent.includes('DSR hold'));
  await dpo.goto(`${spec.base}/gdpr`);
  await dpo.waitForFunction(() => document.querySelector('#erasures tbody').textContent.includes('DSR-2026-0042'));
  const row = dpo.locator('#erasures tbody tr', { hasText: 'DSR-2026-0042' }).first();
  await row.locator('button').click();
  await dpo.waitForSelector('#erasure-card[data-status="planned"] #execute-erasure');
  dpo.once('dialog', (d) => d.accept());
  await dpo.click('#execute-erasure');
  await dpo.waitForSelector('#erasure-card:not([data-status="planned"])');
  const said = await dpo.textContent('#status');
  assert(/Nothing was erased/.test(said) && !/executed/i.test(said), `status: ${said}`);
  const card = await dpo.textContent('#erasure-card');
  assert(card.includes('DSR-2026-0042') && /blocked/.test(card) && card.includes('DSR hold'), `card: ${card}`);
  await axe(dpo, 'gdpr-executed');
}

// Issue 19 §4: overlapping retention policies are shown with the one
// that governs before the new policy is saved.
async function retentionOverlap(page) {
  await page.goto(`${spec.base}/admin/retention`);
  await page.waitForSelector('#policies tbody tr');
  const created = await page.evaluate(async () => {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const r = await fetch('/api/retention-policies', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify({ name: 'Calls seven years', scope: { kind: 'call' }, retain_days: 2557, action: 'delete-media' }) });
    return r.status;
  });
  assert(created === 201, `policy created: ${created}`);
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#policies tbody').textContent.includes('Calls seven years'));
  await page.fill('#r-name', 'Inbound three years');
  await page.fill('#r-days', '1095');
  await page.selectOption('#r-direction', 'inbound');
  await page.waitForFunction(() => document.querySelector('#overlap').textContent.includes('Calls seven years'));
  const text = await page.textContent('#overlap');
  assert(/\u201cCalls seven years\u201d governs: keep 2557 days/.test(text), `overlap: ${text}`);
  // Meetings only: no overlap with a calls policy.
  await page.selectOption('#r-kind', 'meeting');
  await page.waitForFunction(() => !document.querySelector('#overlap').textContent.includes('Calls seven years'));
  await page.selectOption('#r-kind', 'call');
  await page.fill('#r-days', '3650');
  await page.waitForFunction(() => /\u201cInbound three years\u201d governs: keep 3650 days/.test(document.querySelector('#overlap').textContent));
  await axe(page, 'retention-overlap');
  await shot(page, 'retention-overlap');
  await page.fill('#r-name', '');
  await page.fill('#r-days', '');
}

async function main() {
  const executablePath = process.env.INSIGHTS_TEST_CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) throw new Error(`Chromium is not installed at ${executablePath}`);
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath, headless: true, timeout: STEP_TIMEOUT_MS,
    args: ['--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    const admin = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 860 } });
    admin.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = await admin.newPage();
    watch(page, 'admin');
    // The DPO's session, opened when the DPO first acts (see below).
    let dpoCtx = null;
    let dpo = null;

    await step('login page carries the strict CSP and passes axe', async () => {
      const res = await page.goto(`${spec.base}/login`);
      const csp = res.headers()['content-security-policy'] || '';
      assert(csp.includes("script-src 'self'") && csp.includes("default-src 'self'") && !csp.includes('unsafe-inline'), `CSP: ${csp}`);
      await shot(page, 'login');
      await axe(page, 'login');
    });

    await step('a wrong code is refused with a clear message', async () => {
      await page.fill('#tenant', spec.tenant);
      await page.fill('#email', spec.admin.email);
      await page.fill('#password', spec.password);
      await page.fill('#totp', '000000');
      await page.click('#sign-in');
      await page.waitForSelector('#error:not([hidden])');
      const text = await page.textContent('#error');
      assert(/not right/.test(text), `error text: ${text}`);
      assert(!page.url().includes('password') && !page.url().includes('?'), `URL: ${page.url()}`);
    });

    await step('admin signs in with a TOTP code', async () => {
      await login(page, 'admin', { tenant: spec.tenant, email: spec.admin.email, seed: spec.admin.seed });
      assert(new URL(page.url()).pathname === '/search', `landed on ${page.url()}`);
      const cookies = await admin.cookies();
      const names = cookies.map((c) => c.name);
      assert(names.includes('insights_session') && names.includes('insights_csrf'), `cookies: ${names}`);
      const session = cookies.find((c) => c.name === 'insights_session');
      assert(session.httpOnly && session.sameSite === 'Strict', 'session cookie flags');
    });

    await step('search by participant number finds only that call', async () => {
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('found'));
      const all = await resultIds(page);
      assert(all.includes(spec.recording) && all.includes(spec.other_recording), `unfiltered: ${all}`);
      await search(page, { '#f-participant': spec.number });
      const ids = await resultIds(page);
      assert(ids.length === 1 && ids[0] === spec.recording, `by number: ${ids}`);
      assert((await page.textContent('#count')).includes('1 recording'), 'count shown');
      assert(!page.url().includes(spec.number), 'number not in the URL');
      await shot(page, 'search');
      await axe(page, 'search');
    });

    await step('search by a spoken word highlights it in a snippet', async () => {
      await search(page, { '#f-words': spec.word });
      const ids = await resultIds(page);
      assert(ids.includes(spec.recording) && !ids.includes(spec.other_recording), `by word: ${ids}`);
      const marks = await page.$$eval('#results mark', (m) => m.map((x) => x.textContent.toLowerCase()));
      assert(marks.includes(spec.word), `marks: ${marks}`);
      assert(!page.url().includes(spec.word), 'word not in the URL');
      const history = await page.evaluate(() => history.length);
      assert(history <= 3, `history entries: ${history}`);
      await shot(page, 'search-words');
    });

    await step('sorting by duration reorders the results', async () => {
      await search(page, {});
      await page.click('th[data-sort="duration"] button');
      await page.waitForFunction(() => document.querySelector('th[data-sort="duration"]').getAttribute('aria-sort') === 'descending');
    });

    await step('open a result; press play: time advances, no media error', async () => {
      await search(page, { '#f-participant': spec.number });
      await Promise.all([page.waitForURL(`**/recordings/${spec.recording}`), page.click(`#results tr[data-id="${spec.recording}"] a.open-recording`)]);
      await page.waitForSelector('#meta dt');
      const hold = await page.textContent('#badges');
      report.playback.badges = hold;
      const t0 = await page.evaluate(() => document.querySelector('#player').currentTime);
      await page.focus('#player');
      await playNow(page);
      await page.waitForFunction(() => document.querySelector('#player').currentTime > 0.8, null, { timeout: STEP_TIMEOUT_MS });
      const s = await page.evaluate(() => { const a = document.querySelector('#player'); return { t: a.currentTime, err: a.error && a.error.code, d: a.duration }; });
      report.playback.advanced_s = s.t - t0;
      report.playback.error = s.err;
      report.playback.duration_s = s.d;
      assert(s.err === null, `media error ${s.err}`);
      await page.selectOption('#speed', '1.5');
      const rate = await page.evaluate(() => document.querySelector('#player').playbackRate);
      assert(rate === 1.5, `playbackRate ${rate}`);
      report.playback.rate = rate;
    });

    await step('click a transcript segment: the player jumps to its start', async () => {
      await page.evaluate(() => document.querySelector('#player').pause());
      const segs = await page.$$eval('#segments .segment', (b) => b.map((x) => Number(x.dataset.start)));
      const i = segs.length > 1 ? segs.length - 1 : 0;
      const target = segs[i] / 1000;
      report.playback.segment_start_s = target;
      await page.click(`#segments .segment >> nth=${i}`);
      await page.waitForFunction((t) => Math.abs(document.querySelector('#player').currentTime - t) < 0.25, target);
      report.playback.after_seek_s = await page.evaluate(() => document.querySelector('#player').currentTime);
      const current = await page.evaluate(() => [...document.querySelectorAll('#segments .segment')].findIndex((b) => b.classList.contains('current')));
      report.playback.segments_ms = segs;
      report.playback.highlighted = current;
      assert(current === i, `the clicked segment ${i} is highlighted, not ${current}`);
      // Playback from there keeps the highlight moving with the audio.
      await playNow(page);
      await page.waitForFunction(() => document.querySelector('#player').currentTime > 0 && document.querySelector('.segment.current') !== null);
      await page.evaluate(() => document.querySelector('#player').pause());
    });

    await step('the recording page shows participants, recap and its own audit trail', async () => {
      await page.reload();
      await page.waitForSelector('#trail tbody tr');
      await page.waitForSelector('#segments .segment');
      const parts = await page.textContent('#participants');
      assert(parts.includes('Dave Callee') && parts.includes('+14255550123'), 'participants');
      await page.waitForSelector('#insights-box:not([hidden])');
      const trail = await page.$$eval('#trail tbody td:nth-child(2)', (t) => t.map((x) => x.textContent));
      assert(trail.includes('play') && trail.includes('transcript-view'), `trail: ${trail}`);
      assert(await page.isVisible('#download'), 'admins may download');
      await shot(page, 'recording');
      await axe(page, 'recording');
    });

    await step('export three chosen columns and download the .xlsx', async () => {
      await page.goto(`${spec.base}/export`);
      await page.waitForSelector('#columns input');
      await page.click('#select-none');
      for (const c of spec.export_columns) await page.check(`#col-${c}`);
      await page.fill('#x-reason', 'web UI test');
      await page.click('#start-export');
      await page.waitForSelector('#download-export:not([hidden])');
      const progress = await page.textContent('#progress-text');
      assert(/2 of 2 rows/.test(progress), `progress: ${progress}`);
      await shot(page, 'export');
      await axe(page, 'export');
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download-export')]);
      const file = path.join(spec.downloads, 'export.xlsx');
      await dl.saveAs(file);
      report.export_file = file;
    });

    await step('audit log: the chain verifies intact', async () => {
      await page.goto(`${spec.base}/audit`);
      await page.waitForSelector('#events tbody tr');
      await page.click('#verify');
      await page.waitForSelector('#chain-ok');
      await shot(page, 'audit');
      await axe(page, 'audit');
    });

    await step('names, times and navigation: audit newest first by person, time zones, From after To, Back, deep links', async () => {
      await namesTimesNavigation(browser, page);
    });

    await step('settings: a switch is saved through the API with the CSRF header', async () => {
      await page.goto(`${spec.base}/admin/settings`);
      await page.waitForFunction(() => document.querySelector('#s-cloud') !== null);
      const before = await page.isChecked('#s-reason');
      await page.setChecked('#s-reason', !before);
      await page.click('#save-settings');
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('saved'));
      await page.reload();
      await page.waitForFunction((b) => document.querySelector('#s-reason').checked === !b, before);
      await page.setChecked('#s-reason', before);
      await page.click('#save-settings');
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('saved'));
      await shot(page, 'settings');
      await axe(page, 'settings');
      // A forged cross-site style POST without the header is refused.
      const status = await page.evaluate(async () => {
        const body = await (await fetch('/api/settings')).text();
        return (await fetch('/api/settings', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body })).status;
      });
      assert(status === 403, `PUT without CSRF header: ${status}`);
    });

    await step('recording policy: a never-record rule and the failure mode are saved and removed', async () => {
      await page.goto(`${spec.base}/admin/recording-policy`);
      await page.waitForSelector('#rules tbody tr');
      assert(await page.isChecked('#p-mode-all'), 'record all by default');
      assert(await page.isChecked('#p-fail-required'), 'fail closed by default');
      await page.selectOption('#r-list', 'never-record');
      await page.selectOption('#r-kind', 'number-prefix');
      await page.fill('#r-value', '+49 30 555');
      await page.fill('#r-label', "Doctor's line");
      await page.click('#add-rule');
      await page.waitForFunction(() => [...document.querySelectorAll('#rules td')].some((t) => t.textContent === '+4930555'));
      await page.check('#p-fail-best');
      await page.click('#save-policy');
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('saved'));
      await page.reload();
      await page.waitForFunction(() => [...document.querySelectorAll('#rules td')].some((t) => t.textContent === '+4930555'));
      assert(await page.isChecked('#p-fail-best'), 'best effort kept');
      await shot(page, 'recording-policy');
      await axe(page, 'recording-policy');
      const stored = await page.evaluate(async () => (await fetch('/api/admin/recording-policy')).json());
      assert(stored.failure_mode === 'best-effort' && stored.rules.length === 1, JSON.stringify(stored));
      await page.click('#rules button.remove');
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('removed'));
      await page.check('#p-fail-required');
      await page.click('#save-policy');
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('saved'));
      const after = await page.evaluate(async () => (await fetch('/api/admin/recording-policy')).json());
      assert(after.failure_mode === 'required' && after.rules.length === 0, JSON.stringify(after));
    });

    await step('alerts: the tenant admin adds a signed webhook channel and acknowledges an alert', async () => {
      await page.goto(`${spec.base}/admin/alerts`);
      // No recording yet when the server started: the rule raised one.
      await page.waitForSelector('#alerts tbody tr[data-kind="no-recordings"] button.acknowledge');
      await page.selectOption('#c-kind', 'webhook');
      await page.fill('#c-name', 'SOC hook');
      await page.fill('#c-url', 'https://soc.example.com/insights');
      await page.fill('#c-secret', 'secret-of-the-soc-0123456');
      await page.click('#add-channel');
      await page.waitForFunction(() => [...document.querySelectorAll('#channels td')].some((t) => t.textContent === 'SOC hook'));
      const listed = await page.textContent('#channels');
      assert(!listed.includes('secret-of-the-soc'), 'the secret is not shown');
      await shot(page, 'alerts');
      await axe(page, 'alerts');
      const row = '#alerts tbody tr[data-kind="no-recordings"]';
      const id = await page.getAttribute(row, 'data-id');
      const details = await page.textContent(`${row} td.details`);
      assert(/minutes: 1/.test(details), `details: ${details}`);
      await page.click(`${row} button.acknowledge`);
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('acknowledged'));
      const alerts = await page.evaluate(async () => (await fetch('/api/admin/alerts')).json());
      const acked = alerts.find((a) => a.id === id);
      assert(acked && acked.acknowledged_at, JSON.stringify(acked));
      const channels = await page.evaluate(async () => (await fetch('/api/admin/alert-channels')).json());
      assert(channels.length === 1 && channels[0].has_secret && !('secret' in channels[0]), JSON.stringify(channels));
    });

    async function setSetting(id, on) {
      await page.goto(`${spec.base}/admin/settings`);
      await page.waitForFunction(() => document.querySelector('#status').textContent === '' && document.querySelector('#s-cloud') !== null);
      await page.waitForTimeout(300);
      await page.setChecked(id, on);
      await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
      await page.click('#save-settings');
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('saved'));
    }

    await step('a required reason for access is asked for, sent and audited', async () => {
      await setSetting('#s-reason', true);
      await page.goto(`${spec.base}/recordings/${spec.recording}`);
      await page.waitForSelector('#reason-box:not([hidden])');
      await shot(page, 'recording-reason');
      await page.fill('#reason', 'Case 42 review');
      await page.click('#reason-form button[type=submit]');
      await page.waitForSelector('#segments .segment');
      await page.waitForFunction(() => document.querySelector('#player').src.startsWith('blob:'));
      await playNow(page);
      await page.waitForFunction(() => document.querySelector('#player').currentTime > 0.3);
      assert(await page.evaluate(() => document.querySelector('#player').error === null), 'no media error');
      await page.waitForFunction(() => [...document.querySelectorAll('#trail td')].some((t) => t.textContent === 'Case 42 review'));
      await setSetting('#s-reason', false);
    });

    await step('four-eyes playback is switched on for supervisors', async () => {
      await setSetting('#s-foureyes', true);
    });

    await step('users and security profiles page renders', async () => {
      await page.goto(`${spec.base}/admin/users`);
      await page.waitForSelector('#profiles tbody tr');
      await page.waitForSelector('#users tbody tr');
      await shot(page, 'users');
      await axe(page, 'users');
    });

    await step('admin adds a DPO who signs in the first time, enrols TOTP and reaches their pages; confirmations and resets', async () => {
      await usersAndFirstSignIn(browser, page);
    });

    await step('retention page renders', async () => {
      await page.goto(`${spec.base}/admin/retention`);
      await page.waitForSelector('#policies tbody tr');
      await shot(page, 'retention');
      await axe(page, 'retention');
    });

    await step('retention: overlapping policies and the one that governs, before saving', async () => {
      await retentionOverlap(page);
    });

    // Needs helper A's /api/legal-holds (contract A).
    await step('admin places and lifts a legal hold', async () => {
      await page.goto(`${spec.base}/admin/holds`);
      await page.waitForSelector('#holds tbody tr');
      await page.fill('#h-case', 'Case 42');
      await page.fill('#h-reason', 'litigation');
      await page.fill('#h-recordings', spec.recording);
      await page.click('#place-hold');
      await page.waitForSelector('#holds tbody tr .lift');
      await shot(page, 'holds');
      await axe(page, 'holds');
      await page.goto(`${spec.base}/recordings/${spec.recording}`);
      await page.waitForSelector('#badges .badge.hold');
      await page.goto(`${spec.base}/admin/holds`);
      await page.waitForSelector('#holds tbody tr .lift');
      page.once('dialog', (d) => d.accept('case closed'));
      await page.click('#holds tbody tr .lift');
      // Two-person governance: the lift waits for a second person (the
      // DPO, who also manages holds); the admin cannot approve it.
      await page.waitForSelector('#changes tbody tr button');
      assert(!(await page.textContent('#holds tbody')).includes('Lifted'), 'the hold stays until approved');
      // The DPO signs in once (a TOTP code is single-use) and keeps the
      // session for the DPO steps below.
      dpoCtx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
      dpoCtx.setDefaultTimeout(STEP_TIMEOUT_MS);
      dpo = await dpoCtx.newPage();
      watch(dpo, 'dpo');
      await login(dpo, 'dpo', { tenant: spec.tenant, email: spec.dpo.email, seed: spec.dpo.seed });
      await dpo.goto(`${spec.base}/admin/holds`);
      await dpo.waitForSelector('#changes tbody tr button');
      await dpo.click('#changes tbody tr button:has-text("Approve")');
      await dpo.waitForFunction(() => document.querySelector('#holds tbody').textContent.includes('Lifted'));
      await page.goto(`${spec.base}/admin/holds`);
      await page.waitForFunction(() => document.querySelector('#holds tbody').textContent.includes('Lifted'));
      await page.goto(`${spec.base}/recordings/${spec.recording}`);
      await page.waitForSelector('#badges .badge');
      assert(!(await page.$('#badges .badge.hold')), 'the hold badge is gone after lifting');
    });

    await step('pages fit a tablet (768 px) and a small laptop (1024 px) without sideways scrolling', async () => {
      for (const width of [768, 1024]) {
        await page.setViewportSize({ width, height: 1000 });
        for (const url of ['/search', `/recordings/${spec.recording}`, '/export', '/audit', '/admin/holds', '/admin/users']) {
          await page.goto(`${spec.base}${url}`);
          await page.waitForLoadState('networkidle');
          const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          assert(over <= 1, `${url} at ${width} px overflows by ${over} px`);
        }
      }
      await page.setViewportSize({ width: 1280, height: 860 });
    });

    await step('sign out ends the session', async () => {
      await page.click('#logout');
      await page.waitForURL('**/login');
      const res = await page.goto(`${spec.base}/search`);
      assert(new URL(page.url()).pathname === '/login', `after logout: ${page.url()} ${res.status()}`);
    });
    await admin.close();

    const officerCtx = await browser.newContext({ viewport: { width: 1024, height: 768 } });
    officerCtx.setDefaultTimeout(STEP_TIMEOUT_MS);
    const officer = await officerCtx.newPage();
    watch(officer, 'officer');
    await step('a compliance officer cannot reach the admin pages', async () => {
      await login(officer, 'officer', { tenant: spec.tenant, email: spec.officer.email, seed: spec.officer.seed });
      const links = await officer.$$eval('nav a', (a) => a.map((x) => x.getAttribute('href')));
      assert(!links.some((h) => h.startsWith('/admin')), `nav: ${links}`);
      assert(links.includes('/search') && links.includes('/audit'), `nav: ${links}`);
      for (const p of ['/admin/settings', '/admin/users', '/admin/holds', '/admin/retention', '/export']) {
        const res = await officer.goto(`${spec.base}${p}`);
        assert(res.status() === 403, `${p}: ${res.status()}`);
        assert(await officer.isVisible('#forbidden'), `${p}: message shown`);
      }
      await shot(officer, 'officer-forbidden');
      const api = await officer.evaluate(async () => (await fetch('/api/settings')).status);
      assert(api === 403, `GET /api/settings as officer: ${api}`);
      // Officers may not download.
      await officer.goto(`${spec.base}/recordings/${spec.recording}`);
      await officer.waitForSelector('#meta dt');
      assert(!(await officer.isVisible('#download')), 'no download button for officers');
      // Nor where the media is stored (issue 19 §2): not in the API, not on the page.
      const media = await officer.evaluate(async (id) => (await (await fetch(`/api/recordings/${id}`)).json()).recording.media, spec.recording);
      assert(media && media.sha256 && !('container' in media) && !('key' in media) && !('data_key_id' in media), `officer sees ${JSON.stringify(media)}`);
      const text = await officer.textContent('main');
      assert(!/container|blob key|data key/i.test(text), 'no storage details on the page');
    });
    await officerCtx.close();

    const supCtx = await browser.newContext({ viewport: { width: 1024, height: 768 } });
    supCtx.setDefaultTimeout(STEP_TIMEOUT_MS);
    const sup = await supCtx.newPage();
    watch(sup, 'supervisor');
    await step('four-eyes: a supervisor must ask, an officer approves, then it plays', async () => {
      await login(sup, 'supervisor', { tenant: spec.tenant, email: spec.supervisor.email, seed: spec.supervisor.seed });
      await sup.goto(`${spec.base}/recordings/${spec.recording}`);
      await sup.waitForSelector('#approval-box:not([hidden])');
      await sup.fill('#request-reason', 'Coaching session 7');
      await sup.click('#request-form button[type=submit]');
      await sup.waitForSelector('#request-state:not([hidden])');
      await shot(sup, 'recording-four-eyes');
      const offCtx = await browser.newContext({ viewport: { width: 1024, height: 768 } });
      offCtx.setDefaultTimeout(STEP_TIMEOUT_MS);
      const off = await offCtx.newPage();
      watch(off, 'approver');
      await login(off, 'officer', { tenant: spec.tenant, email: spec.officer.email, seed: spec.officer.seed });
      await off.goto(`${spec.base}/access-requests`);
      await off.waitForSelector('#requests tbody tr button');
      assert((await off.textContent('#requests tbody')).includes(spec.supervisor.email), 'the requester by e-mail');
      await shot(off, 'access-requests');
      await axe(off, 'access-requests');
      await off.click('#requests tbody tr button:has-text("Approve")');
      await off.waitForFunction(() => document.querySelector('#requests tbody').textContent.includes('approved'));
      await offCtx.close();
      await sup.goto(`${spec.base}/recordings/${spec.recording}`);
      await sup.waitForSelector('#meta dt');
      await playNow(sup);
      await sup.waitForFunction(() => document.querySelector('#player').currentTime > 0.3);
      assert(await sup.isHidden('#approval-box'), 'no approval prompt once approved');
    });
    await supCtx.close();

    const opsCtx = await browser.newContext({ viewport: { width: 820, height: 1100 } });
    opsCtx.setDefaultTimeout(STEP_TIMEOUT_MS);
    const ops = await opsCtx.newPage();
    watch(ops, 'operator');
    await step('the platform operator sees no recordings', async () => {
      await login(ops, 'operator', { email: spec.operator.email, seed: spec.operator.seed });
      const res = await ops.goto(`${spec.base}/search`);
      assert(res.status() === 403, `search page: ${res.status()}`);
      const text = await ops.textContent('#forbidden');
      assert(/Platform operators/.test(text), text);
      const rec = await ops.goto(`${spec.base}/recordings/${spec.recording}`);
      assert(rec.status() === 403, `recording page: ${rec.status()}`);
      const api = await ops.evaluate(async () => {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const r = await fetch('/api/recordings/search', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: '{}' });
        return r.status;
      });
      assert(api === 403, `API search as operator: ${api}`);
      const body = await ops.textContent('body');
      assert(!body.includes('Dave') && !body.includes('4255550123'), 'no recording data on the page');
      await shot(ops, 'operator');
    });
    await opsCtx.close();

    if (!dpo) {
      dpoCtx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
      dpoCtx.setDefaultTimeout(STEP_TIMEOUT_MS);
      dpo = await dpoCtx.newPage();
      watch(dpo, 'dpo');
    }
    await step('a DPO finds a data subject by number and plans an erasure (dry run)', async () => {
      if (dpo.url().includes('/login') || dpo.url() === 'about:blank') {
        await login(dpo, 'dpo', { tenant: spec.tenant, email: spec.dpo.email, seed: spec.dpo.seed });
      }
      await dpo.goto(`${spec.base}/gdpr`);
      await dpo.waitForFunction(() => document.querySelector('#rect-where tbody').children.length > 0);
      const rect = await dpo.textContent('#rectification');
      assert(/directory/i.test(rect) && /evidence/i.test(rect), `Art. 16 text: ${rect}`);
      await dpo.fill('#g-phone', `+1${spec.number}`);
      await dpo.click('#find');
      await dpo.waitForSelector('#matches-box:not([hidden])');
      const hrefs = await dpo.$$eval('#matches tbody a', (as) => as.map((a) => a.getAttribute('href')));
      assert(hrefs.includes(`/recordings/${spec.recording}`), `matches: ${hrefs}`);
      assert(!hrefs.includes(`/recordings/${spec.other_recording}`), 'the other call is not the subject\'s');
      const why = await dpo.textContent('#matches tbody');
      assert(/phone/i.test(why), `reasons: ${why}`);
      assert(!dpo.url().includes(spec.number), 'the number is not in the URL');
      await dpo.fill('#g-reason', 'DSR-2026-0042');
      await dpo.click('#plan');
      await dpo.waitForSelector('#erasure-detail li');
      const planned = await dpo.textContent('#erasure-detail');
      assert(planned.includes(spec.recording) && /planned/.test(planned), `plan: ${planned}`);
      await shot(dpo, 'gdpr');
      await axe(dpo, 'gdpr');
    });
    await step('a DPO sees erasure references; a fully held erasure erases nothing and says so', async () => {
      await dpoErasureHeld(dpo);
    });
    await dpoCtx.close();

    await step('no CSP violation or page error anywhere', async () => {
      assert(report.csp_violations.length === 0, report.csp_violations.join('\n'));
    });
  } finally {
    await browser.close();
  }
}

main()
  .catch((e) => report.steps.push({ name: 'browser run', ok: false, error: String(e && e.stack ? e.stack : e) }))
  .finally(() => {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    process.exit(report.steps.every((s) => s.ok) ? 0 : 1);
  });
