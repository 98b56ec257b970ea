// The audit log (filtered, paged) and the hash-chain verification.
'use strict';
(() => {
  const { $, api, el, guard, fmtDate, status } = Insights;
  const ACTIONS = ['login', 'login-failed', 'logout', 'search', 'play', 'download', 'transcript-view', 'export', 'policy-change', 'legal-hold-place', 'legal-hold-lift', 'retention-delete', 'gdpr-access', 'gdpr-erasure', 'settings-change', 'user-change', 'tenant-create', 'key-shred', 'access-request', 'access-decision'];
  let after = null;

  function params() {
    const q = new URLSearchParams();
    const add = (k, v) => { if (v) q.set(k, v); };
    add('action', $('#a-action').value);
    add('actor', $('#a-actor').value.trim());
    add('recording_id', $('#a-recording').value.trim());
    add('from', $('#a-from').value && new Date($('#a-from').value).toISOString());
    add('to', $('#a-to').value && new Date($('#a-to').value).toISOString());
    q.set('limit', '200');
    if (after !== null) q.set('after', String(after));
    return q;
  }

  async function load(more) {
    if (!more) after = null;
    const res = await api('GET', `/api/audit?${params()}`);
    const rows = res.events.map((e) => el('tr', {},
      el('td', {}, e.seq), el('td', {}, fmtDate(e.at)), el('td', {}, e.action), el('td', {}, el('code', {}, e.actor)),
      el('td', {}, e.recording_id ? el('a', { href: `/recordings/${encodeURIComponent(e.recording_id)}` }, 'Open') : ''),
      el('td', {}, e.reason || ''), el('td', {}, e.source || '')));
    const body = $('#events tbody');
    if (more) body.append(...rows); else body.replaceChildren(...rows);
    if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No events match.')));
    after = res.next_after;
    $('#more').hidden = after === null || after === undefined;
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
    $('#audit-form').addEventListener('submit', guard((ev) => { ev.preventDefault(); return load(false); }));
    $('#more').addEventListener('click', guard(() => load(true)));
    $('#verify').addEventListener('click', guard(verify));
    guard(() => load(false))();
  });
})();
