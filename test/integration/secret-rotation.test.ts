// Rotating a vehicle's MQTT secret (issue 17): POST /v1/admin/vehicles/{vin}/secret and
// `cardata-gateway rotate-secret`. The new secret is shown once, the old one is refused
// from then on, and the sessions opened with it are closed (by this instance at once, by
// every instance through NOTIFY; the CLI reaches running gateways that way).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, connectVehicle, encodeBatch, provision, publish, record, startTestGateway, testVin, tryConnect } from '../helpers/gateway.ts';
import { runChild } from '../helpers/proc.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;
const clients: MqttClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startTestGateway(db.url);
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await gw?.close();
  await db?.drop();
});

function closedWithin(c: MqttClient, ms: number): Promise<boolean> {
  if (!c.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    c.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

const creds = (vin: string, password: string) => ({ clientId: vin, username: vin, password });

describe('POST /v1/admin/vehicles/{vin}/secret', () => {
  it('200 {vin, secret} (no-store); the open session of the old secret is closed, the old secret refused, the new one connects and publishes', async () => {
    const { vin, secret: old } = await provision(gw);
    const session = await connectVehicle(gw, vin, old, { reconnectPeriod: 0 });
    clients.push(session);
    const other = await provision(gw);
    const bystander = await connectVehicle(gw, other.vin, other.secret);
    clients.push(bystander);
    const r = await api(gw, 'POST', `/v1/admin/vehicles/${vin}/secret`);
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(['secret', 'vin']);
    expect(r.body.vin).toBe(vin);
    expect(r.body.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(r.body.secret).not.toBe(old);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(await closedWithin(session, 2000)).toBe(true);
    expect((await tryConnect(gw, creds(vin, old)))?.code).toBe(5);
    const fresh = await connectVehicle(gw, vin, r.body.secret);
    clients.push(fresh);
    await publish(fresh, `v1/vehicles/${vin}/telemetry`, encodeBatch(vin, [record(1, Date.now())]));
    // Other vehicles' sessions are untouched.
    expect(bystander.connected).toBe(true);
    await publish(bystander, `v1/vehicles/${other.vin}/telemetry`, encodeBatch(other.vin, [record(1, Date.now())]));
  });

  it('404 API_ERR_NOT_FOUND for a VIN never provisioned; 400 for an invalid VIN; 401 without the admin token', async () => {
    const unknown = await api(gw, 'POST', `/v1/admin/vehicles/${testVin()}/secret`);
    expect([unknown.status, unknown.body.code]).toEqual([404, 'API_ERR_NOT_FOUND']);
    const bad = await api(gw, 'POST', '/v1/admin/vehicles/NOT-A-VIN/secret');
    expect(bad.status).toBe(400);
    const { vin, secret } = await provision(gw);
    const anon = await api(gw, 'POST', `/v1/admin/vehicles/${vin}/secret`, undefined, null);
    expect(anon.status).toBe(401);
    // Nothing changed: the secret still works.
    expect(await tryConnect(gw, creds(vin, secret))).toBeNull();
  });
});

describe('cardata-gateway rotate-secret --vin V', () => {
  it('prints the new secret; a running gateway on the same database closes the old session (NOTIFY) and refuses the old secret', async () => {
    const { vin, secret: old } = await provision(gw);
    const session = await connectVehicle(gw, vin, old, { reconnectPeriod: 0 });
    clients.push(session);
    const r = await runChild('npx', ['tsx', 'cli/index.ts', 'rotate-secret', '--vin', vin, '--json'], { DATABASE_URL: db.url }, 30_000);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { vin: string; secret: string };
    expect(out.vin).toBe(vin);
    expect(await closedWithin(session, 3000)).toBe(true);
    expect((await tryConnect(gw, creds(vin, old)))?.code).toBe(5);
    expect(await tryConnect(gw, creds(vin, out.secret))).toBeNull();
    const missing = await runChild('npx', ['tsx', 'cli/index.ts', 'rotate-secret', '--vin', testVin()], { DATABASE_URL: db.url }, 30_000);
    expect(missing.code).toBe(4);
  }, 90_000);
});
