// Users (contract A: /api/users) and security profiles.
'use strict';
(() => {
  const { $, api, el, guard, status, fmtDate } = Insights;
  const ROLES = ['tenant-admin', 'compliance-officer', 'supervisor', 'user', 'dpo'];
  const PERMS = ['search', 'play', 'download-media', 'view-transcript', 'export', 'export-personal-data', 'manage-retention', 'manage-legal-holds', 'gdpr-actions', 'manage-users', 'view-audit', 'manage-settings', 'approve-access'];
  let profiles = [];

  const profileOptions = (selected) => [el('option', { value: '' }, 'Role defaults'),
    ...profiles.map((p) => el('option', { value: p.id, selected: p.id === selected }, p.name))];

  async function loadProfiles() {
    profiles = (await api('GET', '/api/security-profiles')).items;
    const rows = profiles.map((p) => el('tr', {}, el('td', {}, p.name), el('td', {}, p.role), el('td', {}, p.permissions.join(', ')), el('td', {}, p.scope.type)));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No custom profiles: every account has its role\u2019s defaults.')));
    $('#profiles tbody').replaceChildren(...rows);
    $('#u-profile').replaceChildren(...profileOptions(''));
  }

  async function update(u, change) {
    await api('PUT', `/api/users/${encodeURIComponent(u.id)}`, change);
    status('User saved.');
    await loadUsers();
  }

  async function loadUsers() {
    const body = $('#users tbody');
    let res;
    try {
      res = await api('GET', '/api/users');
    } catch (e) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'error' }, `${e.title}: ${e.detail}`)));
      return;
    }
    const rows = res.items.map((u) => el('tr', {},
      el('td', {}, u.email),
      el('td', {}, el('select', { 'aria-label': `Role of ${u.email}`, onchange: guard((ev) => update(u, { role: ev.target.value })) },
        ROLES.map((r) => el('option', { value: r, selected: r === u.role }, r)))),
      el('td', {}, el('select', { 'aria-label': `Security profile of ${u.email}`, onchange: guard((ev) => update(u, { security_profile_id: ev.target.value || null })) },
        profileOptions(u.security_profile_id))),
      el('td', {}, u.totp_enrolled ? 'Enrolled' : 'Not enrolled'),
      el('td', {}, fmtDate(u.last_login_at) || 'Never'),
      el('td', {}, el('input', { type: 'checkbox', checked: u.active, 'aria-label': `${u.email} active`, onchange: guard((ev) => update(u, { active: ev.target.checked })) }))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No users.')));
    body.replaceChildren(...rows);
  }

  async function addUser(ev) {
    ev.preventDefault();
    const body = { email: $('#u-email').value.trim(), password: $('#u-password').value, role: $('#u-role').value };
    if ($('#u-profile').value) body.security_profile_id = $('#u-profile').value;
    await api('POST', '/api/users', body);
    $('#user-form').reset();
    status('User added.');
    await loadUsers();
  }

  async function addProfile(ev) {
    ev.preventDefault();
    const permissions = [...document.querySelectorAll('#p-perms input:checked')].map((c) => c.value);
    await api('POST', '/api/security-profiles', { name: $('#p-name').value.trim(), role: $('#p-role').value, permissions, scope: { type: $('#p-scope').value } });
    $('#profile-form').reset();
    status('Profile created.');
    await loadProfiles();
    await loadUsers();
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const s of document.querySelectorAll('select.roles')) s.replaceChildren(...ROLES.map((r) => el('option', { value: r }, r)));
    $('#p-perms').replaceChildren(...PERMS.map((p) => el('label', { for: `perm-${p}` }, el('input', { type: 'checkbox', id: `perm-${p}`, value: p }), p)));
    $('#user-form').addEventListener('submit', guard(addUser));
    $('#profile-form').addEventListener('submit', guard(addProfile));
    guard(async () => { await loadProfiles(); await loadUsers(); })();
  });
})();
