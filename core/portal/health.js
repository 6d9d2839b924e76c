// Health: when Entra last called, errors and 401s in the last hour (a 401
// burst usually means Entra still sends a revoked or old token).

import { get } from './api.js';
import { el, fail, when, ago, heading } from './ui.js';

export function render(box, ctx) {
  const body = el('div', {});
  box.append(heading('Health'), body);
  async function load() {
    try {
      const h = await get(`${ctx.base}/health`);
      const L = h.lastHour;
      const rate = L.requests ? Math.round((L.errors * 1000) / L.requests) / 10 : 0;
      const cards = el('div', { class: 'cards' },
        card('Last request from Entra', h.lastRequest ? ago(h.lastRequest) : 'never',
             h.lastRequest ? `${when(h.lastRequest)} from ${h.lastAddress || '?'}` : 'No SCIM token has been used yet.'),
        card('Requests, last hour', String(L.requests), `${h.liveTokens} live token${h.liveTokens === 1 ? '' : 's'}`),
        card('Error rate, last hour', rate + ' %', `${L.errors} failed; ${h.refusedWrites24h} refused writes in 24 h`),
        card('Unauthorized (401), last hour', String(L.unauthorized), `at most ${L.unauthorizedPeakPerMinute} in one minute`));
      const warn = L.unauthorized >= 3
        ? el('div', { class: 'alert', role: 'alert' }, 'Requests with a token the gateway does not accept: ' +
          'Entra may still send an old or revoked token. Generate one on Settings and paste it in Entra.')
        : null;
      const max = Math.max(1, ...L.minutes.map((m) => m.requests));
      const bars = el('ol', { class: 'bars', 'aria-label': 'Requests per minute, last hour' },
        L.minutes.map((m) => {
          const b = el('span', { class: 'bar' + (m.unauthorized ? ' bad' : m.errors ? ' warn' : '') });
          b.style.width = Math.max(2, Math.round((m.requests / max) * 100)) + '%';
          return el('li', {}, el('time', { datetime: m.time }, new Date(m.time).toLocaleTimeString(undefined, { timeStyle: 'short' })),
            b, el('span', { class: 'help' }, `${m.requests} requests, ${m.errors} errors, ${m.unauthorized} 401`));
        }));
      body.replaceChildren(cards, warn || '', el('h2', {}, 'Per minute (this node)'),
        L.minutes.length ? bars : el('p', {}, 'No SCIM request in the last hour.'));
    } catch (e) { fail(e); }
  }
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}

function card(title, value, note) {
  return el('section', { class: 'card' }, el('h2', {}, title), el('p', { class: 'big' }, value),
    el('p', { class: 'help' }, note));
}
