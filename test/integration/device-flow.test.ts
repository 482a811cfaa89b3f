// Device sign-in (README "Device sign-in (CLI)"): the OAuth 2.0 Device Authorization Grant
// (RFC 8628) at the embedded provider, end to end with the CLI as a child process and a
// person confirming the code over HTTP (the pages in Dutch and English); the RFC's errors
// (authorization_pending, slow_down, expired_token, access_denied); the CLI's tokens in a
// file only the user reads, refreshed (rotating) and used by its API commands.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway, FULL_TECHNICAL } from '../helpers/gateway.ts';
import { CookieJar } from '../helpers/oidc.ts';
import { axe, launchBrowser } from '../helpers/browser.ts';
import { killAllChildren, runChild, spawnChild } from '../helpers/proc.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;
let base: string;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startTestGateway(db.url, {
    JWT_KEYS: 'k1:device-flow-test-key-0123456789abcdef0123',
    OIDC_EMBEDDED: 'on',
    // Short: the CLI's commands meet expired tokens and a stream ends with its token.
    OIDC_ACCESS_TOKEN_TTL_S: '10',
    OIDC_DEVICE_POLL_INTERVAL_S: '1',
    OIDC_DEVICE_CODE_TTL_S: '10',
  });
  base = `http://127.0.0.1:${gw.httpPort}`;
}, 120_000);
afterAll(async () => {
  killAllChildren();
  await gw?.close();
  await db?.drop();
});

let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;

async function person(role = 'customer') {
  const username = uniq('device-person');
  const password = 'a long enough password';
  expect((await api(gw, 'POST', '/v1/admin/accounts', { username, password, role })).status).toBe(201);
  return { username, password };
}

/** A device asks for a code (RFC 8628 §3.1) as the CLI's public client. */
async function deviceAuthorization(): Promise<{ device_code: string; user_code: string; verification_uri: string; verification_uri_complete: string; expires_in: number; interval: number }> {
  const res = await fetch(`${base}/oidc/device/auth`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: 'cardata-cli', scope: 'openid cardata' }) });
  expect(res.status).toBe(200);
  return (await res.json()) as Awaited<ReturnType<typeof deviceAuthorization>>;
}

