// Activity: the audit trail (every SCIM write and state change, invitations,
// settings, sign-ins, refused writes) with filters, and new events as they
// happen. A deleted user can be restored from its event.

import { get, post } from './api.js';
import { el, announce, fail, when, heading } from './ui.js';

const KINDS = {
  '': null,
  users: ['user.created', 'user.updated', 'user.suspended', 'user.reactivated', 'user.deleted',
          'user.undeleted', 'user.state_changed', 'user.detached', 'user.attached'],
  groups: ['group.created', 'group.updated', 'group.deleted', 'group.members_added', 'group.members_removed'],
  invitations: ['invitation.created', 'invitation.approved', 'invitation.delivered', 'invitation.retry',
                'invitation.failed', 'invitation.expired', 'invitation.cancelled'],
  refused: ['scim.refused'],
  admin: ['admin.signed_in', 'admin.signed_out', 'settings.changed', 'alert.deletion_spike', 'alert.cleared'],
};
const WINDOWS = { '3600': 'Last hour', '86400': 'Last 24 hours', '604800': 'Last 7 days', '': 'Everything' };

export function render(box, ctx) {
  const kind = el('select', { id: 'kind' }, Object.keys(KINDS).map((k) =>
    el('option', { value: k }, k ? k[0].toUpperCase() + k.slice(1) : 'Every event')));
  const win = el('select', { id: 'window' }, Object.entries(WINDOWS).map(([v, t]) => el('option', { value: v }, t)));
  win.value = '86400';
  const subject = el('input', { id: 'subject', placeholder: 'user or group id', class: 'mid' });
  const list = el('tbody', { id: 'events' });
  const more = el('button', { type: 'button', class: 'quiet', text: 'Load more', hidden: true });
  const live = el('p', { class: 'help', 'aria-live': 'polite' });
  box.append(heading('Activity'),
    el('div', { class: 'row toolbar' },
      el('label', { for: 'kind' }, 'Show'), kind, el('label', { for: 'window' }, 'From'), win,
      el('label', { for: 'subject' }, 'Subject'), subject),
    el('table', {}, el('caption', { class: 'sr-only' }, 'Audit events, oldest first'),
      el('thead', {}, el('tr', {}, ['Time', 'Event', 'Actor', 'Subject', 'Details'].map((h) => el('th', { scope: 'col' }, h)))),
      list),
    more, live);

  let cursor = '0', gen = 0;
  function query(since) {
    const p = new URLSearchParams({ limit: '200', since });
    if (KINDS[kind.value]) p.set('type', KINDS[kind.value].join(','));
    if (win.value) p.set('from', new Date(Date.now() - Number(win.value) * 1000).toISOString());
    if (subject.value.trim()) p.set('subject', subject.value.trim());
    return `${ctx.base}/events?${p}`;
  }
  function row(e) {
    let extra = null;
    if (e.type === 'user.deleted' && e.subject) {
      extra = el('button', { type: 'button', class: 'quiet small', text: 'Restore', 'aria-label': 'Restore user ' + e.subject });
      extra.addEventListener('click', async () => {
        try { await post(`${ctx.base}/users/${e.subject}/restore`); announce('The user is restored'); }
        catch (err) { fail(err); }
      });
    }
    const data = e.data && Object.keys(e.data).length ? JSON.stringify(e.data) : '';
    return el('tr', {}, el('td', {}, el('time', { datetime: e.time }, when(e.time))),
      el('td', {}, el('strong', {}, e.type)), el('td', { class: 'mono' }, e.actor),
      el('td', { class: 'mono' }, e.subject || ''), el('td', { class: 'data' }, data, extra ? ' ' : '', extra));
  }
  async function load(reset) {
    const my = reset ? ++gen : gen;
    if (reset) { cursor = '0'; list.replaceChildren(); }
    try {
      const r = await get(query(cursor));
      if (my !== gen) return;
      list.append(...r.events.map(row));
      cursor = r.cursor;
      more.hidden = r.events.length < 200;
      if (reset && !r.events.length) list.append(el('tr', { class: 'none' }, el('td', { colspan: '5', class: 'empty' }, 'No event.')));
    } catch (e) { fail(e); }
  }
  async function poll() {
    if (!more.hidden) return; // the user is still paging through older events
    const my = gen;
    try {
      const r = await get(query(cursor));
      if (my !== gen || !r.events.length) return;
      const none = list.querySelector('tr.none');
      if (none) none.remove();
      list.append(...r.events.map(row));
      cursor = r.cursor;
      live.textContent = `${r.events.length} new event${r.events.length === 1 ? '' : 's'}`;
    } catch (e) { /* tried again */ }
  }
  for (const x of [kind, win]) x.addEventListener('change', () => load(true));
  let t = null;
  subject.addEventListener('input', () => { clearTimeout(t); t = setTimeout(() => load(true), 300); });
  more.addEventListener('click', () => load(false));
  load(true);
  const timer = setInterval(poll, 2000);
  return () => clearInterval(timer);
}
