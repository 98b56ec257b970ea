// One recording: player (seek, speed 0.75–2×), per-speaker transcript
// following playback (click a line to seek), recap, participants,
// details, legal-hold badge, its audit trail, download; a live
// recording's pause/resume buttons and the timeline of paused intervals.
'use strict';
(() => {
  const { $, api, el, guard, showError, clearError, status, perms, fmtDate, fmtDuration, fmtClock, who, people, personEl } = Insights;
  const id = decodeURIComponent(location.pathname.split('/').pop());
  const base = `/api/recordings/${encodeURIComponent(id)}`;
  const can = perms();
  let reason = null; // the reason for access, once asked for
  let segments = [];
  let current = -1;
  let names = {};
  let hasMedia = false;

  const reasonHeaders = () => (reason ? { 'X-Access-Reason': reason } : {});

  function badge(text, cls) {
    return el('span', { class: `badge ${cls || ''}` }, text);
  }

  function details(r) {
    const rows = [
      ['Start', fmtDate(r.started_at)],
      ['End', fmtDate(r.ended_at)],
      ['Duration', fmtDuration(r.duration_ms)],
      ['Type', r.kind],
      ['Direction', r.direction],
      ['Status', r.status],
      ['Result', r.result_code],
      ['Retention class', r.retention_class],
      ['Legal hold', r.legal_hold ? 'Yes' : 'No'],
      ['Call ID', r.external_call_id],
      ['Recording ID', r.id],
    ];
    $('#meta').replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined && v !== '')
      .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }

  // A meeting recording continued on another gateway node after the node
  // recording it was lost: say so, with the gap and the other part.
  function failovers(marks) {
    const rows = (marks || []).flatMap((m) => {
      const link = el('a', { href: `/recordings/${encodeURIComponent(m.recording_id)}` },
        m.side === 'continues' ? 'the earlier part' : 'the later part');
      const what = m.side === 'continues'
        ? 'Continues after the recording node was lost; see '
        : 'Ends where the recording node was lost; continued in ';
      return [el('dt', {}, 'Failover'),
        el('dd', {}, what, link, ` (no node held the meeting from ${fmtDate(m.gap_from)} to ${fmtDate(m.gap_to)}; reason: ${m.reason})`)];
    });
    $('#meta').append(...rows);
  }

  // The signed-in account's id (to say "you" in the timeline).
  let meCache = null;
  function whoAmI() {
    if (!meCache) meCache = api('GET', '/api/auth/me').then((m) => m.subject && m.subject.id).catch(() => null);
    return meCache;
  }

  // The recording's span with its paused intervals (gaps): where each
  // sits in wall-clock time, who paused and resumed it. Nothing of a gap
  // is in the audio.
  async function timeline(r, gaps) {
    $('#timeline-box').hidden = !gaps.length;
    if (!gaps.length) return;
    const start = Date.parse(r.started_at);
    const end = r.ended_at ? Date.parse(r.ended_at) : Date.now();
    const span = Math.max(1, end - start);
    const pct = (t) => `${Math.min(100, Math.max(0, ((t - start) / span) * 100)).toFixed(2)}%`;
    const [names, me] = await Promise.all([people(), whoAmI()]);
    const actor = (id) => (id === me ? el('span', { class: 'person', title: `Account id ${id}` }, 'you') : personEl(names, id));
    const bars = [];
    const items = gaps.map((g) => {
      const from = g.started_at || g.requested_at;
      const to = g.ended_at || (r.ended_at || new Date().toISOString());
      if (g.started_at) {
        const left = Date.parse(from);
        const bar = el('span', { class: 'gap', title: `Paused ${fmtDate(from)} \u2013 ${g.ended_at ? fmtDate(to) : 'now'}` });
        // CSSOM, not a style attribute: the CSP allows no inline styles.
        bar.style.left = pct(left);
        bar.style.width = `calc(${pct(Date.parse(to))} - ${pct(left)})`;
        bars.push(bar);
      }
      const state = !g.started_at ? 'asked for, not applied yet'
        : g.ended_at ? `${fmtDate(g.started_at)} \u2013 ${fmtDate(g.ended_at)} (${fmtDuration(Date.parse(g.ended_at) - Date.parse(g.started_at))})`
          : `since ${fmtDate(g.started_at)}`;
      const why = g.reason === 'paused' ? '' : ` (${g.reason})`;
      return el('li', { class: 'gap-item', dataset: { gapId: g.id } }, `Paused${why} ${state}, by `, actor(g.requested_by),
        g.resumed_by ? [', resumed by ', actor(g.resumed_by)] : null);
    });
    $('#timeline').replaceChildren(...bars);
    $('#timeline').setAttribute('aria-label', `${gaps.length} paused interval(s) between ${fmtDate(r.started_at)} and ${r.ended_at ? fmtDate(r.ended_at) : 'now'}`);
    $('#gaps').replaceChildren(...items);
  }

  // Pause and resume of a live recording (the recorded user, or a
  // supervisor in scope): the API answers once the gateway applied it
  // (200), or 202 while it has not yet.
  function live(r, gaps) {
    const on = r.status === 'recording' && !r.ended_at && can.has('pause-recording');
    $('#live-box').hidden = !on;
    if (!on) return;
    const open = gaps.find((g) => !g.ended_at);
    const paused = !!open && !open.resume_requested_at;
    $('#pause-recording').hidden = paused;
    $('#resume-recording').hidden = !paused;
    $('#live-state').textContent = !open ? 'Recording.'
      : paused ? (open.started_at ? 'Paused: nothing is being recorded.' : 'Pausing\u2026')
        : 'Resuming\u2026';
  }

  async function pauseOrResume(what) {
    clearError($('#live-error'));
    const btn = $(what === 'pause' ? '#pause-recording' : '#resume-recording');
    btn.disabled = true;
    try {
      await api('POST', `${base}/${what}`);
    } catch (e) {
      showError(e, $('#live-error'));
    } finally {
      btn.disabled = false;
    }
    await refreshLive();
  }

  // Looks again while the gateway has not applied a request yet.
  let settling = null;
  async function refreshLive() {
    const d = await api('GET', base);
    const gaps = d.gaps || [];
    live(d.recording, gaps);
    await timeline(d.recording, gaps);
    const open = gaps.find((g) => !g.ended_at);
    const pending = open && (open.resume_requested_at || !open.started_at);
    clearTimeout(settling);
    settling = pending && !d.recording.ended_at ? setTimeout(guard(refreshLive), 1000) : null;
  }

  function participants(r) {
    names = {};
    const rows = r.participants.map((p) => {
      names[p.id] = who(p);
      const addr = [p.phone_number, p.email, p.uri].filter(Boolean).join(' \u00b7 ');
      return el('tr', {}, el('td', {}, p.role + (p.recorded_user ? ' (recorded)' : '')), el('td', {}, p.display_name || ''), el('td', {}, addr));
    });
    $('#participants tbody').replaceChildren(...rows);
  }

  function recap(items) {
    if (!items || !items.length) return;
    const groups = [['summary', 'Summary'], ['key-point', 'Key points'], ['decision', 'Decisions'], ['action-item', 'Action items'], ['topic', 'Topics']];
    const out = [];
    for (const [kind, title] of groups) {
      const these = items.filter((i) => i.kind === kind);
      if (!these.length) continue;
      out.push(el('h3', {}, title));
      out.push(el('ul', {}, these.map((i) => el('li', {}, i.text,
        (i.citations || []).length ? [' ', el('button', { type: 'button', class: 'link', onclick: () => seek(i.citations[0].start_ms / 1000) }, `(at ${fmtClock(i.citations[0].start_ms / 1000)})`)] : null))));
    }
    out.push(el('p', { class: 'hint' }, `Made by ${items[0].provider}. Check it against the recording.`));
    $('#insights').replaceChildren(...out);
    $('#insights-box').hidden = false;
  }

  function seek(sec) {
    const a = $('#player');
    a.currentTime = sec;
    highlight(sec);
  }

  async function transcript() {
    if (!can.has('view-transcript')) {
      $('#transcript-box').hidden = true;
      return;
    }
    const t = await api('GET', `${base}/transcript`, undefined, { headers: reasonHeaders() });
    segments = t.segments;
    const list = segments.map((s, i) => el('li', {}, el('button', {
      type: 'button', class: 'segment', dataset: { index: i, start: s.start_ms },
      onclick: () => seek(s.start_ms / 1000),
    }, el('span', { class: 'at' }, fmtClock(s.start_ms / 1000)), el('span', { class: 'who-said' }, `${names[s.participant_id] || 'Speaker'}:`), s.text)));
    if (!list.length) list.push(el('li', { class: 'muted' }, 'No transcript yet.'));
    $('#segments').replaceChildren(...list);
  }

  function highlight(sec) {
    // A position read back after a seek can sit a hair before the
    // requested start: allow 25 ms so a clicked line is the current one.
    const ms = sec * 1000 + 25;
    // Segments are in start order and may overlap (both sides talking):
    // the latest-started one still being spoken, else the last started.
    let idx = -1;
    let speaking = -1;
    for (let i = 0; i < segments.length; i++) {
      if (segments[i].start_ms > ms) break;
      idx = i;
      if (ms < segments[i].end_ms) speaking = i;
    }
    if (speaking >= 0) idx = speaking;
    if (idx === current) return;
    const items = document.querySelectorAll('#segments .segment');
    if (current >= 0 && items[current]) { items[current].classList.remove('current'); items[current].removeAttribute('aria-current'); }
    current = idx;
    if (idx >= 0 && items[idx]) {
      items[idx].classList.add('current');
      items[idx].setAttribute('aria-current', 'true');
      if ($('#follow').checked) items[idx].scrollIntoView({ block: 'nearest' });
    }
  }

  // Why the media did not load, from the API's problem answer.
  async function mediaProblem() {
    try {
      await api('GET', `${base}/media`, undefined, { headers: Object.assign({ Range: 'bytes=0-0' }, reasonHeaders()), raw: true });
      return null;
    } catch (e) {
      return e;
    }
  }

  async function loadMedia() {
    const a = $('#player');
    if (!can.has('play')) {
      $('#player-error').textContent = 'Your role may not play recordings.';
      $('#player-error').hidden = false;
      a.hidden = true;
      return;
    }
    if (reason) {
      // A header cannot go with <audio src>: fetch, then play from memory.
      const res = await api('GET', `${base}/media`, undefined, { headers: reasonHeaders(), raw: true });
      a.src = URL.createObjectURL(await res.blob());
    } else {
      a.src = `${base}/media`;
    }
  }

  // The two gates before any content: the reason for access, then
  // (four-eyes) an approval. Each shows its own form; they compose: a
  // reason given first, the approval form next.
  function askFor(code) {
    if (code === 'access-reason-required') {
      $('#reason-box').hidden = false;
      $('#reason').focus();
      status('A reason for access is needed.');
      return true;
    }
    if (code === 'approval-required') {
      $('#approval-box').hidden = false;
      $('#request-reason').focus();
      status('A second person\u2019s approval is needed.');
      return true;
    }
    return false;
  }

  async function onMediaError() {
    const e = await mediaProblem();
    if (!e) {
      $('#player-error').textContent = 'The browser could not play this recording.';
      $('#player-error').hidden = false;
      return;
    }
    if (!askFor(e.code)) showError(e, $('#player-error'));
  }

  async function download() {
    const res = await api('GET', `${base}/download`, undefined, { headers: reasonHeaders(), raw: true });
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', { href: url, download: `${id}.ogg` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  async function trail() {
    if (!can.has('view-audit')) return;
    const [res, names] = await Promise.all([
      api('GET', `/api/audit?recording_id=${encodeURIComponent(id)}&limit=1000&newest_first=true`), people()]);
    const rows = res.events.map((e) => el('tr', {},
      el('td', {}, fmtDate(e.at)), el('td', {}, e.action), el('td', {}, personEl(names, e.actor)), el('td', {}, e.reason || '')));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No events yet.')));
    $('#trail tbody').replaceChildren(...rows);
    $('#audit-box').hidden = false;
  }

  // The recording's metadata and, once the gates are passed, its
  // transcript-derived content. Nothing of the transcript (insights,
  // segments) is fetched before the reason is given.
  async function content() {
    const d = await api('GET', base, undefined, { headers: reasonHeaders() });
    if (d.insights_withheld && d.insights_withheld !== 'permission-denied') {
      askFor(d.insights_withheld);
      return false;
    }
    recap(d.insights);
    try {
      await transcript();
    } catch (e) {
      if (askFor(e.code)) return false;
      throw e;
    }
    return true;
  }

  async function load() {
    status('Loading\u2026');
    const d = await api('GET', base);
    const r = d.recording;
    document.title = `Recording ${fmtDate(r.started_at)} \u00b7 Insights`;
    $('#page-title').textContent = `${r.kind === 'meeting' ? 'Meeting' : 'Call'} of ${fmtDate(r.started_at)}`;
    const b = [];
    if (r.legal_hold) b.push(badge('On legal hold', 'hold'));
    if (r.has_transcript) b.push(badge('Transcript'));
    b.push(badge(r.status));
    if ((d.failovers || []).length) b.push(badge('Continued across nodes'));
    $('#badges').replaceChildren(...b);
    details(r);
    failovers(d.failovers);
    participants(r);
    live(r, d.gaps || []);
    await timeline(r, d.gaps || []);
    hasMedia = !!r.media;
    if (can.has('download-media') && r.media) $('#download').hidden = false;
    if (d.insights_withheld && d.insights_withheld !== 'permission-denied') {
      askFor(d.insights_withheld);
      return;
    }
    recap(d.insights);
    try {
      await transcript();
    } catch (e) {
      if (askFor(e.code)) return;
      throw e;
    }
    if (r.media) await loadMedia();
    else { $('#player-error').textContent = 'The media of this recording is not stored yet.'; $('#player-error').hidden = false; }
    status('');
    await trail();
  }

  document.addEventListener('DOMContentLoaded', () => {
    const a = $('#player');
    const clock = () => { $('#clock').textContent = `${fmtClock(a.currentTime)} / ${isFinite(a.duration) ? fmtClock(a.duration) : '\u2013'}`; };
    a.addEventListener('seeked', clock);
    a.addEventListener('loadedmetadata', clock);
    a.addEventListener('timeupdate', () => {
      highlight(a.currentTime);
      clock();
    });
    a.addEventListener('seeked', () => highlight(a.currentTime));
    a.addEventListener('error', guard(onMediaError));
    $('#speed').addEventListener('change', () => { a.playbackRate = Number($('#speed').value); });
    a.addEventListener('loadedmetadata', () => { a.playbackRate = Number($('#speed').value); });
    $('#back10').addEventListener('click', () => seek(Math.max(0, a.currentTime - 10)));
    $('#fwd10').addEventListener('click', () => seek(Math.min(a.duration || 0, a.currentTime + 10)));
    $('#download').addEventListener('click', guard(download));
    $('#pause-recording').addEventListener('click', guard(() => pauseOrResume('pause')));
    $('#resume-recording').addEventListener('click', guard(() => pauseOrResume('resume')));
    $('#reason-form').addEventListener('submit', guard(async (ev) => {
      ev.preventDefault();
      reason = $('#reason').value.trim();
      if (!reason) return;
      $('#reason-box').hidden = true;
      clearError($('#player-error'));
      if (!(await content())) return;
      try {
        if (hasMedia) await loadMedia();
      } catch (e) {
        if (!askFor(e.code)) throw e;
        return;
      }
      status('');
      await trail();
    }));
    $('#request-form').addEventListener('submit', guard(async (ev) => {
      ev.preventDefault();
      const why = $('#request-reason').value.trim();
      if (!why) return;
      await api('POST', `${base}/access-requests`, { reason: why });
      $('#request-form').hidden = true;
      $('#request-state').textContent = 'Request sent. You can play the recording once an approver has approved it.';
      $('#request-state').hidden = false;
    }));
    guard(load)();
  });
})();
