// Issue 23 item 4: API reads, the portal's included, run on the API's pool
// (DB_API_POOL_MAX), never on the writer's (DB_POOL_MAX): however many are stuck, the
// connections PUBACKs wait for are not theirs (README "API reads cannot take the
// connections PUBACKs need").
//
// The test makes the API pool's connections provably busy: it takes an ACCESS EXCLUSIVE
// lock on ownership_periods, which ingest never reads, and sends more portal requests
// (GET /v1/vehicles, which reads it and nothing else) than the API pool has connections.
// Each one that gets a connection keeps it, waiting for the lock inside PostgreSQL
// (pg_stat_activity shows exactly DB_API_POOL_MAX of them); the others, and any further
// API request, wait for a connection. Meanwhile a vehicle publishes at QoS 1 through a
// real MQTT client and every PUBACK must come promptly. Were the portal's reads on the
// writer's pool (as before: createSeriesRepo(db, shards)), they would hold its
// connections instead and the PUBACKs would wait for the lock.
import { afterAll, describe, expect } from 'vitest';
import pg from 'pg';
import { performance } from 'node:perf_hooks';
import type { TestDatabase } from '../helpers/db.ts';
import { gatewayTest } from '../helpers/fixtures.ts';
import { FULL_TECHNICAL, api, connectVehicle, encodeBatch, provision, publish, record, testVin, waitFor } from '../helpers/gateway.ts';
import { mintToken } from '../helpers/grants.ts';
import type { RunningGateway } from '../../app/gateway.ts';

const API_POOL = 2;
const WRITER_POOL = 2;
/** Portal requests sent while the lock is held: more than either pool has connections. */
const READS = API_POOL + 2;
const MESSAGES = 100;
/** How long the test holds the API pool at most (below the pool's 5 s connection wait). */
const HOLD_MS = 3000;

const test = gatewayTest({
  JWT_KEYS: 'itest1:read-pool-test-signing-secret-0123456789',
  DB_API_POOL_MAX: String(API_POOL),
  DB_POOL_MAX: String(WRITER_POOL),
});

let db: TestDatabase;
let gw: RunningGateway;
let locker: pg.Client;
test.beforeAll(async ({ db: d, gw: g }) => {
  db = d;
  gw = g;
  locker = new pg.Client({ connectionString: db.url });
  await locker.connect();
});
afterAll(async () => {
  await locker?.end();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Gateway backends waiting for a lock while reading the owner's vehicles (series.ownedBy). */
async function portalReadsWaiting(): Promise<number> {
  const r = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
        AND query ILIKE 'SELECT vin, started_at FROM ownership_periods%'`,
  );
  return r[0]!.n;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

describe('API reads on the API pool (issue 23, item 4)', () => {
  test('portal reads holding every API connection do not delay PUBACKs', { timeout: 60_000 }, async () => {
    const owner = `pool-owner-${testVin().slice(-6)}`;
    const { vin, secret } = await provision(gw, testVin(), owner);
    const token = await mintToken(gw, 'customer', owner);
    const client = await connectVehicle(gw, vin, secret);
    const topic = `v1/vehicles/${vin}/telemetry`;
    let seq = 0;
    const message = () => encodeBatch(vin, [record(++seq, Date.now(), { technical: FULL_TECHNICAL })]);
    // Warm up: the vehicle's consent is cached, the writer's connections are open.
    for (let i = 0; i < 5; i++) await publish(client, topic, message());
    const before = await api(gw, 'GET', '/v1/vehicles', undefined, token);
    expect(before.status).toBe(200);
    expect(before.body.vehicles).toEqual([expect.objectContaining({ vin })]);

    let held = false;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE ownership_periods IN ACCESS EXCLUSIVE MODE');
      held = true;
      const heldAt = Date.now();
      const reads = Array.from({ length: READS }, () => api(gw, 'GET', '/v1/vehicles', undefined, token));
      // Every API connection is checked out, stuck on the lock; the other reads queue.
      await waitFor(async () => (await portalReadsWaiting()) === API_POOL, 5000);
      // A further API request needing a connection but not the lock (a token is recorded
      // in minted_tokens) cannot get one.
      let mintSettled = false;
      const mint = api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: `${owner}-2` }).finally(() => {
        mintSettled = true;
      });

      // The vehicle publishes, one message at a time, each awaited to its PUBACK.
      const latencies: number[] = [];
      while (latencies.length < MESSAGES) {
        const left = heldAt + HOLD_MS - Date.now();
        if (left <= 0) break;
        const t0 = performance.now();
        const acked = await Promise.race([publish(client, topic, message()).then(() => true), sleep(left).then(() => false)]);
        if (!acked) break;
        latencies.push(performance.now() - t0);
      }
      // Still exhausted after the last PUBACK: nothing let go of the pool meanwhile.
      expect(await portalReadsWaiting(), 'API connections stuck on the lock').toBe(API_POOL);
      const pending = await Promise.race([Promise.all(reads).then(() => false), sleep(50).then(() => true)]);
      expect(pending, 'the portal reads are still waiting').toBe(true);
      const sorted = [...latencies].sort((a, b) => a - b);
      const stats = sorted.length
        ? { acked: sorted.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1)! }
        : { acked: 0, p50: NaN, p99: NaN, max: NaN };
      console.log(`PUBACKs with the API pool (${API_POOL}) held: ${JSON.stringify({ ...stats, p50: +stats.p50.toFixed(1), p99: +stats.p99.toFixed(1), max: +stats.max.toFixed(1) })} ms`);
      expect(stats.acked, `PUBACKs within ${HOLD_MS} ms while the API pool was held`).toBe(MESSAGES);
      expect(stats.p99, 'PUBACK p99, ms').toBeLessThan(500);
      expect(mintSettled, 'an API request needing a connection waits for one').toBe(false);

      await locker.query('COMMIT');
      held = false;
      // Once the lock goes, every read and the mint complete.
      for (const r of await Promise.all(reads)) {
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        expect(r.body.vehicles).toEqual([expect.objectContaining({ vin })]);
      }
      expect((await mint).status).toBe(201);
      const stored = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry WHERE vin = $1', [vin]);
      expect(stored[0]!.n).toBe(seq);
    } finally {
      if (held) await locker.query('ROLLBACK').catch(() => {});
      await client.endAsync();
    }
  });
});
