/// <reference lib="dom" />
// The portal end to end: Debian's Chromium driven by playwright-core against a real
// gateway (HTTP + MQTT), a real TimescaleDB and a real sign-in. Screenshots of every
// page in both languages and the measured render times go to test-output/portal/.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { BrowserContext, Page, Request as PwRequest } from 'playwright-core';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record } from '../helpers/gateway.ts';
import { fileURLToPath } from 'node:url';
import { axe, launchBrowser, type TestBrowser } from '../helpers/browser.ts';
import { unzip } from '../helpers/zip.ts';
import { CONSUMPTION_COLUMNS } from '../../proto/fields.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { createPgDb } from '../../storage/driver/db.ts';
import { rebuildSummaries } from '../../storage/repos/series.ts';

const OUT = fileURLToPath(new URL('../../test-output/portal/', import.meta.url));
const OWNER = 'e2e-owner';
const YEAR_ROWS = 365 * 24 * 12; // one record every 5 minutes for a year

let db: TestDatabase;
let gw: RunningGateway;
let tb: TestBrowser;
let base: string;
let yearVin: string;
let liveVin: string;
let liveSecret: string;
/** expect.poll with room for a loaded 2-core machine (its default gives up after 1 s). */
const poll = <T>(fn: () => Promise<T> | T) => expect.poll(fn, { timeout: 15_000, interval: 100 });
const renderTimes: Record<string, number> = {};
const apiTimes: Record<string, Record<string, number>> = {};
/** Live values: from PUBACK to the value shown on the page, ms. */
const liveTimes: Record<string, number> = {};
const axeFindings: Record<string, { id: string; impact: string | null; help: string }[]> = {};

const test = gatewayTest();
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  mkdirSync(OUT, { recursive: true });
  db = testDb;
  gw = testGw;
  base = `http://127.0.0.1:${gw.httpPort}`;
  tb = await launchBrowser();
  // A year of a car's life, written straight into the hypertable (ingest refuses records
  // that old, by design): the charts, the track and the render-time measurement read it.
  yearVin = (await provision(gw, undefined, OWNER)).vin;
  const t0 = Date.now() - YEAR_ROWS * 300_000;
  await db.query(
    `INSERT INTO telemetry (vin, recorded_at, seq, odometer_km, speed_kmh, fuel_level_pct, battery_soc_pct, coolant_temp_c, outside_temp_c, engine_oil_temp_c,
                            total_fuel_consumed_l, total_distance_km, total_grid_energy_into_battery_kwh, latitude, longitude, has_technical, has_consumption, has_location)
     SELECT $1, to_timestamp($2::float8 / 1000) + i * interval '5 minutes', i + 1,
            20000 + i * 0.35, greatest(0, 55 + 45 * sin(i / 9.0)), 30 + 25 * sin(i / 400.0), 60 + 30 * cos(i / 300.0), 88 + 4 * sin(i / 5.0),
            10 + 12 * sin(i / 8640.0 * 6.283) + 4 * sin(i / 288.0 * 6.283), 95 + 6 * sin(i / 7.0),
            1400 + i * 0.35 * 0.062, 20000 + i * 0.35, 900 + i * 0.01,
            52.37 + 0.03 * sin(i / 60.0), 4.89 + 0.05 * cos(i / 45.0), true, true, true
       FROM generate_series(0, $3::int - 1) i`,
    [yearVin, t0, YEAR_ROWS],
  );
  // Written around the batch writer: its hourly summaries are built as a bulk load's are.
  const q = createPgDb(db.url, { max: 1 });
  await rebuildSummaries(q, yearVin, null, null);
  await q.close();
  const live = await provision(gw, undefined, OWNER);
  liveVin = live.vin;
  liveSecret = live.secret;
}, 120_000);

afterAll(async () => {
  writeFileSync(path.join(OUT, 'render-times.json'), JSON.stringify({ rowsOfYearVehicle: YEAR_ROWS, ms: renderTimes, apiMs: apiTimes, liveMs: liveTimes }, null, 2));
  writeFileSync(path.join(OUT, 'axe.json'), JSON.stringify(axeFindings, null, 2));
  await tb?.close();
});

