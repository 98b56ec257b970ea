// Excel export: filters, columns from the catalogue, progress, download.
'use strict';
(() => {
  const { $, api, el, guard, status, perms, checkWindow } = Insights;
  const can = perms();

  async function columns() {
    const cat = await api('GET', '/ui/export-columns.json');
    const boxes = cat.items.map((c) => {
      const allowed = can.has(c.permission);
      const id = `col-${c.id}`;
      return el('label', { for: id, title: allowed ? '' : `Needs the ${c.permission} permission` },
        el('input', { type: 'checkbox', id, value: c.id, name: 'column', disabled: !allowed, checked: allowed && ['recording-id', 'started-at', 'duration'].includes(c.id) }),
        c.header, allowed ? '' : el('span', { class: 'hint' }, ' (not permitted)'));
    });
    $('#columns').replaceChildren(...boxes);
  }

  const val = (id) => $(id).value.trim();
  const iso = (v) => (v ? new Date(v).toISOString() : undefined);

  async function start(ev) {
    ev.preventDefault();
    checkWindow('#x-from', '#x-to');
    const chosen = [...document.querySelectorAll('#columns input:checked')].map((c) => c.value);
    if (!chosen.length) {
      throw { title: 'No columns', detail: 'Choose at least one column.' };
    }
    const query = {
      from: iso(val('#x-from')), to: iso(val('#x-to')),
      participant: val('#x-participant') || undefined,
      direction: val('#x-direction') || undefined,
      kind: val('#x-kind') || undefined,
      legal_hold: val('#x-hold') === '' ? undefined : val('#x-hold') === 'true',
    };
    for (const k of Object.keys(query)) if (query[k] === undefined) delete query[k];
    $('#start-export').disabled = true;
    $('#download-export').hidden = true;
    try {
      const job = await api('POST', '/api/exports', { query, columns: chosen, reason: val('#x-reason') || undefined });
      $('#progress-box').hidden = false;
      if (job.omitted && job.omitted.length) {
        $('#omitted').textContent = `Left out (not permitted): ${job.omitted.join(', ')}`;
        $('#omitted').hidden = false;
      }
      await follow(job.status_url);
    } finally {
      $('#start-export').disabled = false;
    }
  }

  async function follow(url) {
    for (;;) {
      const s = await api('GET', url);
      const p = $('#progress');
      p.max = Math.max(1, s.total);
      p.value = s.rows_written;
      $('#progress-text').textContent = `${s.rows_written} of ${s.total} rows written (${s.state}).`;
      if (s.state === 'done') {
        const a = $('#download-export');
        a.href = s.file_url;
        a.setAttribute('download', '');
        a.hidden = false;
        a.focus();
        status('The export is ready.');
        return;
      }
      if (s.state === 'failed') throw { title: 'Export failed', detail: 'The export could not be written. Try again; if it fails again, tell your administrator.' };
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#export-form').addEventListener('submit', guard(start));
    $('#select-none').addEventListener('click', () => { for (const c of document.querySelectorAll('#columns input')) c.checked = false; });
    guard(columns)();
  });
})();
