// Data-subject requests (contract B: /api/gdpr/*): find, copy, erase.
// Identifiers typed here go in POST bodies only.
'use strict';
(() => {
  const { $, api, el, guard, status, fmtDate } = Insights;
  const FIELDS = [['#g-phone', 'phone'], ['#g-email', 'email'], ['#g-upn', 'upn'], ['#g-uri', 'uri'], ['#g-directory', 'directory_id'], ['#g-name', 'name']];

  function identifiers() {
    const ids = {};
    for (const [sel, k] of FIELDS) { const v = $(sel).value.trim(); if (v) ids[k] = v; }
    if (!Object.keys(ids).length) throw { title: 'Nothing to look for', detail: 'Enter at least one identifier.' };
    return ids;
  }

  async function find(ev) {
    ev.preventDefault();
    const res = await api('POST', '/api/gdpr/find', { identifiers: identifiers() });
    const rows = res.matches.map((m) => el('tr', {},
      el('td', {}, m.type === 'recording' ? el('a', { href: `/recordings/${encodeURIComponent(m.id)}` }, 'Recording') : m.type),
      el('td', {}, fmtDate(m.started_at)),
      el('td', {}, (m.reasons || []).map((r) => `${r.field}${r.role ? ` (${r.role})` : ''}`).join(', '))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 3, class: 'muted' }, 'Nothing found.')));
    $('#matches tbody').replaceChildren(...rows);
    $('#match-count').textContent = `(${res.matches.length})`;
    $('#matches-box').hidden = false;
  }

  async function access() {
    const reason = $('#g-access-reason').value.trim();
    if (!reason) throw { title: 'Reason missing', detail: 'Give the request reference as the reason.' };
    const job = await api('POST', '/api/gdpr/access', { identifiers: identifiers(), reason, include_media: $('#g-media').checked, mask_others: $('#g-mask').checked });
    const bar = $('#access-progress');
    bar.hidden = false;
    for (;;) {
      const s = await api('GET', `/api/gdpr/access/${encodeURIComponent(job.id)}`);
      bar.value = Math.min(1, Number(s.progress) || 0);
      if (s.status === 'done') break;
      if (s.status === 'failed') throw { title: 'The copy failed', detail: s.error || 'Try again.' };
      await new Promise((r) => setTimeout(r, 500));
    }
    const a = $('#access-file');
    a.href = `/api/gdpr/access/${encodeURIComponent(job.id)}/file`;
    a.hidden = false;
    status('The copy is ready.');
  }

  function detail(e) {
    const recs = (e.report && e.report.recordings) || [];
    const list = el('ul', {}, recs.map((r) => el('li', {}, el('a', { href: `/recordings/${encodeURIComponent(r.id)}` }, r.id), ` \u2014 ${r.action}`,
      r.holds && r.holds.length ? ` (held by ${r.holds.map((h) => h.case_name).join(', ')})` : '')));
    const actions = [];
    if (e.status === 'planned') actions.push(el('button', { type: 'button', class: 'danger', id: 'execute-erasure', onclick: guard(async () => {
      if (!window.confirm('Erase now? This cannot be undone.')) return;
      const done = await api('POST', `/api/gdpr/erasures/${encodeURIComponent(e.id)}/execute`, {});
      status(outcomeText(done));
      await load();
      // The card shows the erasure as it is now, not as planned.
      detail(await api('GET', `/api/gdpr/erasures/${encodeURIComponent(e.id)}`));
    }) }, 'Execute the erasure'));
    if (e.certificate_id || e.status === 'completed' || e.status === 'partially-deferred') {
      actions.push(el('a', { class: 'button secondary', href: `/api/gdpr/erasures/${encodeURIComponent(e.id)}/certificate`, download: `erasure-${e.id}.json` }, 'Download the certificate'));
    }
    const outcomes = Object.entries(e.outcomes || {});
    const results = outcomes.length ? el('ul', { class: 'outcomes' }, outcomes.map(([id, o]) => el('li', {}, el('a', { href: `/recordings/${encodeURIComponent(id)}` }, id), ` \u2014 ${o.result}`,
      o.holds && o.holds.length ? ` (legal hold: ${o.holds.map((h) => h.case_name).join(', ')})` : ''))) : null;
    $('#erasure-detail').replaceChildren(el('div', { class: 'card', id: 'erasure-card', dataset: { status: e.status } },
      el('h3', {}, `Erasure ${e.reason ? `\u201c${e.reason}\u201d ` : ''}of ${fmtDate(e.created_at)}: ${e.status}`),
      e.status === 'planned' ? list : el('div', {}, el('p', {}, outcomeText(e)), results), el('div', { class: 'actions' }, actions)));
  }

  // What an executed erasure did, in words: a request every recording of
  // which was held erased nothing, and says so.
  function outcomeText(e) {
    if (!e || e.status === 'planned') return 'Erasure planned: check the list, then execute it.';
    const all = [...Object.values(e.outcomes || {}), ...Object.values(e.directory_outcomes || {})];
    const blocked = all.filter((o) => o.result === 'blocked').length;
    const deferred = all.filter((o) => o.result === 'pseudonymized-media-deferred').length;
    if (all.length && blocked === all.length) return `Nothing was erased: all ${blocked} item(s) are on legal hold. Once the hold is lifted the erasure can be run again.`;
    const parts = [`Erasure done: ${all.length - blocked} of ${all.length} item(s) erased`];
    if (blocked) parts.push(`${blocked} kept by a legal hold`);
    if (deferred) parts.push(`the media of ${deferred} recording(s) is deleted later (deferred)`);
    return `${parts.join('; ')}.`;
  }

  async function plan() {
    const reason = $('#g-reason').value.trim();
    if (!reason) throw { title: 'Reason missing', detail: 'Give the request reference as the reason.' };
    const e = await api('POST', '/api/gdpr/erasures', { identifiers: identifiers(), reason });
    status('Erasure planned: check the list, then execute it.');
    await load();
    detail(e);
  }

  async function load() {
    const res = await api('GET', '/api/gdpr/erasures');
    const rows = res.items.map((e) => el('tr', {}, el('td', {}, e.reason || ''), el('td', {}, fmtDate(e.created_at)), el('td', {}, e.status),
      el('td', {}, ((e.report && e.report.recordings) || []).length),
      el('td', {}, el('button', { type: 'button', class: 'secondary', onclick: () => detail(e) }, 'Open'))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No erasures yet.')));
    $('#erasures tbody').replaceChildren(...rows);
  }

  // Art. 16: where each kind of data is corrected (the API's own text).
  async function rectification() {
    const r = await api('GET', '/api/gdpr/rectification');
    $('#rect-directory').textContent = r.directory;
    $('#rect-calls').textContent = r.call_data;
    $('#rect-where tbody').replaceChildren(...(r.where || []).map((w) => el('tr', {},
      el('td', {}, w.data), el('td', {}, w.source), el('td', {}, w.how))));
  }

  document.addEventListener('DOMContentLoaded', () => {
    guard(rectification)();
    $('#subject-form').addEventListener('submit', guard(find));
    $('#access').addEventListener('click', guard(access));
    $('#plan').addEventListener('click', guard(plan));
    guard(load)();
  });
})();
