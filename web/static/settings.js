// Tenant settings: AI providers, the media-deletion waiver, access rules.
'use strict';
(() => {
  const { $, api, guard, status, pendingChanges } = Insights;
  const FIELDS = [['#s-cloud', 'cloud_ai_enabled'], ['#s-waiver', 'media_deletion_waiver'], ['#s-reason', 'require_access_reason'], ['#s-foureyes', 'four_eyes_playback']];

  async function load() {
    const s = await api('GET', '/api/settings');
    for (const [id, k] of FIELDS) $(id).checked = !!s[k];
    await pendingChanges(['media-deletion-waiver-on'], load);
  }

  async function save(ev) {
    ev.preventDefault();
    const body = {};
    for (const [id, k] of FIELDS) body[k] = $(id).checked;
    const res = await api('PUT', '/api/settings', body);
    status(res && res.pending_change
      ? 'Settings saved. Turning on the media-deletion waiver waits for a second person\u2019s approval.'
      : 'Settings saved.');
    await load();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#settings-form').addEventListener('submit', guard(save));
    guard(load)();
  });
})();
