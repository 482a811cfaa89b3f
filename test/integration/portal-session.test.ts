/// <reference lib="dom" />
// The portal's session going on with refresh tokens, in Debian's Chromium against a real
// gateway whose access tokens last 5 s: the page refreshes its token silently, its live
// stream ends with each token (`token_expired`) and resumes with a fresh one from the
// end's cursor, and every record the car sends reaches the page exactly once, without a
// sign-in page and without the page ever saying it is not live. Signing out ends the
// session: its last refresh token is refused.
import { afterAll, expect } from 'vitest';
import type { BrowserContext, Page, Request as PwRequest } from 'playwright-core';
import type { RunningGateway } from '../../app/gateway.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record } from '../helpers/gateway.ts';
import { refreshWith } from '../helpers/oidc.ts';
import { launchBrowser, type TestBrowser } from '../helpers/browser.ts';

const TTL_S = 5;
const OWNER = 'session-owner';
const PASSWORD = 'portal-session-password-0123';

const test = gatewayTest({ OIDC_ACCESS_TOKEN_TTL_S: String(TTL_S) });
let tb: TestBrowser;
test.beforeAll(async () => {
  tb = await launchBrowser();
});
afterAll(async () => {
  await tb?.close();
});

/** What the page's streams carried, read from a tee of each stream response inside the page. */
declare global {
  interface Window {
    /** What the tap saw (set by tap()'s init script). */
    __tap?: Tapped;
  }
}

interface Tapped {
  records: number[];
  ends: { reason: string; resumeFrom: string | null }[];
  modes: string[];
}

/**
 * Before any script of the page: every stream response the page reads is also read by a
 * tee (Response.clone), which notes each record's seq and each end; and every mode the
 * live badge shows is noted. The page reads its own copy exactly as without the tap.
 */
async function tap(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const t: Tapped = (window.__tap = { records: [], ends: [], modes: [] });
    const orig = window.fetch.bind(window);
    window.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
      const res = await orig(input, init);
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (!/\/stream$/.test(new URL(url, location.href).pathname) || !res.ok || !res.body) return res;
      const copy = res.clone();
      void (async () => {
        const reader = copy.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              const event = /^event: (.*)$/m.exec(block)?.[1];
              const data = /^data: (.*)$/m.exec(block)?.[1];
              if (!data) continue;
              if (event === 'record') t.records.push(Number((JSON.parse(data) as { seq: number | string }).seq));
              if (event === 'end') t.ends.push(JSON.parse(data) as { reason: string; resumeFrom: string | null });
            }
          }
        } catch {
          // the page closed the stream
        }
      })();
      return res;
    };
    const watch = () => {
      const badge = document.getElementById('live-state');
      if (!badge) return;
      const mode = badge.getAttribute('data-mode') ?? '';
      if (t.modes.at(-1) !== mode) t.modes.push(mode);
    };
    new MutationObserver(watch).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-mode'] });
  });
}

/** A new browser context, signed in as `subject` (a new account) through the portal's button and the provider's page, as a person does. */
async function signIn(base: string, gw: RunningGateway, subject: string): Promise<{ ctx: BrowserContext; page: Page }> {
  const acct = await api(gw, 'POST', '/v1/admin/accounts', { username: subject, password: PASSWORD, role: 'customer', subject });
  expect(acct.status).toBe(201);
  const ctx = await tb.browser.newContext({ viewport: { width: 1100, height: 900 }, locale: 'en-GB' });
  const page = await ctx.newPage();
  page.on('pageerror', (err) => console.log(`[browser] ${err.message}`));
  await page.addInitScript(() => {
    if (location.protocol === 'http:' && !localStorage.getItem('cardata.lang')) localStorage.setItem('cardata.lang', 'en');
  });
  await tap(page);
  await page.goto(`${base}/`);
  await page.click('#signin');
  await page.locator('#username').waitFor({ timeout: 20_000 });
  await page.fill('#username', subject);
  await page.fill('#password', PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.locator('#signout').waitFor({ timeout: 20_000 });
  return { ctx, page };
}

type Stored = { accessToken: string; refreshToken?: string; expiresAt: number; refreshAt?: number } | null;
const stored = (page: Page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('cardata.session') ?? 'null') as Stored);
const isRefresh = (r: PwRequest) => r.method() === 'POST' && new URL(r.url()).pathname === '/oidc/token' && new URLSearchParams(r.postData() ?? '').get('grant_type') === 'refresh_token';

