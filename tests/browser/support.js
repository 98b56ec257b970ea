// What the browser drivers share: TOTP codes, steps recorded into the
// driver's JSON report, assertions and the password + TOTP sign-in.
'use strict';

const crypto = require('crypto');

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

// `step(name, fn)` for `report`: runs fn and records {name, ok, error?}.
function stepper(report) {
  return async function step(name, fn) {
    try {
      await fn();
      report.steps.push({ name, ok: true });
    } catch (e) {
      report.steps.push({ name, ok: false, error: String(e && e.stack ? e.stack : e).slice(0, 2000) });
    }
  };
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

// `login(page, {email, seed})` against spec.base / spec.tenant /
// spec.password: waits until the page has left /login.
function signIn(spec, timeoutMs) {
  return async function login(page, { email, seed }) {
    await page.goto(`${spec.base}/login`);
    await page.fill('#tenant', spec.tenant);
    await page.fill('#email', email);
    await page.fill('#password', spec.password);
    if (seed) await page.fill('#totp', totp(seed));
    await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: timeoutMs }), page.click('#sign-in')]);
  };
}

module.exports = { totp, stepper, assert, signIn };
