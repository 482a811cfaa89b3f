// The ingest spine through the real path: MQTT.js → aedes → decode → filter → writer → TimescaleDB.
import { describe, expect, it } from 'vitest';
import pg from 'pg';
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
} from '../helpers/gateway.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import { createConsentRepo } from '../../storage/repos/consent.ts';
import { createPgDb } from '../../storage/driver/db.ts';
import { TelemetryRecord } from '../../proto/index.ts';

let db: TestDatabase;
let gw: RunningGateway;

const test = gatewayTest();
test.beforeAll(async ({ db: testDb, gw: testGw }) => {
  db = testDb;
  gw = testGw;
});

/** A provisioned, connected vehicle; a consent given here is in force before it connects. */
async function vehicle(consent?: { location: boolean; co2Sharing: boolean }): Promise<{ vin: string; secret: string; client: MqttClient; topic: string }> {
  const { vin, secret } = await provision(gw);
  if (consent) await setConsent(vin, consent.location, consent.co2Sharing);
  const client = await connectVehicle(gw, vin, secret);
  return { vin, secret, client, topic: `v1/vehicles/${vin}/telemetry` };
}

async function setConsent(vin: string, location: boolean, co2Sharing: boolean): Promise<void> {
  const d = createPgDb(db.url, { max: 1 });
  try {
    await createConsentRepo(d).set(vin, { location, co2Sharing, actor: 'test', channel: 'test' });
  } finally {
    await d.close();
  }
}

/**
 * Runs fn with the gateway's LISTEN backend stopped (SIGSTOP; the database runs on this
 * machine), so no consent announcement reaches the gateway meanwhile.
 */
async function withListenerStopped(fn: () => Promise<void>): Promise<void> {
  const backends = await db.query<{ pid: number }>(
    // The consent feed's connection (the secret-rotation feed has one of its own).
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE '%-listen' AND query = 'LISTEN consent_changed'",
  );
  expect(backends, 'the gateway listens for consent changes on one connection').toHaveLength(1);
  const pid = backends[0]!.pid;
  process.kill(pid, 'SIGSTOP');
  // Resumed however fn ends, and after 20 s even if it never does (a stopped backend would
  // hold up the database's drop).
  const guard = setTimeout(() => process.kill(pid, 'SIGCONT'), 20_000);
  try {
    await fn();
  } finally {
    clearTimeout(guard);
    process.kill(pid, 'SIGCONT');
  }
}

const customerToken = async (owner: string): Promise<string> =>
  (await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: owner })).body.token as string;

