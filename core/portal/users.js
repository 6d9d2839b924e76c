// Users: the table by state with search and paging (the API's start/count
// and userName prefix keep it fast at 100,000 users); select many → Send
// invitation; resend, detach/attach, restore; a per-user timeline. Changes
// from elsewhere (a device approving, Entra) come in through the change feed.

import { get, post } from './api.js';
import { el, announce, fail, when, badge, stateLabel, dialog, heading, STATES } from './ui.js';
import { listen } from './live.js';

const PAGE = 50;

export function render(box, ctx) {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  let start = 1, total = 0, rows = [], loading = false, again = false;
  const selected = new Set();

  const stateSel = el('select', { id: 'state-filter' },
    el('option', { value: '' }, 'All states'),
    STATES.map((s) => el('option', { value: s }, stateLabel(s))));
  stateSel.value = q.get('state') || '';
  const search = el('input', { id: 'search', type: 'search', placeholder: 'userName starts with…',
                               autocomplete: 'off' });
  const invite = el('button', { type: 'button', class: 'primary', id: 'send-invitation',
                                disabled: true, text: 'Send invitation' });
  const count = el('span', { id: 'selection', class: 'help', 'aria-live': 'polite' });
  const all = el('input', { type: 'checkbox', id: 'select-all', 'aria-label': 'Select every user on this page' });
  const tbody = el('tbody', { id: 'user-rows' });
  const prev = el('button', { type: 'button', class: 'quiet', text: '← Previous' });
  const next = el('button', { type: 'button', class: 'quiet', text: 'Next →' });
  const pageInfo = el('span', { id: 'page-info', 'aria-live': 'polite' });

  box.append(heading('Users'),
    el('div', { class: 'row toolbar' },
      el('label', { for: 'state-filter' }, 'State'), stateSel,
      el('label', { for: 'search' }, 'Search'), search,
      el('span', { class: 'grow' }), count, invite),
    el('table', { class: 'users' },
      el('caption', { class: 'sr-only' }, 'Users provisioned by Entra, with their state'),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col', class: 'check' }, all),
        ['userName', 'Name', 'State', 'Invitation address', 'Actions'].map((h) => el('th', { scope: 'col' }, h)))),
      tbody),
    el('div', { class: 'row pager' }, prev, pageInfo, next));

  function updateSelection() {
    invite.disabled = selected.size === 0;
    count.textContent = selected.size ? `${selected.size} selected` : '';
    const onPage = rows.filter((u) => selected.has(u.id)).length;
    all.checked = rows.length > 0 && onPage === rows.length;
    all.indeterminate = onPage > 0 && onPage < rows.length;
  }

  function actions(u) {
    const out = [];
    const b = (label, fn, extra) => {
      const x = el('button', { type: 'button', class: 'quiet small', 'aria-label': `${label}: ${u.userName}`, text: label, ...extra });
      x.addEventListener('click', fn);
      out.push(x);
    };
    b('Timeline', () => timeline(ctx, u));
    if (u.state === 'Invited' || u.state === 'PendingApproval')
      b('Resend', () => act(u, 'resend', {}, 'A new invitation waits for approval on an admin device'));
    if (u.detached)
      b('Attach', () => act(u, 'attach', {}, `${u.userName} follows Entra again`));
    else
      b('Detach', async () => {
        const reason = el('input', { id: 'detach-reason', class: 'wide', required: true });
        const ok = await dialog('Detach from SCIM?', [
          el('p', {}, `Entra's changes to ${u.userName} are refused (409) until you attach it again.`),
          el('label', { for: 'detach-reason' }, 'Reason'), reason],
          [{ label: 'Cancel', value: '' }, { label: 'Detach', value: 'yes', primary: true }]);
        if (ok === 'yes') act(u, 'detach', { reason: reason.value || 'managed by the admin' }, `${u.userName} is detached from SCIM`);
      });
    return out;
  }

  async function act(u, action, body, done) {
    try {
      await post(`${ctx.base}/users/${u.id}/${action}`, body);
      announce(done);
      load();
    } catch (e) { fail(e); }
  }

  function draw() {
    tbody.replaceChildren(...rows.map((u) => {
      const cb = el('input', { type: 'checkbox', 'aria-label': 'Select ' + u.userName, 'data-id': u.id });
      cb.checked = selected.has(u.id);
      cb.addEventListener('change', () => { cb.checked ? selected.add(u.id) : selected.delete(u.id); updateSelection(); });
      return el('tr', { 'data-user': u.userName },
        el('td', { class: 'check' }, cb),
        el('td', { class: 'mono' }, u.userName),
        el('td', {}, u.displayName || ''),
        el('td', {}, badge(stateLabel(u.state), u.state.toLowerCase()),
          u.detached ? badge('Detached', 'detached') : null),
        el('td', {}, u.address || el('span', { class: 'help' }, 'none')),
        el('td', { class: 'actions' }, actions(u)));
    }));
    if (!rows.length) tbody.append(el('tr', {}, el('td', { colspan: '6', class: 'empty' },
      search.value || stateSel.value ? 'No user matches.' : 'No user yet: Entra provisions them at its next cycle.')));
    const last = Math.min(start + rows.length - 1, total);
    pageInfo.textContent = total ? `${start}–${last} of ${total}` : '';
    prev.disabled = start <= 1;
    next.disabled = start + PAGE > total;
    updateSelection();
  }

  async function load() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const p = new URLSearchParams({ start: String(start), count: String(PAGE) });
      if (stateSel.value) p.set('state', stateSel.value);
      if (search.value.trim()) p.set('q', search.value.trim());
      const r = await get(`${ctx.base}/users?${p}`);
      total = r.total;
      if (start > 1 && start > total) { start = Math.max(1, total - PAGE + 1); loading = false; return load(); }
      rows = r.users;
      draw();
    } catch (e) { fail(e); }
    loading = false;
    if (again) { again = false; load(); }
  }

  stateSel.addEventListener('change', () => { start = 1; selected.clear(); load(); });
  let debounce = null;
  search.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(() => { start = 1; load(); }, 250); });
  prev.addEventListener('click', () => { start = Math.max(1, start - PAGE); load(); });
  next.addEventListener('click', () => { start += PAGE; load(); });
  all.addEventListener('change', () => {
    for (const u of rows) all.checked ? selected.add(u.id) : selected.delete(u.id);
    draw();
  });

  invite.addEventListener('click', async () => {
    const ids = [...selected];
    const ok = await dialog(`Send ${ids.length === 1 ? 'an invitation' : ids.length + ' invitations'}?`, [
      el('p', {}, `The invitations wait for approval on an admin device. Until it approves them ` +
        `the users are Pending approval; once approved the invitation email goes out and they become Invited.`)],
      [{ label: 'Cancel', value: '' }, { label: 'Send invitation', value: 'send', primary: true }]);
    if (ok !== 'send') return;
    try {
      const r = await post(`${ctx.base}/invitations`, { users: ids });
      selected.clear();
      const n = r.invitations.length;
      let msg = `${n} invitation${n === 1 ? '' : 's'} waiting for approval on an admin device`;
      if (r.refused.length) msg += `; ${r.refused.length} refused: ${r.refused.map((x) => x.detail).join('; ')}`;
      announce(msg, r.refused.length ? 'error' : '');
      load();
    } catch (e) { fail(e); }
  });

  load();
  // Live: any user change reloads the page shown (batched by the poll).
  return listen((events) => { if (events.some((e) => e.type.startsWith('user.'))) load(); });
}

