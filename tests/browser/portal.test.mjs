// The admin portal in a real browser (issue 8): Debian's chromium, headless,
// driven by playwright-core, against the real gateway on a free loopback
// port with a fresh data directory.
//
//   node portal.test.mjs SCIMGATE_BINARY OUTPUT_DIR
//
// Sign in; Generate a token and use it for SCIM requests that create users;
// see them Staged; select two and send invitations; approve them with the
// CLI acting as the admin device; see them Invited without a reload; open a
// timeline; check that the page cannot reach another tenant; sign out.
// A screenshot of every page goes to OUTPUT_DIR/screenshots. The last line
// is "N passed, N failed".

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
const [bin, outDir] = process.argv.slice(2);
if (!bin || !outDir) {
  console.error('usage: node portal.test.mjs SCIMGATE_BINARY OUTPUT_DIR');
  process.exit(2);
}
const CHROMIUM = process.env.SG_CHROMIUM || '/usr/bin/chromium';
const shots = join(outDir, 'screenshots');
rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });
const data = mkdtempSync(join(tmpdir(), 'scimgate-browser-'));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const common = ['--data', data, '--listen', `127.0.0.1:${port}`];

async function cli(...args) {
  const { stdout } = await run(bin, [...args, ...common], { timeout: 60000 });
  return stdout.trim().split('\n').pop();
}

let gateway = null, browser = null;
let passed = 0, failed = 0;

async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${String(e && e.message || e).split('\n')[0]}`);
    console.error(e);
    throw e;
  }
}

function expect(cond, what) { if (!cond) throw new Error(what); }

async function scim(token, method, path, body) {
  const r = await fetch(`${base}/scim/v2/${tenant}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/scim+json' },
    body: body && JSON.stringify(body),
  });
  return { status: r.status, json: r.status === 204 ? null : await r.json() };
}

