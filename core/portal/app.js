// The portal's shell: sign-in, the page routes (#settings, #users, ...),
// the operator's tenant choice and sign-out.

import { api, get, setCsrf, whenSignedOut, ApiError } from './api.js';
import { el, announce, fail } from './ui.js';
import { liveTenant } from './live.js';
import * as settings from './settings.js';
import * as users from './users.js';
import * as groups from './groups.js';
import * as approvals from './approvals.js';
import * as activity from './activity.js';
import * as health from './health.js';

const pages = { settings, users, groups, approvals, activity, health };
const main = document.getElementById('main');
let session = null, tenant = null, stop = null, tenants = [];

function show(node) {
  if (stop) { stop(); stop = null; }
  main.replaceChildren(node);
}

function signIn(message) {
  session = null;
  setCsrf(null);
  document.getElementById('top').hidden = true;
  if (stop) { stop(); stop = null; }
  const params = new URLSearchParams(location.search);
  const err = el('p', { id: 'signin-error', class: 'error', role: 'alert' }, message || '');
  const login = el('input', { id: 'login', name: 'login', autocomplete: 'username', required: true });
  const password = el('input', { id: 'password', name: 'password', type: 'password',
                                 autocomplete: 'current-password', required: true });
  const tenantIn = el('input', { id: 'tenant', name: 'tenant', value: params.get('tenant') || '',
                                 'aria-describedby': 'tenant-help' });
  const button = el('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const form = el('form', { class: 'signin', 'aria-labelledby': 'signin-title' },
    el('h1', { id: 'signin-title' }, 'Sign in to scimgate'),
    el('label', { for: 'tenant' }, 'Tenant'), tenantIn,
    el('p', { id: 'tenant-help', class: 'help' },
      'Its name or id. Leave it empty to sign in as an operator.'),
    el('label', { for: 'login' }, 'Login'), login,
    el('label', { for: 'password' }, 'Password'), password,
    err, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    err.textContent = '';
    try {
      const body = { login: login.value, password: password.value };
      if (tenantIn.value.trim()) body.tenant = tenantIn.value.trim();
      const s = await api('POST', '/session', body);
      password.value = '';
      await start(s);
    } catch (e) {
      err.textContent = e.status === 401 ? 'The tenant, login or password is not right.'
        : e.status === 429 ? `Too many failed attempts: try again in ${e.retryAfter || 'a few'} seconds.`
        : e.message;
      button.disabled = false;
      password.focus();
    }
  });
  main.replaceChildren(form);
  (params.get('tenant') ? login : tenantIn).focus();
}

async function start(s) {
  session = s;
  setCsrf(s.csrfToken);
  document.getElementById('top').hidden = false;
  document.getElementById('who').textContent = s.login + (s.operator ? ' (operator)' : '');
  const pick = document.getElementById('tenant-pick');
  const label = document.getElementById('tenant-label');
  if (s.operator) {
    const list = (await get('/tenants')).tenants;
    tenants = list;
    const sel = document.getElementById('tenant-select');
    sel.replaceChildren(...list.map((t) => el('option', { value: t.id }, t.name)));
    tenant = sessionStorage.getItem('tenant');
    if (!list.some((t) => t.id === tenant)) tenant = list.length ? list[0].id : null;
    sel.value = tenant || '';
    sel.onchange = () => { tenant = sel.value; sessionStorage.setItem('tenant', tenant); route(); };
    pick.hidden = false;
    label.textContent = '';
  } else {
    tenant = s.tenant;
    pick.hidden = true;
    label.textContent = s.tenantName || s.tenant;
  }
  if (!location.hash) location.hash = '#users';
  route();
}

function route() {
  if (!session) return;
  const name = (location.hash || '#users').slice(1).split('/')[0];
  const page = pages[name] || pages.users;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === '#' + name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!tenant) {
    show(el('p', {}, 'There is no tenant yet: create one with scimgate tenant create NAME.'));
    return;
  }
  liveTenant(tenant);
  const t = tenants.find((x) => x.id === tenant);
  const ctx = { tenant, session, base: '/' + tenant,
                tenantUrl: session.tenantUrl || (t && t.url) };
  const box = el('div', { class: 'page page-' + name });
  show(box);
  document.title = name[0].toUpperCase() + name.slice(1) + ' · scimgate';
  try {
    stop = page.render(box, ctx) || null;
  } catch (e) {
    fail(e);
  }
  const h = box.querySelector('h1');
  if (h) h.focus();
}

window.addEventListener('hashchange', route);
whenSignedOut(() => { if (session) signIn('Your session has ended: sign in again.'); });
document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    await api('DELETE', '/session');
    announce('Signed out');
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) { fail(e); return; }
  }
  signIn('You have signed out.');
});

(async () => {
  try {
    await start(await get('/session'));
  } catch (e) {
    signIn(e.status === 401 ? '' : e.message);
  }
})();