// The user's timeline: every SCIM request and state change, with actor and
// time, in a dialog.
export async function timeline(ctx, u) {
  try {
    const [tl, one] = await Promise.all([get(`${ctx.base}/users/${u.id}/timeline`),
                                          get(`${ctx.base}/users/${u.id}`)]);
    const items = tl.events.map((e) => el('li', {},
      el('time', { datetime: e.time }, when(e.time)), ' ',
      el('strong', {}, e.type), ' by ', el('span', { class: 'mono' }, e.actor),
      describe(e.data) ? el('div', { class: 'help' }, describe(e.data)) : null));
    const inv = one.invitations.map((j) => el('li', {},
      `${j.status} · to ${j.address} · created ${when(j.created)}` +
      (j.lastError ? ` · ${j.lastError}` : '')));
    await dialog(`Timeline of ${u.userName}`, [
      el('p', {}, 'State: ', badge(stateLabel(one.state), one.state.toLowerCase())),
      el('ol', { class: 'timeline' }, items.length ? items : [el('li', {}, 'No event.')]),
      inv.length ? el('h3', {}, 'Invitations') : null, inv.length ? el('ul', {}, inv) : null],
      [{ label: 'Close', value: 'close', primary: true }]);
  } catch (e) { fail(e); }
}

function describe(d) {
  if (!d || typeof d !== 'object') return '';
  return Object.entries(d).filter(([, v]) => v !== null && typeof v !== 'object')
    .map(([k, v]) => `${k}: ${v}`).join(', ');
}
