// Users (contract A: /api/users) and security profiles.
'use strict';
(() => {
  const { $, api, el, guard, status, fmtDate, pendingChanges } = Insights;
  // Least privileged first: a new account starts with the smallest role.
  const ROLES = ['user', 'supervisor', 'compliance-officer', 'dpo', 'tenant-admin'];
  const PERMS = ['search', 'play', 'download-media', 'view-transcript', 'export', 'export-personal-data', 'manage-retention', 'manage-legal-holds', 'gdpr-actions', 'manage-users', 'view-audit', 'manage-settings', 'approve-access', 'view-completeness', 'pause-recording'];
  const USER_KINDS = ['account-create', 'account-password-reset', 'account-second-factor-reset'];
  let profiles = [];
  let users = [];

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

  // Role and active changes ask first; Cancel puts the control back.
  function changeRole(u) {
    return guard(async (ev) => {
      const to = ev.target.value;
      if (!confirm(`Change the role of ${u.email} from ${u.role} to ${to}? Their permissions change at once.`)) {
        ev.target.value = u.role;
        status('Role unchanged.');
        return;
      }
      try {
        await update(u, { role: to });
      } catch (e) {
        ev.target.value = u.role;
        throw e;
      }
    });
  }

  function changeActive(u) {
    return guard(async (ev) => {
      const on = ev.target.checked;
      const q = on ? `Let ${u.email} sign in again?` : `Switch off ${u.email}? They can no longer sign in.`;
      if (!confirm(q)) {
        ev.target.checked = u.active;
        status('Account unchanged.');
        return;
      }
      try {
        await update(u, { active: on });
      } catch (e) {
        ev.target.checked = u.active;
        throw e;
      }
    });
  }

  function resetDone(res, what, u) {
    if (res && res.status === 'pending') {
      status(`The ${what} reset of ${u.email} waits for a second administrator\u2019s approval.`);
    } else {
      status(`The ${what} of ${u.email} was reset; they were signed out everywhere.`);
    }
  }

  let resetting = null;
  function openReset(u) {
    return () => {
      resetting = u;
      $('#reset-email').textContent = u.email;
      $('#reset-password').value = '';
      $('#reset-dialog').showModal();
      $('#reset-password').focus();
    };
  }

  async function confirmReset(ev) {
    ev.preventDefault();
    const u = resetting;
    const password = $('#reset-password').value;
    if (!u) return;
    try {
      const res = await api('POST', `/api/users/${encodeURIComponent(u.id)}/reset-password`, { password });
      $('#reset-password').value = '';
      $('#reset-dialog').close();
      resetDone(res, 'password', u);
    } catch (e) {
      $('#reset-password').value = '';
      $('#reset-dialog').close();
      throw e;
    }
    await refresh();
  }

  function resetFactor(u) {
    return guard(async () => {
      if (!confirm(`Reset the second factor of ${u.email}? Their authenticator app and recovery codes stop working; they set up a new one at their next sign-in.`)) return;
      const res = await api('POST', `/api/users/${encodeURIComponent(u.id)}/reset-second-factor`, {});
      resetDone(res, 'second factor', u);
      await refresh();
    });
  }

  async function loadUsers() {
    const body = $('#users tbody');
    let res;
    try {
      res = await api('GET', '/api/users');
    } catch (e) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 7, class: 'error' }, `${e.title}: ${e.detail}`)));
      return;
    }
    users = res.items;
    const rows = res.items.map((u) => el('tr', { dataset: { id: u.id, email: u.email } },
      el('td', { title: u.id }, u.email),
      el('td', {}, el('select', { class: 'role-select', 'aria-label': `Role of ${u.email}`, onchange: changeRole(u) },
        ROLES.map((r) => el('option', { value: r, selected: r === u.role }, r)))),
      el('td', {}, el('select', { 'aria-label': `Security profile of ${u.email}`, onchange: guard((ev) => update(u, { security_profile_id: ev.target.value || null })) },
        profileOptions(u.security_profile_id))),
      el('td', {}, u.totp_enrolled ? 'Enrolled' : 'Not enrolled'),
      el('td', {}, fmtDate(u.last_login_at) || 'Never'),
      el('td', {}, el('input', { type: 'checkbox', class: 'active-box', checked: u.active, 'aria-label': `${u.email} active`, onchange: changeActive(u) })),
      el('td', {},
        el('button', { type: 'button', class: 'secondary reset-password', onclick: openReset(u), 'aria-label': `Reset password of ${u.email}` }, 'Reset password'), ' ',
        el('button', { type: 'button', class: 'secondary reset-factor', onclick: resetFactor(u), 'aria-label': `Reset second factor of ${u.email}` }, 'Reset second factor'))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No users.')));
    body.replaceChildren(...rows);
  }

  const emailOf = (id) => (users.find((u) => u.id === id) || {}).email;

  async function refresh() {
    await loadUsers();
    await pendingChanges(USER_KINDS, loadUsers, emailOf);
  }

  async function addUser(ev) {
    ev.preventDefault();
    const body = { email: $('#u-email').value.trim(), password: $('#u-password').value, role: $('#u-role').value };
    if ($('#u-profile').value) body.security_profile_id = $('#u-profile').value;
    const created = await api('POST', '/api/users', body);
    $('#user-form').reset();
    $('#u-role').value = ROLES[0];
    // What happens next: the user enrols their own authenticator at the
    // first sign-in (the key is never shown to the administrator).
    const pending = created && created.status === 'pending';
    $('#enrolment-email').textContent = pending ? created.payload.email : created.email;
    $('#enrolment-pending').hidden = !pending;
    $('#enrolment').hidden = false;
    $('#enrolment').focus();
    status(pending
      ? `Adding ${created.payload.email} as ${body.role} gives permissions you do not hold: a second administrator approves it under “Waiting for a second administrator”.`
      : `User ${created.email} added.`);
    await refresh();
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
    for (const s of document.querySelectorAll('select.roles')) s.replaceChildren(...ROLES.map((r, i) => el('option', { value: r, selected: i === 0 }, r)));
    $('#p-perms').replaceChildren(...PERMS.map((p) => el('label', { for: `perm-${p}` }, el('input', { type: 'checkbox', id: `perm-${p}`, value: p }), p)));
    $('#user-form').addEventListener('submit', guard(addUser));
    $('#profile-form').addEventListener('submit', guard(addProfile));
    $('#reset-form').addEventListener('submit', guard(confirmReset));
    $('#reset-cancel').addEventListener('click', () => { $('#reset-password').value = ''; $('#reset-dialog').close(); });
    guard(async () => { await loadProfiles(); await refresh(); })();
  });
})();
