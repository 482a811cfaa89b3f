// Freshness (issue 26) through the real path: MQTT → the gateway → TimescaleDB → HTTP.
// Every record line carries receivedAt (when the gateway stored it) beside recordedAt, in
// the NDJSON and CSV exports, the live stream and a grant's export; /latest says per field
// how old its newest value is.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_LOCATION, FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway } from '../helpers/gateway.ts';
import { createGrant, mintToken, registerRecipient } from '../helpers/grants.ts';
import { openSse } from '../helpers/sse.ts';
import type { RunningGateway } from '../../app/gateway.ts';

/** MAX_CLOCK_SKEW_MS of this test's gateway: how far ahead of the gateway's clock a record may be measured. */
const SKEW_MS = 60_000;

let db: TestDatabase;
let gw: RunningGateway;

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startTestGateway(db.url, { MAX_CLOCK_SKEW_MS: String(SKEW_MS) });
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

async function text(path: string, tok: string): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${gw.httpPort}${path}`, { headers: { authorization: `Bearer ${tok}` } });
  expect(r.status).toBe(200);
  return r.text();
}

describe('receivedAt and the age of each field', () => {
  it('every line carries receivedAt: after the publish began, by the PUBACK, and ≥ recordedAt within the allowed clock skew', async () => {
    const { vin, secret } = await provision(gw, undefined, 'fred');
    const tok = await mintToken(gw, 'customer', 'fred');
    const s = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream`, tok);
    const c = await connectVehicle(gw, vin, secret);
    const now = Date.now();
    // Measured a minute ago with a position; half a minute ago without; and 20 s ahead of
    // the gateway's clock (a vehicle clock running fast, within MAX_CLOCK_SKEW_MS).
    const t1 = now - 60_000;
    const t2 = now - 30_000;
    const t3 = now + 20_000;
    const sentAt: number[] = [];
    const ackedAt: number[] = [];
    for (const batch of [[record(1, t1, { technical: FULL_TECHNICAL, location: FULL_LOCATION })], [record(2, t2, { technical: { ...FULL_TECHNICAL, speedKmh: 50 } })], [record(3, t3, { technical: { speedKmh: 70 } })]]) {
      sentAt.push(Date.now());
      await publish(c, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, batch));
      ackedAt.push(Date.now());
    }
    await c.endAsync();

    const lines = (await text(`/v1/vehicles/${vin}/cardata?format=ndjson`, tok)).trim().split('\n').map((l) => JSON.parse(l) as { seq: number; recordedAt: string; receivedAt: string });
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3]);
    for (const [i, l] of lines.entries()) {
      const rx = Date.parse(l.receivedAt);
      // Stored by the database's clock, the same machine's: inside the publish → PUBACK interval (ms precision).
      expect(rx, `seq ${l.seq}`).toBeGreaterThanOrEqual(sentAt[i]! - 1);
      expect(rx, `seq ${l.seq}`).toBeLessThanOrEqual(ackedAt[i]! + 1);
      // Measured before it was stored, up to the clock skew the gateway accepts.
      expect(rx, `seq ${l.seq}`).toBeGreaterThanOrEqual(Date.parse(l.recordedAt) - SKEW_MS);
    }
    expect(Date.parse(lines[0]!.receivedAt)).toBeGreaterThan(Date.parse(lines[0]!.recordedAt));
    expect(Date.parse(lines[2]!.receivedAt)).toBeLessThan(Date.parse(lines[2]!.recordedAt));

    // CSV: the same receivedAt, a column after recordedAt.
    const csv = (await text(`/v1/vehicles/${vin}/cardata?format=csv`, tok)).trim().split('\n').map((r) => r.split(','));
    expect(csv[0]!.slice(0, 4)).toEqual(['vin', 'seq', 'recordedAt', 'receivedAt']);
    expect(csv.slice(1).map((r) => r[3])).toEqual(lines.map((l) => l.receivedAt));

    // The live stream: the same lines (receivedAt of rows held from the writer or read back).
    await s.until((ev) => ev.filter((e) => e.event === 'record').length >= 3);
    expect(s.records().map((r) => r.data.receivedAt)).toEqual(lines.map((l) => l.receivedAt));
    s.close();

    // A grant's export: the same.
    const app = await registerRecipient(gw, 'fresh-app', 'third_party');
    const g = await createGrant(gw, vin, tok, { recipientId: 'fresh-app', categories: ['technical'], dataFrom: new Date(now - 3_600_000).toISOString() });
    const viaGrant = (await text(`/v1/grants/${g.id}/cardata?format=ndjson`, app)).trim().split('\n').map((l) => JSON.parse(l) as { receivedAt: string });
    expect(viaGrant.map((l) => l.receivedAt)).toEqual(lines.map((l) => l.receivedAt));

    // /latest: the newest record with its receivedAt, and per field its newest value's times and age.
    const before = Date.now();
    const latest = await api(gw, 'GET', `/v1/vehicles/${vin}/latest`, undefined, tok);
    const after = Date.now();
    expect(latest.status).toBe(200);
    expect(latest.body.record).toMatchObject({ seq: 3, receivedAt: lines[2]!.receivedAt, technical: { speedKmh: 70 } });
    const f = latest.body.fields;
    // speed: from the newest record; odometer: only in the first two (the second is newest); position: only in the first.
    expect(f['technical.speedKmh']).toMatchObject({ value: 70, recordedAt: new Date(t3).toISOString(), receivedAt: lines[2]!.receivedAt, ageMs: 0 });
    expect(f['technical.odometerKm']).toMatchObject({ value: FULL_TECHNICAL.odometerKm, recordedAt: new Date(t2).toISOString(), receivedAt: lines[1]!.receivedAt });
    expect(f['location.latitude']).toMatchObject({ value: FULL_LOCATION.latitude, recordedAt: new Date(t1).toISOString(), receivedAt: lines[0]!.receivedAt });
    expect(f['technical.odometerKm'].ageMs).toBeGreaterThanOrEqual(before - t2);
    expect(f['technical.odometerKm'].ageMs).toBeLessThanOrEqual(after - t2);
    expect(f['location.latitude'].ageMs).toBeGreaterThanOrEqual(before - t1);
    expect(f['location.latitude'].ageMs).toBeLessThanOrEqual(after - t1);
    // No consumption was ever sent: no entry.
    expect(Object.keys(f).some((k) => k.startsWith('consumption.'))).toBe(false);
    // categories narrows the fields too.
    const onlyLoc = await api(gw, 'GET', `/v1/vehicles/${vin}/latest?categories=location`, undefined, tok);
    expect(Object.keys(onlyLoc.body.fields).every((k) => k.startsWith('location.'))).toBe(true);
  });
});
