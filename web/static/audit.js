// The audit log (filtered, paged) and the hash-chain verification.
'use strict';
(() => {
  const { $, api, el, guard, fmtDate, status, checkWindow, people, personEl, Problem } = Insights;
  const ACTIONS = ['login', 'login-failed', 'logout', 'search', 'play', 'download', 'transcript-view', 'export', 'policy-change', 'legal-hold-place', 'legal-hold-lift', 'retention-delete', 'gdpr-access', 'gdpr-erasure', 'settings-change', 'user-change', 'tenant-create', 'key-shred', 'access-request', 'access-decision', 'completeness-run', 'completeness-view', 'completeness-alert'];
  let before = null;
  let who = new Map();

  // The actor as typed (an e-mail, a name, part of either, or an id) as
  // the account id the API filters by: never personal data in the URL.
  function actorId() {
    const typed = $('#a-actor').value.trim();
    if (!typed) return '';
    if (who.has(typed) || /^oidc:/.test(typed)) return typed;
    const t = typed.toLowerCase();
    const all = [...who.values()];
    const exact = all.filter((p) => p.email.toLowerCase() === t || (p.name && p.name.toLowerCase() === t));
    const some = exact.length ? exact : all.filter((p) => p.email.toLowerCase().includes(t) || (p.name && p.name.toLowerCase().includes(t)));
    if (some.length === 1) return some[0].id;
    if (!some.length) throw new Problem(400, 'No such person', 'Nobody with that e-mail or name has an account here. Pick one from the list.', 'unknown-actor');
    throw new Problem(400, 'Several people match', `${some.length} people match: ${some.slice(0, 5).map((p) => p.email).join(', ')}${some.length > 5 ? ', \u2026' : ''}. Type more of the e-mail.`, 'ambiguous-actor');
  }

  function details(e) {
    const d = e.details;
    if (!d || typeof d !== 'object' || !Object.keys(d).length) return e.target ? `target ${e.target}` : '';
    const text = Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('; ');
    return text.length > 300 ? `${text.slice(0, 300)}\u2026` : text;
  }

  function params() {
    const q = new URLSearchParams();
    const add = (k, v) => { if (v) q.set(k, v); };
    add('action', $('#a-action').value);
    add('actor', actorId());
    add('recording_id', $('#a-recording').value.trim());
    add('from', $('#a-from').value && new Date($('#a-from').value).toISOString());
    add('to', $('#a-to').value && new Date($('#a-to').value).toISOString());
    q.set('limit', '200');
    q.set('newest_first', 'true');
    if (before !== null) q.set('before', String(before));
    return q;
  }

  async function load(more) {
    checkWindow('#a-from', '#a-to');
    if (!more) before = null;
    who = await people();
    const res = await api('GET', `/api/audit?${params()}`);
    const rows = res.events.map((e) => el('tr', {},
      el('td', {}, e.seq), el('td', {}, fmtDate(e.at)), el('td', {}, e.action), el('td', { class: 'actor' }, personEl(who, e.actor)),
      el('td', {}, e.recording_id ? el('a', { href: `/recordings/${encodeURIComponent(e.recording_id)}`, title: e.recording_id }, 'Open') : ''),
      el('td', {}, e.reason || ''), el('td', { class: 'details' }, details(e)), el('td', {}, e.source || '')));
    const body = $('#events tbody');
    if (more) body.append(...rows); else body.replaceChildren(...rows);
    if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No events match.')));
    before = res.next_before;
    $('#more').hidden = before === null || before === undefined;
    status(`${body.querySelectorAll('tr').length} events shown.`);
  }

  async function verify() {
    const box = $('#verify-result');
    box.replaceChildren(el('p', { class: 'muted' }, 'Checking every event\u2026'));
    const r = await api('GET', '/api/audit/verify');
    const head = r.head ? ` Head: event ${r.head.seq}, hash ${r.head.hash.slice(0, 16)}\u2026` : '';
    if (r.intact) {
      box.replaceChildren(el('p', { class: 'ok', id: 'chain-ok' }, `Intact: all ${r.events} events verified.${head}`));
    } else {
      box.replaceChildren(el('div', { class: 'error', id: 'chain-broken' }, el('p', {}, el('strong', {}, `The chain is broken (${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}).`)),
        el('ul', {}, r.summary.map((s) => el('li', {}, s)))));
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#a-action').append(...ACTIONS.map((a) => el('option', { value: a }, a)));
    people().then((m) => {
      $('#a-people').replaceChildren(...[...m.values()].map((p) => el('option', { value: p.email }, p.name ? `${p.name} (${p.role})` : p.role)));
    });
    $('#audit-form').addEventListener('submit', guard((ev) => { ev.preventDefault(); return load(false); }));
    $('#more').addEventListener('click', guard(() => load(true)));
    $('#verify').addEventListener('click', guard(verify));
    guard(() => load(false))();
  });
})();