let tenant, admin, other;
try {
  // The store commands run before the server starts: a tenant, its admin,
  // and another tenant the page must never reach.
  tenant = (await cli('tenant', 'create', 'acme')).match(/\/scim\/v2\/(\w+)/)[1];
  admin = JSON.parse(await cli('admin', 'create', tenant, 'alice'));
  other = (await cli('tenant', 'create', 'globex')).match(/\/scim\/v2\/(\w+)/)[1];
  const otherToken = await cli('token', 'generate', other);

  gateway = spawn(bin, ['serve', ...common, '--outbox.poll', '200ms', '--log_level', 'warn'],
                  { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  gateway.stderr.on('data', (d) => { log = (log + d).slice(-20000); });
  gateway.on('exit', (code) => { if (code !== null && code !== 0) console.error('gateway exited', code, log); });
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) break; } catch (e) { /* not yet */ }
    if (i > 100) throw new Error('the gateway did not start: ' + log);
    await new Promise((r) => setTimeout(r, 100));
  }
  const r0 = await fetch(`${base}/scim/v2/${other}/Users`, {
    method: 'POST', headers: { Authorization: `Bearer ${otherToken}`, 'Content-Type': 'application/scim+json' },
    body: JSON.stringify({ userName: 'secret@globex.example' }) });
  expect(r0.status === 201, 'the other tenant has a user');

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                    args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // Answers like 401 and 403 are expected (the tests ask for them); a
  // portal file that is missing is not, nor any script error.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
      problems.push('console: ' + m.text());
  });
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/admin/v1/') && r.status() >= 400)
      problems.push(`${u.pathname} answered ${r.status()}`);
  });
  const shot = (name) => page.screenshot({ path: join(shots, name + '.png'), fullPage: true });

  await step('the sign-in page loads and refuses a wrong password', async () => {
    await page.goto(`${base}/admin/?tenant=acme`);
    await page.getByLabel('Login').fill('alice');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not right' }).waitFor();
    await page.getByLabel('Password').fill('');
    await shot('01-sign-in');
  });

  await step('sign in as the tenant admin', async () => {
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Pages' }).waitFor();
    expect(await page.locator('#tenant-label').textContent() === 'acme', 'the tenant is named');
    const cookies = await context.cookies();
    const c = cookies.find((x) => x.name === 'scimgate_session');
    expect(c && c.httpOnly && c.sameSite === 'Strict' && c.path === '/admin', 'an HttpOnly SameSite=Strict cookie');
    expect(await page.evaluate(() => document.cookie) === '', 'the page cannot read the cookie');
  });

  let token;
  await step('Settings: the tenant URL and Generate (the secret shown once)', async () => {
    await page.getByRole('link', { name: 'Settings' }).click();
    const url = await page.getByRole('textbox', { name: 'Tenant URL' }).inputValue();
    expect(url === `${base}/scim/v2/${tenant}`, 'the tenant URL is ' + url);
    await page.getByRole('button', { name: 'Generate' }).click();
    const secret = page.getByRole('textbox', { name: 'Secret token' });
    await secret.waitFor();
    token = await secret.inputValue();
    expect(/^sgt_[0-9a-f]+\./.test(token), 'a SCIM token: ' + token);
    await page.getByRole('table', { name: 'SCIM tokens' }).waitFor();
    await page.getByText('Copy the token now').waitFor();
    await page.locator('#h-scripts').waitFor();
    await shot('02-settings');
  });

  await step('the token creates users over SCIM; they show up Staged', async () => {
    for (const n of ['ada', 'grace', 'linus']) {
      const r = await scim(token, 'POST', '/Users', {
        userName: `${n}@acme.example`, displayName: n[0].toUpperCase() + n.slice(1),
        emails: [{ value: `${n}@acme.example`, type: 'work', primary: true }] });
      expect(r.status === 201, `POST /Users ${n}: ${r.status}`);
    }
    const g = await scim(token, 'POST', '/Groups', { displayName: 'Engineering' });
    expect(g.status === 201, 'a group');
    await page.getByRole('link', { name: 'Users' }).click();
    const rows = page.locator('#user-rows tr[data-user]');
    await page.waitForFunction(() => document.querySelectorAll('#user-rows tr[data-user]').length === 3);
    for (const n of ['ada', 'grace', 'linus'])
      await rows.filter({ hasText: `${n}@acme.example` }).getByText('Staged').waitFor();
    await shot('03-users-staged');
  });

  await step('select two and send invitations: a confirmation, then Pending approval', async () => {
    await page.evaluate(() => { window.__sameDocument = true; });
    await page.getByRole('checkbox', { name: 'Select ada@acme.example' }).check();
    await page.getByRole('checkbox', { name: 'Select grace@acme.example' }).check();
    await page.getByText('2 selected').waitFor();
    await page.getByRole('button', { name: 'Send invitation' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByText('wait for approval on an admin device').waitFor();
    await shot('04-send-invitation-dialog');
    await dlg.getByRole('button', { name: 'Send invitation' }).click();
    await page.getByRole('status').filter({ hasText: 'waiting for approval on an admin device' }).waitFor();
    for (const n of ['ada', 'grace'])
      await page.locator('#user-rows tr', { hasText: `${n}@acme.example` }).getByText('Pending approval').waitFor();
    await page.locator('#user-rows tr', { hasText: 'linus@acme.example' }).getByText('Staged').waitFor();
  });

  await step('Approvals lists the two pending invitations with age and expiry', async () => {
    await page.getByRole('link', { name: 'Approvals' }).click();
    await page.getByText('2 invitations waiting for an admin device').waitFor();
    await page.locator('tr[data-job]', { hasText: 'ada@acme.example' }).waitFor();
    await shot('05-approvals');
    await page.getByRole('link', { name: 'Users' }).click();
    await page.locator('#user-rows tr[data-user]').first().waitFor();
  });

  await step('the CLI approves as the admin device; the page shows Invited without a reload', async () => {
    const key = join(data, 'device.json');
    await cli('device', 'enroll', tenant, 'phone', '--key', key, '--admin-token', admin.token,
              '--url', base);
    const approved = await cli('device', 'approve', tenant, '--key', key, '--all', '--url', base);
    expect(approved.length > 0, 'approved jobs');
    for (const n of ['ada', 'grace'])
      await page.locator('#user-rows tr', { hasText: `${n}@acme.example` }).getByText('Invited')
        .waitFor({ timeout: 20000 });
    expect(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded');
    await shot('06-users-invited');
  });

  await step('a user\'s timeline shows the SCIM write and each state change', async () => {
    await page.getByRole('button', { name: 'Timeline: ada@acme.example' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByText('user.created').waitFor();
    await dlg.getByText('invitation.created').waitFor();
    await dlg.getByText('invitation.approved').waitFor();
    await dlg.getByText('user.state_changed').first().waitFor();
    await shot('07-timeline');
    await dlg.getByRole('button', { name: 'Close' }).click();
    await dlg.waitFor({ state: 'hidden' });
  });

  await step('Groups, Activity and Health pages', async () => {
    await page.getByRole('link', { name: 'Groups' }).click();
    await page.getByRole('cell', { name: 'Engineering' }).waitFor();
    await shot('08-groups');
    await page.getByRole('link', { name: 'Activity' }).click();
    await page.locator('#events tr').filter({ hasText: 'invitation.approved' }).first().waitFor();
    await shot('09-activity');
    // A request with an old token shows on Health.
    await fetch(`${base}/scim/v2/${tenant}/Users`, { headers: { Authorization: 'Bearer sgt_0000000000000000.old' } });
    await page.getByRole('link', { name: 'Health' }).click();
    await page.getByText('Last request from Entra').waitFor();
    await page.getByText('Unauthorized (401), last hour').waitFor();
    await shot('10-health');
  });

  await step('the page\'s credentials cannot reach another tenant', async () => {
    const res = await page.evaluate(async (o) => {
      const u = await fetch(`/admin/v1/${o}/users`);
      const t = await fetch(`/admin/v1/${o}/tokens`);
      const mine = await fetch('/admin/v1/tenants').then((r) => r.json());
      return [u.status, t.status, mine.tenants.map((x) => x.name)];
    }, other);
    expect(res[0] === 403 && res[1] === 403, `another tenant's users/tokens answered ${res[0]}/${res[1]}`);
    expect(res[2].length === 1 && res[2][0] === 'acme', 'only its own tenant is listed');
    const nocsrf = await page.evaluate(async (t) =>
      (await fetch(`/admin/v1/${t}/tokens`, { method: 'POST', body: '{}' })).status, tenant);
    expect(nocsrf === 403, 'a change without the CSRF token answered ' + nocsrf);
  });

  await step('sign out: the session ends and the sign-in page returns', async () => {
    const before = (await context.cookies()).find((x) => x.name === 'scimgate_session');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await page.reload();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    const r = await fetch(`${base}/admin/v1/${tenant}/users`,
                          { headers: { Cookie: `scimgate_session=${before.value}` } });
    expect(r.status === 401, 'the old cookie answered ' + r.status);
    await shot('11-signed-out');
  });

  await step('no script error on any page', async () => {
    expect(problems.length === 0, problems.join('; '));
  });
} catch (e) {
  if (!failed) { failed++; console.log(`FAIL setup: ${e.message}`); console.error(e); }
} finally {
  if (browser) await browser.close().catch(() => {});
  if (gateway) {
    gateway.kill('SIGTERM');
    await new Promise((r) => { if (gateway.exitCode !== null) r(); else gateway.once('exit', r); });
  }
  if (existsSync(data)) rmSync(data, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}


