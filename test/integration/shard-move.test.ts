// The bucket move (README "Sharding", "Moving a bucket"): a third shard appended to
// SHARD_URLS, then one bucket moved from shard 1 to it with the CLI while its vehicles and
// others stream QoS 1 through a running gateway. Nothing lost, nothing duplicated, every row
// copied exactly, nothing left on the old shard, the map switched, and the other vehicles
// never held.
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import mqtt from 'mqtt';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ADMIN_TOKEN, FULL_CONSUMPTION, encodeBatch, record, startTestGateway, testVin } from '../helpers/gateway.ts';
import { mintToken } from '../helpers/grants.ts';
import { provisionVehicles, startFleet, summarizeStored, type Fleet } from '../helpers/fleet.ts';
import { killAllChildren, runChild } from '../helpers/proc.ts';
import { openSse } from '../helpers/sse.ts';
import { createPgDb, typeParsers } from '../../storage/driver/db.ts';
import { bucketOf, openShards } from '../../storage/driver/shards.ts';
import { moveBucket } from '../../storage/ops/shard-move.ts';
import type { RunningGateway } from '../../app/gateway.ts';

type Query = <R>(sql: string, params?: unknown[]) => Promise<R[]>;
const dbs: TestDatabase[] = [];
const pools: pg.Pool[] = [];
let gw: RunningGateway | null = null;
let fleet: Fleet | null = null;

afterAll(async () => {
  killAllChildren();
  await fleet?.close().catch(() => {});
  await gw?.close().catch(() => {});
  await Promise.all(pools.map((p) => p.end().catch(() => {})));
  for (const d of dbs) await d.drop().catch(() => {});
});

function queryOf(url: string): Query {
  const pool = new pg.Pool({ connectionString: url, max: 2, types: typeParsers() });
  pool.on('error', () => {});
  pools.push(pool);
  return async <R>(sql: string, params?: unknown[]) => (await pool.query(sql, params)).rows as R[];
}

/** `count` VINs sharing one bucket owned by shard 1 (odd, first-start map b mod 2), and that bucket. */
function vinsOfOneBucket(count: number): { bucket: number; vins: string[] } {
  const by = new Map<number, string[]>();
  for (let i = 0; i < 500_000; i++) {
    const v = testVin();
    const b = bucketOf(v);
    if (b % 2 !== 1) continue;
    const list = by.get(b) ?? [];
    list.push(v);
    by.set(b, list);
    if (list.length === count) return { bucket: b, vins: list };
  }
  throw new Error('no bucket with enough VINs');
}

function otherVins(n: number, shard: number, notBucket: number): string[] {
  const out: string[] = [];
  while (out.length < n) {
    const v = testVin();
    if (bucketOf(v) % 2 === shard && bucketOf(v) !== notBucket) out.push(v);
  }
  return out;
}

async function rowsOf(q: Query, vins: string[]): Promise<{ telemetry: number; obfcm: number; quarantine: number; streamLog: number }> {
  const one = async (sql: string) => (await q<{ n: number }>(sql, [vins]))[0]!.n;
  return {
    telemetry: await one('SELECT count(*)::int AS n FROM telemetry WHERE vin = ANY($1)'),
    obfcm: await one('SELECT count(*)::int AS n FROM obfcm_readings WHERE vin = ANY($1)'),
    quarantine: await one('SELECT count(*)::int AS n FROM quarantine WHERE vin = ANY($1)'),
    streamLog: await one('SELECT count(*)::int AS n FROM stream_log WHERE vin = ANY($1)'),
  };
}

