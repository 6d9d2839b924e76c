// Groups: what Entra sent and what the tenant's groups script decided
// (accepted, or ignored with its reason), searchable and paged.

import { get } from './api.js';
import { el, fail, when, badge, heading } from './ui.js';
import { listen } from './live.js';

const PAGE = 50;

export function render(box, ctx) {
  let start = 1;
  const search = el('input', { id: 'group-search', type: 'search', placeholder: 'displayName starts with…' });
  const tbody = el('tbody', {});
  const info = el('span', { 'aria-live': 'polite' });
  const prev = el('button', { type: 'button', class: 'quiet', text: '← Previous' });
  const next = el('button', { type: 'button', class: 'quiet', text: 'Next →' });
  box.append(heading('Groups'),
    el('p', { class: 'help' }, 'An ignored group is stored and answered like any other, ' +
      'so Entra never quarantines the job, but it has no effect here.'),
    el('div', { class: 'row toolbar' }, el('label', { for: 'group-search' }, 'Search'), search),
    el('table', {}, el('caption', { class: 'sr-only' }, 'Groups from Entra'),
      el('thead', {}, el('tr', {}, ['displayName', 'externalId', 'Policy', 'Why', 'Last change']
        .map((h) => el('th', { scope: 'col' }, h)))), tbody),
    el('div', { class: 'row pager' }, prev, info, next));

  async function load() {
    try {
      const p = new URLSearchParams({ start: String(start), count: String(PAGE) });
      if (search.value.trim()) p.set('q', search.value.trim());
      const r = await get(`${ctx.base}/groups?${p}`);
      tbody.replaceChildren(...r.groups.map((g) => el('tr', {},
        el('td', {}, g.displayName || ''), el('td', { class: 'mono' }, g.externalId || '—'),
        el('td', {}, badge(g.policy === 'ignored' ? 'Ignored' : 'Accepted', g.policy === 'ignored' ? 'staged' : 'active')),
        el('td', {}, g.reason || ''), el('td', {}, when(g.modified)))));
      if (!r.groups.length) tbody.append(el('tr', {}, el('td', { colspan: '5', class: 'empty' }, 'No group.')));
      info.textContent = r.total ? `${start}–${start + r.groups.length - 1} of ${r.total}` : '';
      prev.disabled = start <= 1;
      next.disabled = start + PAGE > r.total;
    } catch (e) { fail(e); }
  }
  let t = null;
  search.addEventListener('input', () => { clearTimeout(t); t = setTimeout(() => { start = 1; load(); }, 250); });
  prev.addEventListener('click', () => { start = Math.max(1, start - PAGE); load(); });
  next.addEventListener('click', () => { start += PAGE; load(); });
  load();
  return listen((ev) => { if (ev.some((e) => e.type.startsWith('group.'))) load(); });
}
