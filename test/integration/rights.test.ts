// The data subject's rights through the real path: a vehicle changes hands (admin
// transfer), and its owner erases their data (DELETE /v1/vehicles/{vin}/data), with real
// telemetry sent over MQTT before and after the transfer and the rows checked in
// TimescaleDB. Ownership periods use the database clock, so the tests leave ~50 ms
// around each transfer between records measured with the local clock.
import { describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import {
  FULL_CONSUMPTION,
  FULL_LOCATION,
  FULL_TECHNICAL,
  api,
  connectVehicle,
  encodeBatch,
  provision,
  publish,
  record,
  testVin,
} from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { GROUPS } from '../../proto/fields.ts';

let db: TestDatabase;
let gw: RunningGateway;

const test = gatewayTest();
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Res = { status: number; body: any; headers: Headers };

function expectProblem(r: Res, status: number, code: string): void {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, code });
}

const tokens = new Map<string, string>();
async function tokenOf(subject: string, role: 'customer' | 'workshop' | 'authority' = 'customer'): Promise<string> {
  const key = `${role}:${subject}`;
  const have = tokens.get(key);
  if (have) return have;
  const r = await api(gw, 'POST', '/v1/admin/tokens', { role, subject });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  tokens.set(key, r.body.token as string);
  return r.body.token as string;
}

interface Vehicle {
  vin: string;
  client: MqttClient;
  topic: string;
  seq: number;
}

let ownerCounter = 0;
const newOwner = (tag: string) => `${tag}-${process.pid}-${++ownerCounter}`;

async function vehicle(owner: string): Promise<Vehicle> {
  const { vin, secret } = await provision(gw, testVin(), owner);
  const client = await connectVehicle(gw, vin, secret);
  return { vin, client, topic: `v1/vehicles/${vin}/telemetry`, seq: 0 };
}

const FULL = { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION };

/** Sends `n` full records measured now (one batch); resolves once durable; returns their seqs. */
async function send(v: Vehicle, n = 1): Promise<number[]> {
  const t = Date.now();
  const seqs = Array.from({ length: n }, () => ++v.seq);
  await publish(v.client, v.topic, encodeBatch(v.vin, seqs.map((s, i) => record(s, t + i, FULL))));
  return seqs;
}

/** One record that fails validation (speed out of range): quarantined. */
async function sendBad(v: Vehicle): Promise<void> {
  const s = ++v.seq;
  await publish(v.client, v.topic, encodeBatch(v.vin, [record(s, Date.now(), { technical: { speedKmh: 9999 }, location: FULL_LOCATION })]));
}

async function transfer(vin: string, newOwnerId: string): Promise<Res> {
  await sleep(50);
  const r = await api(gw, 'POST', `/v1/admin/vehicles/${vin}/transfer`, { newOwnerId });
  await sleep(50);
  return r;
}

const telemetrySeqs = async (vin: string) => (await db.query<{ seq: number }>('SELECT seq FROM telemetry WHERE vin = $1 ORDER BY seq', [vin])).map((r) => r.seq);
const obfcmSeqs = async (vin: string) => (await db.query<{ seq: number }>('SELECT seq FROM obfcm_readings WHERE vin = $1 ORDER BY seq', [vin])).map((r) => r.seq);
const quarantineCount = async (vin: string) => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM quarantine WHERE vin = $1', [vin]))[0]!.n;
const rowsOf = (vin: string) => db.query<Record<string, any>>('SELECT * FROM telemetry WHERE vin = $1 ORDER BY seq', [vin]);
const erasureLog = (vin: string) => db.query<Record<string, any>>('SELECT * FROM erasure_log WHERE vin = $1 ORDER BY id', [vin]);

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
const COLS = {
  technical: Object.keys(FULL_TECHNICAL).map(snake),
  consumption: Object.keys(FULL_CONSUMPTION).map(snake),
  location: Object.keys(FULL_LOCATION).map(snake),
};
const VALUES: Record<string, number> = Object.fromEntries(Object.entries({ ...FULL_TECHNICAL, ...FULL_CONSUMPTION, ...FULL_LOCATION }).map(([k, v]) => [snake(k), v]));
const FLAG = { technical: 'has_technical', consumption: 'has_consumption', location: 'has_location' } as const;

