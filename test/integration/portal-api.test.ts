// The portal's API routes (my vehicles, latest record, time-bucketed series) and the
// static portal itself, through real HTTP against a real gateway and TimescaleDB (the
// series store itself runs in the storage contract, on PGlite too).
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;

const test = gatewayTest();
test.beforeAll(({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});

async function token(role: string, subject: string): Promise<string> {
  const r = await api(gw, 'POST', '/v1/admin/tokens', { role, subject });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

const MIN = 60_000;
/** Start of a whole hour, 3 hours ago: buckets of 1 h hold exactly the minutes published into them. */
const T0 = Math.floor((Date.now() - 3 * 3_600_000) / 3_600_000) * 3_600_000;

/** 120 records, one a minute from T0: speed = minute of the hour, odometer = 1000 + i. */
async function vehicleWithData(owner: string) {
  const { vin, secret } = await provision(gw, undefined, owner);
  const c = await connectVehicle(gw, vin, secret);
  const recs = Array.from({ length: 120 }, (_, i) =>
    record(i + 1, T0 + i * MIN, {
      technical: { ...FULL_TECHNICAL, speedKmh: i % 60, odometerKm: 1000 + i },
      consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 1000 + i },
      location: { ...FULL_LOCATION, latitude: 48 + i / 1000 },
    }),
  );
  for (let i = 0; i < recs.length; i += 40) await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, recs.slice(i, i + 40)));
  await c.endAsync();
  return vin;
}

