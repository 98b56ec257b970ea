// Sign-in: local account (+ TOTP code), or the organisation's identity
// provider (OIDC) when the server offers it.
'use strict';
(() => {
  const { $, api, guard, showError } = Insights;

  async function providers() {
    try {
      const p = await api('GET', '/api/auth/providers', undefined, { noRedirect: true });
      if (p && p.oidc && p.oidc.enabled) {
        if (p.oidc.label) $('#oidc-link').textContent = p.oidc.label;
        $('#oidc').hidden = false;
      }
    } catch (_) { /* no OIDC sign-in on this server */ }
  }

  async function submit(ev) {
    ev.preventDefault();
    const body = {
      email: $('#email').value.trim(),
      password: $('#password').value,
    };
    const tenant = $('#tenant').value.trim();
    const code = $('#totp').value.replace(/\s/g, '');
    if (tenant) body.tenant = tenant;
    if (code) body.totp = code;
    if (!body.email || !body.password) {
      showError({ title: 'Missing details', detail: 'Enter your email and password.' });
      return;
    }
    $('#sign-in').disabled = true;
    try {
      await api('POST', '/api/auth/login', body, { noRedirect: true });
      location.assign('/');
    } catch (e) {
      $('#password').value = '';
      $('#totp').value = '';
      if (e.status === 401) {
        e.title = 'Sign-in failed';
        e.detail = 'The organisation, email, password or authentication code is not right.';
      }
      throw e;
    } finally {
      $('#sign-in').disabled = false;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#login-form').addEventListener('submit', guard(submit));
    providers();
    if (location.hash === '#expired') {
      showError({ title: 'Signed out', detail: 'Your session has ended (idle for too long, or signed out elsewhere). Please sign in again.' });
    }
    $('#tenant').focus();
  });
})();
