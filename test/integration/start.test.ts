// `npm start` end to end, in child processes: the embedded database (no DATABASE_URL),
// readiness, provisioning, ingest over MQTT, CarData export, orderly stop on SIGTERM,
// and the data still there after a restart on the same DATA_DIR.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { encodeBatch, publish, record, testVin } from '../helpers/gateway.ts';
import { freePort, killAllChildren, spawnChild, waitForHttp200, type Child } from '../helpers/proc.ts';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const ADMIN = 'start-test-admin-token-0123456789';
const OWNER = 'owner-start-1';

const dataDir = mkdtempSync(path.join(tmpdir(), 'cardata-start-'));
const timings: string[] = [];

interface Started {
  child: Child;
  mqttPort: number;
  httpPort: number;
  readyMs: number;
}

/** Spawns the gateway and waits for GET /readyz 200 (bounded); logs the time it took. */
async function start(label: string, cmd: string, args: string[], env: Record<string, string> = {}): Promise<Started> {
  const mqttPort = await freePort();
  const httpPort = await freePort();
  const child = spawnChild(cmd, args, {
    DATA_DIR: dataDir,
    MQTT_HOST: '127.0.0.1',
    MQTT_PORT: String(mqttPort),
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(httpPort),
    LOG_LEVEL: 'warn',
    ...env,
  });
  const readyMs = await waitForHttp200(`http://127.0.0.1:${httpPort}/readyz`, READY_TIMEOUT_MS, child);
  const line = `${label}: spawn → /readyz 200 in ${readyMs} ms`;
  timings.push(line);
  console.log(line);
  // the banner is written right after the listeners are up; /readyz can answer just before it
  await child.waitForOutput(/try the simulator:[^\n]*\n[^\n]*npm run simulate[^\n]*\n/, 5000);
  return { child, mqttPort, httpPort, readyMs };
}

