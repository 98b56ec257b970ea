// Recording search. Filters go to the API in a POST body only: nothing
// typed here is put in a URL, the history or a log.
'use strict';
(() => {
  const { $, api, el, highlighted, guard, status, perms, fmtDate, fmtDuration, who, checkWindow } = Insights;
  let sort = 'started-desc';
  let cursors = [null]; // cursor of each page seen; index = page - 1
  let page = 0;
  let seq = 0; // only the latest search may fill the table
  let reason = null; // the reason for access, for matching passages

  const val = (id) => { const e = $(id); return e ? e.value.trim() : ''; };
  const isoOf = (v) => (v ? new Date(v).toISOString() : undefined);
  const bool = (v) => (v === '' ? undefined : v === 'true');
  const ms = (v) => (v === '' ? undefined : Math.round(Number(v) * 1000));

  function query() {
    const q = {
      participant: val('#f-participant') || undefined,
      transcript_text: val('#f-words') || undefined,
      from: isoOf(val('#f-from')),
      to: isoOf(val('#f-to')),
      direction: val('#f-direction') || undefined,
      kind: val('#f-kind') || undefined,
      min_duration_ms: ms(val('#f-min')),
      max_duration_ms: ms(val('#f-max')),
      has_transcript: bool(val('#f-transcript')),
      legal_hold: bool(val('#f-hold')),
      sort,
      limit: Number(val('#f-limit')),
      cursor: cursors[page] || undefined,
    };
    for (const k of Object.keys(q)) if (q[k] === undefined) delete q[k];
    return q;
  }

  function row(item) {
    const r = item.recording;
    const href = `/recordings/${encodeURIComponent(r.id)}`;
    const badges = [];
    if (r.legal_hold) badges.push(el('span', { class: 'badge hold' }, 'Legal hold'));
    if (r.has_transcript) badges.push(el('span', { class: 'badge' }, 'Transcript'));
    if (r.status !== 'stored') badges.push(el('span', { class: 'badge' }, r.status));
    const names = r.participants.map(who);
    const first = el('td', {}, el('a', { href, class: 'open-recording' }, fmtDate(r.started_at)));
    const tr = el('tr', { dataset: { id: r.id } },
      first,
      el('td', {}, fmtDuration(r.duration_ms)),
      el('td', {}, r.kind),
      el('td', {}, r.direction),
      el('td', {}, names.join(', ')),
      el('td', {}, badges));
    const rows = [tr];
    if (item.snippets && item.snippets.length) {
      rows.push(el('tr', { class: 'snippets' },
        el('td', { colspan: 6 }, item.snippets.map((s) => el('p', { class: 'snippet' }, '\u2026', highlighted(s), '\u2026')))));
    }
    return rows;
  }

  async function run() {
    status('Searching\u2026');
    $('#search-button').disabled = true;
    const mine = ++seq;
    try {
      const headers = reason ? { 'X-Access-Reason': reason } : {};
      const res = await api('POST', '/api/recordings/search', query(), { headers });
      if (mine !== seq) return;
      // Transcript passages come only after a reason for access.
      $('#snippet-reason-box').hidden = res.snippets_withheld !== 'access-reason-required';
      const body = $('#results tbody');
      body.replaceChildren(...res.items.flatMap(row));
      if (!res.items.length) {
        body.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No recordings match these filters.')));
      }
      const n = res.total;
      const more = !!res.total_is_lower_bound;
      const shown = more ? `${n.toLocaleString('en-GB')}+` : `${n}`;
      $('#count').textContent = `(${shown} recording${n === 1 && !more ? '' : 's'})`;
      $('#count-all').hidden = !more;
      const per = Number(val('#f-limit'));
      const pages = Math.max(1, Math.ceil(n / per));
      $('#page-info').textContent = n ? `Page ${page + 1} of ${pages}${more ? '+' : ''}` : '';
      cursors[page + 1] = res.next_cursor || null;
      $('#next').disabled = !res.next_cursor;
      $('#prev').disabled = page === 0;
      remember();
      status(`${shown} recording${n === 1 && !more ? '' : 's'} found.`);
    } finally {
      $('#search-button').disabled = false;
    }
  }

  // The exact number of matches of a broad search, on request: the
  // server counts them all (the page shows "10,000+" until then).
  async function countAll() {
    const mine = seq;
    $('#count-all').disabled = true;
    status('Counting\u2026');
    try {
      const q = query();
      delete q.cursor;
      const res = await api('POST', '/api/recordings/count', q);
      if (mine !== seq) return;
      const n = res.total;
      $('#count').textContent = `(${n.toLocaleString('en-GB')} recording${n === 1 ? '' : 's'})`;
      $('#count-all').hidden = true;
      const per = Number(val('#f-limit'));
      $('#page-info').textContent = n ? `Page ${page + 1} of ${Math.max(1, Math.ceil(n / per))}` : '';
      status(`${n} recording${n === 1 ? '' : 's'} found.`);
    } finally {
      $('#count-all').disabled = false;
    }
  }

  // The search as it stands (filters, sort, page), kept for this tab only
  // (sessionStorage: never a URL, the history or the server), so Back and
  // "Back to search" show the same query and results. Cleared at sign-out.
  const KEY = 'insights-search';
  const FIELDS = ['#f-participant', '#f-words', '#f-from', '#f-to', '#f-direction', '#f-kind', '#f-min', '#f-max', '#f-transcript', '#f-hold', '#f-limit'];
  function remember() {
    const fields = {};
    for (const f of FIELDS) if ($(f)) fields[f] = $(f).value;
    try { sessionStorage.setItem(KEY, JSON.stringify({ fields, sort, cursors, page })); } catch (_) { /* storage off */ }
  }
  function restore() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch (_) { saved = null; }
    if (!saved) return false;
    for (const [f, v] of Object.entries(saved.fields || {})) if ($(f)) $(f).value = v;
    sort = saved.sort || sort;
    cursors = Array.isArray(saved.cursors) && saved.cursors.length ? saved.cursors : [null];
    page = Math.min(Number(saved.page) || 0, cursors.length - 1);
    const [key, dir] = sort.split('-');
    for (const h of document.querySelectorAll('th[data-sort]')) {
      if (h.dataset.sort === key) h.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
      else h.removeAttribute('aria-sort');
    }
    return true;
  }

  function fresh() {
    checkWindow('#f-from', '#f-to');
    cursors = [null];
    page = 0;
    return run();
  }

  function setSort(th) {
    const key = th.dataset.sort;
    const current = sort.startsWith(key) ? sort.split('-')[1] : null;
    const dir = current === 'desc' ? 'asc' : 'desc';
    sort = `${key}-${dir}`;
    for (const h of document.querySelectorAll('th[data-sort]')) h.removeAttribute('aria-sort');
    th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
    return fresh();
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (!perms().has('view-transcript')) {
      for (const e of document.querySelectorAll('.needs-transcript')) e.remove();
    }
    $('#search-form').addEventListener('submit', guard((ev) => { ev.preventDefault(); return fresh(); }));
    $('#snippet-reason-form').addEventListener('submit', guard((ev) => {
      ev.preventDefault();
      const why = $('#snippet-reason').value.trim();
      if (!why) return undefined;
      reason = why;
      return run();
    }));
    $('#search-form').addEventListener('reset', () => setTimeout(guard(() => { try { sessionStorage.removeItem(KEY); } catch (_) { /* storage off */ } return fresh(); }), 0));
    for (const th of document.querySelectorAll('th[data-sort]')) {
      th.querySelector('button').addEventListener('click', guard(() => setSort(th)));
    }
    $('#count-all').addEventListener('click', guard(countAll));
    $('#next').addEventListener('click', guard(() => { page += 1; return run(); }));
    $('#prev').addEventListener('click', guard(() => { page = Math.max(0, page - 1); return run(); }));
    // Back (or "Back to search") from a recording: the same search again.
    if (restore()) guard(run)(); else guard(fresh)();
  });
  // Coming back through the browser's cache (Back): show it fresh.
  window.addEventListener('pageshow', (ev) => { if (ev.persisted && restore()) guard(run)(); });
})();
