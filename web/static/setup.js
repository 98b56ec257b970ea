// First run: the one-time link `insights serve` printed carries the
// setup token after `#` (never sent to the server in a URL). The form
// creates the first tenant and its administrator, then signs in: the
// sign-in page continues with the TOTP enrolment.
'use strict';
(() => {
  const { $, api, guard } = Insights;

  async function submit(ev) {
    ev.preventDefault();
    const token = location.hash.replace(/^#/, '');
    const tenant = $('#tenant').value.trim();
    const email = $('#email').value.trim();
    const password = $('#password').value;
    $('#create').disabled = true;
    try {
      await api('POST', '/api/setup', { token, tenant, email, password }, { noRedirect: true });
      const r = await api('POST', '/api/auth/login', { tenant, email, password }, { noRedirect: true });
      $('#password').value = '';
      sessionStorage.setItem('insights-first-sign-in', JSON.stringify(r));
      history.replaceState(null, '', '/setup');
      location.assign('/login#first-sign-in');
    } catch (e) {
      if (e.status === 401 || e.status === 404) {
        e.title = 'This setup link does not work';
        e.detail = 'It was used already, has expired (after an hour), or an organisation exists. Restart `insights serve` for a new link.';
      }
      throw e;
    } finally {
      $('#create').disabled = false;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#setup-form').addEventListener('submit', guard(submit));
    $('#tenant').focus();
  });
})();
