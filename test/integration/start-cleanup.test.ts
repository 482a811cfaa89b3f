// A start that fails halfway closes what it had opened, newest first: here the HTTP port
// is taken, so startGateway fails after the database pool, the consent feed and the MQTT
// listener are up. Afterwards no connection of the gateway is left in the database, the
// MQTT port is free again, and a second start on the same ports succeeds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestGateway, waitFor } from '../helpers/gateway.ts';
import { freePort } from '../../devkit/spawn.ts';
import type { RunningGateway } from '../../app/gateway.ts';

function listenOn(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

function closeServer(s: net.Server): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

describe('a failed start closes what it opened', () => {
  let db: TestDatabase;
  let gw: RunningGateway | null = null;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await gw?.close();
    await db?.drop();
  });

  /** Sessions of the gateway (pool and LISTEN connection) on the test database. */
  const gatewaySessions = async () =>
    (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'cardata-gateway%'`, [db.name]))[0]!.n;

  it('HTTP port taken: the start fails with EADDRINUSE, no database session and no MQTT listener is left, and a second start on the same ports succeeds', async () => {
    const mqttPort = await freePort();
    const blocker = await listenOn(0);
    const httpPort = (blocker.address() as net.AddressInfo).port;
    const ports = { MQTT_PORT: String(mqttPort), HTTP_PORT: String(httpPort) };

    await expect(startTestGateway(db.url, ports)).rejects.toThrow(/EADDRINUSE/);
    // The backends end a moment after their clients hang up: bounded wait.
    await waitFor(async () => (await gatewaySessions()) === 0, 5000);
    expect(await gatewaySessions()).toBe(0);
    const probe = await listenOn(mqttPort); // would fail with EADDRINUSE had the MQTT listener been left open
    await closeServer(probe);

    await closeServer(blocker);
    gw = await startTestGateway(db.url, ports);
    expect(gw.mqttPort).toBe(mqttPort);
    expect(gw.httpPort).toBe(httpPort);
    const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await gatewaySessions()).toBeGreaterThan(0);
  });
});
