// Settings: the tenant URL and the Entra walkthrough, SCIM tokens
// (Generate, rotate with overlap, revoke), auto-invite, the deletion-spike
// brake and its alerts, and the state of the hook scripts.

import { get, post, patch, del } from './api.js';
import { el, announce, fail, when, ago, copyButton, dialog, table, heading, badge } from './ui.js';

export function render(box, ctx) {
  const urlBox = el('section', { 'aria-labelledby': 'h-url' });
  const tokBox = el('section', { 'aria-labelledby': 'h-tokens' });
  const invBox = el('section', { 'aria-labelledby': 'h-invite' });
  const spikeBox = el('section', { 'aria-labelledby': 'h-spike' });
  const scriptBox = el('section', { 'aria-labelledby': 'h-scripts' });
  box.append(heading('Settings'), urlBox, tokBox, invBox, spikeBox, scriptBox);

  // The tenant URL as the gateway names it (public_url, or what a trusted
  // proxy reports).
  const url = ctx.tenantUrl;
  const urlInput = el('input', { id: 'tenant-url', readonly: true, value: url, class: 'wide' });
  urlBox.append(
    el('h2', { id: 'h-url' }, 'Tenant URL'),
    el('div', { class: 'row' }, el('label', { for: 'tenant-url', class: 'sr-only' }, 'Tenant URL'),
      urlInput, copyButton(() => url, 'Copy URL')),
    el('details', {}, el('summary', {}, 'Connect Microsoft Entra ID'),
      el('ol', {},
        el('li', {}, 'In Entra: Enterprise applications → New application → Create your own (non-gallery).'),
        el('li', {}, 'Provisioning → Provisioning Mode: Automatic.'),
        el('li', {}, 'Tenant URL: paste the URL above. Secret Token: click Generate below and paste the token.'),
        el('li', {}, 'Test Connection, then Save; assign users or groups and start provisioning.'),
        el('li', {}, 'After the first cycle the users appear on the Users page as Staged.'))));

  // Tokens.
  const secretBox = el('div', { id: 'secret', class: 'secret', hidden: true });
  const overlap = el('select', { id: 'overlap' },
    el('option', { value: '' }, 'revoke nothing (refused if two tokens are live)'),
    el('option', { value: '0s' }, 'end the old token now'),
    el('option', { value: '1h', selected: true }, 'keep the old token 1 hour'),
    el('option', { value: '24h' }, 'keep the old token 24 hours'),
    el('option', { value: '7d' }, 'keep the old token 7 days'));
  const gen = el('button', { type: 'button', class: 'primary', id: 'generate', text: 'Generate' });
  const tokTable = el('div', { id: 'tokens' });
  tokBox.append(el('h2', { id: 'h-tokens' }, 'Secret tokens'),
    el('p', { class: 'help' }, 'At most two tokens are live at once, so a rotation overlaps: ' +
      'generate a new one, paste it in Entra, and the old one ends after the time you choose.'),
    el('div', { class: 'row' }, el('label', { for: 'overlap' }, 'When generating'), overlap, gen),
    secretBox, tokTable);

  async function loadTokens() {
    const list = (await get(ctx.base + '/tokens')).tokens;
    const now = Date.now();
    const rows = list.map((t) => {
      const live = !t.revoked && (!t.expires || new Date(t.expires).getTime() > now);
      const revoke = live ? el('button', { type: 'button', class: 'quiet danger',
        'aria-label': 'Revoke token ' + t.id, text: 'Revoke' }) : null;
      if (revoke) revoke.addEventListener('click', async () => {
        const ok = await dialog('Revoke this token?',
          el('p', {}, `Token ${t.id} stops working at once; Entra gets 401 until it has a live token.`),
          [{ label: 'Cancel', value: '' }, { label: 'Revoke', value: 'yes', primary: true }]);
        if (ok !== 'yes') return;
        try { await del(`${ctx.base}/tokens/${t.id}`); announce('Token revoked'); loadTokens(); }
        catch (e) { fail(e); }
      });
      return el('tr', {},
        el('td', { class: 'mono' }, t.id),
        el('td', {}, live ? badge(t.expires ? 'Ends ' + ago(t.expires) : 'Live', 'active')
          : badge(t.revoked ? 'Revoked' : 'Expired', 'suspended')),
        el('td', {}, when(t.created)),
        el('td', {}, t.lastUsed ? `${ago(t.lastUsed)} from ${t.lastAddress || '?'}` : 'never'),
        el('td', {}, revoke));
    });
    tokTable.replaceChildren(rows.length
      ? table('SCIM tokens', ['Token id', 'State', 'Created', 'Last used', ''], rows)
      : el('p', {}, 'No token yet: click Generate.'));
  }

  gen.addEventListener('click', async () => {
    gen.disabled = true;
    try {
      const body = overlap.value ? { expiresOldIn: overlap.value } : {};
      const r = await post(ctx.base + '/tokens', body);
      const input = el('input', { id: 'secret-token', readonly: true, value: r.token, class: 'wide mono' });
      secretBox.replaceChildren(
        el('p', { class: 'warn' }, 'Copy the token now: it is shown only once.'),
        el('div', { class: 'row' }, el('label', { for: 'secret-token', class: 'sr-only' }, 'Secret token'),
          input, copyButton(() => r.token, 'Copy token')));
      secretBox.hidden = false;
      input.focus();
      input.select();
      announce('A new token was generated: copy it now, it is shown only once');
      loadTokens();
    } catch (e) { fail(e); }
    gen.disabled = false;
  });

  // Auto-invite and the deletion-spike brake.
  const auto = el('input', { type: 'checkbox', id: 'auto-invite' });
  invBox.append(el('h2', { id: 'h-invite' }, 'Invitations'),
    el('div', { class: 'row' }, auto, el('label', { for: 'auto-invite' },
      'Invite users as soon as Entra provisions them (they still wait for approval on an admin device)')));
  auto.addEventListener('change', async () => {
    try {
      await patch(ctx.base + '/settings', { auto_invite: auto.checked ? 'true' : 'false' });
      announce(auto.checked ? 'Auto-invite is on' : 'Auto-invite is off');
    } catch (e) { auto.checked = !auto.checked; fail(e); }
  });

  const threshold = el('input', { id: 'spike-threshold', type: 'number', min: '0', class: 'short' });
  const windowIn = el('input', { id: 'spike-window', class: 'short', placeholder: '1h' });
  const saveSpike = el('button', { type: 'button', text: 'Save brake' });
  const alertsBox = el('div', { id: 'alerts', 'aria-live': 'polite' });
  spikeBox.append(el('h2', { id: 'h-spike' }, 'Deletion-spike brake'),
    el('p', { class: 'help' }, 'When more users than this are deleted within the window, ' +
      'purging deleted users pauses until you resume it, so they can still be restored.'),
    el('div', { class: 'row' },
      el('label', { for: 'spike-threshold' }, 'Deletions'), threshold,
      el('label', { for: 'spike-window' }, 'within'), windowIn, saveSpike),
    alertsBox);
  saveSpike.addEventListener('click', async () => {
    try {
      await patch(ctx.base + '/settings', {
        spike_threshold: threshold.value === '' ? null : threshold.value,
        spike_window: windowIn.value.trim() === '' ? null : windowIn.value.trim() });
      announce('The brake is saved');
    } catch (e) { fail(e); }
  });

  async function loadSettings() {
    const s = (await get(ctx.base + '/settings')).settings;
    auto.checked = s.auto_invite === 'true';
    threshold.value = s.spike_threshold || '';
    threshold.placeholder = '100';
    windowIn.value = s.spike_window || '';
    const alerts = (await get(ctx.base + '/alerts')).alerts;
    alertsBox.replaceChildren(...(alerts.length ? alerts.map((a) => {
      const resume = el('button', { type: 'button', text: 'Resume purges' });
      resume.addEventListener('click', async () => {
        try { await del(ctx.base + '/alerts/deletion_spike'); announce('Purges resumed'); loadSettings(); }
        catch (e) { fail(e); }
      });
      return el('div', { class: 'alert', role: 'alert' }, el('strong', {}, 'Deletion spike: '), a.detail, ' ', resume);
    }) : [el('p', {}, 'No alert.')]));
  }

  async function loadScripts() {
    const r = await get(ctx.base + '/scripts');
    scriptBox.replaceChildren(el('h2', { id: 'h-scripts' }, 'Hook scripts'),
      table('Hook scripts', ['Script', 'Version', 'State', 'Last error'], r.scripts.map((s) =>
        el('tr', {}, el('td', { class: 'mono' }, s.name), el('td', {}, String(s.version)),
          el('td', {}, s.error ? badge('Error', 'suspended') : s.loaded ? badge('Loaded', 'active') : badge('Missing', 'staged')),
          el('td', { class: 'mono' }, s.error || '—')))));
  }

  Promise.all([loadTokens(), loadSettings(), loadScripts()]).catch(fail);
  return null;
}
