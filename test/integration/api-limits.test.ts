// The readers must not stall the writers, and slow or greedy HTTP clients are bounded
// (issue 17): a pool of the API's own, concurrent exports per caller, a cached readiness
// probe, request and header timeouts, server-made request ids, /metrics on its own port.
//
// Blocking API reads deterministically: the test takes an ACCESS EXCLUSIVE lock on
// ownership_periods, which every owner request reads first and ingest never touches; the
// requests then hold their pool connections until the lock is released.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import type { MqttClient } from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, api, connectVehicle, encodeBatch, provision, publish, record, testVin } from '../helpers/gateway.ts';
import { loadConfig } from '../../config/index.ts';
import { startGateway, type RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;
const logLines: string[] = [];
const clients: MqttClient[] = [];

const POOL = 3;
const API_POOL = 3;

function env(extra: Record<string, string> = {}) {
  return loadConfig({
    DATABASE_URL: db.url,
    MQTT_HOST: '127.0.0.1',
    MQTT_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    ADMIN_TOKEN,
    AUTH_FAILURES_MAX: '100000',
    AUTH_FAILURES_PER_VIN_MAX: '100000',
    ...extra,
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString('utf8'));
      cb();
    },
  });
  gw = await startGateway(
    env({ DB_POOL_MAX: String(POOL), DB_API_POOL_MAX: String(API_POOL), EXPORTS_PER_CALLER_MAX: '2', READYZ_CACHE_MS: '1000', HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '2000' }),
    pino({ level: 'info' }, sink),
  );
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await gw?.close();
  await db?.drop();
});

async function owned() {
  const owner = `owner-${Math.random().toString(36).slice(2, 10)}`;
  const { vin, secret } = await provision(gw, testVin(), owner);
  const tok = await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: owner });
  return { vin, secret, owner, token: tok.body.token as string };
}

/** Holds ownership_periods locked until release() (a transaction on a connection of the test's own). */
async function lockOwnership(): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE ownership_periods IN ACCESS EXCLUSIVE MODE');
  return {
    async release() {
      await c.query('ROLLBACK');
      await c.end();
    },
  };
}

const get = (path: string, token: string) => fetch(`http://127.0.0.1:${gw.httpPort}${path}`, { headers: { authorization: `Bearer ${token}` } });

describe('API reads and ingest have separate pools (DB_POOL_MAX, DB_API_POOL_MAX)', () => {
  it(`with ${API_POOL * 2} API reads stuck in the database, a vehicle still gets its PUBACK at once`, async () => {
    const v = await owned();
    const client = await connectVehicle(gw, v.vin, v.secret);
    clients.push(client);
    await publish(client, `v1/vehicles/${v.vin}/telemetry`, encodeBatch(v.vin, [record(1, Date.now())]));
    const lock = await lockOwnership();
    const stuck = Array.from({ length: API_POOL * 2 }, () => get(`/v1/vehicles/${v.vin}/consent`, v.token));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      const acked = await Promise.race([
        publish(client, `v1/vehicles/${v.vin}/telemetry`, encodeBatch(v.vin, [record(2, Date.now())])).then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 3000)),
      ]);
      const ms = performance.now() - t0;
      console.log(`PUBACK with ${API_POOL * 2} API reads stuck: ${acked ? `${ms.toFixed(0)} ms` : 'none within 3000 ms'}`);
      expect(acked).toBe(true);
    } finally {
      await lock.release();
    }
    expect((await Promise.all(stuck)).map((r) => r.status)).toEqual(Array(API_POOL * 2).fill(200));
  });
});

describe('concurrent exports per caller (EXPORTS_PER_CALLER_MAX 2)', () => {
  it('the third export of one caller at once is refused with 429 API_ERR_TOO_MANY_EXPORTS; another caller is not; once they finish, exports run again', async () => {
    const a = await owned();
    const b = await owned();
    const lock = await lockOwnership();
    const first = [get(`/v1/vehicles/${a.vin}/cardata`, a.token), get(`/v1/vehicles/${a.vin}/cardata?format=csv`, a.token)];
    const others: Promise<Response>[] = [];
    try {
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      const third = await get(`/v1/vehicles/${a.vin}/cardata`, a.token);
      const ms = performance.now() - t0;
      others.push(get(`/v1/vehicles/${b.vin}/cardata`, b.token));
      const body = (await third.json()) as { code: string };
      console.log(`third concurrent export: ${third.status} ${body.code} in ${ms.toFixed(0)} ms`);
      expect([third.status, body.code]).toEqual([429, 'API_ERR_TOO_MANY_EXPORTS']);
    } finally {
      await lock.release();
    }
    const done = await Promise.all([...first, ...others]);
    expect(done.map((r) => r.status)).toEqual([200, 200, 200]);
    await Promise.all(done.map((r) => r.arrayBuffer()));
    await new Promise((r) => setTimeout(r, 100));
    expect((await get(`/v1/vehicles/${a.vin}/cardata`, a.token)).status).toBe(200);
  });
});