async function setConsentOverApi(vin: string, owner: string, location: boolean): Promise<void> {
  const r = await api(gw, 'PUT', `/v1/vehicles/${vin}/consent`, { location, co2Sharing: location }, await customerToken(owner));
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

/** How one record was stored: with its position or not (undefined: no row), shared or not. */
async function storedAs(vin: string, seq: number): Promise<{ location: boolean | undefined; shared: boolean }> {
  const [row] = await db.query<{ has_location: boolean }>('SELECT has_location FROM telemetry WHERE vin = $1 AND seq = $2', [vin, seq]);
  const shared = (await db.query('SELECT 1 FROM obfcm_readings WHERE vin = $1 AND seq = $2', [vin, seq])).length === 1;
  return { location: row?.has_location, shared };
}

const telemetryRows = (vin: string) => db.query<Record<string, unknown>>('SELECT * FROM telemetry WHERE vin = $1 ORDER BY seq', [vin]);
const obfcmRows = (vin: string) => db.query<Record<string, unknown>>('SELECT * FROM obfcm_readings WHERE vin = $1 ORDER BY seq', [vin]);
const quarantineRows = (vin: string) => db.query<Record<string, any>>('SELECT * FROM quarantine WHERE vin = $1 ORDER BY id', [vin]);

describe('ingest', () => {
  it('stores every field of every group, and the OBFCM counters in the shareable table', async () => {
    const v = await vehicle();
    const t = Date.now() - 1000;
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(1, t, { technical: FULL_TECHNICAL, consumption: FULL_CONSUMPTION, location: FULL_LOCATION })]));
    // Acknowledged means durable: no waiting needed.
    const rows = await telemetryRows(v.vin);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row.seq).toBe(1);
    expect((row.recorded_at as Date).getTime()).toBe(t);
    const snake = (s: string) => s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
    for (const [k, val] of Object.entries({ ...FULL_TECHNICAL, ...FULL_CONSUMPTION, ...FULL_LOCATION })) {
      expect(row[snake(k)], k).toBe(val);
    }
    expect([row.has_technical, row.has_consumption, row.has_location]).toEqual([true, true, true]);
    const obf = await obfcmRows(v.vin);
    expect(obf).toHaveLength(1);
    for (const [k, val] of Object.entries(FULL_CONSUMPTION)) expect(obf[0]![snake(k)], k).toBe(val);
    await v.client.endAsync();
  });

  it('keeps absent fields absent (NULL), not zero', async () => {
    const v = await vehicle();
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(1, Date.now(), { technical: { speedKmh: 0 } })]));
    const [row] = await telemetryRows(v.vin);
    expect(row!.speed_kmh).toBe(0);
    expect(row!.odometer_km).toBeNull();
    expect(row!.has_consumption).toBe(false);
    expect(await obfcmRows(v.vin)).toHaveLength(0);
    await v.client.endAsync();
  });

  it('under a location opt-out, stores no location anywhere: telemetry, quarantine', async () => {
    const v = await vehicle({ location: false, co2Sharing: true });
    const t = Date.now();
    await publish(v.client, v.topic, encodeBatch(v.vin, [
      record(1, t, { technical: FULL_TECHNICAL, location: FULL_LOCATION }),
      // invalid record (speed out of range) carrying a location: quarantined without it
      record(2, t + 1, { technical: { speedKmh: 9999 }, location: FULL_LOCATION }),
    ]));
    // undecodable payload: its bytes might hold a position, so they are not kept
    await publish(v.client, v.topic, Buffer.from([0x12, 0x05, 0x01, 0x02, 0x03, 0x04]));
    const rows = await telemetryRows(v.vin);
    expect(rows).toHaveLength(1);
    for (const c of ['latitude', 'longitude', 'heading_deg', 'altitude_m', 'accuracy_m']) expect(rows[0]![c]).toBeNull();
    expect(rows[0]!.has_location).toBe(false);
    expect(rows[0]!.speed_kmh).toBe(FULL_TECHNICAL.speedKmh);
    const q = await quarantineRows(v.vin);
    expect(q.map((r) => r.reason).sort()).toEqual(['GW_ERR_DECODE', 'GW_ERR_OUT_OF_RANGE']);
    const rec = q.find((r) => r.reason === 'GW_ERR_OUT_OF_RANGE')!;
    const decoded = TelemetryRecord.decode(rec.payload as Buffer);
    expect(decoded.location).toBeFalsy();
    expect(decoded.technical?.speedKmh).toBe(9999);
    const bad = q.find((r) => r.reason === 'GW_ERR_DECODE')!;
    expect(bad.payload).toBeNull();
    expect(bad.payload_bytes).toBe(6);
    // no latitude value anywhere in the database for this VIN
    const hits = await db.query(`SELECT 1 FROM telemetry WHERE vin = $1 AND latitude IS NOT NULL`, [v.vin]);
    expect(hits).toHaveLength(0);
    await v.client.endAsync();
  });

  it('under a CO2-sharing opt-out, keeps OBFCM in the telemetry but not in the shareable table', async () => {
    const v = await vehicle({ location: true, co2Sharing: false });
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(1, Date.now(), { consumption: FULL_CONSUMPTION, location: FULL_LOCATION })]));
    const rows = await telemetryRows(v.vin);
    expect(rows[0]!.total_fuel_consumed_l).toBe(FULL_CONSUMPTION.totalFuelConsumedL);
    expect(rows[0]!.latitude).toBe(FULL_LOCATION.latitude);
    expect(await obfcmRows(v.vin)).toHaveLength(0);
    await v.client.endAsync();
  });

  it('applies the stricter consent: a record measured during an opt-out stays without location after opting back in', async () => {
    const v = await vehicle();
    const before = Date.now() - 200;
    await setConsent(v.vin, false, false);
    await new Promise((r) => setTimeout(r, 20));
    const during = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    await setConsent(v.vin, true, true);
    // the cache learns of the change through NOTIFY; give it a moment
    await new Promise((r) => setTimeout(r, 200));
    await publish(v.client, v.topic, encodeBatch(v.vin, [
      record(1, before, { consumption: FULL_CONSUMPTION, location: FULL_LOCATION }),
      record(2, during, { consumption: FULL_CONSUMPTION, location: FULL_LOCATION }),
      record(3, Date.now(), { consumption: FULL_CONSUMPTION, location: FULL_LOCATION }),
    ]));
    const rows = await telemetryRows(v.vin);
    expect(rows.map((r) => r.latitude)).toEqual([FULL_LOCATION.latitude, null, FULL_LOCATION.latitude]);
    expect((await obfcmRows(v.vin)).map((r) => r.seq)).toEqual([1, 3]);
    await v.client.endAsync();
  });

  it('applies a change on this instance before answering 200: the next message is filtered under it', async () => {
    // No waiting for the NOTIFY: a record measured after the 200 must never be stored under
    // the state before it. The listening backend is stopped (SIGSTOP) so the announcement
    // cannot arrive; every step flips the state and publishes at once.
    const v = await vehicle();
    await withListenerStopped(async () => {
      const token = await customerToken('owner-1');
      const steps: Array<{ path: string; body: object; location: boolean; shared: boolean }> = [];
      for (let i = 0; i < 12; i++) {
        steps.push({ path: 'restriction', body: { restricted: true }, location: true, shared: false });
        steps.push({ path: 'restriction', body: { restricted: false }, location: true, shared: true });
        steps.push({ path: 'consent', body: { location: false, co2Sharing: false }, location: false, shared: false });
        steps.push({ path: 'consent', body: { location: true, co2Sharing: true }, location: true, shared: true });
      }
      const got: string[] = [];
      const want: string[] = [];
      for (const [i, s] of steps.entries()) {
        const r = await api(gw, 'PUT', `/v1/vehicles/${v.vin}/${s.path}`, s.body, token);
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        await publish(v.client, v.topic, encodeBatch(v.vin, [record(i + 1, Date.now(), { consumption: FULL_CONSUMPTION, location: FULL_LOCATION })]));
        const stored = await storedAs(v.vin, i + 1);
        got.push(`${i + 1} ${s.path} ${JSON.stringify(s.body)}: location=${stored.location} shared=${stored.shared}`);
        want.push(`${i + 1} ${s.path} ${JSON.stringify(s.body)}: location=${s.location} shared=${s.shared}`);
      }
      expect(got).toEqual(want);
    });
    await v.client.endAsync();
  });

  it('applies a transfer on this instance before answering 200: the new owner starts from the defaults', async () => {
    const v = await vehicle({ location: false, co2Sharing: false });
    await withListenerStopped(async () => {
      for (let i = 0; i < 6; i++) {
        const r = await api(gw, 'POST', `/v1/admin/vehicles/${v.vin}/transfer`, { newOwnerId: `owner-t${i}` });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        await publish(v.client, v.topic, encodeBatch(v.vin, [record(2 * i + 1, Date.now(), { consumption: FULL_CONSUMPTION, location: FULL_LOCATION })]));
        expect((await storedAs(v.vin, 2 * i + 1)).location, `after transfer ${i}`).toBe(true);
        // and the new owner's refusal, again at once
        await setConsentOverApi(v.vin, `owner-t${i}`, false);
        await publish(v.client, v.topic, encodeBatch(v.vin, [record(2 * i + 2, Date.now(), { consumption: FULL_CONSUMPTION, location: FULL_LOCATION })]));
        expect((await storedAs(v.vin, 2 * i + 2)).location, `after owner-t${i}'s opt-out`).toBe(false);
      }
    });
    await v.client.endAsync();
  });

  it('stores a redelivered batch once, on the same and on a new connection', async () => {
    const v = await vehicle();
    const t = Date.now();
    const payload = encodeBatch(v.vin, [1, 2, 3].map((s) => record(s, t + s, { technical: { speedKmh: s }, consumption: FULL_CONSUMPTION })));
    await publish(v.client, v.topic, payload);
    await publish(v.client, v.topic, payload);
    await v.client.endAsync();
    const again = await connectVehicle(gw, v.vin, v.secret);
    await publish(again, v.topic, payload);
    expect(await telemetryRows(v.vin)).toHaveLength(3);
    expect(await obfcmRows(v.vin)).toHaveLength(3);
    await again.endAsync();
  });

  it('takes QoS 0 through the same pipeline', async () => {
    const v = await vehicle();
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(1, Date.now(), { technical: FULL_TECHNICAL })]), 0);
    const t0 = Date.now();
    while ((await telemetryRows(v.vin)).length === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(await telemetryRows(v.vin)).toHaveLength(1);
    await v.client.endAsync();
  });
});