function expectGroup(row: Record<string, any>, group: keyof typeof COLS, present: boolean): void {
  for (const c of COLS[group]) expect(row[c], `${c} of seq ${row.seq}`).toBe(present ? VALUES[c] : null);
  expect(row[FLAG[group]], `${FLAG[group]} of seq ${row.seq}`).toBe(present);
}

describe('POST /v1/admin/vehicles/{vin}/transfer', () => {
  it('200 {vin, ownerId, since}; ends the old period and starts the new one at the same instant', async () => {
    const a = newOwner('alice');
    const b = newOwner('bob');
    const v = await vehicle(a);
    const r = await transfer(v.vin, b);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(['ownerId', 'since', 'vin']);
    expect(r.body).toMatchObject({ vin: v.vin, ownerId: b });
    const periods = await db.query<{ owner_id: string; started_at: Date; ended_at: Date | null }>(
      'SELECT owner_id, started_at, ended_at FROM ownership_periods WHERE vin = $1 ORDER BY started_at, id',
      [v.vin],
    );
    expect(periods.map((p) => p.owner_id)).toEqual([a, b]);
    expect(periods[0]!.ended_at!.toISOString()).toBe(r.body.since);
    expect(periods[1]!.started_at.toISOString()).toBe(r.body.since);
    expect(periods[1]!.ended_at).toBeNull();
    expect((await db.query<{ owner_id: string }>('SELECT owner_id FROM vehicles WHERE vin = $1', [v.vin]))[0]!.owner_id).toBe(b);
    await v.client.endAsync();
  });

  it('404 for an unknown VIN, 409 to the current owner, 400 for a bad body or VIN, 401 without the admin token', async () => {
    const a = newOwner('alice');
    const v = await vehicle(a);
    expectProblem(await api(gw, 'POST', `/v1/admin/vehicles/${testVin()}/transfer`, { newOwnerId: 'x' }), 404, 'API_ERR_NOT_FOUND');
    expectProblem(await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: a }), 409, 'API_ERR_CONFLICT');
    expectProblem(await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, {}), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: '' }), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: 'x', extra: 1 }), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'POST', `/v1/admin/vehicles/${v.vin.toLowerCase()}/transfer`, { newOwnerId: 'x' }), 400, 'API_ERR_INVALID_VIN');
    expectProblem(await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: 'x' }, null), 401, 'API_ERR_UNAUTHORIZED');
    expectProblem(await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: 'x' }, await tokenOf(a)), 401, 'API_ERR_UNAUTHORIZED');
    // none of these changed the owner
    expect((await db.query('SELECT owner_id FROM ownership_periods WHERE vin = $1', [v.vin])).map((r) => r.owner_id)).toEqual([a]);
    await v.client.endAsync();
  });

  it('the old owner gets 404 on every route of the vehicle; the new owner\'s token works', async () => {
    const a = newOwner('alice');
    const b = newOwner('bob');
    const v = await vehicle(a);
    const ta = await tokenOf(a);
    expect((await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, ta)).status).toBe(200);
    expect((await transfer(v.vin, b)).status).toBe(200);
    const tb = await tokenOf(b);
    const routes: [string, string, unknown?][] = [
      ['GET', `/v1/vehicles/${v.vin}/consent`],
      ['PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: false }],
      ['GET', `/v1/vehicles/${v.vin}/consent/history`],
      ['PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true }],
      ['DELETE', `/v1/vehicles/${v.vin}/data`],
      ['DELETE', `/v1/vehicles/${v.vin}/data?category=location`],
    ];
    for (const [m, p, body] of routes) expectProblem(await api(gw, m, p, body, ta), 404, 'API_ERR_NOT_FOUND');
    // the old owner changed nothing
    expect((await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, tb)).body).toMatchObject({ location: true, co2Sharing: true, restricted: false });
    for (const [m, p, body] of routes) expect((await api(gw, m, p, body, tb)).status, `${m} ${p}`).toBe(200);
    await v.client.endAsync();
  });

  it('consent goes back to the defaults even though the old owner opted out and restricted; telemetry keeps its location again', async () => {
    const a = newOwner('alice');
    const b = newOwner('bob');
    const v = await vehicle(a);
    const ta = await tokenOf(a);
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: false }, ta)).status).toBe(200);
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/restriction`, { restricted: true }, ta)).status).toBe(200);
    const tr = await transfer(v.vin, b);
    expect(tr.status).toBe(200);
    const tb = await tokenOf(b);
    const g = await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent`, undefined, tb);
    expect(g.status).toBe(200);
    expect(g.body).toMatchObject({ vin: v.vin, location: true, co2Sharing: true, restricted: false });
    expect(Date.parse(g.body.since)).toBeGreaterThanOrEqual(Date.parse(tr.body.since));
    // in force at the gateway within a second
    const t0 = Date.now();
    let ok = false;
    while (!ok && Date.now() - t0 < 1000) {
      const [s] = await send(v);
      const [row] = await db.query<Record<string, any>>('SELECT latitude FROM telemetry WHERE vin = $1 AND seq = $2', [v.vin, s]);
      ok = row!.latitude === FULL_LOCATION.latitude && (await db.query('SELECT 1 FROM obfcm_readings WHERE vin = $1 AND seq = $2', [v.vin, s])).length === 1;
      if (!ok) await sleep(50);
    }
    expect(ok).toBe(true);
    await v.client.endAsync();
  });

  it('the new owner\'s history does not show the old owner\'s events or choices', async () => {
    const a = newOwner('alice');
    const b = newOwner('bob');
    const v = await vehicle(a);
    const ta = await tokenOf(a);
    await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: true }, ta);
    await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent?eraseHistory=true`, { location: false, co2Sharing: false }, ta);
    const ha = await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent/history`, undefined, ta);
    expect(ha.body.events).toHaveLength(2);
    expect((await transfer(v.vin, b)).status).toBe(200);
    const tb = await tokenOf(b);
    const hb = await api(gw, 'GET', `/v1/vehicles/${v.vin}/consent/history`, undefined, tb);
    expect(hb.status).toBe(200);
    const events = hb.body.events as Record<string, any>[];
    expect(events.filter((e) => e.actor === `customer:${a}`)).toEqual([]);
    for (const e of events) {
      expect(e.erasedLocationHistory, JSON.stringify(e)).toBe(false);
      expect([e.location, e.co2Sharing, e.restricted], JSON.stringify(e)).toEqual([true, true, false]);
      // "previous" of the new owner's first event must not be the old owner's state
      expect(e.previous === null || (e.previous.location === true && e.previous.co2Sharing === true && e.previous.restricted === false), `leaks the previous owner's choices: ${JSON.stringify(e)}`).toBe(true);
    }
    // the database keeps the old owner's events (demonstrability), attributed to them
    const rows = await db.query<{ owner_id: string; actor: string }>('SELECT owner_id, actor FROM consent_events WHERE vin = $1 ORDER BY effective_at, id', [v.vin]);
    expect(rows.slice(0, 2)).toEqual([
      { owner_id: a, actor: `customer:${a}` },
      { owner_id: a, actor: `customer:${a}` },
    ]);
    await v.client.endAsync();
  });
});

