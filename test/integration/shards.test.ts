// storage/driver/shards.ts against real databases: the first start fills the map (b → b mod N)
// after migrating every shard; a reordered or shortened SHARD_URLS is refused; an appended
// shard takes no bucket; a map change reaches a running process by NOTIFY.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb } from '../../storage/driver/db.ts';
import { BUCKETS, bucketOf, openShards, SHARD_MAP_CHANNEL, urlLabel } from '../../storage/driver/shards.ts';
import { isStorageError, STO_ERR } from '../../storage/errors.ts';

let control: TestDatabase;
const shardDbs: TestDatabase[] = [];

beforeAll(async () => {
  control = await createTestDatabase();
  for (let i = 0; i < 3; i++) shardDbs.push(await createTestDatabase());
});
afterAll(async () => {
  for (const d of [control, ...shardDbs]) await d?.drop().catch(() => {});
});

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('openShards', () => {
  it('without SHARD_URLS is the control database itself, with no I/O', async () => {
    const db = createPgDb('postgres://nobody:x@127.0.0.1:1/none', { max: 1 });
    const s = await openShards(db, null, { role: 'test' });
    expect(s.sharded).toBe(false);
    expect(s.count).toBe(1);
    expect(s.dbOf('WVWZZZ1JZXW000001')).toBe(db);
    expect(s.all()).toEqual([db]);
    expect(s.isMoving('WVWZZZ1JZXW000001')).toBe(false);
    await s.close();
    await db.close();
  });

  it('migrates control and shards, fills the map b → b mod 2, refuses a reorder, takes an appended shard without buckets, hears map changes', async () => {
    const db = createPgDb(control.url, { max: 2 });
    const urls = [shardDbs[0]!.url, shardDbs[1]!.url];
    const s = await openShards(db, urls, { role: 'test' });
    try {
      expect(s.sharded).toBe(true);
      expect(s.count).toBe(2);
      for (const d of shardDbs.slice(0, 2)) {
        // Migrated: the writer's tables exist on each shard before any row goes there.
        const t = await d.query<{ n: number }>("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('telemetry', 'obfcm_readings', 'quarantine', 'stream_log')");
        expect(t[0]!.n).toBe(4);
      }
      const map = await control.query<{ bucket: number; shard: number; state: string }>('SELECT bucket, shard, state FROM shard_map ORDER BY bucket');
      expect(map.length).toBe(BUCKETS);
      expect(map.every((r) => r.shard === r.bucket % 2 && r.state === 'active')).toBe(true);
      expect(await control.query('SELECT index, label FROM shards ORDER BY index')).toEqual([
        { index: 0, label: urlLabel(urls[0]!) },
        { index: 1, label: urlLabel(urls[1]!) },
      ]);
      const vin = 'WVWZZZ1JZXW000001';
      expect(s.shardOf(vin)).toBe(bucketOf(vin) % 2);
      expect(s.dbOf(vin)).toBe(s.db(bucketOf(vin) % 2));
      expect(s.label(1)).toBe(`shard1 ${urlLabel(urls[1]!)}`);
      expect(s.label(1)).not.toMatch(/cardata:cardata|password/);

      // Reordered: refused, naming the position.
      const err = await openShards(db, [urls[1]!, urls[0]!], { role: 'test' }).then(() => null, (e: unknown) => e);
      expect(isStorageError(err, STO_ERR.SHARD_MAP)).toBe(true);
      expect((err as Error).message).toMatch(/SHARD_URLS position 0 is .*keep the order/);
      // Shortened while shard 1 owns buckets: refused.
      const err2 = await openShards(db, [urls[0]!], { role: 'test' }).then(() => null, (e: unknown) => e);
      expect((err2 as Error).message).toMatch(/shard 1 .* owns buckets/);

      // Appended: migrated, registered, owns nothing.
      const s3 = await openShards(db, [...urls, shardDbs[2]!.url], { role: 'test' });
      expect(s3.count).toBe(3);
      expect((await shardDbs[2]!.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry'))[0]!.n).toBe(0);
      expect((await control.query<{ n: number }>('SELECT count(*)::int AS n FROM shard_map WHERE shard = 2'))[0]!.n).toBe(0);
      await s3.close();

      // A change in the control database reaches the running process by NOTIFY.
      let changes = 0;
      s.onChange(() => changes++);
      const b = bucketOf(vin);
      await control.query("UPDATE shard_map SET state = 'moving' WHERE bucket = $1", [b]);
      await control.query('SELECT pg_notify($1, $2)', [SHARD_MAP_CHANNEL, String(b)]);
      await until(() => s.isMoving(vin), 5000);
      expect(changes).toBeGreaterThan(0);
      await control.query("UPDATE shard_map SET state = 'active', shard = 2 WHERE bucket = $1", [b]);
      await control.query('SELECT pg_notify($1, $2)', [SHARD_MAP_CHANNEL, String(b)]);
      // Shard 2 is not in this process's SHARD_URLS: its reload fails and it keeps the copy
      // it had, so it goes on holding that bucket's vehicles rather than write to a wrong
      // shard; a process that knows all three URLs routes the VIN to shard 2.
      const n = changes;
      await new Promise((r) => setTimeout(r, 300));
      expect(changes).toBe(n);
      expect(s.isMoving(vin)).toBe(true);
      const loadErr = await s.reload().then(() => null, (e: unknown) => e);
      expect(isStorageError(loadErr, STO_ERR.SHARD_MAP)).toBe(true);
      const s4 = await openShards(db, [...urls, shardDbs[2]!.url], { role: 'test', prepare: false });
      expect(s4.shardOf(vin)).toBe(2);
      await s4.close();
    } finally {
      await s.close();
      await db.close();
    }
  });
});
