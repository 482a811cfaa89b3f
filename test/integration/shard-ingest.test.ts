// Ingest over SHARD_URLS (README "Sharding"), through the real broker, real MQTT clients
// and real databases: every record on its VIN's shard only, PUBACK after that shard's
// commit, and one shard's server stopped under a QoS 1 stream: the other shard's vehicles
// keep their normal PUBACK latency, the stopped shard's vehicles wait and then land exactly
// once; /readyz and /metrics name the shard that is down.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, encodeBatch, record, startTestGateway, testVin } from '../helpers/gateway.ts';
import { provisionVehicles, startFleet, summarizeStored, type Fleet } from '../helpers/fleet.ts';
import { sleep } from '../helpers/proc.ts';
import { startTsdbInstance, type TsdbInstance } from '../helpers/tsdb-instance.ts';
import { localTsdbMissing, skipEachWhen } from '../helpers/skip.ts';
import { typeParsers } from '../../storage/driver/db.ts';
import { bucketOf } from '../../storage/driver/shards.ts';
import type { RunningGateway } from '../../app/gateway.ts';
import mqtt from 'mqtt';

type Query = <R>(sql: string, params?: unknown[]) => Promise<R[]>;

const dbs: TestDatabase[] = [];
const pools: pg.Pool[] = [];
const fleets: Fleet[] = [];
const gateways: RunningGateway[] = [];
let tsdb: TsdbInstance | null = null;

afterEach(async () => {
  await Promise.all(fleets.splice(0).map((f) => f.close().catch(() => {})));
  for (const g of gateways.splice(0)) await g.close().catch(() => {});
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
  for (const d of dbs) await d.drop().catch(() => {});
  if (tsdb) await tsdb.remove().catch((e: Error) => console.log(`could not remove the shard cluster: ${e.message}`));
});

async function db(): Promise<TestDatabase> {
  const d = await createTestDatabase();
  dbs.push(d);
  return d;
}

function queryOf(url: string): Query {
  const pool = new pg.Pool({ connectionString: url, max: 2, types: typeParsers() });
  pool.on('error', () => {});
  pools.push(pool);
  return async <R>(sql: string, params?: unknown[]) => (await pool.query(sql, params)).rows as R[];
}

/** n VINs of each shard (first-start map: bucket b → shard b mod 2). */
function vinsPerShard(n: number): [string[], string[]] {
  const out: [string[], string[]] = [[], []];
  while (out[0].length < n || out[1].length < n) {
    const v = testVin();
    const s = bucketOf(v) % 2;
    if (out[s]!.length < n) out[s]!.push(v);
  }
  return out;
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

async function readyz(port: number): Promise<{ status: number; body: unknown; shardsDown: string | null }> {
  const r = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(3000) });
  return { status: r.status, body: await r.json(), shardsDown: r.headers.get('x-shards-down') };
}

