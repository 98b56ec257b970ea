// Four-eyes access requests: list; approve or deny (approvers).
'use strict';
(() => {
  const { $, api, el, guard, perms, fmtDate, status, people, personEl } = Insights;
  const approver = perms().has('approve-access');

  async function decide(id, verb) {
    await api('POST', `/api/access-requests/${encodeURIComponent(id)}/${verb}`, {});
    status(`Request ${verb === 'approve' ? 'approved' : 'denied'}.`);
    await load();
  }

  async function load() {
    const [res, names] = await Promise.all([api('GET', '/api/access-requests'), people()]);
    const rows = res.items.map((r) => el('tr', {},
      el('td', {}, fmtDate(r.requested_at)),
      el('td', {}, el('a', { href: `/recordings/${encodeURIComponent(r.recording_id)}`, title: r.recording_id }, 'Open')),
      el('td', {}, personEl(names, r.requested_by)),
      el('td', {}, r.reason),
      el('td', {}, el('span', { class: `badge ${r.status === 'approved' ? 'ok' : r.status === 'denied' ? 'bad' : ''}` }, r.status)),
      el('td', {}, approver && r.status === 'pending'
        ? [el('button', { type: 'button', onclick: guard(() => decide(r.id, 'approve')) }, 'Approve'), ' ',
          el('button', { type: 'button', class: 'secondary', onclick: guard(() => decide(r.id, 'deny')) }, 'Deny')]
        : (r.decision_note || ''))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No requests.')));
    $('#requests tbody').replaceChildren(...rows);
  }

  document.addEventListener('DOMContentLoaded', () => guard(load)());
})();
