// Alerts: the tenant's alerts (acknowledge), its channels (add, remove).
'use strict';
(() => {
  const { $, api, el, guard, fmtDate, status } = Insights;
  const val = (id) => $(id).value.trim();

  function detailText(d) {
    return Object.entries(d || {}).map(([k, v]) => `${k}: ${v}`).join(', ');
  }

  async function ack(a) {
    await api('POST', `/api/admin/alerts/${encodeURIComponent(a.id)}/ack`, {});
    status(`Alert ${a.kind} acknowledged.`);
    await loadAlerts();
  }

  async function loadAlerts() {
    const open = $('#open-only').checked ? '?open=true' : '';
    const alerts = await api('GET', `/api/admin/alerts${open}`);
    const rows = alerts.map((a) => el('tr', { dataset: { id: a.id, kind: a.kind } },
      el('td', {}, fmtDate(a.first_at)),
      el('td', {}, a.kind),
      el('td', {}, el('span', { class: `badge ${a.severity === 'critical' ? 'hold' : ''}` }, a.severity)),
      el('td', { class: 'details' }, detailText(a.details)),
      el('td', { class: 'occurrences' }, String(a.occurrences)),
      el('td', { class: 'delivery' }, a.delivery),
      el('td', { class: 'ack' }, a.acknowledged_at
        ? `${fmtDate(a.acknowledged_at)}`
        : el('button', { type: 'button', class: 'secondary acknowledge', 'aria-label': `Acknowledge alert ${a.kind}`, onclick: guard(() => ack(a)) }, 'Acknowledge'))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No alerts.')));
    $('#alerts tbody').replaceChildren(...rows);
  }

  async function remove(c) {
    if (!window.confirm(`Remove the channel \u201c${c.name}\u201d?`)) return;
    await api('DELETE', `/api/admin/alert-channels/${encodeURIComponent(c.id)}`);
    status(`Channel \u201c${c.name}\u201d removed.`);
    await loadChannels();
  }

  async function loadChannels() {
    const channels = await api('GET', '/api/admin/alert-channels');
    const rows = channels.map((c) => el('tr', { dataset: { id: c.id } },
      el('td', {}, c.name),
      el('td', {}, c.kind),
      el('td', {}, c.target),
      el('td', {}, c.enabled ? 'yes' : 'no'),
      el('td', {}, el('button', { type: 'button', class: 'secondary', 'aria-label': `Remove channel ${c.name}`, onclick: guard(() => remove(c)) }, 'Remove'))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No channels: alerts are stored and shown here only.')));
    $('#channels tbody').replaceChildren(...rows);
  }

  async function add(ev) {
    ev.preventDefault();
    const kind = $('#c-kind').value;
    const body = { kind, name: val('#c-name') };
    if (kind === 'email') body.recipients = val('#c-recipients').split(',').map((s) => s.trim()).filter(Boolean);
    else body.url = val('#c-url');
    if (kind === 'webhook') body.secret = $('#c-secret').value;
    const c = await api('POST', '/api/admin/alert-channels', body);
    status(`Channel \u201c${c.name}\u201d added.`);
    $('#channel-form').reset();
    await loadChannels();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#channel-form').addEventListener('submit', guard(add));
    $('#open-only').addEventListener('change', guard(loadAlerts));
    guard(loadAlerts)();
    guard(loadChannels)();
  });
})();
