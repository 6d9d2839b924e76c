// Approvals: the invitations waiting for an admin device, their age and
// when they expire; an admin may let one expire (the user goes back to
// Staged). Refreshed every few seconds: approvals are not in the change feed.

import { get, post } from './api.js';
import { el, announce, fail, when, ago, heading, dialog } from './ui.js';

export function render(box, ctx) {
  const tbody = el('tbody', {});
  const summary = el('p', { 'aria-live': 'polite' });
  box.append(heading('Approvals'),
    el('p', { class: 'help' }, 'Invitations are sent only after an enrolled admin device approves them ' +
      '(its app signs each one). They expire if nobody approves them in time.'),
    summary,
    el('table', {}, el('caption', { class: 'sr-only' }, 'Invitations awaiting approval'),
      el('thead', {}, el('tr', {}, ['User', 'Address', 'Requested', 'Expires', ''].map((h) => el('th', { scope: 'col' }, h)))),
      tbody));
  const names = new Map();
  let last = '';

  async function load() {
    try {
      const jobs = (await get(`${ctx.base}/jobs?status=AwaitingApproval`)).jobs;
      for (const j of jobs) {
        if (!names.has(j.user)) {
          try { names.set(j.user, (await get(`${ctx.base}/users/${j.user}`)).userName); }
          catch (e) { names.set(j.user, j.user); }
        }
      }
      const key = jobs.map((j) => j.id).join();
      summary.textContent = jobs.length ? `${jobs.length} invitation${jobs.length === 1 ? '' : 's'} waiting for an admin device`
        : 'Nothing waits for approval.';
      if (key === last && tbody.childElementCount) { refreshAges(jobs); return; }
      last = key;
      tbody.replaceChildren(...jobs.map((j) => {
        const exp = el('button', { type: 'button', class: 'quiet small', text: 'Let it expire',
                                   'aria-label': 'Let the invitation of ' + names.get(j.user) + ' expire' });
        exp.addEventListener('click', async () => {
          const ok = await dialog('Let this invitation expire?', el('p', {},
            `${names.get(j.user)} goes back to Staged; you can invite again later.`),
            [{ label: 'Cancel', value: '' }, { label: 'Expire', value: 'yes', primary: true }]);
          if (ok !== 'yes') return;
          try { await post(`${ctx.base}/jobs/${j.id}/expire`); announce('The invitation expired'); load(); }
          catch (e) { fail(e); }
        });
        return el('tr', { 'data-job': j.id }, el('td', {}, names.get(j.user)), el('td', {}, j.address),
          el('td', { class: 'age' }, `${ago(j.created)} (${when(j.created)})`),
          el('td', { class: 'expires' }, `${ago(j.expires)}`), el('td', {}, exp));
      }));
      if (!jobs.length) tbody.append(el('tr', {}, el('td', { colspan: '5', class: 'empty' }, 'No pending invitation.')));
    } catch (e) { fail(e); }
  }
  function refreshAges(jobs) {
    for (const j of jobs) {
      const tr = tbody.querySelector(`tr[data-job="${j.id}"]`);
      if (!tr) continue;
      tr.querySelector('.age').textContent = `${ago(j.created)} (${when(j.created)})`;
      tr.querySelector('.expires').textContent = ago(j.expires);
    }
  }
  load();
  const timer = setInterval(load, 3000);
  return () => clearInterval(timer);
}
