// Privacy edges of quarantine (issue 17): raw bytes follow the stricter of the consent
// when measured and when processed, and a refused position never reaches a table, a
// quarantine detail or a log line, not even as an out-of-range value.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, api, connectVehicle, encodeBatch, provision, publish, record, testVin } from '../helpers/gateway.ts';
import { loadConfig } from '../../config/index.ts';
import { startGateway, type RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;
const logLines: string[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString('utf8'));
      cb();
    },
  });
  const config = loadConfig({ DATABASE_URL: db.url, MQTT_HOST: '127.0.0.1', MQTT_PORT: '0', HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', ADMIN_TOKEN, AUTH_FAILURES_MAX: '100000', AUTH_FAILURES_PER_VIN_MAX: '100000' });
  gw = await startGateway(config, pino({ level: 'info' }, sink));
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await gw?.close();
  await db?.drop();
});

async function vehicle() {
  const owner = `owner-${Math.random().toString(36).slice(2, 10)}`;
  const { vin, secret } = await provision(gw, testVin(), owner);
  const client = await connectVehicle(gw, vin, secret);
  clients.push(client);
  const tok = await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: owner });
  const token = tok.body.token as string;
  return {
    vin,
    client,
    topic: `v1/vehicles/${vin}/telemetry`,
    async consent(location: boolean) {
      const r = await api(gw, 'PUT', `/v1/vehicles/${vin}/consent`, { location, co2Sharing: true }, token);
      expect(r.status).toBe(200);
    },
  };
}

const quarantine = (vin: string) =>
  db.query<{ reason: string; detail: string; payload: Buffer | null }>('SELECT reason, detail, payload FROM quarantine WHERE vin = $1 ORDER BY id', [vin]);

describe('an out-of-range position while location is refused', () => {
  it('is dropped with the rest of the position: no quarantine row, no detail, no log line holds its value; the record is stored without location', async () => {
    const v = await vehicle();
    await v.consent(false);
    const t = Date.now() - 1000;
    await publish(v.client, v.topic, encodeBatch(v.vin, [record(1, t, { technical: { speedKmh: 33 }, location: { latitude: 123.456789, longitude: 11.5 } })]));
    const q = await quarantine(v.vin);
    const rows = await db.query<{ seq: number; has_location: boolean }>('SELECT seq, has_location FROM telemetry WHERE vin = $1', [v.vin]);
    console.log(`out-of-range position with location refused: ${q.length} quarantine rows (${q.map((r) => r.detail).join('; ')}), ${rows.length} stored`);
    expect(q).toEqual([]);
    expect(rows).toEqual([{ seq: 1, has_location: false }]);
    const dump = await db.query<{ s: string }>("SELECT string_agg(q::text, '|') AS s FROM quarantine q");
    expect(dump[0]!.s ?? '').not.toContain('123.456789');
    expect(logLines.join('')).not.toContain('123.456789');
  });
});

describe('raw bytes of a quarantined message', () => {
  it('measured while location was refused and processed after it was allowed again: not kept', async () => {
    const v = await vehicle();
    await v.consent(false);
    await new Promise((r) => setTimeout(r, 50));
    const measured = Date.now();
    await new Promise((r) => setTimeout(r, 50));
    await v.consent(true);
    // A payload naming another VIN: quarantined whole (GW_ERR_VIN_MISMATCH).
    const bytes = encodeBatch(testVin(), [record(1, measured, { location: { latitude: 48.1, longitude: 11.5 } })]);
    await publish(v.client, v.topic, bytes);
    // Undecodable bytes: when they were measured is unknown, so the whole horizon counts.
    await publish(v.client, v.topic, Buffer.from([0x0a, 0x80]));
    const q = await quarantine(v.vin);
    console.log(`raw bytes after refused-then-allowed: ${q.map((r) => `${r.reason} kept=${r.payload !== null}`).join(', ')}`);
    expect(q.map((r) => [r.reason, r.payload])).toEqual([
      ['GW_ERR_VIN_MISMATCH', null],
      ['GW_ERR_DECODE', null],
    ]);
  });

  it('(control) with location allowed throughout, the raw bytes are kept', async () => {
    const v = await vehicle();
    const bytes = encodeBatch(testVin(), [record(1, Date.now(), { location: { latitude: 48.1, longitude: 11.5 } })]);
    await publish(v.client, v.topic, bytes);
    const q = await quarantine(v.vin);
    expect(q.map((r) => [r.reason, r.payload?.equals(bytes)])).toEqual([['GW_ERR_VIN_MISMATCH', true]]);
  });
});