describe('/readyz (READYZ_CACHE_MS 1000)', () => {
  it('50 probes at once share one database probe; a probe a cache period later makes a new one', async () => {
    const t0 = performance.now();
    const bodies = await Promise.all(
      Array.from({ length: 50 }, () =>
        fetch(`http://127.0.0.1:${gw.httpPort}/readyz`).then(async (r) => ({ ...((await r.json()) as { status: string }), databaseCheckedAt: r.headers.get('x-database-checked-at') })),
      ),
    );
    const elapsed = performance.now() - t0;
    const distinct = new Set(bodies.map((b) => b.databaseCheckedAt).filter((x) => typeof x === 'string'));
    console.log(`/readyz: 50 concurrent probes in ${elapsed.toFixed(0)} ms, ${distinct.size} database probe(s)`);
    expect(bodies.every((b) => b.status === 'ready')).toBe(true);
    // One probe per cache period the 50 answers took (on a loaded machine they may span two).
    expect(distinct.size).toBeGreaterThanOrEqual(1);
    expect(distinct.size).toBeLessThanOrEqual(1 + Math.floor(elapsed / 1000));
    await new Promise((r) => setTimeout(r, 1100));
    const later = (await fetch(`http://127.0.0.1:${gw.httpPort}/readyz`)).headers.get('x-database-checked-at');
    expect(later).not.toBeNull();
    expect(later).not.toBe([...distinct][0]);
  });
});

/** A raw HTTP connection: sends `parts` with pauses, resolves with what came back and when it closed. */
function slowClient(parts: string[], pauseMs: number, maxMs: number): Promise<{ closedMs: number | null; answer: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: gw.httpPort });
    const t0 = performance.now();
    let answer = '';
    let closedMs: number | null = null;
    s.on('data', (d) => (answer += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      closedMs = performance.now() - t0;
      resolve({ closedMs, answer });
    });
    let i = 0;
    const next = () => {
      if (i < parts.length && !s.destroyed) s.write(parts[i++]!);
      if (i < parts.length) setTimeout(next, pauseMs);
    };
    s.once('connect', next);
    setTimeout(() => {
      if (closedMs === null) {
        s.destroy();
        resolve({ closedMs: null, answer });
      }
    }, maxMs);
  });
}

describe('HTTP timeouts (HTTP_HEADERS_TIMEOUT_MS 1000, HTTP_REQUEST_TIMEOUT_MS 2000)', () => {
  it('headers trickled for ever (slow-loris) are answered 408 and closed within about the headers timeout; a normal request meanwhile is answered', async () => {
    const header = Array.from({ length: 100 }, (_, i) => `x-h${i}: ${'a'.repeat(10)}\r\n`);
    const slow = slowClient(['GET /healthz HTTP/1.1\r\nHost: x\r\n', ...header], 200, 6000);
    const ok = await fetch(`http://127.0.0.1:${gw.httpPort}/healthz`);
    expect(ok.status).toBe(200);
    const r = await slow;
    console.log(`slow headers: closed after ${r.closedMs?.toFixed(0) ?? 'never (6000)'} ms, answer ${JSON.stringify(r.answer.split('\r\n')[0])}`);
    expect(r.closedMs).not.toBeNull();
    expect(r.closedMs!).toBeLessThan(3000);
    expect(r.answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
  });

  it('a body trickled slower than the request timeout is answered 408 and closed', async () => {
    const parts = [`POST /v1/admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{`, ...Array(40).fill(' ')];
    const r = await slowClient(parts, 200, 8000);
    console.log(`slow body: closed after ${r.closedMs?.toFixed(0) ?? 'never (8000)'} ms, answer ${JSON.stringify(r.answer.split('\r\n')[0])}`);
    expect(r.closedMs).not.toBeNull();
    expect(r.closedMs!).toBeLessThan(4500);
    expect(r.answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
  });
});

describe('request ids', () => {
  it('are generated by the server (UUID, in x-request-id); a client-sent x-request-id is logged as client_request_id, never as ours', async () => {
    const theirs = `client-${Math.random().toString(36).slice(2)}`;
    const r = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/catalogue`, { headers: { 'x-request-id': theirs } });
    expect(r.status).toBe(200);
    const ours = r.headers.get('x-request-id') ?? '';
    expect(ours).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    await new Promise((res) => setTimeout(res, 100));
    const lines = logLines.map((l) => JSON.parse(l) as { reqId?: string; client_request_id?: string }).filter((l) => l.reqId === ours || l.client_request_id === theirs || l.reqId === theirs);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect([l.reqId, l.client_request_id]).toEqual([ours, theirs]);
  });
});

describe('METRICS_PORT', () => {
  it('serves /metrics on its own listener only; the public HTTP port answers 404 for it', async () => {
    const free = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const g = await startGateway(env({ METRICS_PORT: String(free), METRICS_HOST: '127.0.0.1' }), pino({ level: 'silent' }));
    try {
      const pub = await fetch(`http://127.0.0.1:${g.httpPort}/metrics`);
      const internal = await fetch(`http://127.0.0.1:${free}/metrics`);
      const text = await internal.text();
      console.log(`METRICS_PORT: public /metrics ${pub.status}, internal ${internal.status}`);
      expect(pub.status).toBe(404);
      expect(internal.status).toBe(200);
      expect(text).toContain('cardata_');
    } finally {
      await g.close();
    }
  });
});