describe('DELETE /v1/vehicles/{vin}/data', () => {
  it('access: no token 401, workshop/authority 403, another customer 404, bad category 400 — and nothing is erased', async () => {
    const a = newOwner('alice');
    const v = await vehicle(a);
    const seqs = await send(v, 2);
    const p = `/v1/vehicles/${v.vin}/data`;
    expectProblem(await api(gw, 'DELETE', p, undefined, null), 401, 'API_ERR_UNAUTHORIZED');
    expectProblem(await api(gw, 'DELETE', p, undefined, 'x.y.z'), 401, 'API_ERR_TOKEN_INVALID');
    expectProblem(await api(gw, 'DELETE', p, undefined, await tokenOf(a, 'workshop')), 403, 'API_ERR_FORBIDDEN');
    expectProblem(await api(gw, 'DELETE', p, undefined, await tokenOf(a, 'authority')), 403, 'API_ERR_FORBIDDEN');
    expectProblem(await api(gw, 'DELETE', `${p}?category=location`, undefined, await tokenOf(a, 'authority')), 403, 'API_ERR_FORBIDDEN');
    expectProblem(await api(gw, 'DELETE', p, undefined, await tokenOf(newOwner('mallory'))), 404, 'API_ERR_NOT_FOUND');
    expectProblem(await api(gw, 'DELETE', `/v1/vehicles/${testVin()}/data`, undefined, await tokenOf(a)), 404, 'API_ERR_NOT_FOUND');
    expectProblem(await api(gw, 'DELETE', `${p}?category=positions`, undefined, await tokenOf(a)), 400, 'API_ERR_VALIDATION');
    expectProblem(await api(gw, 'DELETE', `${p}?all=true`, undefined, await tokenOf(a)), 400, 'API_ERR_VALIDATION');
    expect(await telemetrySeqs(v.vin)).toEqual(seqs);
    expect(await obfcmSeqs(v.vin)).toEqual(seqs);
    expect(await erasureLog(v.vin)).toHaveLength(0);
    await v.client.endAsync();
  });

  it('erases only what was recorded in the requesting owner\'s period: the previous owner\'s rows stay', async () => {
    const a = newOwner('alice');
    const b = newOwner('bob');
    const v = await vehicle(a);
    const aliceSeqs = await send(v, 3);
    await sendBad(v);
    expect(await quarantineCount(v.vin)).toBe(1);
    const tr = await transfer(v.vin, b);
    expect(tr.status).toBe(200);
    const bobSeqs = await send(v, 2);
    await sendBad(v);
    expect(await quarantineCount(v.vin)).toBe(2);

    const r = await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data`, undefined, await tokenOf(b));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual({
      vin: v.vin,
      category: null,
      telemetryRecordsDeleted: 2,
      telemetryRecordsUpdated: 0,
      obfcmReadingsDeleted: 0,
      obfcmReadingsKept: 2,
      quarantinedDeleted: 1,
      // Bob's connections (connectivity.test.ts counts them)
      connectionsDeleted: expect.any(Number),
    });
    // Alice's records are untouched, every value still there
    expect(await telemetrySeqs(v.vin)).toEqual(aliceSeqs);
    for (const row of await rowsOf(v.vin)) for (const g of GROUPS) expectGroup(row, g, true);
    // OBFCM readings: Bob did not refuse CO2 sharing, so his are kept (and Alice's)
    expect(await obfcmSeqs(v.vin)).toEqual([...aliceSeqs, ...bobSeqs]);
    // Alice's quarantined record stays, Bob's is gone
    const q = await db.query<{ received_at: Date }>('SELECT received_at FROM quarantine WHERE vin = $1', [v.vin]);
    expect(q).toHaveLength(1);
    expect(q[0]!.received_at.getTime()).toBeLessThan(Date.parse(tr.body.since));

    const log = await erasureLog(v.vin);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ vin: v.vin, owner_id: b, category: null, period_to: null });
    expect((log[0]!.period_from as Date).toISOString()).toBe(tr.body.since);
    expect(log[0]!.rows_affected).toEqual({ telemetryDeleted: 2, telemetryUpdated: 0, obfcmDeleted: 0, obfcmKept: 2, quarantineDeleted: 1, connectivityDeleted: expect.any(Number) });
    // counts only, never data values: no column beyond these, and none of the values in
    // the counts or the category (ids, VIN and times are left out: 03:41:20.512 contains "20.5")
    expect(Object.keys(log[0]!).sort()).toEqual(['category', 'id', 'owner_id', 'period_from', 'period_to', 'requested_at', 'rows_affected', 'vin']);
    const text = JSON.stringify({ category: log[0]!.category, rows_affected: log[0]!.rows_affected });
    for (const val of Object.values(VALUES)) expect(text).not.toContain(String(val));

    // a second erasure finds nothing more
    const again = await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data`, undefined, await tokenOf(b));
    expect(again.body).toMatchObject({ telemetryRecordsDeleted: 0, quarantinedDeleted: 0, obfcmReadingsKept: 2 });
    expect(await telemetrySeqs(v.vin)).toEqual(aliceSeqs);
    await v.client.endAsync();
  });

  it('an owner with several periods (A → B → A) erases both of theirs and none of B\'s', async () => {
    const a = newOwner('alice');
    const b = newOwner('bob');
    const v = await vehicle(a);
    const a1 = await send(v, 2);
    expect((await transfer(v.vin, b)).status).toBe(200);
    const b1 = await send(v, 2);
    expect((await transfer(v.vin, a)).status).toBe(200);
    const a2 = await send(v, 2);
    const r = await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data`, undefined, await tokenOf(a));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ telemetryRecordsDeleted: 4, obfcmReadingsKept: 4, obfcmReadingsDeleted: 0 });
    expect(await telemetrySeqs(v.vin)).toEqual(b1);
    expect(await obfcmSeqs(v.vin)).toEqual([...a1, ...b1, ...a2]);
    const log = await erasureLog(v.vin);
    expect(log).toHaveLength(1);
    expect(log[0]!.owner_id).toBe(a);
    await v.client.endAsync();
  });

  it('OBFCM readings are deleted too when the owner has refused CO2 sharing', async () => {
    const a = newOwner('alice');
    const v = await vehicle(a);
    const ta = await tokenOf(a);
    const seqs = await send(v, 3);
    expect(await obfcmSeqs(v.vin)).toEqual(seqs);
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: true, co2Sharing: false }, ta)).status).toBe(200);
    const r = await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data`, undefined, ta);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ telemetryRecordsDeleted: 3, obfcmReadingsDeleted: 3, obfcmReadingsKept: 0 });
    expect(await telemetrySeqs(v.vin)).toEqual([]);
    expect(await obfcmSeqs(v.vin)).toEqual([]);
    expect((await erasureLog(v.vin))[0]!.rows_affected).toMatchObject({ telemetryDeleted: 3, obfcmDeleted: 3, obfcmKept: 0 });
    await v.client.endAsync();
  });

  it('OBFCM readings are kept (and reported) when the owner has not refused CO2 sharing, even after opting out of location', async () => {
    const a = newOwner('alice');
    const v = await vehicle(a);
    const ta = await tokenOf(a);
    const seqs = await send(v, 3);
    expect((await api(gw, 'PUT', `/v1/vehicles/${v.vin}/consent`, { location: false, co2Sharing: true }, ta)).status).toBe(200);
    const r = await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data`, undefined, ta);
    expect(r.body).toMatchObject({ telemetryRecordsDeleted: 3, obfcmReadingsDeleted: 0, obfcmReadingsKept: 3 });
    expect(await telemetrySeqs(v.vin)).toEqual([]);
    expect(await obfcmSeqs(v.vin)).toEqual(seqs);
    await v.client.endAsync();
  });

  for (const category of ['location', 'technical', 'consumption'] as const) {
    it(`?category=${category} NULLs only that group's columns in the owner's period`, async () => {
      const a = newOwner('alice');
      const b = newOwner('bob');
      const v = await vehicle(a);
      const aliceSeqs = await send(v, 2);
      expect((await transfer(v.vin, b)).status).toBe(200);
      const bobSeqs = await send(v, 3);
      // a record without this group is not counted as updated
      const s = ++v.seq;
      const others: NonNullable<Parameters<typeof record>[2]> = { ...FULL };
      delete others[category];
      await publish(v.client, v.topic, encodeBatch(v.vin, [record(s, Date.now(), others)]));
      await sendBad(v);

      const r = await api(gw, 'DELETE', `/v1/vehicles/${v.vin}/data?category=${category}`, undefined, await tokenOf(b));
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body).toMatchObject({
        vin: v.vin,
        category,
        telemetryRecordsDeleted: 0,
        telemetryRecordsUpdated: 3,
        obfcmReadingsDeleted: 0,
        obfcmReadingsKept: category === 'consumption' ? 3 : 0,
      });
      const rows = await rowsOf(v.vin);
      expect(rows.map((x) => x.seq)).toEqual([...aliceSeqs, ...bobSeqs, s]);
      for (const row of rows) {
        const bobs = row.seq > aliceSeqs.at(-1)!;
        for (const g of GROUPS) {
          if (row.seq === s) expectGroup(row, g, g !== category);
          else expectGroup(row, g, !(bobs && g === category));
        }
      }
      // OBFCM table untouched (not refused)
      expect(await obfcmSeqs(v.vin)).toEqual(category === 'consumption' ? [...aliceSeqs, ...bobSeqs] : [...aliceSeqs, ...bobSeqs, s]);
      const log = await erasureLog(v.vin);
      expect(log).toHaveLength(1);
      expect(log[0]).toMatchObject({ owner_id: b, category });
      await v.client.endAsync();
    });
  }
});
