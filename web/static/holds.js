// Legal holds: list (active and lifted), place, lift.
'use strict';
(() => {
  const { $, api, el, guard, fmtDate, status, pendingChanges } = Insights;
  const val = (id) => $(id).value.trim();

  function scopeText(s) {
    const parts = [];
    if (s.participant_identifier) parts.push(`participant ${s.participant_identifier}`);
    if (s.user_id) parts.push(`user ${s.user_id}`);
    if (s.from) parts.push(`from ${fmtDate(s.from)}`);
    if (s.to) parts.push(`until ${fmtDate(s.to)}`);
    if (s.recording_ids && s.recording_ids.length) parts.push(`${s.recording_ids.length} recording(s)`);
    return parts.join(', ');
  }

  async function lift(h) {
    const reason = window.prompt(`Reason for lifting the hold \u201c${h.case_name}\u201d (optional):`, '');
    if (reason === null) return;
    await api('POST', `/api/legal-holds/${encodeURIComponent(h.id)}/lift`, reason ? { reason } : {});
    status(`Lifting the hold \u201c${h.case_name}\u201d waits for a second person\u2019s approval.`);
    await load();
  }

  async function load() {
    const res = await api('GET', '/api/legal-holds');
    const rows = res.items.map((h) => el('tr', { dataset: { id: h.id } },
      el('td', {}, h.case_name, h.reason ? el('div', { class: 'hint' }, h.reason) : ''),
      el('td', {}, scopeText(h.scope || {})),
      el('td', {}, h.held_recordings ?? ''),
      el('td', {}, fmtDate(h.placed_at)),
      el('td', {}, h.active ? el('span', { class: 'badge hold' }, 'Active') : el('span', { class: 'badge' }, `Lifted ${fmtDate(h.lifted_at)}`)),
      el('td', {}, h.active ? el('button', { type: 'button', class: 'secondary lift', 'aria-label': `Lift hold ${h.case_name}`, onclick: guard(() => lift(h)) }, 'Lift') : '')));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No legal holds.')));
    $('#holds tbody').replaceChildren(...rows);
    await pendingChanges(['legal-hold-lift'], load);
  }

  async function place(ev) {
    ev.preventDefault();
    const scope = {};
    if (val('#h-participant')) scope.participant_identifier = val('#h-participant');
    if (val('#h-user')) scope.user_id = val('#h-user');
    if (val('#h-from')) scope.from = new Date(val('#h-from')).toISOString();
    if (val('#h-to')) scope.to = new Date(val('#h-to')).toISOString();
    const ids = val('#h-recordings').split(/[\s,]+/).filter(Boolean);
    if (ids.length) scope.recording_ids = ids;
    const body = { case_name: val('#h-case'), scope };
    if (val('#h-reason')) body.reason = val('#h-reason');
    const h = await api('POST', '/api/legal-holds', body);
    status(`Hold \u201c${h.case_name}\u201d placed on ${h.held_recordings ?? 0} recording(s).`);
    $('#hold-form').reset();
    await load();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#hold-form').addEventListener('submit', guard(place));
    guard(load)();
  });
})();