async function poll(deviceCode: string): Promise<{ status: number; body: { error?: string; access_token?: string; refresh_token?: string } }> {
  const res = await fetch(`${base}/oidc/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: 'cardata-cli' }) });
  return { status: res.status, body: (await res.json()) as { error?: string } };
}

const formOf = (html: string) => ({
  action: /<form method="post" action="([^"]+)"/.exec(html)?.[1]?.replace(/&#38;/g, '&') ?? null,
  xsrf: /name="xsrf" value="([^"]*)"/.exec(html)?.[1] ?? null,
});

/**
 * A person at a browser: opens the verification page, enters the code, confirms (or
 * cancels), signs in. Returns the last page (the success page, or the one it stopped at).
 */
async function confirmInBrowser(userCode: string, who: { username: string; password: string }, o: { abort?: boolean; lang?: string } = {}): Promise<{ status: number; html: string; pages: string[] }> {
  const jar = new CookieJar();
  const pages: string[] = [];
  const go = async (url: string, init: RequestInit = {}) => {
    const res = await fetch(new URL(url, base), { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: jar.header(), ...(o.lang ? { 'accept-language': o.lang } : {}) } });
    jar.take(res);
    return res;
  };
  const post = (url: string, form: Record<string, string>) => go(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
  let res = await go('/oidc/device');
  let html = await res.text();
  pages.push(html);
  let f = formOf(html);
  res = await post(f.action!, { xsrf: f.xsrf!, user_code: userCode });
  html = await res.text();
  pages.push(html);
  if (res.status !== 200 || !html.includes('name="confirm"')) return { status: res.status, html, pages };
  f = formOf(html);
  res = await post(f.action!, { xsrf: f.xsrf!, user_code: userCode, confirm: 'yes', ...(o.abort ? { abort: 'yes' } : {}) });
  // Bounded: sign-in, consent and the device resume take a handful of hops.
  for (let hop = 0; hop < 12; hop++) {
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      res = await go(location);
      continue;
    }
    html = await res.text();
    pages.push(html);
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    if (res.status === 200 && login) {
      res = await post(login, { username: who.username, password: who.password });
      continue;
    }
    return { status: res.status, html, pages };
  }
  throw new Error('no end after 12 hops');
}

describe('the device flow with the CLI', () => {
  it('login prints the code and the address; a person confirms it; the tokens land in a 0600 file; grants, cardata and stream use them; refresh rotates; logout deletes the file', async () => {
    const p = await person();
    const { vin, secret } = await provision(gw, undefined, p.username);
    const car = await connectVehicle(gw, vin, secret);
    const t0 = Date.now() - 30_000;
    await publish(car, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, t0, { technical: FULL_TECHNICAL }), record(2, t0 + 1000, { technical: FULL_TECHNICAL })]));

    const home = await mkdtemp(path.join(os.tmpdir(), 'cardata-cli-'));
    const env = { XDG_CONFIG_HOME: home };
    const cli = spawnChild(process.execPath, ['--import', 'tsx', 'cli/index.ts', 'login', '--gateway', base], env);
    const m = await cli.waitForOutput(/open (\S+) and enter the code (\S+)/, 20_000, 'stdout');
    expect(m[1]).toBe(`${base}/oidc/device`);
    const page = await confirmInBrowser(m[2]!, p);
    expect(page.status).toBe(200);
    expect(page.html).toContain('role="status"');
    const exit = await cli.exited(20_000);
    expect(exit.code, cli.stderr()).toBe(0);
    expect(cli.stdout()).toContain(`as ${p.username} (customer)`);

    const file = path.join(home, 'cardata-gateway', 'tokens.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o077).toBe(0);
    const stored = JSON.parse(await readFile(file, 'utf8')) as { accessToken: string; refreshToken: string; expiresAt: number };
    expect(stored.refreshToken).toBeTruthy();
    expect((await api(gw, 'GET', '/v1/vehicles', undefined, stored.accessToken)).status).toBe(200);

    const run = (...args: string[]) => runChild(process.execPath, ['--import', 'tsx', 'cli/index.ts', ...args], env, 30_000);
    const ex = await run('cardata', '--vin', vin);
    expect(ex.code, ex.stderr).toBe(0);
    expect(ex.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seq?: number }).seq)).toEqual([1, 2]);
    const g = await run('grants', '--vin', vin);
    expect(g.code, g.stderr).toBe(0);
    expect(JSON.parse(g.stdout)).toMatchObject({ grants: [] });

    // The access token due: the next command refreshes it (a new refresh token, the old one spent).
    await writeFile(file, JSON.stringify({ ...stored, expiresAt: Date.now() - 1000, refreshAt: Date.now() - 2000 }), { mode: 0o600 });
    const again = await run('grants', '--vin', vin);
    expect(again.code, again.stderr).toBe(0);
    const refreshed = JSON.parse(await readFile(file, 'utf8')) as typeof stored;
    expect(refreshed.refreshToken).not.toBe(stored.refreshToken);
    expect(refreshed.accessToken).not.toBe(stored.accessToken);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    // stream: the live record sent after it opened, as one NDJSON line.
    const s = spawnChild(process.execPath, ['--import', 'tsx', 'cli/index.ts', 'stream', '--vin', vin, '--count', '1'], env);
    await s.waitForOutput(/following \/v1\/vehicles\/\S+\/stream/, 20_000, 'stderr');
    await new Promise((r) => setTimeout(r, 300));
    await publish(car, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(3, Date.now(), { technical: FULL_TECHNICAL })]));
    const se = await s.exited(20_000);
    expect(se.code, s.stderr()).toBe(0);
    expect((JSON.parse(s.stdout().trim()) as { seq: number }).seq).toBe(3);

    // A stream outliving its token (10 s): ended with token_expired, refreshed, resumed from
    // its resumeFrom: each record once, in order.
    const long = spawnChild(process.execPath, ['--import', 'tsx', 'cli/index.ts', 'stream', '--vin', vin, '--count', '2'], env);
    await long.waitForOutput(/following /, 20_000, 'stderr');
    await new Promise((r) => setTimeout(r, 300));
    await publish(car, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(4, Date.now(), { technical: FULL_TECHNICAL })]));
    await long.waitForOutput(/stream ended with its token \(token_expired\)/, 20_000, 'stderr');
    await publish(car, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(5, Date.now(), { technical: FULL_TECHNICAL })]));
    const le = await long.exited(30_000);
    expect(le.code, long.stderr()).toBe(0);
    expect(long.stderr()).toMatch(/resumed \/v1\/vehicles\//);
    expect(long.stdout().trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([4, 5]);
    const latest = JSON.parse(await readFile(file, 'utf8')) as typeof stored;

    const out = await run('logout');
    expect(out.code).toBe(0);
    await expect(stat(file)).rejects.toThrow();
    // Its refresh token was revoked at the provider on the way out.
    const spent = await fetch(`${base}/oidc/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: latest.refreshToken, client_id: 'cardata-cli' }) });
    expect(((await spent.json()) as { error?: string }).error).toBe('invalid_grant');
    const after = await run('grants');
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('not signed in');
    await car.endAsync();
  }, 90_000);
});