async function shardUp(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^cardata_shard_up\{shard="(\d+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Rows per VIN on one database. */
async function perVin(q: Query, vins: string[]): Promise<Map<string, number>> {
  const rows = await q<{ vin: string; n: number }>('SELECT vin, count(*)::int AS n FROM telemetry WHERE vin = ANY($1) GROUP BY vin', [vins]);
  return new Map(rows.map((r) => [r.vin, r.n]));
}

describe('ingest over two shards', () => {
  it('200 vehicles over 2 shards: every VIN\'s rows on exactly its shard, none missing, none in the control database; quarantine on the shard too', async () => {
    const control = await db();
    const s0 = await db();
    const s1 = await db();
    const gw = await startTestGateway(control.url, { SHARD_URLS: `${s0.url},${s1.url}`, SECRET_SCRYPT_COST: '1024' });
    gateways.push(gw);
    const ready = await readyz(gw.httpPort);
    expect(ready).toEqual({ status: 200, body: { status: 'ready', broker: true, database: true }, shardsDown: 'none' });

    const vins = Array.from({ length: 200 }, () => testVin());
    const vehicles = await provisionVehicles(gw.httpPort, ADMIN_TOKEN, vins);
    const MESSAGES = 5;
    const RPM = 4;
    const baseMs = Date.now() - 3_600_000;
    const fleet = startFleet({ mqttPort: gw.mqttPort!, vehicles, messages: MESSAGES, recordsPerMessage: RPM, window: 5, intervalMs: 20, baseMs });
    fleets.push(fleet);
    await fleet.done(60_000);

    const q = [queryOf(s0.url), queryOf(s1.url)];
    const on = [await perVin(q[0]!, vins), await perVin(q[1]!, vins)];
    const wrong: string[] = [];
    for (const vin of vins) {
      const own = bucketOf(vin) % 2;
      if (on[own]!.get(vin) !== MESSAGES * RPM || on[1 - own]!.has(vin)) wrong.push(`${vin}: shard ${own} has ${on[own]!.get(vin) ?? 0}, shard ${1 - own} has ${on[1 - own]!.get(vin) ?? 0}`);
    }
    expect(wrong).toEqual([]);
    // Both shards took vehicles (about half each), and the control database none.
    expect(on[0]!.size + on[1]!.size).toBe(200);
    expect(Math.min(on[0]!.size, on[1]!.size)).toBeGreaterThan(60);
    expect(await control.query('SELECT count(*)::int AS n FROM telemetry')).toEqual([{ n: 0 }]);
    // The stream log entries (written with the rows) are on the shards, one vehicle each.
    const logged = [
      await q[0]!<{ n: number }>('SELECT count(DISTINCT vin)::int AS n FROM stream_log WHERE vin = ANY($1)', [vins]),
      await q[1]!<{ n: number }>('SELECT count(DISTINCT vin)::int AS n FROM stream_log WHERE vin = ANY($1)', [vins]),
    ];
    expect(logged[0]![0]!.n + logged[1]![0]!.n).toBe(200);

    // A bad payload is quarantined on its VIN's shard, and acknowledged.
    await fleet.close();
    const v = vehicles[0]!;
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: v.vin, username: v.vin, password: v.secret, protocolVersion: 4 });
    await c.publishAsync(`v1/vehicles/${v.vin}/telemetry`, Buffer.from([0xff, 0xff, 0xff]), { qos: 1 });
    await c.endAsync();
    const own = bucketOf(v.vin) % 2;
    expect(await q[own]!('SELECT reason FROM quarantine WHERE vin = $1', [v.vin])).toEqual([{ reason: 'GW_ERR_DECODE' }]);
    expect(await q[1 - own]!('SELECT reason FROM quarantine WHERE vin = $1', [v.vin])).toEqual([]);
    expect(await control.query('SELECT count(*)::int AS n FROM quarantine')).toEqual([{ n: 0 }]);
    // A record of the second shard's vehicle sent again after it was stored: stored once.
    const v2 = vehicles.find((x) => bucketOf(x.vin) % 2 === 1)!;
    const c2 = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: v2.vin, username: v2.vin, password: v2.secret, protocolVersion: 4 });
    const again = encodeBatch(v2.vin, [record(1, baseMs + 1, { technical: { speedKmh: 1, odometerKm: 1000 } })]);
    await c2.publishAsync(`v1/vehicles/${v2.vin}/telemetry`, again, { qos: 1 });
    await c2.endAsync();
    expect(await q[1]!('SELECT count(*)::int AS n FROM telemetry WHERE vin = $1', [v2.vin])).toEqual([{ n: MESSAGES * RPM }]);
  }, 120_000);

  describe('with one shard on a server of its own', () => {
    skipEachWhen(localTsdbMissing());
    it('shard 1\'s server stopped for 4 s under a QoS 1 stream: shard 0\'s vehicles keep their PUBACK latency, shard 1\'s wait and land exactly once; /readyz stays 200 naming shard 1', async () => {
      tsdb = await startTsdbInstance();
      const control = await db();
      const s0 = await db();
      const READYZ_CACHE_MS = 500;
      const gw = await startTestGateway(control.url, {
        SHARD_URLS: `${s0.url},${tsdb.url}`,
        SECRET_SCRYPT_COST: '1024',
        READYZ_CACHE_MS: String(READYZ_CACHE_MS),
        WRITER_RETRY_MAX_MS: '500',
      });
      gateways.push(gw);
      const [vin0, vin1] = vinsPerShard(10);
      const vehicles = await provisionVehicles(gw.httpPort, ADMIN_TOKEN, [...vin0, ...vin1]);
      const MESSAGES = 150;
      const RPM = 5;
      const fleet = startFleet({ mqttPort: gw.mqttPort!, vehicles, messages: MESSAGES, recordsPerMessage: RPM, window: 10, intervalMs: 40, baseMs: Date.now() - 3_600_000 });
      fleets.push(fleet);
      const onShard = (vin: string) => (vin0.includes(vin) ? 0 : 1);

      await until(() => fleet.acked() >= 0.3 * fleet.total, 40_000, '30% acknowledged');
      const stopIssued = Date.now();
      await tsdb.stop();
      const stopDone = Date.now();
      // Probes started after the stop see it (a probe from before is reused READYZ_CACHE_MS).
      await sleep(READYZ_CACHE_MS + 300);
      const during = await readyz(gw.httpPort);
      const upDuring = await shardUp(gw.httpPort);
      await sleep(Math.max(0, 4000 - (Date.now() - stopDone)));
      const startIssued = Date.now();
      await tsdb.start();
      const startDone = Date.now();
      await fleet.done(60_000);
      await until(async () => (await readyz(gw.httpPort)).shardsDown === 'none', 10_000, 'x-shards-down: none after the restart');
      const after = await readyz(gw.httpPort);

      // PUBACK latency of shard 0's vehicles: messages sent before the outage vs during it.
      const lat = (shard: number, from: number, to: number) =>
        fleet.vehicles
          .filter((v) => onShard(v.vin) === shard)
          .flatMap((v) => v.messages.filter((m) => m.firstSentAt !== null && m.firstSentAt >= from && m.firstSentAt < to && m.ackedAt !== null).map((m) => m.ackedAt! - m.firstSentAt!));
      // Baseline: the 3 s before the stop (the connect burst at the start is not "normal").
      const before0 = lat(0, stopIssued - 3000, stopIssued);
      const during0 = lat(0, stopDone, startIssued);
      // PUBACKs to shard 1's vehicles while its server was down (after the stop returned: a
      // commit that made it just before may still be acknowledged while the stop runs).
      const acks1During = fleet.vehicles.filter((v) => onShard(v.vin) === 1).flatMap((v) => v.messages.filter((m) => m.ackedAt !== null && m.ackedAt > stopDone + 100 && m.ackedAt < startIssued)).length;
      const q0 = queryOf(s0.url);
      const q1 = queryOf(tsdb.url);
      const fleet0 = { vehicles: fleet.vehicles.filter((v) => onShard(v.vin) === 0) } as Fleet;
      const fleet1 = { vehicles: fleet.vehicles.filter((v) => onShard(v.vin) === 1) } as Fleet;
      const st0 = await summarizeStored(q0, fleet0, MESSAGES * RPM);
      const st1 = await summarizeStored(q1, fleet1, MESSAGES * RPM);
      // Nothing on the wrong shard.
      const cross = [...(await perVin(q0, vin1)).keys(), ...(await perVin(q1, vin0)).keys()];
      console.log(
        [
          '[shards] shard 1 stopped under QoS 1',
          `  outage ${startIssued - stopIssued} ms (stop ${stopDone - stopIssued} ms, start ${startDone - startIssued} ms)`,
          `  shard 0 PUBACK ms before: n ${before0.length} p50 ${pct(before0, 50)} p99 ${pct(before0, 99)} max ${Math.max(...before0)}; during: n ${during0.length} p50 ${pct(during0, 50)} p99 ${pct(during0, 99)} max ${Math.max(...during0)}`,
          `  shard 1 PUBACKs during the outage ${acks1During}; /readyz during ${during.status} ${JSON.stringify(during.body)} x-shards-down ${during.shardsDown}; cardata_shard_up ${JSON.stringify(upDuring)}`,
          `  stored shard 0 rows ${st0.rows} distinct ${st0.distinct} missing ${st0.missing}; shard 1 rows ${st1.rows} distinct ${st1.distinct} missing ${st1.missing}; on the wrong shard ${cross.length}`,
        ].join('\n'),
      );
      // The instance stays ready with one shard down, and says which one.
      expect(during).toEqual({ status: 200, body: { status: 'ready', broker: true, database: true }, shardsDown: '1' });
      expect(upDuring).toEqual({ '0': 1, '1': 0 });
      expect(after.shardsDown).toBe('none');
      // Shard 0's vehicles kept flowing with their normal latency; shard 1's were held.
      expect(during0.length).toBeGreaterThan(200);
      expect(pct(during0, 99)).toBeLessThan(Math.max(250, 4 * pct(before0, 99)));
      expect(acks1During).toBe(0);
      // Every record once, on its own shard.
      for (const st of [st0, st1]) {
        expect(st.perVinProblems).toEqual([]);
        expect(st.duplicates).toBe(0);
        expect(st.missing).toBe(0);
        expect(st.quarantined).toBe(0);
      }
      expect(st0.rows + st1.rows).toBe(20 * MESSAGES * RPM);
      expect(cross).toEqual([]);
    }, 150_000);

    it('a gateway started while shard 1\'s server is down: starts, shard 0\'s vehicles flow, shard 1 is migrated when it comes back and before its first row, every record once', async () => {
      tsdb ??= await startTsdbInstance();
      if (!(await tsdb.running())) await tsdb.start();
      // A fresh, never migrated database on the second server.
      const u = new URL(tsdb.url);
      const admin = new pg.Client({ connectionString: tsdb.url });
      await admin.connect();
      await admin.query('CREATE DATABASE late');
      await admin.end();
      u.pathname = '/late';
      const lateUrl = u.toString();
      await tsdb.stop();
      const control = await db();
      const s0 = await db();
      const gw = await startTestGateway(control.url, { SHARD_URLS: `${s0.url},${lateUrl}`, SECRET_SCRYPT_COST: '1024', READYZ_CACHE_MS: '200', WRITER_RETRY_MAX_MS: '500' });
      gateways.push(gw);
      await until(async () => (await readyz(gw.httpPort)).shardsDown === '1', 5000, 'x-shards-down: 1');
      expect((await readyz(gw.httpPort)).status).toBe(200);
      const [vin0, vin1] = vinsPerShard(5);
      const vehicles = await provisionVehicles(gw.httpPort, ADMIN_TOKEN, [...vin0, ...vin1]);
      const MESSAGES = 40;
      const RPM = 5;
      const fleet = startFleet({ mqttPort: gw.mqttPort!, vehicles, messages: MESSAGES, recordsPerMessage: RPM, window: 10, intervalMs: 20, baseMs: Date.now() - 3_600_000 });
      fleets.push(fleet);
      const acked = (vs: string[]) => fleet.vehicles.filter((v) => vs.includes(v.vin)).reduce((n, v) => n + v.acked, 0);
      await until(() => acked(vin0) === 5 * MESSAGES, 30_000, "shard 0's vehicles all acknowledged");
      expect(acked(vin1)).toBe(0);
      await tsdb.start();
      await fleet.done(60_000);
      const q1 = queryOf(lateUrl);
      const applied = await q1<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
      expect(applied.map((r) => r.name)).toContain('008_shards.sql');
      const st0 = await summarizeStored(queryOf(s0.url), { vehicles: fleet.vehicles.filter((v) => vin0.includes(v.vin)) } as Fleet, MESSAGES * RPM);
      const st1 = await summarizeStored(q1, { vehicles: fleet.vehicles.filter((v) => vin1.includes(v.vin)) } as Fleet, MESSAGES * RPM);
      for (const st of [st0, st1]) {
        expect(st.perVinProblems).toEqual([]);
        expect(st.rows).toBe(5 * MESSAGES * RPM);
        expect(st.duplicates).toBe(0);
      }
      await until(async () => (await readyz(gw.httpPort)).shardsDown === 'none', 10_000, 'x-shards-down: none');
    }, 120_000);
  });
});