describe('moving a bucket to an added shard', () => {
  it('under a QoS 1 stream: nothing lost, nothing duplicated, rows copied exactly, old shard emptied of the bucket, map switched, other vehicles not held', async () => {
    const control = await createTestDatabase();
    const s = [await createTestDatabase(), await createTestDatabase(), await createTestDatabase()];
    dbs.push(control, ...s);
    const q = s.map((d) => queryOf(d.url));

    // First start with two shards fills the map (b → b mod 2) …
    const c0 = createPgDb(control.url, { max: 2 });
    await (await openShards(c0, [s[0]!.url, s[1]!.url], { role: 'test' })).close();
    await c0.close();
    // … then a third shard is appended: it owns no bucket until one is moved to it.
    const urls = s.map((d) => d.url).join(',');
    gw = await startTestGateway(control.url, { SHARD_URLS: urls, SECRET_SCRYPT_COST: '1024' });
    expect(await control.query('SELECT count(*)::int AS n FROM shard_map WHERE shard = 2')).toEqual([{ n: 0 }]);

    const { bucket, vins: moved } = vinsOfOneBucket(4);
    const still = [...otherVins(2, 0, bucket), ...otherVins(2, 1, bucket)];
    const vehicles = await provisionVehicles(gw.httpPort, ADMIN_TOKEN, [...moved, ...still]);
    // The fourth VIN of the bucket sends one OBFCM record and one undecodable payload
    // (a quarantine row), so every table's rows move.
    const extra = vehicles.find((v) => v.vin === moved[3])!;
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: extra.vin, username: extra.vin, password: extra.secret, protocolVersion: 4 });
    await c.publishAsync(`v1/vehicles/${extra.vin}/telemetry`, encodeBatch(extra.vin, [record(7, Date.now(), { consumption: FULL_CONSUMPTION })]), { qos: 1 });
    await c.publishAsync(`v1/vehicles/${extra.vin}/telemetry`, Buffer.from([0xff, 0x01]), { qos: 1 });
    await c.endAsync();
    const extraBefore = {
      telemetry: await q[1]!('SELECT * FROM telemetry WHERE vin = $1', [extra.vin]),
      obfcm: await q[1]!('SELECT * FROM obfcm_readings WHERE vin = $1', [extra.vin]),
      quarantine: await q[1]!('SELECT received_at, vin, reason, detail, seq, recorded_at, payload, payload_bytes, dedupe_key FROM quarantine WHERE vin = $1', [extra.vin]),
    };
    expect([extraBefore.telemetry.length, extraBefore.obfcm.length, extraBefore.quarantine.length]).toEqual([1, 1, 1]);

    const streaming = vehicles.filter((v) => v.vin !== extra.vin);
    const MESSAGES = 300;
    const RPM = 5;
    fleet = startFleet({ mqttPort: gw.mqttPort!, vehicles: streaming, messages: MESSAGES, recordsPerMessage: RPM, window: 10, intervalMs: 40, baseMs: Date.now() });
    const f = fleet;
    const t0 = Date.now();
    while (f.acked() < 0.1 * f.total) {
      if (Date.now() - t0 > 40_000) throw new Error('stream did not start');
      await new Promise((r) => setTimeout(r, 25));
    }
    // The owner of a moved vehicle follows its live stream through the move.
    const ownerToken = await mintToken(gw, 'customer', 'owner-faults');
    const live = await openSse(gw.httpPort, `/v1/vehicles/${moved[0]}/stream`, ownerToken);
    expect(live.status).toBe(200);
    await live.until((ev) => ev.some((e) => e.event === 'record'), 20_000);
    // The move runs in this process (what `cli shard-move` runs; the CLI itself is run
    // below), so that it surely happens while the vehicles stream.
    const ackedAtStart = f.acked();
    const moveStart = Date.now();
    const mc = createPgDb(control.url, { max: 2 });
    const ms = await openShards(mc, s.map((d) => d.url), { role: 'test-move', prepare: false });
    const events: string[] = [];
    const DRAIN_MS = 500;
    const result = await moveBucket(mc, ms, bucket, 2, { drainMs: DRAIN_MS, log: (e) => events.push(e) });
    await ms.close();
    await mc.close();
    const moveEnd = Date.now();
    const ackedAtEnd = f.acked();
    expect(f.acked(), 'the stream was still running when the move ended').toBeLessThan(f.total);
    expect(events).toEqual(['shard_move_marked', 'shard_move_copied', 'shard_move_switched', 'shard_move_done']);
    await f.done(60_000);
    const onShard = [await rowsOf(q[0]!, moved), await rowsOf(q[1]!, moved), await rowsOf(q[2]!, moved)];
    const movedFleet = { vehicles: f.vehicles.filter((v) => moved.includes(v.vin)) } as Fleet;
    const stillFleet0 = { vehicles: f.vehicles.filter((v) => still.slice(0, 2).includes(v.vin)) } as Fleet;
    const stillFleet1 = { vehicles: f.vehicles.filter((v) => still.slice(2).includes(v.vin)) } as Fleet;
    const sum2 = await summarizeStored(q[2]!, movedFleet, MESSAGES * RPM);
    const sum0 = await summarizeStored(q[0]!, stillFleet0, MESSAGES * RPM);
    const sum1 = await summarizeStored(q[1]!, stillFleet1, MESSAGES * RPM);
    // Longest PUBACK wait of a moved vehicle vs the others, for messages sent during the move.
    const maxWait = (vs: string[]) =>
      Math.max(0, ...f.vehicles.filter((v) => vs.includes(v.vin)).flatMap((v) => v.messages.filter((m) => m.firstSentAt !== null && m.firstSentAt >= moveStart && m.firstSentAt < moveEnd && m.ackedAt !== null).map((m) => m.ackedAt! - m.firstSentAt!)));
    const acksDuring = (vs: string[]) => f.vehicles.filter((v) => vs.includes(v.vin)).flatMap((v) => v.messages.filter((m) => m.ackedAt !== null && m.ackedAt > moveStart && m.ackedAt < moveEnd)).length;
    const sentDuring = (vs: string[]) => f.vehicles.filter((v) => vs.includes(v.vin)).flatMap((v) => v.messages.filter((m) => m.firstSentAt !== null && m.firstSentAt >= moveStart && m.firstSentAt < moveEnd)).length;
    console.log(
      [
        `[shards] bucket ${bucket} moved 1 → 2 in ${moveEnd - moveStart} ms (drain 500 ms included): ${JSON.stringify(result)}`,
        `  PUBACKs during the move ${ackedAtEnd - ackedAtStart} (moved vehicles ${acksDuring(moved)}, others ${acksDuring(still)}); longest PUBACK wait of a moved vehicle ${maxWait(moved)} ms, of the others ${maxWait(still)} ms (over ${sentDuring(still)} messages sent during the move)`,
        `  rows of the bucket per shard: ${JSON.stringify(onShard)}`,
      ].join('\n'),
    );

    expect(result).toMatchObject({ bucket, from: 1, to: 2, vins: 4 });
    // Everything of the bucket is on shard 2, once; nothing of it elsewhere.
    expect(onShard[0]).toEqual({ telemetry: 0, obfcm: 0, quarantine: 0, streamLog: 0 });
    expect(onShard[1]).toEqual({ telemetry: 0, obfcm: 0, quarantine: 0, streamLog: 0 });
    expect(onShard[2]!.telemetry).toBe(3 * MESSAGES * RPM + 1);
    // Each of them in shard 2's stream log once: written there after the switch, or copied.
    expect(await q[2]!<{ n: number }>('SELECT sum(cardinality(seqs))::int AS n FROM stream_log WHERE vin = ANY($1)', [moved])).toEqual([{ n: 3 * MESSAGES * RPM + 1 }]);
    expect(onShard[2]!.obfcm).toBe(1);
    expect(onShard[2]!.quarantine).toBe(1);
    for (const st of [sum2, sum0, sum1]) {
      expect(st.perVinProblems).toEqual([]);
      expect(st.duplicates).toBe(0);
      expect(st.missing).toBe(0);
    }
    // The rows that existed before were copied exactly (every column, received_at included).
    expect(await q[2]!('SELECT * FROM telemetry WHERE vin = $1', [extra.vin])).toEqual(extraBefore.telemetry);
    expect(await q[2]!('SELECT * FROM obfcm_readings WHERE vin = $1', [extra.vin])).toEqual(extraBefore.obfcm);
    expect(await q[2]!('SELECT received_at, vin, reason, detail, seq, recorded_at, payload, payload_bytes, dedupe_key FROM quarantine WHERE vin = $1', [extra.vin])).toEqual(extraBefore.quarantine);
    // The other vehicles stayed where they were.
    expect((await rowsOf(q[2]!, still)).telemetry).toBe(0);
    // The map: the bucket on shard 2, active; a process opening the shards now routes there.
    expect(await control.query('SELECT shard, state FROM shard_map WHERE bucket = $1', [bucket])).toEqual([{ shard: 2, state: 'active' }]);
    const c1 = createPgDb(control.url, { max: 1 });
    const fresh = await openShards(c1, s.map((d) => d.url), { role: 'test', prepare: false });
    expect(moved.map((v) => fresh.shardOf(v))).toEqual([2, 2, 2, 2]);
    await fresh.close();
    await c1.close();
    // The live stream of the moved vehicle ended (it would hear nothing more on shard 1),
    // with no cursor: one of shard 1's log cannot continue on shard 2's. Resuming with the
    // last cursor it gave is refused (410); ?from= streams from shard 2, with its cursors.
    await live.until((ev) => ev.some((e) => e.event === 'end'), 5000);
    const endEvent = live.events.find((e) => e.event === 'end')!;
    expect(JSON.parse(endEvent.data)).toEqual({ reason: 'moved', resumeFrom: null });
    const lastCursor = live.records().at(-1)!.id;
    expect(lastCursor).toMatch(/\.1$/);
    const stale = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/vehicles/${moved[0]}/stream?after=${encodeURIComponent(lastCursor)}`, { headers: { authorization: `Bearer ${ownerToken}` } });
    expect(stale.status).toBe(410);
    expect((await stale.json()).code).toBe('API_ERR_CURSOR_EXPIRED');
    const again2 = await openSse(gw.httpPort, `/v1/vehicles/${moved[0]}/stream?from=${new Date(Date.now() - 3_600_000).toISOString()}`, ownerToken);
    expect(again2.status).toBe(200);
    await again2.until((ev) => ev.some((e) => e.event === 'record'), 20_000);
    expect(again2.records()[0]!.id).toMatch(/\.2$/);
    again2.close();
    // Reads right after, through the API: each moved vehicle's owner export is complete.
    const exportSeqs = async (vin: string): Promise<number[]> => {
      const res = await fetch(`http://127.0.0.1:${gw!.httpPort}/v1/vehicles/${vin}/cardata?format=ndjson`, { headers: { authorization: `Bearer ${ownerToken}` } });
      expect(res.status, vin).toBe(200);
      return (await res.text()).trimEnd().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq);
    };
    const all = Array.from({ length: MESSAGES * RPM }, (_, i) => i + 1);
    for (const vin of moved.slice(0, 3)) expect(await exportSeqs(vin)).toEqual(all);
    expect(await exportSeqs(extra.vin)).toEqual([7]);

    // The moved vehicles were held through the drain at least; the others kept flowing: they
    // sent during the move, and none of those messages waited as long as the drain (a
    // vehicle held by the move would wait at least that long).
    expect(maxWait(moved)).toBeGreaterThanOrEqual(DRAIN_MS);
    expect(acksDuring(still)).toBeGreaterThan(0);
    expect(sentDuring(still), 'messages the other vehicles sent during the move').toBeGreaterThan(0);
    expect(maxWait(still), 'longest PUBACK wait of the other vehicles for a message sent during the move, ms').toBeLessThan(DRAIN_MS);

    // The CLI: run again, the bucket is already there; the other shards are checked, nothing moves.
    const again = await runChild('npx', ['tsx', 'cli/index.ts', 'shard-move', '--vin', moved[0]!, '--to', '2', '--json'], { DATABASE_URL: control.url, SHARD_URLS: urls }, 60_000);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n').pop()!)).toMatchObject({ bucket, from: null, to: 2, deleted: { telemetry: 0, obfcm_readings: 0, quarantine: 0 } });
    // The CLI moves it on to shard 0 (the gateway still running): everything follows.
    const back = await runChild('npx', ['tsx', 'cli/index.ts', 'shard-move', '--bucket', String(bucket), '--to', '0', '--drain-ms', '200'], { DATABASE_URL: control.url, SHARD_URLS: urls }, 60_000);
    expect(back.code, `${back.stdout}\n${back.stderr}`).toBe(0);
    expect(back.stdout).toContain(`bucket ${bucket} moved from shard 2 to shard 0: 4 vehicles, ${3 * MESSAGES * RPM + 1} telemetry rows`);
    // Shard 0's log holds every copied record once (logged anew as the copy inserted it).
    expect(await rowsOf(q[0]!, moved)).toEqual({ telemetry: 3 * MESSAGES * RPM + 1, obfcm: 1, quarantine: 1, streamLog: expect.any(Number) });
    expect(await q[0]!<{ n: number }>('SELECT sum(cardinality(seqs))::int AS n FROM stream_log WHERE vin = ANY($1)', [moved])).toEqual([{ n: 3 * MESSAGES * RPM + 1 }]);
    expect(await rowsOf(q[2]!, moved)).toEqual({ telemetry: 0, obfcm: 0, quarantine: 0, streamLog: 0 });
    expect((await summarizeStored(q[0]!, movedFleet, MESSAGES * RPM)).perVinProblems).toEqual([]);
    for (const vin of moved.slice(0, 3)) expect(await exportSeqs(vin)).toEqual(all);
    const listed = await runChild('npx', ['tsx', 'cli/index.ts', 'shards', '--json'], { DATABASE_URL: control.url, SHARD_URLS: urls }, 60_000);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout.trim())).toEqual([
      { index: 0, label: expect.any(String), buckets: 2049, moving: 0 },
      { index: 1, label: expect.any(String), buckets: 2047, moving: 0 },
      { index: 2, label: expect.any(String), buckets: 0, moving: 0 },
    ]);
    // Refusals: no such shard, both or neither of --bucket/--vin.
    const bad = await runChild('npx', ['tsx', 'cli/index.ts', 'shard-move', '--bucket', '1', '--to', '3'], { DATABASE_URL: control.url, SHARD_URLS: urls }, 60_000);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--to must be a shard index from 0 to 2');
  }, 150_000);
});
