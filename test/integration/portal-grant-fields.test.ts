/// <reference lib="dom" />
// The portal's sharing page picks fields inside a category (issue 26): Debian's Chromium
// driven by playwright-core against a real gateway, a real TimescaleDB and telemetry over
// real MQTT. The owner unticks fields under their categories, grants, and the grant the API
// stored (and the recipient's export) carries exactly the ticked fields; all ticked sends
// no `fields` (whole categories); Dutch and English; no serious axe finding.
import { afterAll, expect } from 'vitest';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record } from '../helpers/gateway.ts';
import { mintToken, registerRecipient } from '../helpers/grants.ts';
import { axe, launchBrowser, type TestBrowser } from '../helpers/browser.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const OUT = fileURLToPath(new URL('../../test-output/portal/', import.meta.url));
const OWNER = 'pgf-owner';
const poll = <T>(fn: () => Promise<T> | T) => expect.poll(fn, { timeout: 15_000, interval: 100 });

let tb: TestBrowser | undefined;
afterAll(async () => {
  await tb?.close();
});

const test = gatewayTest();

/** A page of the portal signed in with an API token (the sign-in flow is tested elsewhere), on `hash`. */
async function ownerPage(gw: RunningGateway, hash: string, lang: 'en' | 'nl'): Promise<Page> {
  tb ??= await launchBrowser();
  const ctx = await tb.browser.newContext({ viewport: { width: 1100, height: 1000 }, locale: lang === 'en' ? 'en-GB' : 'nl-NL' });
  const page = await ctx.newPage();
  await page.addInitScript((l) => {
    if (location.protocol === 'http:' && !localStorage.getItem('cardata.lang')) localStorage.setItem('cardata.lang', l);
  }, lang);
  page.on('pageerror', (err) => console.log(`[browser] ${err.message}`));
  await page.goto(`http://127.0.0.1:${gw.httpPort}/${hash}`);
  await page.locator('.token-signin summary').click();
  await page.fill('#token', await mintToken(gw, 'customer', OWNER));
  await page.locator('.token-signin button[type=submit]').click();
  await page.locator('#grant-form').waitFor({ timeout: 20_000 });
  return page;
}