describe('acknowledgement after commit', () => {
  it('sends no PUBACK while the database cannot write, then stores everything exactly once', async () => {
    const v = await vehicle();
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    // EXCLUSIVE conflicts with the ROW EXCLUSIVE lock every INSERT takes.
    await blocker.query('LOCK TABLE telemetry IN EXCLUSIVE MODE');
    const t = Date.now();
    let acked = 0;
    const pubs = [0, 1, 2, 3, 4].map((i) =>
      publish(v.client, v.topic, encodeBatch(v.vin, [record(i * 2 + 1, t + i * 2), record(i * 2 + 2, t + i * 2 + 1)])).then(() => acked++),
    );
    await new Promise((r) => setTimeout(r, 800));
    expect(acked).toBe(0);
    expect(await db.query('SELECT 1 FROM telemetry WHERE vin = $1', [v.vin]).catch(() => [])).toHaveLength(0);
    await blocker.query('COMMIT');
    await blocker.end();
    await Promise.all(pubs);
    expect(acked).toBe(5);
    const rows = await telemetryRows(v.vin);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await v.client.endAsync();
  });

  it('survives its database connections being killed: retries, then acknowledges, nothing lost or doubled', async () => {
    const v = await vehicle();
    const t = Date.now();
    const killer = new pg.Client({ connectionString: db.url });
    await killer.connect();
    const pubs: Promise<void>[] = [];
    let terminated: { pid: number; ended: boolean }[] = [];
    for (let i = 0; i < 20; i++) {
      pubs.push(publish(v.client, v.topic, encodeBatch(v.vin, [record(i + 1, t + i, { technical: { speedKmh: i } })])));
      if (i === 10) {
        terminated = (
          await killer.query<{ pid: number; ended: boolean }>(
            "SELECT pid, pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'cardata-gateway'",
          )
        ).rows;
      }
    }
    await Promise.all(pubs);
    // What the test is about happened: gateway connections were ended mid-stream, and they are gone.
    expect(terminated.filter((x) => x.ended).length, `pg_terminate_backend ended no gateway connection: ${JSON.stringify(terminated)}`).toBeGreaterThan(0);
    const pids = terminated.filter((x) => x.ended).map((x) => x.pid);
    expect((await killer.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)', [pids])).rows, 'terminated backends still there').toEqual([]);
    await killer.end();
    const rows = await telemetryRows(v.vin);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await v.client.endAsync();
  });
});
