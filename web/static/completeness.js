// Completeness: reconciled calls of a period (totals, coverage per day as
// an SVG bar chart drawn here, the gaps with drill-down), on-demand run,
// .xlsx download.
'use strict';
(() => {
  const { $, api, el, guard, fmtDate, fmtDuration, status } = Insights;
  const SVG = 'http://www.w3.org/2000/svg';
  const REASONS = {
    'not-invited': 'Not invited: the bot never got the call',
    'bot-refused': 'Bot refused the invite',
    'node-crash': 'Recording node lost',
    'paused': 'Paused',
    'upload-pending': 'Upload pending',
    'recording-failed': 'Recording failed',
    'unknown': 'Unknown',
  };
  let report = null;

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  const pct = (permille) => `${(permille / 10).toFixed(1)} %`;
  const day = (d) => d.toISOString().slice(0, 10);

  function period() {
    const from = $('#c-from').value;
    const to = $('#c-to').value;
    if (!from || !to) throw new Insights.Problem(400, 'Check the dates', 'Give both days.', 'bad-window');
    const end = new Date(`${to}T00:00:00Z`);
    end.setUTCDate(end.getUTCDate() + 1);
    if (new Date(`${from}T00:00:00Z`) >= end) throw new Insights.Problem(400, 'Check the dates', '\u201cFrom\u201d is later than \u201cTo\u201d.', 'bad-window');
    return { from, to: day(end) };
  }

  function query() {
    const p = period();
    return new URLSearchParams({ from: p.from, to: p.to });
  }

  function chart(days, threshold) {
    const W = 640; const H = 220; const L = 40; const B = 30; const T = 10;
    const n = Math.max(days.length, 1);
    const bw = (W - L - 10) / n;
    const y = (permille) => T + (H - T - B) * (1 - permille / 1000);
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', id: 'coverage-chart', class: 'chart', 'aria-label': 'Coverage per day' });
    g.append(svg('title', {}, 'Coverage of in-scope call time per day'));
    for (const v of [0, 500, 1000]) {
      g.append(svg('line', { x1: L, x2: W - 10, y1: y(v), y2: y(v), class: 'grid-line', stroke: '#ccc' }));
      g.append(svg('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 10 }, `${v / 10}%`));
    }
    days.forEach((d, i) => {
      const c = d.totals.coverage_permille;
      const below = d.totals.in_scope > 0 && c < threshold;
      const x = L + i * bw + bw * 0.1;
      const bar = svg('rect', {
        x, y: y(c), width: Math.max(bw * 0.8, 1), height: Math.max(y(0) - y(c), 0),
        class: below ? 'bar below' : 'bar', fill: below ? '#b42318' : '#1f6feb', 'data-day': d.day, 'data-coverage': c,
      });
      bar.append(svg('title', {}, `${d.day}: ${pct(c)} of ${d.totals.in_scope} in-scope calls (${d.totals.partial} partial, ${d.totals.not_recorded} not recorded)`));
      g.append(bar);
      if (n <= 16 || i % Math.ceil(n / 16) === 0) {
        g.append(svg('text', { x: x + bw * 0.4, y: H - B + 14, 'text-anchor': 'middle', 'font-size': 9 }, d.day.slice(5)));
      }
    });
    g.append(svg('line', { x1: L, x2: W - 10, y1: y(threshold), y2: y(threshold), class: 'threshold', stroke: '#b42318', 'stroke-dasharray': '4 3' }));
    return g;
  }

  function why(c) {
    if (c.status === 'out-of-scope') return c.rule || '';
    if (c.reason) return REASONS[c.reason] || c.reason;
    const g = c.gaps && c.gaps[0];
    return g ? (REASONS[g.reason] || g.reason) : '';
  }

  function showCall(c) {
    const box = $('#call-detail');
    const items = [
      ['Call id', c.call_id], ['Type', c.call_type], ['Started', fmtDate(c.started_at)], ['Ended', fmtDate(c.ended_at)],
      ['Status', c.status], ['Coverage', c.status === 'out-of-scope' ? '' : pct(c.coverage_permille)],
      ['Reason or rule', why(c)], ['Result code', c.result_code || ''], ['Rule id', c.rule_id || ''],
      ['Parties', c.participants], ['Directory users', (c.user_ids || []).length],
    ];
    const dl = $('#detail');
    dl.replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    dl.append(el('dt', {}, 'Gaps'), el('dd', {}, (c.gaps || []).length
      ? el('ul', { id: 'detail-gaps' }, c.gaps.map((g) => el('li', {}, `${fmtDate(g.from)} \u2013 ${fmtDate(g.to)} (${fmtDuration(new Date(g.to) - new Date(g.from))}): ${REASONS[g.reason] || g.reason}`)))
      : 'none'));
    dl.append(el('dt', {}, 'Recordings'), el('dd', {}, (c.recording_ids || []).length
      ? el('ul', {}, c.recording_ids.map((id) => el('li', {}, el('a', { href: `/recordings/${encodeURIComponent(id)}` }, id))))
      : 'none'));
    box.hidden = false;
    $('#detail-title').textContent = `Call ${c.call_id}`;
    box.scrollIntoView({ block: 'nearest' });
  }

  function table() {
    if (!report) return;
    const want = $('#c-status').value;
    const rows = report.calls.filter((c) => !want || (want === 'gaps' ? ['partial', 'not-recorded'].includes(c.status) : c.status === want));
    const body = $('#calls tbody');
    body.replaceChildren(...rows.slice(0, 2000).map((c) => el('tr', { dataset: { call: c.call_id, status: c.status } },
      el('td', {}, fmtDate(c.started_at)), el('td', { class: 'mono' }, c.call_id), el('td', {}, c.call_type), el('td', {}, c.status),
      el('td', {}, c.status === 'out-of-scope' ? '' : pct(c.coverage_permille)), el('td', {}, why(c)),
      el('td', {}, el('button', { type: 'button', class: 'secondary', onclick: () => showCall(c) }, 'Open')))));
    if (!rows.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No calls.')));
    status(`${rows.length} call${rows.length === 1 ? '' : 's'} shown.`);
  }

  async function load() {
    const q = query();
    report = await api('GET', `/api/completeness?${q}`);
    const t = report.totals;
    const items = [['Calls', t.calls], ['In scope', t.in_scope], ['Recorded', t.recorded], ['Partial', t.partial], ['Not recorded', t.not_recorded], ['Out of scope', t.out_of_scope], ['Coverage', pct(t.coverage_permille)]];
    $('#totals').replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { dataset: { total: k.toLowerCase().replace(/ /g, '-') } }, v)]));
    const last = report.runs && report.runs[0];
    $('#threshold').textContent = `Alert threshold ${pct(report.threshold_permille)}.` +
      (last ? ` Last run ${fmtDate(last.finished_at)} (${last.trigger}), up to ${fmtDate(last.to)}.` : ' No run yet.') +
      (report.configured ? '' : ' Reconciliation is not configured on this server (Microsoft Graph).');
    $('#chart').replaceChildren(chart(report.days, report.threshold_permille));
    $('#download').href = `/api/completeness/export.xlsx?${q}`;
    table();
  }

  async function run() {
    const p = period();
    const box = $('#run-result');
    box.replaceChildren(el('p', { class: 'muted' }, 'Reading Microsoft\u2019s call records\u2026'));
    const r = await api('POST', '/api/completeness/runs', { from: p.from, to: p.to });
    box.replaceChildren(el('p', { class: r.below_threshold ? 'error' : 'ok', id: 'run-done' },
      `Reconciled ${r.totals.calls} calls: ${r.totals.recorded} recorded, ${r.totals.partial} partial, ${r.totals.not_recorded} not recorded, ${r.totals.out_of_scope} out of scope; coverage ${pct(r.totals.coverage_permille)}.`));
    await load();
  }

  document.addEventListener('DOMContentLoaded', () => {
    const today = new Date();
    const from = new Date(today);
    from.setUTCDate(from.getUTCDate() - 6);
    const u = new URLSearchParams(location.search);
    $('#c-from').value = u.get('from') || day(from);
    $('#c-to').value = u.get('to') || day(today);
    $('#period-form').addEventListener('submit', guard((ev) => { ev.preventDefault(); return load(); }));
    $('#run').addEventListener('click', guard(run));
    $('#c-status').addEventListener('change', table);
    guard(load)();
  });
})();
