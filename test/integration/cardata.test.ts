// CarData export, latest location, catalogue, workshop and authority access, disclosures.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record } from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { registerRecipient, workshopVisit } from '../helpers/grants.ts';

let gw: RunningGateway;

const test = gatewayTest();
test.beforeAll(async ({ gw: testGw }) => {
  gw = testGw;
});

async function token(role: string, subject: string): Promise<string> {
  const r = await api(gw, 'POST', '/v1/admin/tokens', { role, subject });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

async function get(p: string, tok: string | null, headers: Record<string, string> = {}) {
  const h: Record<string, string> = { ...headers };
  if (tok) h.authorization = `Bearer ${tok}`;
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}${p}`, { headers: h });
  return { status: res.status, headers: res.headers, buf: Buffer.from(await res.arrayBuffer()) };
}

/** A vehicle with `n` records published over MQTT, one per second of recorded time. */
async function vehicleWithData(owner: string, n: number, t0 = Date.now() - n * 1000) {
  const { vin, secret } = await provision(gw, undefined, owner);
  const c = await connectVehicle(gw, vin, secret);
  const recs = Array.from({ length: n }, (_, i) =>
    record(i + 1, t0 + i * 1000, {
      technical: { ...FULL_TECHNICAL, odometerKm: 1000 + i },
      consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 1000 + i },
      location: { ...FULL_LOCATION, latitude: 48 + i / 1000 },
    }),
  );
  for (let i = 0; i < recs.length; i += 50) await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, recs.slice(i, i + 50)));
  await c.endAsync();
  return { vin, t0 };
}

describe('CarData export', () => {
  it('streams NDJSON in time order with proto3 JSON names, scoped by range and categories', async () => {
    const { vin, t0 } = await vehicleWithData('alice', 120);
    const tok = await token('customer', 'alice');
    const all = await get(`/v1/vehicles/${vin}/cardata?format=ndjson`, tok);
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = all.buf.toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(120);
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    expect(lines[0]).toEqual({
      vin,
      seq: 1,
      recordedAt: new Date(t0).toISOString(),
      receivedAt: expect.any(String),
      technical: { ...FULL_TECHNICAL, odometerKm: 1000 },
      consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 1000 },
      location: { ...FULL_LOCATION, latitude: 48 },
    });
    const from = new Date(t0 + 10_000).toISOString();
    const to = new Date(t0 + 20_000).toISOString();
    const part = await get(`/v1/vehicles/${vin}/cardata?format=ndjson&from=${from}&to=${to}&categories=location`, tok);
    const pl = part.buf.toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(pl.map((l) => l.seq)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(Object.keys(pl[0]).sort()).toEqual(['location', 'receivedAt', 'recordedAt', 'seq', 'vin']);
  });

  it('exports CSV with a header of flattened names and one row per record', async () => {
    const { vin } = await vehicleWithData('bob', 30);
    const tok = await token('customer', 'bob');
    const r = await get(`/v1/vehicles/${vin}/cardata?format=csv&categories=technical,location`, tok);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/csv');
    const rows = r.buf.toString().trim().split('\n');
    expect(rows).toHaveLength(31);
    const header = rows[0]!.split(',');
    expect(header.slice(0, 5)).toEqual(['vin', 'seq', 'recordedAt', 'receivedAt', 'technical.odometerKm']);
    expect(header).toContain('location.latitude');
    expect(header.some((h) => h.startsWith('consumption.'))).toBe(false);
    const first = rows[1]!.split(',');
    expect(first[0]).toBe(vin);
    expect(Number(first[header.indexOf('location.latitude')])).toBe(48);
  });

  it('builds the zip archive: records, catalogue, consent history, disclosures, README', async () => {
    const { vin } = await vehicleWithData('carol', 20);
    const tok = await token('customer', 'carol');
    const r = await get(`/v1/vehicles/${vin}/cardata?format=zip`, tok);
    expect(r.status).toBe(200);
    const dir = mkdtempSync(path.join(tmpdir(), 'cardata-'));
    writeFileSync(path.join(dir, 'a.zip'), r.buf);
    execFileSync('python3', ['-c', 'import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])', path.join(dir, 'a.zip'), dir]);
    const nd = readFileSync(path.join(dir, 'records.ndjson'), 'utf8').trim().split('\n');
    expect(nd).toHaveLength(20);
    expect(readFileSync(path.join(dir, 'records.csv'), 'utf8').trim().split('\n')).toHaveLength(21);
    const cat = JSON.parse(readFileSync(path.join(dir, 'catalogue.json'), 'utf8'));
    expect(cat.fields.map((f: { name: string }) => f.name)).toContain('location.latitude');
    expect(JSON.parse(readFileSync(path.join(dir, 'consent-history.json'), 'utf8')).vin).toBe(vin);
    expect(JSON.parse(readFileSync(path.join(dir, 'disclosures.json'), 'utf8')).disclosures).toEqual([]);
    const readme = readFileSync(path.join(dir, 'README.md'), 'utf8');
    for (const s of ['Purpose', 'Legal basis', 'Recipients', 'Retention']) expect(readme).toContain(s);
  });

  it('refuses malformed or reversed ranges, unknown formats and categories with 400', async () => {
    const { vin } = await vehicleWithData('dave', 1);
    const tok = await token('customer', 'dave');
    for (const q of ['from=yesterday', 'to=2026-13-45T00:00:00Z', 'from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'format=xml', 'categories=secret', "from=1'%20OR%201=1"]) {
      const r = await get(`/v1/vehicles/${vin}/cardata?${q}`, tok);
      expect(r.status, q).toBe(400);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      expect(JSON.parse(r.buf.toString()).code).toBe('API_ERR_VALIDATION');
    }
  });

  it('is for the owner only: other customer 404, other roles 403, no token 401', async () => {
    const { vin } = await vehicleWithData('erin', 1);
    expect((await get(`/v1/vehicles/${vin}/cardata`, await token('customer', 'mallory'))).status).toBe(404);
    expect((await get(`/v1/vehicles/${vin}/cardata`, await token('workshop', 'w1'))).status).toBe(403);
    expect((await get(`/v1/vehicles/${vin}/cardata`, await token('authority', 'a1'))).status).toBe(403);
    expect((await get(`/v1/vehicles/${vin}/cardata`, null)).status).toBe(401);
  });

  it('gzips when the client asks', async () => {
    const { vin } = await vehicleWithData('gina', 50);
    const tok = await token('customer', 'gina');
    const r = await get(`/v1/vehicles/${vin}/cardata?format=ndjson`, tok, { 'accept-encoding': 'gzip' });
    expect(r.headers.get('content-encoding')).toBe('gzip');
    // fetch decodes the gzip body itself: what arrives is the full, valid export
    const text = r.buf.toString();
    expect(text.trim().split('\n')).toHaveLength(50);
  });
});

describe('latest location', () => {
  it('returns the last stored position, 404 when none', async () => {
    const { vin } = await vehicleWithData('hank', 5);
    const tok = await token('customer', 'hank');
    const r = await api(gw, 'GET', `/v1/vehicles/${vin}/location/latest`, undefined, tok);
    expect(r.status).toBe(200);
    expect(r.body.seq).toBe(5);
    expect(r.body.location.latitude).toBeCloseTo(48.004, 9);
    const { vin: vin2 } = await provision(gw, undefined, 'hank');
    const none = await api(gw, 'GET', `/v1/vehicles/${vin2}/location/latest`, undefined, tok);
    expect(none.status).toBe(404);
    expect(none.body.code).toBe('API_ERR_NOT_FOUND');
  });
});

describe('catalogue', () => {
  it('lists every stored field with unit, category, purpose, legal basis, retention; ETag revalidates', async () => {
    const r = await get('/v1/catalogue', null);
    expect(r.status).toBe(200);
    const body = JSON.parse(r.buf.toString());
    const names = body.fields.map((f: { name: string }) => f.name);
    for (const n of ['technical.odometerKm', 'consumption.totalGridEnergyIntoBatteryKwh', 'location.accuracyM']) expect(names).toContain(n);
    const odo = body.fields.find((f: { name: string }) => f.name === 'technical.odometerKm');
    expect(odo.unit).toBe('kilometres');
    for (const f of body.fields) for (const k of ['unit', 'category', 'purpose', 'legalBasis', 'retention']) expect(f[k], `${f.name}.${k}`).toBeTruthy();
    const etag = r.headers.get('etag')!;
    expect((await get('/v1/catalogue', null, { 'if-none-match': etag })).status).toBe(304);
  });
});

describe('workshop and authority', () => {
  it('gives a workshop the OBFCM counters and nothing else, records the read, refuses a restricted vehicle', async () => {
    const { vin } = await vehicleWithData('ivan', 10);
    const ws = await registerRecipient(gw, 'garage-42', 'workshop');
    // Without a grant the workshop reads nothing (issue 12): 404 as for an unknown vehicle.
    expect((await api(gw, 'GET', `/v1/workshop/vehicles/${vin}/consumption`, undefined, ws)).status).toBe(404);
    await workshopVisit(gw, vin, await token('customer', 'ivan'), ws);
    const r = await api(gw, 'GET', `/v1/workshop/vehicles/${vin}/consumption`, undefined, ws);
    expect(r.status).toBe(200);
    expect(r.body.history).toHaveLength(10);
    expect(r.body.latest.consumption).toEqual({ ...FULL_CONSUMPTION, totalDistanceKm: 1009 });
    expect(JSON.stringify(r.body)).not.toMatch(/latitude|odometer|speed/);
    const owner = await token('customer', 'ivan');
    const d = await api(gw, 'GET', `/v1/vehicles/${vin}/disclosures`, undefined, owner);
    expect(d.status).toBe(200);
    expect(d.body.disclosures).toHaveLength(1);
    expect(d.body.disclosures[0]).toMatchObject({ role: 'workshop', subject: 'garage-42', categories: ['consumption'] });
    expect((await api(gw, 'PUT', `/v1/vehicles/${vin}/restriction`, { restricted: true }, owner)).status).toBe(200);
    const refused = await api(gw, 'GET', `/v1/workshop/vehicles/${vin}/consumption`, undefined, ws);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('API_ERR_RESTRICTED');
    expect((await api(gw, 'GET', `/v1/workshop/vehicles/${vin}/consumption`, undefined, owner)).status).toBe(403);
  });

  it('reports OBFCM per VIN to authorities, never a VIN whose owner refused CO2 sharing', async () => {
    const a = await vehicleWithData('judy', 5);
    const b = await vehicleWithData('kim', 5);
    const kim = await token('customer', 'kim');
    expect((await api(gw, 'PUT', `/v1/vehicles/${b.vin}/consent`, { location: true, co2Sharing: false }, kim)).status).toBe(200);
    const auth = await token('authority', 'eu-commission');
    const r = await get('/v1/reports/obfcm', auth);
    expect(r.status).toBe(200);
    const rows = r.buf.toString().trim().split('\n');
    expect(rows[0]).toBe(
      'vin,recordedAt,total_fuel_consumed_l,total_distance_km,total_fuel_consumed_charge_depleting_l,total_fuel_consumed_charge_increasing_l,total_distance_charge_depleting_engine_off_km,total_distance_charge_depleting_engine_running_km,total_distance_charge_increasing_km,total_grid_energy_into_battery_kwh',
    );
    const judy = rows.find((x) => x.startsWith(a.vin))!.split(',');
    expect(Number(judy[3])).toBe(1004);
    expect(rows.some((x) => x.startsWith(b.vin))).toBe(false);
    const judyTok = await token('customer', 'judy');
    const d = await api(gw, 'GET', `/v1/vehicles/${a.vin}/disclosures`, undefined, judyTok);
    expect(d.body.disclosures.map((x: { role: string }) => x.role)).toEqual(['authority']);
    expect((await get('/v1/reports/obfcm', await token('workshop', 'w')) ).status).toBe(403);
  });
});