const tapped = (page: Page) => page.evaluate(() => window.__tap!);
const poll = <T>(fn: () => Promise<T> | T, timeout = 20_000) => expect.poll(fn, { timeout, interval: 100 });

test('the portal refreshes its token silently and its live view resumes across each token\'s end: every record once, no sign-in', { timeout: 150_000 }, async ({ gw }) => {
  const base = `http://127.0.0.1:${gw.httpPort}`;
  const { vin, secret } = await provision(gw, undefined, OWNER);
  const refreshes: PwRequest[] = [];
  const streams: PwRequest[] = [];
  const refused: string[] = [];
  const oidcPages: string[] = [];
  const { ctx, page } = await signIn(base, gw, OWNER);
  page.on('request', (r) => {
    if (isRefresh(r)) refreshes.push(r);
    if (new URL(r.url()).pathname === `/v1/vehicles/${vin}/stream`) streams.push(r);
  });
  page.on('response', (r) => {
    if (r.status() === 401 && new URL(r.url()).pathname.startsWith('/v1/')) refused.push(new URL(r.url()).pathname);
  });
  const signedIn = await stored(page);
  // The code exchange gave a refresh token, kept with the access token (sessionStorage).
  expect(typeof signedIn?.refreshToken).toBe('string');
  expect(signedIn!.refreshAt! - Date.now()).toBeLessThan(TTL_S * 1000);
  // From here on no page of the provider may appear (a sign-in would be one).
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame() && new URL(f.url()).pathname.startsWith('/oidc/')) oidcPages.push(f.url());
  });

  await page.evaluate((h) => (location.hash = h), `#/v/${vin}`);
  await page.locator('#live-state[data-mode="live"]').waitFor({ timeout: 20_000 });

  // Records before, across and after several tokens' ends (5 s each): one every ~0.7 s
  // for 16 s, each shown on the page before the next is sent.
  const car = await connectVehicle(gw, vin, secret);
  const sent: number[] = [];
  const speedCell = page.locator('tr[data-field="technical.speedKmh"] td');
  try {
    const t0 = Date.now();
    for (let seq = 1; Date.now() - t0 < 16_000; seq++) {
      const speed = 100 + seq;
      await publish(car, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(seq, Date.now(), { technical: { ...FULL_TECHNICAL, speedKmh: speed } })]));
      sent.push(seq);
      await poll(() => speedCell.textContent()).toBe(`${speed} km/h`);
      await page.waitForTimeout(700);
    }
  } finally {
    await car.endAsync();
  }
  expect(sent.length).toBeGreaterThan(10);

  // Every record reached the page once, in order, through however many streams.
  await poll(async () => (await tapped(page)).records).toEqual(sent);
  const t = await tapped(page);
  // The streams ended with their tokens and were resumed from the cursor each end named.
  const expired = t.ends.filter((e) => e.reason === 'token_expired');
  expect(expired.length).toBeGreaterThanOrEqual(2);
  expect(t.ends.map((e) => e.reason).filter((r) => r !== 'token_expired')).toEqual([]);
  const resumed = streams.map((r) => r.headers()['last-event-id']).filter((x) => x !== undefined);
  for (const e of expired) expect(resumed).toContain(e.resumeFrom);
  // Each stream with another token than the one before it.
  const bearers = streams.map((r) => r.headers()['authorization']);
  expect(new Set(bearers).size).toBe(bearers.length);
  // The portal refreshed (at least once per token's life), and each refresh was answered.
  expect(refreshes.length).toBeGreaterThanOrEqual(3);
  for (const r of refreshes) expect((await r.response())?.status()).toBe(200);
  // Silently: always "Live", no sign-in page, and no call refused.
  expect(t.modes.filter((m) => m !== 'connecting')).toEqual(['live']);
  expect(await page.locator('#live-state').textContent()).toBe('Live');
  expect(oidcPages).toEqual([]);
  expect(refused).toEqual([]);
  // The refresh token was rotated: the one stored now is not the one from the sign-in.
  const last = (await stored(page))?.refreshToken;
  expect(typeof last).toBe('string');
  expect(last).not.toBe(signedIn!.refreshToken);

  // Signing out ends the session at the provider: its refresh token is refused from then on.
  await page.click('#signout');
  const confirm = page.getByRole('button', { name: /yes|sign (me )?out/i });
  await Promise.race([page.locator('#signin').waitFor({ timeout: 20_000 }), confirm.click({ timeout: 20_000 }).catch(() => {})]);
  await page.locator('#signin').waitFor({ timeout: 20_000 });
  expect(await page.evaluate(() => sessionStorage.getItem('cardata.session'))).toBeNull();
  const after = await refreshWith(base, last!);
  expect([after.status, after.body.error]).toEqual([400, 'invalid_grant']);
  await ctx.close();
});

