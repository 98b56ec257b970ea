// Shared helpers of every page: the JSON API client (same origin, session
// cookie, CSRF header on unsafe methods), problem+json errors shown as
// messages, safe DOM building (text nodes only; markup is never parsed), formatting.
'use strict';

const Insights = (() => {
  const $ = (sel, root) => (root || document).querySelector(sel);

  function cookie(name) {
    for (const part of document.cookie.split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === name) return decodeURIComponent(v.join('='));
    }
    return '';
  }

  function csrfToken() {
    const meta = $('meta[name="csrf-token"]');
    return (meta && meta.content) || cookie('insights_csrf');
  }

  class Problem extends Error {
    constructor(status, title, detail, code) {
      super(detail || title);
      this.status = status;
      this.title = title;
      this.detail = detail;
      this.code = code;
    }
  }

  // Messages for codes whose server detail is generic.
  const FRIENDLY = {
    'permission-denied': 'Your role does not allow this.',
    'tenant-required': 'Platform operators have no access to tenant data.',
    'csrf-token-invalid': 'The page is out of date (security token). Reload the page and try again.',
    'approval-required': 'Playing this recording needs a second person\u2019s approval (four-eyes rule). Request access below; an approver will decide.',
    'access-reason-required': 'This organisation requires a reason for access. Enter one and try again.',
    'not-found': 'Not found, or not visible to you.',
  };

  async function toProblem(res) {
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    const code = body && body.code;
    const title = (body && body.title) || res.statusText || 'Error';
    let detail = FRIENDLY[code] || (body && body.detail) || `The server answered ${res.status}.`;
    if (res.status === 423 || res.status === 429) {
      const after = res.headers.get('Retry-After');
      if (after) detail += ` Try again in ${Math.ceil(Number(after) / 60)} minute(s).`;
    }
    return new Problem(res.status, title, detail, code);
  }

  // fetch, JSON in and out; throws Problem. `raw` returns the Response.
  async function api(method, path, body, opts) {
    opts = opts || {};
    const headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (!['GET', 'HEAD'].includes(method)) {
      const t = csrfToken();
      if (t) headers['X-CSRF-Token'] = t;
    }
    let res;
    try {
      res = await fetch(path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      throw new Problem(0, 'Network error', 'The server could not be reached. Check the connection and try again.');
    }
    if (res.status === 401 && !opts.noRedirect) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}#expired`);
      throw new Problem(401, 'Signed out', 'Your session has ended. Please sign in again.');
    }
    if (!res.ok) throw await toProblem(res);
    if (opts.raw) return res;
    if (res.status === 204) return null;
    const ct = res.headers.get('Content-Type') || '';
    return ct.includes('json') ? res.json() : res.text();
  }

  // el('a', {href: '/x', class: 'y', onclick: fn}, 'text', child...)
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // Text with [[matches]] as <mark> elements; everything as text nodes.
  function highlighted(text) {
    const out = [];
    const re = /\[\[(.*?)\]\]/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
      out.push(el('mark', {}, m[1]));
      last = re.lastIndex;
    }
    if (last < text.length) out.push(document.createTextNode(text.slice(last)));
    return out;
  }

  function showError(e, where) {
    const box = where || $('#error');
    if (!box) return;
    const title = (e && e.title) || 'Something went wrong';
    const detail = (e && (e.detail || e.message)) || '';
    box.replaceChildren(el('p', {}, el('strong', {}, title)), detail ? el('p', {}, detail) : '');
    box.hidden = false;
  }

  function clearError(where) {
    const box = where || $('#error');
    if (box) { box.hidden = true; box.replaceChildren(); }
  }

  function status(msg) {
    const s = $('#status');
    if (s) s.textContent = msg || '';
  }

  const perms = () => new Set((document.body.dataset.permissions || '').split(' ').filter(Boolean));

  // The display time zone: the user's choice on this browser (the
  // selector in the header), else the browser's own. Every time shown
  // names its zone; exports are in UTC (choose UTC to compare).
  const TZ_KEY = 'insights-time-zone';
  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch (_) { return 'UTC'; }
  }
  function timeZone() {
    let z = null;
    try { z = localStorage.getItem(TZ_KEY); } catch (_) { /* storage off */ }
    if (z) {
      try { new Intl.DateTimeFormat('en', { timeZone: z }); return z; } catch (_) { /* unknown zone */ }
    }
    return browserZone();
  }

  function fmtDate(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const zone = timeZone();
    const parts = {};
    for (const x of new Intl.DateTimeFormat('en-GB', {
      timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short',
    }).formatToParts(d)) parts[x.type] = x.value;
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${zone === 'UTC' ? 'UTC' : parts.timeZoneName}`;
  }

  // A "From" later than "To" (datetime-local inputs) is refused here, as
  // the API refuses it.
  function checkWindow(fromSel, toSel) {
    const f = $(fromSel) && $(fromSel).value;
    const t = $(toSel) && $(toSel).value;
    if (f && t && new Date(f) > new Date(t)) {
      throw new Problem(400, 'Check the dates', '\u201cFrom\u201d is later than \u201cTo\u201d: nothing can match. Swap them or change one.', 'bad-window');
    }
  }

  // People by name (GET /api/people): actor ids shown as "name <email>
  // (role)", the id on hover; an unknown id stays as it is.
  let peopleCache = null;
  function people() {
    if (!peopleCache) {
      peopleCache = api('GET', '/api/people').then((r) => new Map(r.items.map((x) => [x.id, x]))).catch(() => new Map());
    }
    return peopleCache;
  }
  function personText(map, id) {
    const x = map && map.get(id);
    if (!x) return null;
    return `${x.name ? `${x.name} <${x.email}>` : x.email} (${x.role})`;
  }
  function personEl(map, id) {
    const t = personText(map, id);
    return t ? el('span', { class: 'person', title: `Account id ${id}` }, t) : el('code', {}, id);
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return '';
    const s = Math.round(ms / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  }

  // A player position as the browser's own player shows it: whole
  // seconds, rounded down (so the custom clock and the native controls
  // agree at every moment).
  function fmtClock(sec) {
    return fmtDuration(Math.floor(Math.max(0, sec || 0)) * 1000);
  }

  // A participant's label: name, else number, email or URI.
  function who(p) {
    return (p && (p.display_name || p.phone_number || p.email || p.uri)) || 'Unknown';
  }

  // Runs `fn`, showing any error in the page's error box.
  function guard(fn) {
    return async (...args) => {
      try {
        clearError();
        return await fn(...args);
      } catch (e) {
        showError(e);
        return undefined;
      }
    };
  }

  // Two-person governance: the pending changes of `kinds` in the table
  // `#changes`, with approve and reject buttons; `after` runs after a
  // decision (to reload the page's own list).
  const CHANGE_LABELS = {
    'retention-policy-delete': 'Delete retention policy',
    'retention-policy-shorten': 'Shorten retention policy',
    'legal-hold-lift': 'Lift legal hold',
    'media-deletion-waiver-on': 'Turn on the media-deletion waiver',
    'account-password-reset': 'Reset the password of',
    'account-second-factor-reset': 'Reset the second factor of',
    'account-create': 'Add the account',
  };
  // `name(id)`, when given, names an account id (target or requester).
  async function pendingChanges(kinds, after, name) {
    const body = $('#changes tbody');
    if (!body) return;
    const res = await api('GET', '/api/governance-changes?status=pending');
    if (!name) {
      const map = await people();
      name = (id) => personText(map, id);
    }
    const decide = (c, verb) => guard(async () => {
      await api('POST', `/api/governance-changes/${encodeURIComponent(c.id)}/${verb}`, {});
      status(verb === 'approve' ? 'Change approved and applied.' : 'Change rejected.');
      await pendingChanges(kinds, after, name);
      if (after) await after();
    });
    const rows = res.items.filter((c) => kinds.includes(c.kind)).map((c) => el('tr', {},
      el('td', {}, fmtDate(c.requested_at)),
      el('td', {}, CHANGE_LABELS[c.kind] || c.kind, ' ',
        c.payload && c.payload.email ? el('span', {}, c.payload.email)
          : (name && name(c.target)) ? el('span', { title: c.target }, name(c.target)) : el('code', {}, c.target),
        c.payload && c.payload.role ? ` as ${c.payload.role}` : ''),
      el('td', {}, (name && name(c.requested_by)) ? el('span', { title: c.requested_by }, name(c.requested_by)) : el('code', {}, c.requested_by)),
      el('td', {}, el('button', { type: 'button', onclick: decide(c, 'approve') }, 'Approve'), ' ',
        el('button', { type: 'button', class: 'secondary', onclick: decide(c, 'reject') }, 'Reject'))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'Nothing is waiting.')));
    body.replaceChildren(...rows);
  }

  function zonePicker() {
    const who = $('.top .who');
    if (!who) return;
    let zones = [];
    try { zones = Intl.supportedValuesOf('timeZone'); } catch (_) { zones = []; }
    const current = timeZone();
    const all = ['UTC', browserZone(), ...zones].filter((z, i, a) => a.indexOf(z) === i);
    const sel = el('select', { id: 'time-zone', class: 'tz' },
      all.map((z) => el('option', { value: z, selected: z === current }, z === browserZone() ? `${z} (this computer)` : z)));
    sel.addEventListener('change', () => {
      try { localStorage.setItem(TZ_KEY, sel.value); } catch (_) { /* storage off */ }
      location.reload();
    });
    who.prepend(el('label', { for: 'time-zone', class: 'tz-label' }, 'Times in'), sel);
  }

  function init() {
    zonePicker();
    const logout = $('#logout');
    if (logout) {
      logout.addEventListener('click', guard(async () => {
        await api('POST', '/api/auth/logout', undefined, { noRedirect: true }).catch(() => null);
        try { sessionStorage.clear(); } catch (_) { /* storage off */ }
        location.assign('/login');
      }));
    }
  }
  window.addEventListener('unhandledrejection', (ev) => showError(ev.reason));
  window.addEventListener('error', () => showError({ title: 'The page failed', detail: 'Reload the page; if it persists, tell your administrator.' }));
  document.addEventListener('DOMContentLoaded', init);

  return { $, api, el, highlighted, showError, clearError, status, perms, fmtDate, fmtDuration, fmtClock, who, guard, Problem, csrfToken, pendingChanges, checkWindow, people, personEl, personText, timeZone };
})();