async function mint(role: string, subject: string): Promise<string> {
  const r = await api(gw, 'POST', '/v1/admin/tokens', { role, subject });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

const PASSWORD = 'portal-e2e-password-0123';
const accounts = new Set<string>();

/** An account at the gateway's embedded OpenID Provider for `subject` (created once). */
async function account(role: string, subject: string): Promise<void> {
  if (accounts.has(subject)) return;
  const r = await api(gw, 'POST', '/v1/admin/accounts', { username: subject, password: PASSWORD, role, subject });
  expect([201, 409]).toContain(r.status);
  accounts.add(subject);
}

/**
 * The gateway's own OpenID Provider, through which the portal signs people in: its
 * discovery document must answer, or the test (about the signed-in portal) fails here.
 */
let oidcDiscovery: number | null = null;
async function expectOidc(): Promise<void> {
  oidcDiscovery ??= (await fetch(`${base}/oidc/.well-known/openid-configuration`)).status;
  expect(oidcDiscovery, 'OpenID discovery (GET /oidc/.well-known/openid-configuration): the portal signs in through the embedded provider').toBe(200);
}

/**
 * A fresh browser context (its own session storage) signed in as `subject`, in `lang`:
 * through the portal's "Sign in" button, the embedded provider's login form and back
 * (Authorization Code with PKCE), as a person does.
 */
async function signedIn(role: string, subject: string, lang: 'en' | 'nl' = 'en'): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await tb.browser.newContext({ viewport: { width: 1100, height: 900 }, locale: lang === 'en' ? 'en-GB' : 'nl-NL', acceptDownloads: true });
  const page = await ctx.newPage();
  await page.addInitScript((l) => {
    if (location.protocol === 'http:' && !localStorage.getItem('cardata.lang')) localStorage.setItem('cardata.lang', l);
  }, lang);
  page.on('pageerror', (err) => console.log(`[browser ${subject}] ${err.message}`));
  await page.goto(`${base}/`);
  await expectOidc();
  await account(role, subject);
  await page.click('#signin');
  await page.locator('#username').waitFor({ timeout: 20_000 });
  expect(new URL(page.url()).pathname).toMatch(/^\/oidc\//);
  // The provider's page speaks the portal's language (ui_locales).
  expect(await page.locator('html').getAttribute('lang')).toBe(lang);
  await page.fill('#username', subject);
  await page.fill('#password', PASSWORD);
  await page.getByRole('button', { name: lang === 'nl' ? 'Inloggen' : 'Sign in', exact: true }).click();
  await page.locator('#signout').waitFor({ timeout: 20_000 });
  return { ctx, page };
}

/** A TCP relay to the gateway's HTTP port whose connections the test can cut. */
async function tcpRelay(target: number): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((a) => {
    const b = net.connect(target, '127.0.0.1');
    for (const s of [a, b]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {});
    }
    a.pipe(b).pipe(a);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const cut = () => {
    for (const s of open) s.destroy();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    cut,
    close: () => {
      cut();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

/** axe-core on the page as it is: no serious or critical violation. */
async function accessible(page: Page, name: string): Promise<void> {
  const v = await axe(page);
  axeFindings[name] = v.map((x) => ({ id: x.id, impact: x.impact, help: x.help }));
  const bad = v.filter((x) => x.impact === 'serious' || x.impact === 'critical');
  expect(bad.map((x) => `${name}: ${x.id} (${x.impact}) ${x.help} at ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/**
 * Opens a page and waits until `ready` shows; the time from the start to then, ms. Inside
 * the portal a page is opened as a person does, by its link (the hash changes, the app
 * renders the page); with `full`, or from outside the portal, by loading it from scratch.
 */
async function open(page: Page, hash: string, ready: string | string[], full = false): Promise<number> {
  const inside = page.url().startsWith(base) && !full;
  if (!inside) await page.goto('about:blank');
  const t0 = Date.now();
  if (inside) await page.evaluate((h) => (location.hash = h), hash);
  else await page.goto(`${base}/${hash}`);
  await Promise.all((Array.isArray(ready) ? ready : [ready]).map((r) => page.locator(r).first().waitFor({ timeout: 20_000 })));
  return Date.now() - t0;
}

/** The API calls of the page so far: path and duration, ms (Resource Timing). */
async function apiTimings(page: Page): Promise<Record<string, number>> {
  return page.evaluate(() =>
    Object.fromEntries(
      performance
        .getEntriesByType('resource')
        .filter((e) => new URL(e.name).pathname.startsWith('/v1/') || new URL(e.name).pathname.startsWith('/vendor/'))
        .map((e) => [new URL(e.name).pathname + new URL(e.name).search.slice(0, 60), Math.round(e.duration)]),
    ),
  );
}

const OWNER_PAGES: [string, string | string[], (vin: string) => string][] = [
  ['vehicles', '.cards a', () => '#/'],
  // A vehicle's first render: its latest values, all six charts and the trip track drawn.
  ['vehicle', ['#latest-values', '.chart:nth-of-type(6) canvas', '#track svg.track'], (vin) => `#/v/${vin}`],
  ['privacy', '#save-choices', (vin) => `#/v/${vin}/privacy`],
  ['sharing', '#grant-h, .note', (vin) => `#/v/${vin}/sharing`],
  ['access-log', '#access-log, #access-empty', (vin) => `#/v/${vin}/access`],
  ['download', '#dl-submit', (vin) => `#/v/${vin}/download`],
  ['catalogue', '#catalogue', () => '#/catalogue'],
  // The product data description (Data Act Art. 3(2)), from the navigation.
  ['data-description', '#data-description', () => '#/data'],
];

describe('portal (Chromium, real gateway, TimescaleDB)', { timeout: 120_000 }, () => {
  it('signs in and lists my vehicles; signing out returns to sign-in', async () => {
    const { ctx, page } = await signedIn('customer', OWNER);
    await poll(() => page.locator('.cards .vin').allTextContents()).toEqual([yearVin, liveVin].sort());
    await page.click('#signout');
    // The provider may ask to confirm the sign-out there too.
    const confirm = page.getByRole('button', { name: /yes|sign (me )?out/i });
    await Promise.race([page.locator('#signin').waitFor({ timeout: 20_000 }), confirm.click({ timeout: 20_000 }).catch(() => {})]);
    await page.locator('#signin').waitFor({ timeout: 20_000 });
    await ctx.close();
  });

  it('the sign-in and sign-out pages speak the portal\'s language (ui_locales), and switch', async () => {
    await expectOidc();
    await account('customer', OWNER);
    // A browser that prefers English, a portal switched to Dutch: the portal's choice wins.
    const ctx = await tb.browser.newContext({ viewport: { width: 1100, height: 900 }, locale: 'en-GB' });
    const page = await ctx.newPage();
    await page.addInitScript(() => {
      if (location.protocol === 'http:' && !localStorage.getItem('cardata.lang')) localStorage.setItem('cardata.lang', 'nl');
    });
    await page.goto(`${base}/`);
    await page.click('#signin');
    await page.locator('#username').waitFor({ timeout: 20_000 });
    expect(new URL(page.url()).pathname).toMatch(/^\/oidc\/interaction\//);
    expect(await page.locator('html').getAttribute('lang')).toBe('nl');
    expect(await page.locator('h1').textContent()).toBe('Inloggen bij CarData');
    expect(await page.locator('label[for=username]').textContent()).toBe('Gebruikersnaam');
    expect(await page.locator('label[for=password]').textContent()).toBe('Wachtwoord');
    await shot(page, 'signin-nl');
    await accessible(page, 'signin-nl');
    // A wrong password: told so in Dutch, the form again.
    await page.fill('#username', OWNER);
    await page.fill('#password', 'not-the-password-000');
    await page.getByRole('button', { name: 'Inloggen', exact: true }).click();
    await poll(() => page.locator('[role=alert]').textContent()).toBe('Onbekende gebruikersnaam of verkeerd wachtwoord.');
    expect(await page.locator('html').getAttribute('lang')).toBe('nl');
    // The page's own switch: English, the same sign-in.
    await page.getByRole('link', { name: 'English' }).click();
    await poll(() => page.locator('h1').textContent()).toBe('Sign in to CarData');
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    expect(await page.locator('label[for=username]').textContent()).toBe('Username');
    await shot(page, 'signin-en');
    await accessible(page, 'signin-en');
    await page.fill('#username', OWNER);
    await page.fill('#password', PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.locator('#signout').waitFor({ timeout: 20_000 });
    // Back in the portal, which stays in the language chosen there.
    expect(await page.evaluate(() => document.documentElement.lang)).toBe('nl');
    // Signing out asks in Dutch.
    await page.click('#signout');
    const yes = page.getByRole('button', { name: 'Ja, log mij uit' });
    await yes.waitFor({ timeout: 20_000 });
    expect(await page.locator('html').getAttribute('lang')).toBe('nl');
    expect(await page.getByRole('button', { name: 'Nee, blijf ingelogd' }).count()).toBe(1);
    await shot(page, 'signout-nl');
    await accessible(page, 'signout-nl');
    await yes.click();
    await page.locator('#signin').waitFor({ timeout: 20_000 });
    await ctx.close();
  });

  it('an expired session returns to sign-in, and after signing in again to the same page', async () => {
    const ctx = await tb.browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await ctx.newPage();
    await page.addInitScript(() => {
      if (location.protocol === 'http:' && !localStorage.getItem('cardata.lang')) localStorage.setItem('cardata.lang', 'en');
    });
    await page.goto(`${base}/#/v/${yearVin}/privacy`);
    await page.locator('.token-signin summary').click();
    const short = (await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: OWNER, ttlSeconds: 3 })).body.token as string;
    await page.fill('#token', short);
    await page.locator('.token-signin button[type=submit]').click();
    await page.locator('#save-choices').waitFor({ timeout: 20_000 });
    await page.waitForTimeout(3500);
    // The next call finds the session over: back to sign-in, saying why.
    await page.click('#toggle-restriction');
    await poll(() => page.locator('#signin').count()).toBe(1);
    expect(await page.locator('.signin [role=status]').textContent()).toContain('Your session has ended');
    expect(await page.evaluate(() => location.hash)).toBe(`#/v/${yearVin}/privacy`);
    await page.locator('.token-signin summary').click();
    await page.fill('#token', await mint('customer', OWNER));
    await page.locator('.token-signin button[type=submit]').click();
    await page.locator('#save-choices').waitFor({ timeout: 20_000 });
    expect(await page.evaluate(() => location.hash)).toBe(`#/v/${yearVin}/privacy`);
    // Nothing was changed by the refused click.
    expect(await page.locator('#restriction-state').textContent()).toBe('Processing is not restricted.');
    await ctx.close();
  });

  it('renders every owner page in English and Dutch: screenshots, render times, axe', async () => {
    for (const lang of ['en', 'nl'] as const) {
      const { ctx, page } = await signedIn('customer', OWNER, lang);
      for (const [name, ready, hash] of OWNER_PAGES) {
        // The vehicle page is loaded from scratch: its first render is what is measured.
        const ms = await open(page, hash(yearVin), ready, name === 'vehicle');
        renderTimes[name === 'vehicle' ? `vehicle-1y-${lang}` : `${name}-${lang}`] = ms;
        if (name === 'vehicle') {
          expect(await page.locator('.chart canvas').count()).toBe(6);
          apiTimes[lang] = await apiTimings(page);
          // The reads were started early, while the modules loaded, and each used once: two
          // series reads (charts, track), not four.
          const early = await page.evaluate(() => ({
            mark: performance.getEntriesByName('cardata:prefetch')[0]?.startTime ?? null,
            series: performance
              .getEntriesByType('resource')
              .filter((e) => new URL(e.name).pathname.endsWith('/series'))
              .map((e) => e.startTime),
            app: (performance.getEntriesByType('resource').find((e) => e.name.endsWith('/web/app.js')) as PerformanceResourceTiming | undefined)?.responseEnd ?? null,
          }));
          expect(early.mark).not.toBeNull();
          expect(early.series).toHaveLength(2);
          for (const t of early.series) expect(t).toBeGreaterThanOrEqual(early.mark!);
          apiTimes[`${lang}-early`] = { prefetchMark: Math.round(early.mark!), appJsLoaded: Math.round(early.app ?? -1), seriesStarted: Math.round(Math.max(...early.series)) };
        }
        await poll(() => page.evaluate(() => document.documentElement.lang)).toBe(lang);
        await shot(page, `${name}-${lang}`);
        await accessible(page, `${name}-${lang}`);
      }
      await ctx.close();
    }
    // The year is summarised, not shipped: the 7-day default is a few hundred buckets.
    const { ctx, page } = await signedIn('customer', OWNER);
    await open(page, `#/v/${yearVin}`, '.charts');
    const buckets = Number(await page.locator('.charts').getAttribute('data-buckets'));
    expect(buckets).toBeGreaterThan(100);
    expect(buckets).toBeLessThanOrEqual(500);
    await page.getByRole('button', { name: 'Last year' }).click();
    await poll(async () => Number(await page.locator('.charts').getAttribute('data-buckets'))).toBeGreaterThanOrEqual(365);
    await ctx.close();
  }, 120_000);

  it('speaks Dutch and English: texts, numbers and dates per language', async () => {
    const { ctx, page } = await signedIn('customer', OWNER, 'en');
    await open(page, `#/v/${yearVin}`, '#latest-values');
    const odoEn = await page.locator('#latest-values tr[data-field="technical.odometerKm"] td').textContent();
    expect(await page.locator('h2#latest-h').textContent()).toContain('Latest values');
    expect(odoEn).toMatch(/^\d{2},\d{3} km$/);
    await page.selectOption('#lang', 'nl');
    await poll(() => page.locator('h2#latest-h').textContent()).toContain('Laatste waarden');
    const odoNl = await page.locator('#latest-values tr[data-field="technical.odometerKm"] td').textContent();
    expect(odoNl).toMatch(/^\d{2}\.\d{3} km$/);
    expect(odoNl!.replace('.', '')).toBe(odoEn!.replace(',', ''));
    expect(await page.evaluate(() => document.documentElement.lang)).toBe('nl');
    // The choice is kept for the next visit.
    await page.reload();
    await poll(() => page.locator('h2#latest-h').textContent()).toContain('Laatste waarden');
    await ctx.close();
  });

  it('shows values a simulated vehicle just sent, live through the stream, with no polling', async () => {
    const { ctx, page } = await signedIn('customer', OWNER);
    const streams: PwRequest[] = [];
    let latestReads = 0;
    page.on('request', (r) => {
      const p = new URL(r.url()).pathname;
      if (p === `/v1/vehicles/${liveVin}/stream`) streams.push(r);
      if (p === `/v1/vehicles/${liveVin}/latest`) latestReads++;
    });
    await open(page, `#/v/${liveVin}`, '#live-state[data-mode="live"]');
    // The stream was asked for with the bearer token in its header (EventSource could not), never in the URL.
    expect(streams).toHaveLength(1);
    expect(streams[0]!.headers()['authorization']).toMatch(/^Bearer ey/);
    expect(streams[0]!.headers()['accept']).toBe('text/event-stream');
    expect(streams[0]!.url()).toBe(`${base}/v1/vehicles/${liveVin}/stream`);
    expect((await streams[0]!.response())!.headers()['content-type']).toMatch(/^text\/event-stream/);
    expect(await page.locator('#live-state').textContent()).toBe('Live');
    const reads = latestReads;
    const car = await connectVehicle(gw, liveVin, liveSecret);
    try {
      const seen = async (kmh: string, what: string) => {
        const t0 = Date.now();
        await poll(() => page.locator('#latest-values tr[data-field="technical.speedKmh"] td').textContent()).toBe(kmh);
        liveTimes[what] = Date.now() - t0;
      };
      await publish(car, `v1/vehicles/${liveVin}/telemetry`, encodeBatch(liveVin, [record(1, Date.now(), { technical: { ...FULL_TECHNICAL, speedKmh: 123.4 }, consumption: FULL_CONSUMPTION, location: FULL_LOCATION })]));
      await seen('123 km/h', 'pubackToShownMs-1');
      await publish(car, `v1/vehicles/${liveVin}/telemetry`, encodeBatch(liveVin, [record(2, Date.now(), { technical: { ...FULL_TECHNICAL, speedKmh: 57 } })]));
      await seen('57 km/h', 'pubackToShownMs-2');
      // Both came through the stream: the page never asked for the latest record meanwhile
      // (a page that polled would have), and it is still on its one stream.
      expect(latestReads).toBe(reads);
      expect(streams).toHaveLength(1);
      expect(await page.locator('#live-state').getAttribute('data-mode')).toBe('live');

    } finally {
      await car.endAsync();
    }
    await ctx.close();
  });

  it('resumes the stream with Last-Event-ID after the connection drops: what the car sent meanwhile arrives', async () => {
    // The page is served through a TCP relay the test can cut, as a network or a proxy
    // restart would (a browser going offline keeps its open streams).
    const relay = await tcpRelay(gw.httpPort);
    const ctx = await tb.browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await ctx.newPage();
    await page.addInitScript(() => {
      if (location.protocol === 'http:' && !localStorage.getItem('cardata.lang')) localStorage.setItem('cardata.lang', 'en');
    });
    const streams: PwRequest[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === `/v1/vehicles/${liveVin}/stream`) streams.push(r);
    });
    const car = await connectVehicle(gw, liveVin, liveSecret);
    try {
      // Reading the latest record is refused throughout: values reach this page only through its stream.
      await page.route(`**/v1/vehicles/${liveVin}/latest`, (r) => r.abort());
      await page.goto(`http://127.0.0.1:${relay.port}/#/v/${liveVin}`);
      // (The embedded provider knows the gateway's own address only: a token signs in here.)
      await page.locator('.token-signin summary').click();
      await page.fill('#token', await mint('customer', OWNER));
      await page.locator('.token-signin button[type=submit]').click();
      await page.locator('#live-state[data-mode="live"]').waitFor({ timeout: 20_000 });
      const speed = page.locator('#latest-values tr[data-field="technical.speedKmh"] td');
      await publish(car, `v1/vehicles/${liveVin}/telemetry`, encodeBatch(liveVin, [record(10, Date.now(), { technical: { ...FULL_TECHNICAL, speedKmh: 61 } })]));
      await poll(() => speed.textContent()).toBe('61 km/h');
      expect(streams).toHaveLength(1);
      expect(streams[0]!.headers()['last-event-id']).toBeUndefined();

      // Reconnecting is refused for a while: the records committed meanwhile can reach the
      // page only through the resumed stream.
      await page.route(`**/v1/vehicles/${liveVin}/stream`, (r) => r.fulfill({ status: 503, contentType: 'application/problem+json', body: '{"status":503,"code":"API_ERR_UNAVAILABLE"}' }));
      relay.cut();
      await poll(() => page.locator('#live-state').getAttribute('data-mode')).toBe('polling');
      expect(await page.locator('#live-state').textContent()).toBe('Updated every 5 s');
      await publish(car, `v1/vehicles/${liveVin}/telemetry`, encodeBatch(liveVin, [record(11, Date.now(), { technical: { ...FULL_TECHNICAL, speedKmh: 88 } })]));
      await publish(car, `v1/vehicles/${liveVin}/telemetry`, encodeBatch(liveVin, [record(12, Date.now(), { technical: { ...FULL_TECHNICAL, speedKmh: 91 } })]));
      expect(await speed.textContent()).toBe('61 km/h');
      await page.unroute(`**/v1/vehicles/${liveVin}/stream`);
      await expect.poll(() => speed.textContent(), { timeout: 30_000, interval: 100 }).toBe('91 km/h');
      await poll(() => page.locator('#live-state').getAttribute('data-mode')).toBe('live');
      // The reconnect carried the cursor of the last event the page had.
      const resumed = streams.filter((r) => r.headers()['last-event-id'] !== undefined);
      expect(resumed.length).toBeGreaterThan(0);
      expect(new Set(resumed.map((r) => r.headers()['last-event-id'])).size).toBe(1);
      expect((await resumed.at(-1)!.response())?.status()).toBe(200);
    } finally {
      await car.endAsync();
      await ctx.close();
      await relay.close();
    }
  });

  it('falls back to polling when the stream is unavailable, says so, and goes live when it returns', async () => {
    const { ctx, page } = await signedIn('customer', OWNER, 'nl');
    let refused = 0;
    await page.route(`**/v1/vehicles/${liveVin}/stream`, (r) => {
      refused++;
      return r.fulfill({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ status: 503, code: 'API_ERR_UNAVAILABLE' }) });
    });
    await open(page, `#/v/${liveVin}`, '#live-state[data-mode="polling"]');
    expect(await page.locator('#live-state').textContent()).toBe('Elke 5 s bijgewerkt');
    await shot(page, 'vehicle-polling-nl');
    await accessible(page, 'vehicle-polling-nl');
    let latestReads = 0;
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === `/v1/vehicles/${liveVin}/latest`) latestReads++;
    });
    const car = await connectVehicle(gw, liveVin, liveSecret);
    try {
      await publish(car, `v1/vehicles/${liveVin}/telemetry`, encodeBatch(liveVin, [record(4, Date.now(), { technical: { ...FULL_TECHNICAL, speedKmh: 42 } })]));
      await poll(() => page.locator('#latest-values tr[data-field="technical.speedKmh"] td').textContent()).toBe('42 km/u');
      expect(latestReads).toBeGreaterThan(0);
    } finally {
      await car.endAsync();
    }
    expect(refused).toBeGreaterThan(0);
    // The stream is asked for again (backing off), and once it answers the page is live.
    await page.unroute(`**/v1/vehicles/${liveVin}/stream`);
    await expect.poll(() => page.locator('#live-state').getAttribute('data-mode'), { timeout: 40_000, interval: 200 }).toBe('live');
    expect(await page.locator('#live-state').textContent()).toBe('Live');
    await ctx.close();
  }, 120_000);

  it('downloads NDJSON, CSV and ZIP with exactly the stored rows of the range and categories', async () => {
    const { ctx, page } = await signedIn('customer', OWNER);
    await open(page, `#/v/${yearVin}/download`, '#dl-submit');
    // The last two days (date inputs are local days; the rows counted the same way in SQL).
    const days = await page.evaluate(() => {
      const d = (ms: number) => new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 10);
      const from = d(Date.now() - 86_400_000);
      const to = d(Date.now());
      return { from, to, fromIso: new Date(`${from}T00:00:00`).toISOString(), toIso: new Date(`${to}T23:59:59.999`).toISOString() };
    });
    const expected = Number(
      (await db.query<{ n: string }>('SELECT count(*)::text AS n FROM telemetry WHERE vin = $1 AND recorded_at >= $2 AND recorded_at < $3', [yearVin, days.fromIso, days.toIso]))[0]!.n,
    );
    expect(expected).toBeGreaterThan(200);
    await page.fill('#dl-from', days.from);
    await page.fill('#dl-to', days.to);
    await page.uncheck('#dl-cat-location');
    const files: Record<string, Buffer> = {};
    for (const f of ['ndjson', 'csv', 'zip']) {
      await page.check(`#dl-${f}`);
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#dl-submit')]);
      files[f] = readFileSync((await dl.path()));
      await page.locator('#dl-status .ok').waitFor();
      if (f !== 'zip') expect(await page.locator('#dl-status').textContent()).toContain(`${expected} records`);
      writeFileSync(path.join(OUT, `download.${f}`), files[f]);
    }
    const nd = files.ndjson!.toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(nd).toHaveLength(expected);
    expect(nd.every((r) => r.vin === yearVin && r.technical && r.consumption && !('location' in r))).toBe(true);
    const csv = files.csv!.toString().trim().split('\n');
    expect(csv).toHaveLength(expected + 1);
    expect(csv[0]).toContain('technical.speedKmh');
    expect(csv[0]).not.toContain('location.');
    const zip = unzip(files.zip!);
    expect(zip.get('records.ndjson')!.toString().trim().split('\n')).toHaveLength(expected);
    expect(zip.get('records.csv')!.toString().trim().split('\n')).toHaveLength(expected + 1);
    expect([...zip.keys()].sort()).toEqual(['README.md', 'catalogue.json', 'consent-history.json', 'disclosures.json', 'records.csv', 'records.ndjson', 'vss/cardata-overlay.vspec', 'vss/standard-paths.json']);
    await ctx.close();
  });

  it('a grant made in the portal lets the recipient read, the access log shows the read, revoking it stops them', async () => {
    expect((await api(gw, 'POST', '/v1/admin/recipients', { id: 'e2e-insights', role: 'third_party', name: 'Fleet Insights BV' })).status).toBe(201);
    const owner = await signedIn('customer', OWNER);
    await open(owner.page, `#/v/${yearVin}/sharing`, '#grant-form');
    await owner.page.selectOption('#grant-recipient', 'e2e-insights');
    await owner.page.uncheck('#grant-cat-consumption');
    await owner.page.fill('#grant-purpose', 'Insurance telematics check');
    await owner.page.fill('#grant-data-from', new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10));
    await owner.page.click('#grant-submit');
    await poll(() => owner.page.locator('#grant-status').textContent()).toBe('Access granted to Fleet Insights BV.');
    await poll(() => owner.page.locator('#grants tbody tr .status-active').count()).toBe(1);
    const [receipt] = await Promise.all([owner.page.waitForEvent('download'), owner.page.getByRole('button', { name: 'Receipt: Fleet Insights BV' }).click()]);
    const agreed = JSON.parse(readFileSync((await receipt.path()), 'utf8'));
    expect(JSON.stringify(agreed)).toContain('Insurance telematics check');
    await shot(owner.page, 'sharing-with-grant-en');
    await accessible(owner.page, 'sharing-with-grant-en');

    // The recipient signs in, finds the grant and reads the granted data: technical only.
    const rec = await signedIn('third_party', 'e2e-insights');
    await poll(() => rec.page.locator('#my-grants a').count()).toBe(1);
    await shot(rec.page, 'recipient-home-en');
    await accessible(rec.page, 'recipient-home-en');
    await rec.page.click('#my-grants a');
    await rec.page.locator('#grant-values').waitFor({ timeout: 20_000 });
    const fields = await rec.page.locator('#grant-values tr[data-field]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-field')));
    expect(fields).toContain('technical.speedKmh');
    expect(fields.filter((f) => !f!.startsWith('technical.'))).toEqual([]);
    // Its download offers only what was granted.
    const offered = await rec.page.locator('#gdl-form fieldset.cats input[type=checkbox]').evaluateAll((boxes) => boxes.map((b) => b.id));
    expect(offered).toEqual(['gdl-cat-technical']);
    const grantId = (await rec.page.evaluate(() => location.hash)).split('/').pop()!;
    await shot(rec.page, 'recipient-grant-en');
    await accessible(rec.page, 'recipient-grant-en');
    await rec.page.selectOption('#lang', 'nl');
    await poll(() => rec.page.locator('h1').textContent()).toContain('Gedeelde gegevens');
    await shot(rec.page, 'recipient-grant-nl');
    await accessible(rec.page, 'recipient-grant-nl');

    // The owner's access log shows that read: who, what, why.
    await open(owner.page, `#/v/${yearVin}/access`, '#access-log');
    const log = await owner.page.locator('#access-log tbody').textContent();
    expect(log).toContain('Fleet Insights BV');
    expect(log).toContain('Insurance telematics check');
    expect(log).toContain(grantId);
    await shot(owner.page, 'access-log-with-read-en');
    await accessible(owner.page, 'access-log-with-read-en');

    // Revoked in the portal: the recipient's reads are refused from then on.
    await open(owner.page, `#/v/${yearVin}/sharing`, '#grants');
    await owner.page.getByRole('button', { name: 'Revoke: Fleet Insights BV' }).click();
    await poll(() => owner.page.locator('#grants tbody tr .status-revoked').count()).toBe(1);
    const recToken = await rec.page.evaluate(() => JSON.parse(sessionStorage.getItem('cardata.session')!).accessToken as string);
    expect((await api(gw, 'GET', `/v1/grants/${grantId}/cardata?format=ndjson`, undefined, recToken)).status).toBe(404);
    // (The recipient switched to Dutch above.)
    await open(rec.page, '#/', 'text=Niemand deelt gegevens met u.');
    expect(await rec.page.locator('#my-grants a').count()).toBe(0);
    await owner.ctx.close();
    await rec.ctx.close();
  });

  it('a workshop redeems the check-in code the owner made in the portal and sees the visit\'s consumption counters', async () => {
    expect((await api(gw, 'POST', '/v1/admin/recipients', { id: 'e2e-garage', role: 'workshop', name: 'Garage De Vries' })).status).toBe(201);
    const owner = await signedIn('customer', OWNER);
    await open(owner.page, `#/v/${liveVin}/sharing`, '#checkin-make');
    await owner.page.click('#checkin-make');
    await poll(async () => `${await owner.page.locator('#checkin-code').textContent()}${(await owner.page.locator('.error').allTextContents()).join(' ')}`).toMatch(/Code: [A-Z0-9]{5}-[A-Z0-9]{5}/);
    const code = /Code: ([A-Z0-9]{5}-[A-Z0-9]{5})/.exec((await owner.page.locator('#checkin-code').textContent())!)![1]!;
    // The car reports its counters at the workshop: values unlike any sent before, exact at
    // the precision the page shows (litres and kWh to 0.1, kilometres to 1).
    const VISIT = {
      totalFuelConsumedL: 923.4,
      totalDistanceKm: 15001,
      totalFuelConsumedChargeDepletingL: 12.3,
      totalFuelConsumedChargeIncreasingL: 21.7,
      totalDistanceChargeDepletingEngineOffKm: 3102,
      totalDistanceChargeDepletingEngineRunningKm: 411,
      totalDistanceChargeIncreasingKm: 512,
      totalGridEnergyIntoBatteryKwh: 961.5,
    };
    expect(Object.keys(VISIT).sort()).toEqual(CONSUMPTION_COLUMNS.map((c) => c.jsName).sort());
    const car = await connectVehicle(gw, liveVin, liveSecret);
    await publish(car, `v1/vehicles/${liveVin}/telemetry`, encodeBatch(liveVin, [record(30, Date.now(), { consumption: VISIT })]));
    await car.endAsync();
    const storedRows = await db.query<Record<string, number | null>>(
      `SELECT ${CONSUMPTION_COLUMNS.map((c) => `${c.column} AS "${c.jsName}"`).join(', ')} FROM telemetry WHERE vin = $1 AND has_consumption ORDER BY recorded_at DESC LIMIT 1`,
      [liveVin],
    );
    const stored = storedRows[0]!;
    expect(stored).toEqual(VISIT);
    const shop = await signedIn('workshop', 'e2e-garage', 'nl');
    await shop.page.fill('#redeem-code', code);
    await shop.page.locator('#redeem-code').press('Enter');
    await shop.page.locator('#visit-h').waitFor({ timeout: 20_000 });
    // The heading shows with "no data" too: the counters themselves, as the page shows them
    // (Dutch: "15.001 km", "923,4 l"), against the stored ones.
    await shop.page.locator('#visit-values').waitFor({ timeout: 20_000 });
    const shown = await shop.page.locator('#visit-values tr[data-field]').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-field')!, r.querySelector('td')!.textContent]));
    const nlNumber = (text: string) => Number(/[\d.,]+/.exec(text)![0].replace(/\./g, '').replace(',', '.'));
    expect(Object.fromEntries(shown.map(([f, text]) => [f, nlNumber(text!)]))).toEqual(Object.fromEntries(Object.entries(stored).map(([k, v]) => [`consumption.${k}`, v])));
    await shot(shop.page, 'workshop-visit-nl');
    await accessible(shop.page, 'workshop-visit-nl');
    await owner.ctx.close();
    await shop.ctx.close();
  });

  it('privacy page by keyboard alone; the location opt-out empties the trip track and the next download', async () => {
    const { ctx, page } = await signedIn('customer', OWNER);
    await open(page, `#/v/${yearVin}`, '#track svg.track');
    expect(Number(await page.locator('#track svg.track').getAttribute('data-points'))).toBeGreaterThan(100);
    await open(page, `#/v/${yearVin}/privacy`, '#opt-location:checked');
    // From the page heading, Tab until the location choice has focus, never touching the mouse.
    await page.locator('h1').focus();
    const tabTo = async (id: string) => {
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press('Tab');
        if ((await page.evaluate(() => document.activeElement?.id)) === id) return;
      }
      throw new Error(`Tab never reached #${id}`);
    };
    await tabTo('opt-location');
    await page.keyboard.press('Space');
    expect(await page.isChecked('#opt-location')).toBe(false);
    await tabTo('opt-erase-location');
    await page.keyboard.press('Space');
    await tabTo('save-choices');
    await page.keyboard.press('Enter');
    await poll(() => page.locator('#choices-status').textContent()).toBe('Your choices are saved.');
    await poll(() => page.locator('#consent-history tbody tr').count()).toBe(1);
    expect(await page.locator('#consent-history tbody tr').first().textContent()).toContain('positions erased');
    // Restriction by keyboard, and back.
    await tabTo('toggle-restriction');
    await page.keyboard.press('Enter');
    await poll(() => page.locator('#restriction-state').textContent()).toBe('Processing is restricted now.');
    await page.keyboard.press('Enter');
    await poll(() => page.locator('#restriction-state').textContent()).toBe('Processing is not restricted.');
    // The erasure dialog opens and closes by keyboard, focus back on its opener.
    await tabTo('erase-open');
    await page.keyboard.press('Enter');
    await page.locator('#erase-dialog[open]').waitFor();
    expect(await page.locator('#erase-dialog').textContent()).toContain('Kept:');
    await page.keyboard.press('Escape');
    await poll(() => page.evaluate(() => document.activeElement?.id)).toBe('erase-open');
    expect(await page.locator('#erase-dialog[open]').count()).toBe(0);
    await accessible(page, 'privacy-after-optout');
    // Erasure of one category, confirmed by keyboard: the dialog's first button is Cancel.
    await page.locator('#erase-category').focus();
    await page.selectOption('#erase-category', 'consumption');
    await tabTo('erase-open');
    await page.keyboard.press('Enter');
    await page.locator('#erase-dialog[open]').waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('erase-cancel');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('erase-confirm');
    await page.keyboard.press('Enter');
    await poll(() => page.locator('#erase-result').textContent()).toMatch(/^Erased: /);
    const left = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM telemetry WHERE vin = $1 AND has_consumption', [yearVin]);
    expect(left[0]!.n).toBe('0');

    await open(page, `#/v/${yearVin}`, '#track-empty');
    expect(await page.locator('#track-empty').textContent()).toContain('Location is switched off');
    expect(await page.locator('#track svg').count()).toBe(0);
    await shot(page, 'vehicle-after-optout-en');
    await open(page, `#/v/${yearVin}/download`, '#dl-submit');
    await page.fill('#dl-from', new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#dl-submit')]);
    const lines = readFileSync((await dl.path())).toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(200);
    expect(lines.filter((r) => r.location !== null && r.location !== undefined)).toEqual([]);
    await ctx.close();
  });
});