test('two tabs with one session (a duplicated tab) take turns: one refresh per token, both stay signed in', { timeout: 90_000 }, async ({ gw }) => {
  const base = `http://127.0.0.1:${gw.httpPort}`;
  const { ctx, page: a } = await signIn(base, gw, 'session-twin');
  // A duplicated tab: the same origin, a copy of the first tab's sessionStorage.
  const copy = await a.evaluate(() => sessionStorage.getItem('cardata.session'));
  const b = await ctx.newPage();
  await b.addInitScript((s) => {
    if (location.protocol === 'http:' && !sessionStorage.getItem('cardata.session')) sessionStorage.setItem('cardata.session', s);
  }, copy!);
  await b.goto(`${base}/`);
  await b.locator('#signout').waitFor({ timeout: 20_000 });
  const refreshes: PwRequest[] = [];
  ctx.on('request', (r) => {
    if (isRefresh(r)) refreshes.push(r);
  });
  const t0 = Date.now();
  // Three tokens' lives: both tabs' timers fall due at the same moment each time.
  await a.waitForTimeout(3 * TTL_S * 1000);
  const cycles = Math.floor((Date.now() - t0) / (TTL_S * 1000 * 0.8));
  const answers = await Promise.all(refreshes.map(async (r) => (await r.response())?.status()));
  // Every refresh answered (none with a spent token, which would have ended the session)…
  expect(answers.every((x) => x === 200)).toBe(true);
  // …one per token, not one per tab…
  expect(refreshes.length).toBeGreaterThanOrEqual(2);
  expect(refreshes.length).toBeLessThanOrEqual(cycles + 1);
  // …and both tabs hold the same, current tokens and are still signed in.
  const [sa, sb] = [await stored(a), await stored(b)];
  expect(sa?.refreshToken).toBeTruthy();
  expect(sb?.refreshToken).toBe(sa?.refreshToken);
  for (const p of [a, b]) {
    await p.evaluate(() => (location.hash = '#/catalogue'));
    await p.locator('#catalogue').waitFor({ timeout: 20_000 });
    await p.evaluate(() => (location.hash = '#/'));
    await p.locator('.cards, #signout').first().waitFor({ timeout: 20_000 });
    expect(await p.locator('#signin').count()).toBe(0);
  }
  await ctx.close();
});

test('a session revoked at the provider: the live view\'s stream ends, one refresh is refused, back to sign-in on the same page', { timeout: 90_000 }, async ({ gw }) => {
  const base = `http://127.0.0.1:${gw.httpPort}`;
  const subject = 'session-revoked';
  const { vin } = await provision(gw, undefined, subject);
  const { ctx, page } = await signIn(base, gw, subject);
  const refreshes: PwRequest[] = [];
  page.on('request', (r) => {
    if (isRefresh(r)) refreshes.push(r);
  });
  await page.evaluate((h) => (location.hash = h), `#/v/${vin}`);
  await page.locator('#live-state[data-mode="live"]').waitFor({ timeout: 20_000 });
  const before = refreshes.length;
  expect((await api(gw, 'POST', '/v1/admin/revocations', { subject })).status).toBe(204);
  await poll(() => page.locator('#signin').count()).toBe(1);
  expect(await page.locator('.signin [role=status]').textContent()).toContain('Your session has ended');
  // The stream ended for the revocation; the one refresh tried was refused (invalid_grant).
  expect((await tapped(page)).ends.map((e) => e.reason)).toContain('token_revoked');
  const tried = refreshes.slice(before);
  expect(tried.length).toBeGreaterThanOrEqual(1);
  for (const r of tried) expect((await r.response())?.status()).toBe(400);
  // Cleared, refresh token and all; back on the same page after signing in again.
  expect(await page.evaluate(() => sessionStorage.getItem('cardata.session'))).toBeNull();
  expect(await page.evaluate(() => location.hash)).toBe(`#/v/${vin}`);
  await ctx.close();
});
