// The portal's "About the data" page (web/data.js), in Chromium against the real gateway:
// built from GET /v1/data-description, public (before sign-in, linked from the sign-in
// screen's navigation), in English and Dutch, every catalogue field with its VSS name, and
// no serious or critical axe finding.
import { afterAll, describe, expect } from 'vitest';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { gatewayTest } from '../helpers/fixtures.ts';
import { axe, launchBrowser, type TestBrowser } from '../helpers/browser.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const OUT = fileURLToPath(new URL('../../test-output/portal/', import.meta.url));
let gw: RunningGateway;
let tb: TestBrowser;
let base = '';

const test = gatewayTest();
test.beforeAll(async ({ gw: g }) => {
  gw = g;
  base = `http://127.0.0.1:${gw.httpPort}`;
  tb = await launchBrowser();
  mkdirSync(OUT, { recursive: true });
});
afterAll(async () => {
  await tb?.close();
});

async function openIn(lang: 'en' | 'nl'): Promise<{ page: Page; close: () => Promise<void> }> {
  const ctx = await tb.browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await ctx.newPage();
  await page.addInitScript((l) => localStorage.setItem('cardata.lang', l), lang);
  return { page, close: () => ctx.close() };
}

async function accessible(page: Page, name: string): Promise<void> {
  const bad = (await axe(page)).filter((x) => x.impact === 'serious' || x.impact === 'critical');
  expect(bad.map((x) => `${name}: ${x.id} (${x.impact}) ${x.help} at ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

describe('portal: about the data (Chromium)', { timeout: 120_000 }, () => {
  test('is reached from the sign-in screen and lists every field with its VSS name, in English', async () => {
    const d = (await (await fetch(`${base}/v1/data-description`)).json()) as {
      record: { fields: { name: string }[] };
      categories: { category: string; fields: { name: string; vss: string | null }[] }[];
      volume: { recordsPerVehiclePerDay: number };
    };
    const { page, close } = await openIn('en');
    await page.goto(`${base}/`);
    await page.getByRole('link', { name: 'About the data' }).click();
    await page.locator('#data-description').waitFor({ timeout: 20_000 });
    expect(await page.locator('h1').textContent()).toBe('About the data');
    const codes = new Set(await page.locator('#data-description code').allTextContents());
    const all = [...d.record.fields, ...d.categories.flatMap((c) => c.fields)];
    expect(all.length).toBeGreaterThan(20);
    for (const f of all) expect(codes.has(f.name), f.name).toBe(true);
    for (const c of d.categories) for (const f of c.fields) if (f.vss) expect(codes.has(f.vss), f.vss).toBe(true);
    expect(codes.has('Vehicle.TraveledDistance')).toBe(true);
    expect(await page.locator('#dd-volume-text').textContent()).toContain(d.volume.recordsPerVehiclePerDay.toLocaleString('en-GB'));
    expect(await page.locator('#dd-storage-text').textContent()).toContain(gw.db.kind === 'timescaledb' ? 'TimescaleDB' : 'PostgreSQL');
    const notes = await page.locator('#data-description .note').allTextContents();
    for (const art of ['3(2)(a)', '3(2)(b)', '3(2)(c)', '3(2)(d)']) expect(notes.some((n) => n.includes(art)), art).toBe(true);
    expect(await page.locator('.dd-erase code').allTextContents()).toContain('DELETE /v1/vehicles/{vin}/data');
    await page.screenshot({ path: path.join(OUT, 'about-data-public-en.png'), fullPage: true });
    await accessible(page, 'about-data-public-en');
    await close();
  });

  test('speaks Dutch', async () => {
    const { page, close } = await openIn('nl');
    await page.goto(`${base}/#/data`);
    await page.locator('#data-description').waitFor({ timeout: 20_000 });
    expect(await page.locator('html').getAttribute('lang')).toBe('nl');
    expect(await page.locator('h1').textContent()).toBe('Over de gegevens');
    expect(await page.locator('#dd-howto').textContent()).toBe('Hoe u het inziet, ophaalt, deelt en wist');
    expect(await page.locator('.dd-erase li').first().textContent()).toContain('wissen');
    expect(await page.locator('#dd-record th[scope=col]').allTextContents()).toEqual(['Veld', 'Eenheid', 'VSS-naam', 'VSS-eenheid']);
    await page.screenshot({ path: path.join(OUT, 'about-data-public-nl.png'), fullPage: true });
    await accessible(page, 'about-data-public-nl');
    await close();
  });
});
