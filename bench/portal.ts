// Bench part `portal`: how long a vehicle's page takes to render in Debian's Chromium
// with a year of that vehicle's data stored (one record every 5 minutes, 105,120 rows):
// from the start of a full page load to its latest values, all six charts and the trip
// track drawn, in English and in Dutch. Cold: a new browser profile (nothing cached);
// warm: the same profile again (modules cached, as for a returning visitor). The
// portal's readiness marks are the same the end-to-end test waits for.
import os from 'node:os';
import pg from 'pg';
import { rebuildSummaries } from '../storage/repos/series.ts';
import { chromium } from 'playwright-core';

export const YEAR_ROWS = 365 * 24 * 12;

/** A year of a car's life for `vin`, ending now, written straight into the hypertable. */
export async function seedYear(url: string, vin: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(
      `INSERT INTO telemetry (vin, recorded_at, seq, odometer_km, speed_kmh, fuel_level_pct, battery_soc_pct, coolant_temp_c, outside_temp_c, engine_oil_temp_c,
                              total_fuel_consumed_l, total_distance_km, total_grid_energy_into_battery_kwh, latitude, longitude, has_technical, has_consumption, has_location)
       SELECT $1, now() - interval '1 year' + i * interval '5 minutes', i + 1,
              20000 + i * 0.35, greatest(0, 55 + 45 * sin(i / 9.0)), 30 + 25 * sin(i / 400.0), 60 + 30 * cos(i / 300.0), 88 + 4 * sin(i / 5.0),
              10 + 12 * sin(i / 8640.0 * 6.283), 95 + 6 * sin(i / 7.0), 1400 + i * 0.0217, 20000 + i * 0.35, 900 + i * 0.01,
              52.37 + 0.03 * sin(i / 60.0), 4.89 + 0.05 * cos(i / 45.0), true, true, true
         FROM generate_series(0, $2::int - 1) i`,
      [vin, YEAR_ROWS],
    );
    // Written around the batch writer: its hourly summaries are built as a bulk load's are.
    await rebuildSummaries({ query: async (text, params) => { const r = await c.query(text, params as unknown[]); return { rows: r.rows, rowCount: r.rowCount ?? 0 }; } }, vin, null, null);
    await c.query('ANALYZE telemetry');
  } finally {
    await c.end();
  }
}

const READY = ['#latest-values', '.chart:nth-of-type(6) canvas', '#track svg.track'];
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export type Lang = 'en' | 'nl';

export interface RenderTimes {
  /** Per language: cold loads (a new browser profile, nothing cached) and warm ones (the same profile again), ms in run order. */
  byLang: Record<Lang, { coldMs: number[]; warmMs: number[] }>;
  /** The 1-minute load average just before each cold load. */
  loadAvg1: number[];
  /** Where a cold load's time goes (Resource Timing, median over all cold loads), ms from navigation start to each response's end. */
  coldBreakdownMs: Record<string, number>;
}

/** What a load fetched: path kind → time from navigation start to its response's end, ms. */
async function breakdown(page: import('playwright-core').Page): Promise<Record<string, number>> {
  return page.evaluate(() => {
    const out: Record<string, number> = {};
    const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
    if (nav) out['document'] = Math.round(nav.responseEnd);
    for (const e of performance.getEntriesByType('resource') as PerformanceResourceTiming[]) {
      const u = new URL(e.name);
      let k = u.pathname.replace(/\/v1\/vehicles\/[^/]+\//, '/v1/vehicles/{vin}/').replace(/^\/(web|vendor)\/[0-9a-f]{12}\//, '/$1/');
      if (k.endsWith('/series')) k += u.searchParams.has('bucket') ? ' (track)' : ' (charts)';
      if (k.endsWith('/stream')) continue; // open for as long as the page is
      out[k] = Math.max(out[k] ?? 0, Math.round(e.responseEnd));
    }
    const paint = performance.getEntriesByName('first-contentful-paint')[0];
    if (paint) out['first-contentful-paint'] = Math.round(paint.startTime);
    return out;
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** `runs` cold and `runs` warm loads of the vehicle page per language; times in ms, in run order. */
export async function measureVehiclePage(o: { httpPort: number; token: string; vin: string; runs: number; langs?: Lang[]; executablePath?: string }): Promise<RenderTimes> {
  const base = `http://127.0.0.1:${o.httpPort}`;
  const langs = o.langs ?? ['en', 'nl'];
  const out: RenderTimes = { byLang: { en: { coldMs: [], warmMs: [] }, nl: { coldMs: [], warmMs: [] } }, loadAvg1: [], coldBreakdownMs: {} };
  const parts: Record<string, number[]> = {};
  for (let i = 0; i < o.runs; i++) {
    const browser = await chromium.launch({ executablePath: o.executablePath ?? '/usr/bin/chromium', args: FLAGS, timeout: 30_000 });
    try {
      for (const lang of langs) {
        // A new context is a new profile: no cache, no module map, no storage.
        const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 }, locale: lang === 'en' ? 'en-GB' : 'nl-NL' });
        // Signed in already: the session the portal keeps after the code exchange.
        await ctx.addInitScript(
          ([t, l]) => {
            if (location.protocol !== 'http:') return;
            sessionStorage.setItem('cardata.session', JSON.stringify({ accessToken: t, idToken: null, expiresAt: Date.now() + 3_600_000, subject: 'bench', role: 'customer' }));
            localStorage.setItem('cardata.lang', l);
          },
          [o.token, lang] as const,
        );
        const page = await ctx.newPage();
        for (const kind of ['cold', 'warm'] as const) {
          await page.goto('about:blank');
          if (kind === 'cold') out.loadAvg1.push(Math.round(os.loadavg()[0]! * 100) / 100);
          const t0 = performance.now();
          await page.goto(`${base}/#/v/${o.vin}`);
          await Promise.all(READY.map((r) => page.locator(r).first().waitFor({ timeout: 30_000 })));
          const ms = Math.round(performance.now() - t0);
          const shown = await page.evaluate(() => document.documentElement.lang);
          if (shown !== lang) throw new Error(`the page rendered in ${shown}, not ${lang}`);
          out.byLang[lang][kind === 'cold' ? 'coldMs' : 'warmMs'].push(ms);
          if (kind === 'cold') for (const [k, v] of Object.entries(await breakdown(page))) (parts[k] ??= []).push(v);
        }
        await ctx.close();
      }
    } finally {
      await browser.close();
    }
  }
  for (const [k, v] of Object.entries(parts)) out.coldBreakdownMs[k] = median(v);
  return out;
}