describe('the RFC 8628 errors', () => {
  it('authorization_pending, then slow_down when polled sooner than the interval (which grows by 5 s), then tokens once confirmed', async () => {
    const p = await person();
    const d = await deviceAuthorization();
    expect(d.interval).toBe(1);
    expect(d.verification_uri).toBe(`${base}/oidc/device`);
    expect(await poll(d.device_code)).toMatchObject({ status: 400, body: { error: 'authorization_pending' } });
    expect(await poll(d.device_code)).toMatchObject({ status: 400, body: { error: 'slow_down' } });
    // Now 6 s: 1.2 s later is still too soon.
    await new Promise((r) => setTimeout(r, 1200));
    expect((await poll(d.device_code)).body.error).toBe('slow_down');
    expect((await confirmInBrowser(d.user_code, p)).status).toBe(200);
    // Confirmed: the answer comes whatever the pace.
    const t = await poll(d.device_code);
    expect(t.status, JSON.stringify(t.body)).toBe(200);
    expect(t.body.refresh_token).toBeTruthy();
    expect((await api(gw, 'GET', '/v1/vehicles', undefined, t.body.access_token)).status).toBe(200);
    // Session-bound like the portal's: a refresh rotates; revoking the person ends the refresh token too.
    const refresh = (token: string) =>
      fetch(`${base}/oidc/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, client_id: 'cardata-cli' }) }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as { refresh_token?: string; error?: string } }),
      );
    const r1 = await refresh(t.body.refresh_token!);
    expect(r1.status, JSON.stringify(r1.body)).toBe(200);
    expect(r1.body.refresh_token).not.toBe(t.body.refresh_token);
    expect((await api(gw, 'POST', '/v1/admin/revocations', { subject: p.username })).status).toBe(204);
    expect((await refresh(r1.body.refresh_token!)).body.error).toBe('invalid_grant');
    // A device code is good once (used again, the library also ends whatever it gave).
    expect((await poll(d.device_code)).body.error).toBe('invalid_grant');
  });

  it('access_denied when the person cancels on the confirmation page', async () => {
    const p = await person();
    const d = await deviceAuthorization();
    const page = await confirmInBrowser(d.user_code, p, { abort: true });
    expect(page.html).toMatch(/cancelled|geannuleerd/);
    expect(await poll(d.device_code)).toMatchObject({ status: 400, body: { error: 'access_denied' } });
  });

  it('expired_token once the code outlived OIDC_DEVICE_CODE_TTL_S; the page says so', async () => {
    const p = await person();
    const d = await deviceAuthorization();
    expect(d.expires_in).toBe(10);
    await new Promise((r) => setTimeout(r, 10_500));
    expect(await poll(d.device_code)).toMatchObject({ status: 400, body: { error: 'expired_token' } });
    const page = await confirmInBrowser(d.user_code, p, { lang: 'nl' });
    expect(page.html).toContain('Deze code is verlopen');
  }, 30_000);

  it('a wrong code is refused on the page, in the browser\'s language; unknown device codes get invalid_grant', async () => {
    const p = await person();
    const en = await confirmInBrowser('BCDF-GHJK', p, { lang: 'en' });
    expect(en.html).toContain('This code is unknown');
    expect(en.html).toContain('<html lang="en"');
    const nl = await confirmInBrowser('BCDF-GHJK', p, { lang: 'nl-NL,nl;q=0.9' });
    expect(nl.html).toContain('Deze code is onbekend');
    expect(nl.pages[0]).toContain('Apparaat koppelen');
    expect((await poll('not-a-device-code')).body.error).toBe('invalid_grant');
  });
});

describe('in Chromium: from the portal to a connected device', () => {
  it('the portal links to the device page; the person enters and confirms the code in Dutch, with no policy violation and nothing for axe; the device gets its tokens', async () => {
    const tb = await launchBrowser();
    try {
      const p = await person();
      const d = await deviceAuthorization();
      const ctx = await tb.browser.newContext({ locale: 'nl-NL' });
      const page = await ctx.newPage();
      const refused: string[] = [];
      page.on('console', (m) => {
        if (/Content.Security.Policy|Refused to/i.test(m.text())) refused.push(m.text());
      });
      await page.addInitScript(() => {
        if (location.protocol === 'http:' && !localStorage.getItem('cardata.lang')) localStorage.setItem('cardata.lang', 'nl');
      });
      await page.goto(`${base}/`);
      await page.click('#signin');
      await page.locator('#username').waitFor({ timeout: 20_000 });
      await page.fill('#username', p.username);
      await page.fill('#password', p.password);
      await page.click('#signin-submit');
      const link = page.locator('#connect-device');
      await link.waitFor({ timeout: 20_000 });
      expect(await link.textContent()).toBe('Apparaat koppelen');
      await link.click();
      await page.locator('#user_code').waitFor({ timeout: 20_000 });
      expect(await page.locator('h1').textContent()).toBe('Apparaat koppelen');
      expect(await axe(page)).toEqual([]);
      // Typed loosely (lower case, no dash): the provider normalises it.
      await page.fill('#user_code', d.user_code.toLowerCase().replace('-', ''));
      await page.click('#device-continue');
      await page.locator('#device-user-code').waitFor({ timeout: 20_000 });
      expect(await page.locator('#device-user-code').textContent()).toBe(d.user_code);
      expect(await page.locator('h1').textContent()).toBe('Apparaat bevestigen');
      expect(await axe(page)).toEqual([]);
      // Signed in at the portal: the provider's session is there, no second sign-in.
      await page.click('#device-connect');
      await page.getByRole('heading', { name: 'Apparaat gekoppeld' }).waitFor({ timeout: 20_000 });
      expect(await axe(page)).toEqual([]);
      expect(refused).toEqual([]);
      const t = await poll(d.device_code);
      expect(t.status, JSON.stringify(t.body)).toBe(200);
      const sub = (JSON.parse(Buffer.from(t.body.access_token!.split('.')[1]!, 'base64url').toString()) as { sub: string }).sub;
      expect(sub).toBe(p.username);
      await ctx.close();
    } finally {
      await tb.close();
    }
  }, 90_000);
});
