// Small DOM helpers shared by the pages. No HTML strings: every value goes
// in as text.

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

let statusTimer = null;
// Say something to sighted and screen-reader users alike (aria-live).
export function announce(message, kind) {
  const s = document.getElementById('status');
  s.textContent = message;
  s.className = 'status show' + (kind ? ' ' + kind : '');
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { s.className = 'status'; }, 6000);
}

export function fail(e) { announce(e.message || String(e), 'error'); }

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function ago(iso) {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 0) return 'in ' + span(-s);
  return span(s) + ' ago';
}

export function span(s) {
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  if (s < 172800) return Math.round(s / 3600) + ' h';
  return Math.round(s / 86400) + ' days';
}

const STATES = ['Staged', 'PendingApproval', 'Invited', 'Active', 'Suspended'];
export { STATES };

export function badge(text, kind) {
  return el('span', { class: 'badge ' + (kind || String(text).toLowerCase()) }, text);
}

export function stateLabel(s) { return s === 'PendingApproval' ? 'Pending approval' : s; }

export function copyButton(getText, label) {
  const b = el('button', { type: 'button', class: 'quiet', text: label || 'Copy' });
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(getText());
      announce('Copied to the clipboard');
    } catch (e) {
      announce('Copying was refused by the browser: select the text and copy it', 'error');
    }
  });
  return b;
}

// A modal dialog (native <dialog>: focus moves in, Escape closes, focus
// returns to what opened it). Resolves with the value of the button used.
export function dialog(title, body, buttons) {
  const d = document.getElementById('dialog');
  const opener = document.activeElement;
  document.getElementById('dialog-title').textContent = title;
  const b = document.getElementById('dialog-body');
  b.replaceChildren(...[].concat(body));
  const actions = document.getElementById('dialog-actions');
  actions.replaceChildren(...buttons.map((x) =>
    el('button', { value: x.value, class: x.primary ? 'primary' : 'quiet', text: x.label })));
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      if (opener && opener.focus) opener.focus();
      resolve(d.returnValue);
    }, { once: true });
    d.showModal();
    const first = actions.querySelector('.primary') || actions.querySelector('button');
    if (first) first.focus();
  });
}

export function table(caption, heads, rows, opts) {
  return el('table', { class: (opts && opts.class) || '' },
    el('caption', { class: (opts && opts.captionClass) || 'sr-only' }, caption),
    el('thead', {}, el('tr', {}, heads.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows));
}

export function heading(text) {
  return el('h1', { id: 'page-title', tabindex: '-1' }, text);
}
