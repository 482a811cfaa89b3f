// Data that explains itself (issue 26, part A), through the real path (MQTT in, TimescaleDB,
// HTTP out): `?names=vss` exports and streams equal the plain ones after unit conversion,
// field by field (NDJSON and CSV, owner and grant); the 400 for an unknown `names`; the
// Link header; the ZIP's metadata; and GET /v1/data-description listing every catalogue field.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, connectVehicle, encodeBatch, provision, publish, record } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient } from '../helpers/grants.ts';
import { openSse } from '../helpers/sse.ts';
import { unzip } from '../helpers/zip.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let gw: RunningGateway;
const test = gatewayTest();
test.beforeAll(async ({ gw: g }) => {
  gw = g;
});

interface CatalogueField {
  name: string;
  unit: string;
  category: string;
  vss: string | null;
  vssUnit: string | null;
  vssDatatype: string | null;
}

let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;

async function get(p: string, tok: string | null, headers: Record<string, string> = {}) {
  const h: Record<string, string> = { ...headers };
  if (tok) h.authorization = `Bearer ${tok}`;
  const res = await fetch(`http://127.0.0.1:${gw.httpPort}${p}`, { headers: h });
  return { status: res.status, headers: res.headers, buf: Buffer.from(await res.arrayBuffer()) };
}

async function catalogue(): Promise<Map<string, CatalogueField>> {
  const r = await get('/v1/catalogue', null);
  expect(r.status).toBe(200);
  const fields = (JSON.parse(r.buf.toString()) as { fields: CatalogueField[] }).fields;
  return new Map(fields.map((f) => [f.name, f]));
}

/**
 * The oracle, independent of the gateway's conversion: the catalogue's unit to its VSS unit
 * (kilometres → m is × 1000, the same unit × 1), then integer datatypes rounded.
 */
function expectedVss(f: CatalogueField, v: number): number {
  const scale = f.unit === 'kilometres' && f.vssUnit === 'm' ? 1000 : 1;
  if (scale === 1) expect(['km', 'km/h', 'percent', 'rpm', 'Celsius', 'V', 'l', 'kWh', 'degrees', 'm']).toContain(f.vssUnit);
  return /int/.test(f.vssDatatype ?? '') ? Math.round(v * scale) : v * scale;
}

/** Checks that a VSS-keyed record is the plain one after conversion, member by member, and nothing else. */
function expectSameAfterConversion(cat: Map<string, CatalogueField>, plain: Record<string, unknown>, vss: Record<string, unknown>): number {
  const want: Record<string, unknown> = {};
  let converted = 0;
  for (const [k, v] of Object.entries(plain)) {
    if (v !== null && typeof v === 'object') {
      for (const [fk, fv] of Object.entries(v as Record<string, number>)) {
        const f = cat.get(`${k}.${fk}`)!;
        expect(f.vss, `${k}.${fk}`).toMatch(/^Vehicle\./);
        want[f.vss!] = expectedVss(f, fv);
        converted++;
      }
    } else if (v !== null) want[k] = v;
  }
  expect(vss).toEqual(want);
  return converted;
}

const csvRows = (buf: Buffer) => buf.toString().trim().split('\n').map((l) => l.split(','));
const ndjson = (buf: Buffer) =>
  buf
    .toString()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** A vehicle with a third party's grant (technical + location, history and stream), then `count` records published over MQTT. */
async function setup(count: number) {
  const owner = uniq('owner');
  const { vin, secret } = await provision(gw, undefined, owner);
  const ownerTok = await mintToken(gw, 'customer', owner);
  const rid = uniq('tp');
  const tpTok = await registerRecipient(gw, rid, 'third_party');
  const grant = await createGrant(gw, vin, ownerTok, { recipientId: rid, categories: ['technical', 'location'], access: ['history', 'stream'] });
  const c = await connectVehicle(gw, vin, secret);
  // Measured after the grant began (its dataFrom), with decimals that a float product would blur.
  const t0 = Date.now() + 5;
  const recs = Array.from({ length: count }, (_, i) =>
    record(i + 1, t0 + i * 10, {
      technical: { ...FULL_TECHNICAL, odometerKm: 12345.678 + i * 0.001, remainingRangeKm: 410.5 + i / 4, fuelLevelPct: 42.25 + i },
      consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 12345.6 + i },
      location: { ...FULL_LOCATION, latitude: 48 + i / 1000 },
    }),
  );
  await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, recs));
  return { vin, ownerTok, tpTok, grant, c };
}

