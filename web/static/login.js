// Sign-in: local account (+ TOTP code or recovery code), the first
// sign-in of a new account (enrol TOTP, choose a password, keep the
// recovery codes), or the organisation's identity provider (OIDC) when
// the server offers it.
'use strict';
(() => {
  const { $, api, guard, showError } = Insights;
  let challenge = null;
  let needsPassword = false;

  // Where to go after signing in: the page opened while signed out
  // (`/login?next=/recordings/...`), only a path of this site, never
  // another origin (`//host`, `/\\host`, a scheme); else the start page.
  function next() {
    const n = new URLSearchParams(location.search).get('next');
    if (!n || !/^\/[A-Za-z0-9\-._~%/]*$/.test(n) || n.startsWith('//') || n.startsWith('/login')) return '/';
    try {
      const u = new URL(n, location.origin);
      return u.origin === location.origin ? u.pathname : '/';
    } catch (_) {
      return '/';
    }
  }

  async function providers() {
    try {
      const p = await api('GET', '/api/auth/providers', undefined, { noRedirect: true });
      if (p && p.oidc && p.oidc.enabled) {
        if (p.oidc.label) $('#oidc-link').textContent = p.oidc.label;
        $('#oidc').hidden = false;
      }
    } catch (_) { /* no OIDC sign-in on this server */ }
  }

  function firstSignIn(c) {
    challenge = c.challenge;
    needsPassword = !!c.password_change_required;
    $('#login-card').hidden = true;
    $('#first-card').hidden = false;
    $('#enrol').hidden = !c.totp_enrolment_required;
    if (c.totp_enrolment_required) {
      $('#totp-uri').href = c.totp_uri;
      $('#totp-secret').textContent = c.totp_secret;
    }
    $('#new-password-fields').hidden = !needsPassword;
    (c.totp_enrolment_required ? $('#first-totp') : $('#new-password')).focus();
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
    if (code) {
      if (/^[0-9]+$/.test(code)) body.totp = code; else body.recovery_code = code;
    }
    if (!body.email || !body.password) {
      showError({ title: 'Missing details', detail: 'Enter your email and password.' });
      return;
    }
    $('#sign-in').disabled = true;
    try {
      const r = await api('POST', '/api/auth/login', body, { noRedirect: true });
      $('#password').value = '';
      if (r && r.status === 'first-sign-in') {
        firstSignIn(r);
        return;
      }
      location.assign(next());
    } catch (e) {
      $('#password').value = '';
      $('#totp').value = '';
      if (e.status === 401 && e.code === 'totp-code-reused') {
        e.title = 'Code already used';
        e.detail = 'This authentication code was used already. Wait until your app shows the next code, then sign in with that one.';
      } else if (e.status === 401) {
        e.title = 'Sign-in failed';
        e.detail = 'The organisation, email, password or authentication code is not right.';
      }
      throw e;
    } finally {
      $('#sign-in').disabled = false;
    }
  }

  async function finish(ev) {
    ev.preventDefault();
    const body = { challenge };
    if (!$('#enrol').hidden) body.totp = $('#first-totp').value.replace(/\s/g, '');
    if (needsPassword) {
      const a = $('#new-password').value;
      if (a !== $('#new-password-again').value) {
        showError({ title: 'Passwords differ', detail: 'Type the same new password twice.' }, $('#first-error'));
        return;
      }
      body.new_password = a;
    }
    $('#finish').disabled = true;
    try {
      const r = await api('POST', '/api/auth/first-sign-in', body, { noRedirect: true });
      $('#new-password').value = '';
      $('#new-password-again').value = '';
      $('#first-card').hidden = true;
      const list = $('#recovery-codes');
      list.textContent = '';
      for (const c of r.recovery_codes || []) {
        const li = document.createElement('li');
        li.textContent = c;
        list.appendChild(li);
      }
      $('#codes-card').hidden = false;
      $('#codes-done').focus();
    } catch (e) {
      $('#first-totp').value = '';
      if (e.status === 401 && e.code === 'challenge-invalid') {
        e.title = 'Please sign in again';
        e.detail = 'This step took too long. Sign in again with the password you were given.';
      }
      showError(e, $('#first-error'));
    } finally {
      $('#finish').disabled = false;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#login-form').addEventListener('submit', guard(submit));
    $('#first-form').addEventListener('submit', guard(finish));
    $('#codes-done').addEventListener('click', () => location.assign(next()));
    providers();
    // Coming from the first-run setup page: continue its first sign-in.
    const pending = sessionStorage.getItem('insights-first-sign-in');
    if (location.hash === '#first-sign-in' && pending) {
      sessionStorage.removeItem('insights-first-sign-in');
      firstSignIn(JSON.parse(pending));
      return;
    }
    if (location.hash === '#expired') {
      showError({ title: 'Signed out', detail: 'Your session has ended (idle for too long, or signed out elsewhere). Please sign in again.' });
    }
    $('#tenant').focus();
  });
})();
