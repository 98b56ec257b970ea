// Recording policy: mode, failure mode, include and never-record rules.
'use strict';
(() => {
  const { $, api, el, guard, status } = Insights;
  const LISTS = { include: 'Include', 'never-record': 'Never record' };
  let policy = null;

  function body(rules) {
    return {
      mode: policy.mode,
      failure_mode: policy.failure_mode,
      rules: rules.map((r) => ({ id: r.id, list: r.list, kind: r.kind, value: r.value, label: r.label || null })),
    };
  }

  async function put(rules, message) {
    policy = await api('PUT', '/api/admin/recording-policy', body(rules));
    status(message);
    render();
  }

  function render() {
    $(policy.mode === 'include-only' ? '#p-mode-include' : '#p-mode-all').checked = true;
    $(policy.failure_mode === 'best-effort' ? '#p-fail-best' : '#p-fail-required').checked = true;
    const rows = policy.rules.map((r) => el('tr', { dataset: { id: r.id } },
      el('td', {}, LISTS[r.list] || r.list),
      el('td', {}, r.kind),
      el('td', {}, r.value),
      el('td', {}, r.label || ''),
      el('td', {}, el('button', { type: 'button', class: 'secondary remove', 'aria-label': `Remove rule ${r.value}`,
        onclick: guard(() => put(policy.rules.filter((x) => x.id !== r.id), 'Rule removed.')) }, 'Remove'))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No rules.')));
    $('#rules tbody').replaceChildren(...rows);
  }

  async function load() {
    policy = await api('GET', '/api/admin/recording-policy');
    render();
  }

  async function save(ev) {
    ev.preventDefault();
    policy.mode = $('#p-mode-include').checked ? 'include-only' : 'record-all';
    policy.failure_mode = $('#p-fail-best').checked ? 'best-effort' : 'required';
    await put(policy.rules, 'Recording policy saved.');
  }

  async function add(ev) {
    ev.preventDefault();
    const rule = { list: $('#r-list').value, kind: $('#r-kind').value, value: $('#r-value').value.trim(), label: $('#r-label').value.trim() || null };
    await put([...policy.rules, rule], 'Rule added.');
    $('#rule-form').reset();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#policy-form').addEventListener('submit', guard(save));
    $('#rule-form').addEventListener('submit', guard(add));
    guard(load)();
  });
})();