describe('?names=vss', () => {
  it('NDJSON and CSV exports, the owner\'s and the grant\'s, equal the plain ones after unit conversion, field by field', async () => {
    const cat = await catalogue();
    const s = await setup(20);
    await s.c.endAsync();
    const routes = [
      { who: 'owner', base: `/v1/vehicles/${s.vin}/cardata`, tok: s.ownerTok, groups: ['technical', 'consumption', 'location'] },
      { who: 'grant', base: `/v1/grants/${s.grant.id}/cardata`, tok: s.tpTok, groups: ['technical', 'location'] },
    ];
    for (const r of routes) {
      const plain = await get(`${r.base}?format=ndjson`, r.tok);
      const vss = await get(`${r.base}?format=ndjson&names=vss`, r.tok);
      expect([plain.status, vss.status], r.who).toEqual([200, 200]);
      expect(vss.headers.get('link')).toContain('</v1/catalogue>; rel="describedby"');
      expect(plain.headers.get('link')).toContain('</v1/data-description>; rel="describedby"');
      const pl = ndjson(plain.buf);
      const vl = ndjson(vss.buf);
      expect(pl).toHaveLength(20);
      expect(vl).toHaveLength(20);
      let converted = 0;
      for (let i = 0; i < pl.length; i++) converted += expectSameAfterConversion(cat, pl[i]!, vl[i]!);
      const perRecord = r.groups.reduce((a, g) => a + Object.keys({ technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION }[g]!).length, 0);
      expect(converted, r.who).toBe(20 * perRecord);
      // Metres, exactly: 12345.678 km is 12345678 m (a float product would be 12345678.000000002 before rounding).
      expect(vl[0]!['Vehicle.TraveledDistance']).toBe(12_345_678);
      expect(vl[0]!['Vehicle.Speed']).toBe(FULL_TECHNICAL.speedKmh);

      const pc = csvRows((await get(`${r.base}?format=csv`, r.tok)).buf);
      const vres = await get(`${r.base}?format=csv&names=vss`, r.tok);
      expect(vres.headers.get('link')).toContain('rel="describedby"');
      const vc = csvRows(vres.buf);
      expect(vc).toHaveLength(21);
      const header = pc[0]!;
      expect(vc[0]).toEqual(header.map((h) => cat.get(h)?.vss ?? h));
      for (let row = 1; row < pc.length; row++) {
        for (let col = 0; col < header.length; col++) {
          const f = cat.get(header[col]!);
          const p = pc[row]![col]!;
          const v = vc[row]![col]!;
          if (!f?.vss || p === '') expect(v, `${r.who} ${header[col]}`).toBe(p);
          else expect(Number(v), `${r.who} ${header[col]} row ${row}`).toBe(expectedVss(f, Number(p)));
        }
      }
    }
  });

  it('the ZIP carries VSS names in catalogue.json and README.md, and the overlay', async () => {
    const s = await setup(3);
    await s.c.endAsync();
    for (const [base, tok] of [
      [`/v1/vehicles/${s.vin}/cardata`, s.ownerTok],
      [`/v1/grants/${s.grant.id}/cardata`, s.tpTok],
    ] as const) {
      const r = await get(`${base}?format=zip&names=vss`, tok);
      expect(r.status).toBe(200);
      const files = unzip(r.buf);
      const cat = JSON.parse(files.get('catalogue.json')!.toString()) as { fields: CatalogueField[]; vss: { release: string; recordsKeyedBy: string } };
      expect(cat.vss).toMatchObject({ release: 'COVESA VSS 6.0', recordsKeyedBy: 'vss' });
      expect(cat.fields.find((f) => f.name === 'technical.odometerKm')).toMatchObject({ vss: 'Vehicle.TraveledDistance', vssUnit: 'm', vssDatatype: 'uint32' });
      expect(files.get('vss/cardata-overlay.vspec')!.toString()).toBe(readFileSync(new URL('../../proto/vss/cardata-overlay.vspec', import.meta.url), 'utf8'));
      expect(JSON.parse(files.get('vss/standard-paths.json')!.toString()).signals['Vehicle.Speed'].unit).toBe('km/h');
      const readme = files.get('README.md')!.toString();
      expect(readme).toContain('| `technical.odometerKm` | kilometres | `Vehicle.TraveledDistance` | m | uint32 |');
      const lines = ndjson(files.get('records.ndjson')!);
      expect(lines[0]!['Vehicle.TraveledDistance']).toBe(12_345_678);
      expect(files.get('records.csv')!.toString().split('\n')[0]).toContain('Vehicle.TraveledDistance');
    }
  });

  it('the owner\'s and the grant\'s streams send VSS-keyed lines equal to the export\'s', async () => {
    const s = await setup(1);
    const owner = await openSse(gw.httpPort, `/v1/vehicles/${s.vin}/stream?names=vss`, s.ownerTok);
    const viaGrant = await openSse(gw.httpPort, `/v1/grants/${s.grant.id}/stream?names=vss`, s.tpTok);
    expect([owner.status, viaGrant.status]).toEqual([200, 200]);
    expect(owner.headers.link).toContain('rel="describedby"');
    const t = Date.now() + 5;
    await publish(
      s.c,
      `v1/vehicles/${s.vin}/telemetry`,
      encodeBatch(s.vin, [record(2, t, { technical: { ...FULL_TECHNICAL, odometerKm: 20000.125 }, consumption: FULL_CONSUMPTION, location: FULL_LOCATION })]),
    );
    await owner.until((e) => e.some((x) => x.event === 'record'), 10_000);
    await viaGrant.until((e) => e.some((x) => x.event === 'record'), 10_000);
    const [o] = owner.records();
    const [g] = viaGrant.records();
    owner.close();
    viaGrant.close();
    await s.c.endAsync();
    const from = encodeURIComponent(new Date(t).toISOString());
    const ownerLine = ndjson((await get(`/v1/vehicles/${s.vin}/cardata?format=ndjson&names=vss&from=${from}`, s.ownerTok)).buf)[0];
    const grantLine = ndjson((await get(`/v1/grants/${s.grant.id}/cardata?format=ndjson&names=vss&from=${from}`, s.tpTok)).buf)[0];
    expect(o!.data).toEqual(ownerLine);
    expect(g!.data).toEqual(grantLine);
    expect(o!.data['Vehicle.TraveledDistance']).toBe(20_000_125);
    expect(o!.data['Vehicle.OBFCM.TotalFuelConsumed']).toBe(FULL_CONSUMPTION.totalFuelConsumedL);
    // The grant covers technical and location only.
    expect(Object.keys(g!.data).some((k) => k.startsWith('Vehicle.OBFCM.'))).toBe(false);
    expect(g!.data['Vehicle.CurrentLocation.Latitude']).toBe(FULL_LOCATION.latitude);
  });

  it('refuses an unknown names value with 400 API_ERR_UNKNOWN_NAMES on exports and streams', async () => {
    const s = await setup(1);
    await s.c.endAsync();
    for (const [p, tok] of [
      [`/v1/vehicles/${s.vin}/cardata?names=VSS`, s.ownerTok],
      [`/v1/vehicles/${s.vin}/cardata?format=csv&names=covesa`, s.ownerTok],
      [`/v1/grants/${s.grant.id}/cardata?names=`, s.tpTok],
      [`/v1/vehicles/${s.vin}/stream?names=vss6`, s.ownerTok],
      [`/v1/grants/${s.grant.id}/stream?names=x`, s.tpTok],
    ] as const) {
      const r = await get(p, tok);
      expect(r.status, p).toBe(400);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      expect(JSON.parse(r.buf.toString()).code, p).toBe('API_ERR_UNKNOWN_NAMES');
    }
    // names=catalogue is today's answer, byte for byte.
    const plain = await get(`/v1/vehicles/${s.vin}/cardata?format=ndjson`, s.ownerTok);
    const named = await get(`/v1/vehicles/${s.vin}/cardata?format=ndjson&names=catalogue`, s.ownerTok);
    expect(named.buf.toString()).toBe(plain.buf.toString());
  });
});