describe('portal API', () => {
  it('lists the vehicles the caller owns now, and only those', async () => {
    const a = await provision(gw, undefined, 'pa-alice');
    const b = await provision(gw, undefined, 'pa-alice');
    await provision(gw, undefined, 'pa-bob');
    const r = await api(gw, 'GET', '/v1/vehicles', undefined, await token('customer', 'pa-alice'));
    expect(r.status).toBe(200);
    expect(r.body.vehicles.map((v: { vin: string }) => v.vin)).toEqual([a.vin, b.vin].sort());
    // A transfer moves the vehicle off the seller's list.
    expect((await api(gw, 'POST', `/v1/admin/vehicles/${a.vin}/transfer`, { newOwnerId: 'pa-bob' })).status).toBe(200);
    const after = await api(gw, 'GET', '/v1/vehicles', undefined, await token('customer', 'pa-alice'));
    expect(after.body.vehicles.map((v: { vin: string }) => v.vin)).toEqual([b.vin]);
    expect((await api(gw, 'GET', '/v1/vehicles', undefined, null)).status).toBe(401);
    expect((await api(gw, 'GET', '/v1/vehicles', undefined, await token('workshop', 'w1'))).status).toBe(403);
  });

  it('buckets by the hour on TimescaleDB: counts, averages, extremes as stored', async () => {
    const vin = await vehicleWithData('pa-carol');
    const tok = await token('customer', 'pa-carol');
    const from = new Date(T0).toISOString();
    const to = new Date(T0 + 3 * 3_600_000).toISOString();
    const r = await api(gw, 'GET', `/v1/vehicles/${vin}/series?from=${from}&to=${to}&bucket=1h`, undefined, tok);
    expect(r.status).toBe(200);
    expect(r.body.bucketSeconds).toBe(3600);
    expect(r.body.t).toEqual([T0, T0 + 3_600_000]);
    expect(r.body.count).toEqual([60, 60]);
    const speed = r.body.fields['technical.speedKmh'];
    expect(speed.avg).toEqual([29.5, 29.5]);
    expect(speed.min).toEqual([0, 0]);
    expect(speed.max).toEqual([59, 59]);
    expect(r.body.fields['technical.odometerKm'].max).toEqual([1059, 1119]);
    expect(r.body.fields['consumption.totalDistanceKm'].min).toEqual([1000, 1060]);
    // Location only when asked for; the default leaves it out.
    expect(r.body.fields['location.latitude']).toBeUndefined();
    const loc = await api(gw, 'GET', `/v1/vehicles/${vin}/series?from=${from}&to=${to}&bucket=30m&categories=location`, undefined, tok);
    expect(loc.status).toBe(200);
    expect(loc.body.count).toEqual([30, 30, 30, 30]);
    expect(Object.keys(loc.body.fields).every((k: string) => k.startsWith('location.'))).toBe(true);
    expect(loc.body.fields['location.latitude'].min[0]).toBeCloseTo(48, 9);
    // Named fields: only those, whatever their category, with the same figures.
    const few = await api(gw, 'GET', `/v1/vehicles/${vin}/series?from=${from}&to=${to}&bucket=1h&fields=technical.speedKmh,location.latitude`, undefined, tok);
    expect(few.status).toBe(200);
    expect(Object.keys(few.body.fields).sort()).toEqual(['location.latitude', 'technical.speedKmh']);
    expect(few.body.fields['technical.speedKmh']).toEqual(speed);
    expect(few.body.count).toEqual([60, 60]);
    // … within the categories when both are named.
    const within = await api(gw, 'GET', `/v1/vehicles/${vin}/series?from=${from}&to=${to}&bucket=1h&fields=technical.speedKmh,location.latitude&categories=technical`, undefined, tok);
    expect(Object.keys(within.body.fields)).toEqual(['technical.speedKmh']);
    // Without a bucket: the smallest of the usual widths giving at most 500 buckets.
    const auto = await api(gw, 'GET', `/v1/vehicles/${vin}/series?from=${from}&to=${to}`, undefined, tok);
    expect(auto.body.bucket).toBe('1m');
    expect(auto.body.count.reduce((a: number, b: number) => a + b, 0)).toBe(120);
  });

  it('answers the latest stored record in the export line shape', async () => {
    const vin = await vehicleWithData('pa-dave');
    const r = await api(gw, 'GET', `/v1/vehicles/${vin}/latest`, undefined, await token('customer', 'pa-dave'));
    expect(r.status).toBe(200);
    expect(r.body.record.seq).toBe(120);
    expect(r.body.record.recordedAt).toBe(new Date(T0 + 119 * MIN).toISOString());
    expect(r.body.record.technical.odometerKm).toBe(1119);
    expect(r.body.record.location.latitude).toBeCloseTo(48.119, 9);
    const empty = await provision(gw, undefined, 'pa-dave');
    const e = await api(gw, 'GET', `/v1/vehicles/${empty.vin}/latest`, undefined, await token('customer', 'pa-dave'));
    expect(e.body).toEqual({ vin: empty.vin, record: null, fields: {} });
  });

  it('refuses others and bad queries with specific problems', async () => {
    const vin = await vehicleWithData('pa-erin');
    const owner = await token('customer', 'pa-erin');
    const other = await token('customer', 'pa-frank');
    const cases: [string, string | null, number, string][] = [
      [`/v1/vehicles/${vin}/series`, other, 404, 'API_ERR_NOT_FOUND'],
      [`/v1/vehicles/${vin}/latest`, other, 404, 'API_ERR_NOT_FOUND'],
      [`/v1/vehicles/${vin}/series`, null, 401, 'API_ERR_UNAUTHORIZED'],
      [`/v1/vehicles/${vin}/series`, await token('workshop', 'w1'), 403, 'API_ERR_FORBIDDEN'],
      [`/v1/vehicles/${vin}/series`, await token('authority', 'a1'), 403, 'API_ERR_FORBIDDEN'],
      [`/v1/vehicles/${vin}/series?bucket=0h`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?bucket=1w`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?bucket=1s&from=2020-01-01&to=2021-01-01`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?from=2021-01-01&to=2020-01-01`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?from=yesterday`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?categories=location,secrets`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?bucket=1h%27%3B%20DROP%20TABLE%20telemetry`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?extra=1`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?fields=technical.speedKmh,technical.secrets`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?fields=speed_kmh`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/${vin}/series?fields=,`, owner, 400, 'API_ERR_VALIDATION'],
      [`/v1/vehicles/NOTAVIN/series`, owner, 400, 'API_ERR_INVALID_VIN'],
    ];
    for (const [path, tok, status, code] of cases) {
      const r = await api(gw, 'GET', path, undefined, tok);
      expect([path, r.status, r.body.code]).toEqual([path, status, code]);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
    }
    const still = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM telemetry WHERE vin = $1', [vin]);
    expect(still[0]!.n).toBe('120');
  });
});

describe('the portal is served by the gateway', () => {
  it('GET / is the portal page with a strict content security policy; its modules come from node_modules', async () => {
    const res = await fetch(`http://127.0.0.1:${gw.httpPort}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    const html = await res.text();
    // Nothing from another origin: no CDN, no fonts, no tiles.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const urls = [...html.matchAll(/"(\/(?:vendor|web)\/[^"]+)"/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThanOrEqual(5);
    for (const u of urls) {
      const r = await fetch(`http://127.0.0.1:${gw.httpPort}${u}`);
      expect([u, r.status]).toEqual([u, 200]);
      const etag = r.headers.get('etag')!;
      expect((await fetch(`http://127.0.0.1:${gw.httpPort}${u}`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    }
    const cfg = (await (await fetch(`http://127.0.0.1:${gw.httpPort}/portal/config.json`)).json()) as { oidc: { clientId: string } };
    expect(cfg.oidc.clientId).toBeTypeOf('string');
  });

  it('serves nothing outside the listed files', async () => {
    for (const p of ['/web/../package.json', '/web/%2e%2e/package.json', '/web/..%2fmain.ts', '/vendor/preact', '/vendor/..%2f..%2fpackage.json', '/web/nope.js']) {
      const r = await fetch(`http://127.0.0.1:${gw.httpPort}${p}`);
      expect([p, r.status]).toEqual([p, 404]);
    }
  });
});
