// Retention policies: list, add, enable/disable, delete; due count; runs.
'use strict';
(() => {
  const { $, api, el, guard, status, pendingChanges } = Insights;
  const val = (id) => $(id).value.trim();

  function scopeText(s) {
    return [s.kind, s.direction, s.group && `group ${s.group}`, s.retention_class && `class ${s.retention_class}`].filter(Boolean).join(', ') || 'All recordings';
  }

  // Overlapping policies, as the server decides (gdpr-tools retention):
  // a recording both cover is kept for the longest retention; on equal
  // days the lesser action (delete-media) wins, then the smaller id.
  let policies = [];
  const RANK = { 'delete-media': 1, 'delete-recording': 0 };
  function overlaps(a, b) {
    // Two groups may both match one recording (members of both took part).
    return ['kind', 'direction', 'retention_class'].every((f) => !a[f] || !b[f] || a[f] === b[f]);
  }
  function governs(a, b) {
    if (a.retain_days !== b.retain_days) return a.retain_days > b.retain_days;
    if (a.action !== b.action) return RANK[a.action] > RANK[b.action];
    return (a.id || '') < (b.id || '');
  }
  const ACTION = { 'delete-media': 'delete the media', 'delete-recording': 'delete the recording' };
  function formPolicy() {
    const scope = {};
    if (val('#r-kind')) scope.kind = val('#r-kind');
    if (val('#r-direction')) scope.direction = val('#r-direction');
    if (val('#r-group')) scope.group = val('#r-group');
    if (val('#r-class')) scope.retention_class = val('#r-class');
    return { id: null, name: val('#r-name') || 'This policy', scope, retain_days: Number(val('#r-days')), action: val('#r-action'), enabled: true };
  }
  function showOverlap() {
    const box = $('#overlap');
    const p = formPolicy();
    if (!p.retain_days) { box.replaceChildren(); box.classList.remove('warn'); return; }
    const others = policies.filter((o) => o.enabled && overlaps(o.scope || {}, p.scope));
    if (!others.length) { box.replaceChildren(el('p', {}, 'No other enabled policy covers these recordings.')); box.classList.remove('warn'); return; }
    const items = others.map((o) => {
      const winner = governs(o, p) ? o : p;
      return el('li', {}, `“${o.name}” (${scopeText(o.scope || {})}: keep ${o.retain_days} days, then ${ACTION[o.action]}). Where both apply, “${winner.name}” governs: keep ${winner.retain_days} days, then ${ACTION[winner.action]}.`);
    });
    box.classList.add('warn');
    box.replaceChildren(el('p', {}, el('strong', {}, `Overlaps ${others.length} enabled polic${others.length === 1 ? 'y' : 'ies'}:`), ' the longest retention governs a recording several policies cover.'), el('ul', { id: 'overlap-list' }, items));
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
    policies = res.items;
    showOverlap();
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
    $('#overlap').replaceChildren();
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
    $('#policy-form').addEventListener('input', showOverlap);
    $('#policy-form').addEventListener('change', showOverlap);
    $('#dry-run').addEventListener('click', guard(() => run(true)));
    $('#run-now').addEventListener('click', guard(() => run(false)));
    guard(load)();
  });
})();