describe('GET /v1/data-description', () => {
  it('lists every catalogue field with unit and VSS name, per category, with ETag and 304', async () => {
    const cat = await catalogue();
    const r = await get('/v1/data-description', null);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('application/json');
    const d = JSON.parse(r.buf.toString());
    const listed = new Map<string, { unit: string; vss: string | null }>();
    for (const f of d.record.fields) listed.set(f.name, f);
    for (const c of d.categories) for (const f of c.fields) listed.set(f.name, f);
    expect([...listed.keys()].sort()).toEqual([...cat.keys()].sort());
    for (const [name, f] of cat) expect(listed.get(name), name).toMatchObject({ unit: f.unit, vss: f.vss });
    expect(d.categories.map((c: { category: string }) => c.category).sort()).toEqual([...new Set([...cat.values()].filter((f) => f.name.includes('.')).map((f) => f.category))].sort());
    // The parts and the articles they serve.
    expect(d.formats.dataAct).toMatch(/Art\. 3\(2\)\(a\)/);
    expect(d.generation).toMatchObject({ continuous: true, realTime: true, dataAct: expect.stringMatching(/3\(2\)\(b\)/) });
    expect(d.storage).toMatchObject({ engine: gw.db.kind, sharded: false, shards: 1, remoteServer: true, dataAct: expect.stringMatching(/3\(2\)\(c\)/) });
    expect(d.access.erase.map((x: { path: string }) => x.path)).toContain('/v1/vehicles/{vin}/data');
    expect(d.volume).toMatchObject({ basis: 'configured', setting: 'VEHICLE_SEND_INTERVAL_MS', sendIntervalMs: 1000, recordsPerVehiclePerDay: 86_400 });
    expect(d.volume.bytesPerVehiclePerDay).toBe(d.volume.bytesPerRecord * 86_400);
    expect(d.formats.offered.map((f: { format: string }) => f.format)).toEqual(expect.arrayContaining(['ndjson', 'csv', 'zip', 'sse']));
    const etag = r.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await get('/v1/data-description', null, { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.buf.length).toBe(0);
    expect((await get('/v1/data-description', null, { 'if-none-match': '"other"' })).status).toBe(200);
  });
});