async function noSeriousAxeFinding(page: Page) {
  const bad = (await axe(page)).filter((x) => x.impact === 'serious' || x.impact === 'critical');
  expect(bad.map((x) => `${x.id} (${x.impact}) ${x.help} at ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** Unticks every field under `category` but `keep`. */
async function keepOnly(page: Page, category: string, keep: string[]) {
  const boxes = page.locator(`#grant-fields-${category} input[type=checkbox]`);
  await poll(() => boxes.count()).toBeGreaterThan(keep.length);
  for (const name of await boxes.evaluateAll((els) => els.map((e) => e.getAttribute('data-field')!))) {
    if (!keep.includes(name)) await page.uncheck(`#grant-field-${name.replace('.', '-')}`);
  }
}

test('the owner picks fields under each category; the grant and the recipient\'s export carry exactly those', async ({ gw }) => {
  mkdirSync(OUT, { recursive: true });
  const { vin, secret } = await provision(gw, undefined, OWNER);
  const c = await connectVehicle(gw, vin, secret);
  await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, Date.now() - 3000, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION })]));
  await c.endAsync();
  const tpTok = await registerRecipient(gw, 'pgf-insurer', 'third_party', 'Pay-as-you-drive Ltd');
  const owner = await mintToken(gw, 'customer', OWNER);

  const page = await ownerPage(gw, `#/v/${vin}/sharing`, 'en');
  // Under each ticked category its fields, all ticked (the catalogue's fields, with their labels).
  await page.locator('#grant-fields-technical').waitFor();
  expect(await page.locator('#grant-fields-technical legend').textContent()).toBe('Fields of Technical');
  expect(await page.locator('label[for="grant-field-technical-speedKmh"]').textContent()).toBe('Speed');
  expect(await page.locator('#grant-fields-technical input:not(:checked)').count()).toBe(0);
  // Unticking a category takes its fields away; ticking one shows them.
  await page.uncheck('#grant-cat-consumption');
  await poll(() => page.locator('#grant-fields-consumption').count()).toBe(0);
  await page.check('#grant-cat-location');
  await page.locator('#grant-fields-location').waitFor();
  await keepOnly(page, 'technical', ['technical.speedKmh', 'technical.odometerKm']);
  await keepOnly(page, 'location', ['location.latitude', 'location.longitude']);
  await page.selectOption('#grant-recipient', 'pgf-insurer');
  await page.fill('#grant-purpose', 'Pay-as-you-drive premium');
  await page.fill('#grant-data-from', new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
  await noSeriousAxeFinding(page);
  await page.screenshot({ path: path.join(OUT, 'sharing-fields-en.png'), fullPage: true });
  await page.click('#grant-submit');
  await poll(() => page.locator('#grant-status').textContent()).toBe('Access granted to Pay-as-you-drive Ltd.');
  const want = ['technical.odometerKm', 'technical.speedKmh', 'location.latitude', 'location.longitude'];
  // The grants table says which fields.
  await poll(() => page.locator('#grants .grant-fields').textContent()).toBe('only: Odometer, Speed, Latitude, Longitude');

  // What the API stored, and what the recipient reads: those fields and no other.
  const grants = (await api(gw, 'GET', `/v1/vehicles/${vin}/grants`, undefined, owner)).body.grants as { id: string; categories: string[]; fields: string[] | null }[];
  expect(grants).toHaveLength(1);
  expect(grants[0]).toMatchObject({ categories: ['technical', 'location'], fields: want });
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/grants/${grants[0]!.id}/cardata?format=ndjson`, { headers: { authorization: `Bearer ${tpTok}` } });
  const line = JSON.parse((await res.text()).trim()) as Record<string, Record<string, number>>;
  expect(line.technical).toEqual({ odometerKm: FULL_TECHNICAL.odometerKm, speedKmh: FULL_TECHNICAL.speedKmh });
  expect(line.location).toEqual({ latitude: FULL_LOCATION.latitude, longitude: FULL_LOCATION.longitude });

  // Everything ticked: the whole categories (no `fields` sent).
  await page.fill('#grant-purpose', 'Whole categories');
  await page.click('#grant-field-technical-engineRpm');
  await page.click('#grant-field-technical-coolantTempC');
  for (const f of ['fuelLevelPct', 'batterySocPct', 'outsideTempC', 'auxBatteryVoltageV', 'remainingRangeKm', 'engineOilTempC']) await page.check(`#grant-field-technical-${f}`);
  for (const f of ['headingDeg', 'altitudeM', 'accuracyM']) await page.check(`#grant-field-location-${f}`);
  expect(await page.locator('fieldset.fields input:not(:checked)').count()).toBe(0);
  await page.click('#grant-submit');
  await poll(async () => ((await api(gw, 'GET', `/v1/vehicles/${vin}/grants`, undefined, owner)).body.grants as unknown[]).length).toBe(2);
  const whole = ((await api(gw, 'GET', `/v1/vehicles/${vin}/grants`, undefined, owner)).body.grants as { purpose: string; fields: string[] | null }[]).find((g) => g.purpose === 'Whole categories');
  expect(whole?.fields).toBeNull();
  await page.context().close();

  // In Dutch: the same page, the fields with their Dutch labels; the grant's fields listed.
  const nl = await ownerPage(gw, `#/v/${vin}/sharing`, 'nl');
  await nl.locator('#grant-fields-technical').waitFor();
  expect(await nl.locator('#grant-fields-technical legend').textContent()).toBe('Velden van Technisch');
  expect(await nl.locator('label[for="grant-field-technical-speedKmh"]').textContent()).toBe('Snelheid');
  await poll(() => nl.locator('#grants .grant-fields').first().textContent()).toBe('alleen: Kilometerstand, Snelheid, Breedtegraad, Lengtegraad');
  await noSeriousAxeFinding(nl);
  await nl.screenshot({ path: path.join(OUT, 'sharing-fields-nl.png'), fullPage: true });
  await nl.context().close();
});
