// Retention policies: list, add, enable/disable, delete; due count; runs.
'use strict';
(() => {
  const { $, api, el, guard, status, pendingChanges } = Insights;
  const val = (id) => $(id).value.trim();

  function scopeText(s) {
    return [s.kind, s.direction, s.group && `group ${s.group}`, s.retention_class && `class ${s.retention_class}`].filter(Boolean).join(', ') || 'All recordings';
  }

  async function due() {
    try {
      const d = await api('GET', '/api/retention/due');
      $('#due').textContent = `${d.due} recording(s) are past their retention period.`;
    } catch (e) {
      $('#due').textContent = e.detail || 'Unknown.';
    }
  }

  async function load() {
    const res = await api('GET', '/api/retention-policies');
    const rows = res.items.map((p) => el('tr', {},
      el('td', {}, p.name), el('td', {}, scopeText(p.scope || {})), el('td', {}, p.retain_days), el('td', {}, p.action),
      el('td', {}, el('input', { type: 'checkbox', checked: p.enabled, 'aria-label': `Policy ${p.name} enabled`, onchange: guard(async (ev) => {
        const body = { name: p.name, scope: p.scope, retain_days: p.retain_days, action: p.action, enabled: ev.target.checked };
        await api('PUT', `/api/retention-policies/${encodeURIComponent(p.id)}`, body);
        status('Policy saved.');
      }) })),
      el('td', {}, el('button', { type: 'button', class: 'secondary', onclick: guard(async () => {
        if (!window.confirm(`Delete the policy \u201c${p.name}\u201d?`)) return;
        await api('DELETE', `/api/retention-policies/${encodeURIComponent(p.id)}`);
        status('Deleting the policy waits for a second person\u2019s approval.');
        await load();
      }) }, 'Delete'))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No policies: recordings are kept until deleted.')));
    $('#policies tbody').replaceChildren(...rows);
    await pendingChanges(['retention-policy-delete', 'retention-policy-shorten'], load);
    await due();
  }

  async function add(ev) {
    ev.preventDefault();
    const scope = {};
    if (val('#r-kind')) scope.kind = val('#r-kind');
    if (val('#r-direction')) scope.direction = val('#r-direction');
    if (val('#r-group')) scope.group = val('#r-group');
    if (val('#r-class')) scope.retention_class = val('#r-class');
    await api('POST', '/api/retention-policies', { name: val('#r-name'), scope, retain_days: Number(val('#r-days')), action: val('#r-action'), enabled: true });
    $('#policy-form').reset();
    status('Policy added.');
    await load();
  }

  async function run(dry) {
    if (!dry && !window.confirm('Delete everything that is due now? Recordings on legal hold are kept.')) return;
    const r = await api('POST', '/api/retention/run', { dry_run: dry });
    const blocked = (r.blocked || []).length;
    $('#run-result').replaceChildren(el('p', { class: 'ok' },
      `${dry ? 'Preview' : 'Run'}: ${r.examined} examined, ${r.due} due, ${r.deleted_media} media and ${r.deleted_recordings} recordings ${dry ? 'would be ' : ''}deleted, ${blocked} kept by a legal hold.`));
    await load();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#policy-form').addEventListener('submit', guard(add));
    $('#dry-run').addEventListener('click', guard(() => run(true)));
    $('#run-now').addEventListener('click', guard(() => run(false)));
    guard(load)();
  });
})();