async function http(g: Started, method: string, p: string, token: string, body?: unknown): Promise<{ status: number; text: string; json: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${g.httpPort}${p}`, {
    method,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: json stays null
  }
  return { status: res.status, text, json };
}

async function customerToken(g: Started, admin: string): Promise<string> {
  const r = await http(g, 'POST', '/v1/admin/tokens', admin, { role: 'customer', subject: OWNER });
  expect(r.status, r.text).toBe(201);
  return r.json.token as string;
}

async function exportNdjson(g: Started, vin: string, token: string): Promise<Record<string, any>[]> {
  const r = await http(g, 'GET', `/v1/vehicles/${vin}/cardata?format=ndjson`, token);
  expect(r.status, r.text).toBe(200);
  return r.text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/** Resolves once nothing accepts connections on the port any more (bounded). */
async function portClosed(port: number, timeoutMs: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    try {
      await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

afterAll(() => {
  killAllChildren();
  if (timings.length) console.log(`startup timings:\n  ${timings.join('\n  ')}`);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start (node --import tsx main.ts), embedded database', () => {
  const vin = testVin();
  const t = Date.now() - 5000;
  let first: Started;

  beforeAll(async () => {
    first = await start('first start (node --import tsx main.ts, ADMIN_TOKEN set)', process.execPath, ['--import', 'tsx', 'main.ts'], { ADMIN_TOKEN: ADMIN });
  }, READY_TIMEOUT_MS + 10_000);

  it('prints where it stores data (PGlite), the MQTT and HTTP addresses and the simulator command', () => {
    const out = first.child.stdout();
    expect(out).toContain('cardata-gateway is running');
    expect(out).toMatch(/storage:\s+embedded PostgreSQL \(PGlite\) in /);
    expect(out).toContain(dataDir);
    expect(out).toContain(`mqtt://127.0.0.1:${first.mqttPort}`);
    expect(out).toContain(`http://127.0.0.1:${first.httpPort}`);
    expect(out).toMatch(new RegExp(`npm run simulate -- .*--http http://127\\.0\\.0\\.1:${first.httpPort} --mqtt mqtt://127\\.0\\.0\\.1:${first.mqttPort}`));
    // ADMIN_TOKEN was given: never echoed, no generated one
    expect(out).not.toContain(ADMIN);
    expect(out).not.toContain('admin token (generated');
    expect(out).toContain('ADMIN_TOKEN=<your ADMIN_TOKEN>');
  });

  it('provisions over the admin API, takes a batch over MQTT (PUBACK), exports it as NDJSON to the owner', async () => {
    const prov = await http(first, 'POST', '/v1/admin/vehicles', ADMIN, { vin, ownerId: OWNER });
    expect(prov.status, prov.text).toBe(201);
    const secret = prov.json.secret as string;
    expect(secret.length).toBeGreaterThanOrEqual(32);

    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${first.mqttPort}`, {
      clientId: vin,
      username: vin,
      password: secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    try {
      await publish(
        client,
        `v1/vehicles/${vin}/telemetry`,
        encodeBatch(vin, [
          record(1, t, { technical: { speedKmh: 10, odometerKm: 100 } }),
          record(2, t + 1000, { technical: { speedKmh: 20 }, location: { latitude: 48.1, longitude: 11.5 } }),
          record(3, t + 2000, { consumption: { totalFuelConsumedL: 3.5 } }),
        ]),
        1,
      );
    } finally {
      await client.endAsync();
    }

    const token = await customerToken(first, ADMIN);
    const recs = await exportNdjson(first, vin, token);
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(recs[0]).toMatchObject({ vin, recordedAt: new Date(t).toISOString(), technical: { speedKmh: 10, odometerKm: 100 } });
    expect(recs[1]!.location).toEqual({ latitude: 48.1, longitude: 11.5 });
    expect(recs[2]!.consumption).toEqual({ totalFuelConsumedL: 3.5 });
    // someone else's token reads nothing of it
    const other = await http(first, 'POST', '/v1/admin/tokens', ADMIN, { role: 'customer', subject: 'someone-else' });
    expect((await http(first, 'GET', `/v1/vehicles/${vin}/cardata`, other.json.token)).status).toBeGreaterThanOrEqual(403);
  });

  it('SIGTERM (to the process group, as a terminal or supervisor does): the whole tree exits within 15 s and the ports are released', async () => {
    const t0 = Date.now();
    process.kill(-first.child.pid, 'SIGTERM');
    const e = await first.child.exited(STOP_TIMEOUT_MS);
    console.log(`first start: stopped ${Date.now() - t0} ms after SIGTERM (exit ${JSON.stringify(e)})`);
    expect(await portClosed(first.httpPort, STOP_TIMEOUT_MS)).toBe(true);
    expect(first.child.stderr()).not.toMatch(/shutdown_failed|"level":50/);
  });

  it('restarted on the same DATA_DIR without ADMIN_TOKEN: prints a generated admin token that works, and the data is still there; SIGTERM → exit 0', async () => {
    // `node --import tsx main.ts` is what `npm start` runs; spawned directly, its exit code is the gateway's.
    const second = await start('second start (node --import tsx main.ts, same DATA_DIR, ADMIN_TOKEN unset)', process.execPath, ['--import', 'tsx', 'main.ts']);
    const out = second.child.stdout();
    const m = out.match(/admin token \(generated, shown once\): (\S+)/);
    expect(m, out).not.toBeNull();
    const generated = m![1]!;
    expect(generated.length).toBeGreaterThanOrEqual(32);
    // the simulator hint carries the generated token so it can be pasted as is
    expect(out).toContain(`ADMIN_TOKEN=${generated} npm run simulate`);
    expect(out).toMatch(/storage:\s+embedded PostgreSQL \(PGlite\)/);

    // the old admin token is not the generated one
    expect((await http(second, 'POST', '/v1/admin/tokens', ADMIN, { role: 'customer', subject: OWNER })).status).toBe(401);
    const token = await customerToken(second, generated);
    const recs = await exportNdjson(second, vin, token);
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(recs[0]!.technical).toEqual({ speedKmh: 10, odometerKm: 100 });
    // the vehicle is still provisioned: same VIN again is a conflict
    expect((await http(second, 'POST', '/v1/admin/vehicles', generated, { vin, ownerId: OWNER })).status).toBe(409);

    const t0 = Date.now();
    second.child.signal('SIGTERM');
    const e = await second.child.exited(STOP_TIMEOUT_MS);
    console.log(`second start: exited ${JSON.stringify(e)} ${Date.now() - t0} ms after SIGTERM`);
    expect(e).toEqual({ code: 0, signal: null });
    expect(await portClosed(second.httpPort, 2000)).toBe(true);
  }, READY_TIMEOUT_MS + 40_000);
});

describe('npm start under a supervisor that signals only the npm process', () => {
  it('`npm start` + SIGTERM to npm: the gateway stops in order and npm exits 0 within 15 s', async () => {
    const g = await start('npm start', 'npm', ['start'], { ADMIN_TOKEN: ADMIN });
    const t0 = Date.now();
    g.child.signal('SIGTERM');
    const e = await g.child.exited(STOP_TIMEOUT_MS);
    const closed = await portClosed(g.httpPort, STOP_TIMEOUT_MS - (Date.now() - t0));
    try {
      // Known failures: npm forwards SIGTERM to `sh -c "tsx main.ts"`, the shell dies of it
      // without passing it on, npm re-raises it on itself (exit 143), and tsx + the gateway
      // keep running, orphaned. With `exec tsx main.ts`, the tsx wrapper relays the signal
      // and SIGKILLs its child when the child has not acknowledged it within 30 ms (a
      // loaded machine): exit 143 mid-stop. `exec node --import tsx main.ts` has no wrapper:
      // the signal reaches the gateway itself.
      expect({ exit: e, gatewayStopped: closed }).toEqual({ exit: { code: 0, signal: null }, gatewayStopped: true });
    } finally {
      g.child.killTree();
    }
  }, READY_TIMEOUT_MS + 40_000);
});

describe('invalid environment', () => {
  it('MQTT_PORT=abc: exit code 2, stderr names MQTT_PORT, nothing started', async () => {
    const httpPort = await freePort();
    const c = spawnChild(process.execPath, ['--import', 'tsx', 'main.ts'], {
      DATA_DIR: dataDir,
      MQTT_PORT: 'abc',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      ADMIN_TOKEN: ADMIN,
      LOG_LEVEL: 'warn',
    });
    const e = await c.exited(30_000);
    expect(e.code, c.stderr()).toBe(2);
    expect(c.stderr()).toContain('MQTT_PORT');
    expect(c.stderr()).toMatch(/MQTT_PORT="abc"/);
    expect(c.stdout()).not.toContain('cardata-gateway is running');
    expect(await portClosed(httpPort, 500)).toBe(true);
  });
});
