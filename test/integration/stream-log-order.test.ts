// The stream log's reads hand records out in cursor order (transaction id, then place),
// also when the transaction ids of one read differ in their number of digits: 99,999 and
// 100,000 must not sort as text. The entries are written with chosen ids (xid8 takes any
// value), on real TimescaleDB, through the repository the streams use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb, type Db } from '../../storage/driver/db.ts';
import { migrate } from '../../storage/driver/migrate.ts';
import { createStreamLogRepo, type StreamLogRepo } from '../../stream/log.ts';

const VIN = 'WORDER00000000001';
const BASE = Date.parse('2026-11-01T00:00:00Z');
// Across two powers of ten, written out of order.
const TXS = [100_001, 99_998, 1_000_000, 99_999, 100_000, 999_999];

let tdb: TestDatabase;
let db: Db;
let log: StreamLogRepo;
beforeAll(async () => {
  tdb = await createTestDatabase();
  db = createPgDb(tdb.url, { max: 2 });
  await migrate(db);
  log = createStreamLogRepo(db);
  for (const [i, tx] of TXS.entries()) {
    const seq = i + 1;
    const at = new Date(BASE + seq * 1000);
    await db.query('INSERT INTO telemetry (vin, recorded_at, seq, speed_kmh, has_technical) VALUES ($1, $2, $3, 1, true)', [VIN, at, seq]);
    await db.query('INSERT INTO stream_log (tx, vin, ats, seqs) VALUES ($1::text::xid8, $2, ARRAY[$3::timestamptz], ARRAY[$4::int8])', [String(tx), VIN, at, seq]);
  }
});
afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

const sorted = [...TXS].sort((a, b) => a - b);

describe('stream log order across powers of ten of transaction ids', () => {
  it('the live tail (range) returns the records in transaction-id order', async () => {
    const recs = await log.range(0, 2_000_000, [VIN]);
    expect(recs.map((r) => r.tx)).toEqual(sorted);
  });

  it('a tail that follows many vehicles (more than its query names) gets only theirs, in the same order', async () => {
    // Another vehicle's entries in the same transactions: read with the range, left out here.
    const other = 'WORDER00000000002';
    for (const [i, tx] of TXS.entries()) {
      const at = new Date(BASE + (i + 1) * 1000);
      await db.query('INSERT INTO telemetry (vin, recorded_at, seq, speed_kmh, has_technical) VALUES ($1, $2, $3, 2, true)', [other, at, i + 1]);
      await db.query('INSERT INTO stream_log (tx, vin, ats, seqs) VALUES ($1::text::xid8, $2, ARRAY[$3::timestamptz], ARRAY[$4::int8])', [String(tx), other, at, i + 1]);
    }
    const many = Array.from({ length: 100 }, (_, i) => `WMANY${String(i).padStart(12, '0')}`);
    const recs = await log.range(0, 2_000_000, [...many, VIN]);
    expect(recs.map((r) => [r.vin, r.tx])).toEqual(sorted.map((tx) => [VIN, tx]));
    expect(await log.range(0, 2_000_000, many)).toEqual([]);
    const both = await log.range(0, 2_000_000, [...many, other, VIN]);
    expect(both.map((r) => r.vin)).toEqual([...sorted.map(() => VIN), ...sorted.map(() => other)]);
    await db.query('DELETE FROM stream_log WHERE vin = $1', [other]);
    await db.query('DELETE FROM telemetry WHERE vin = $1', [other]);
  });

  it('a backlog page returns them in order, and its last position is the highest', async () => {
    const pg = await log.page(VIN, null, 2_000_000, 4000, null);
    expect(pg.records.map((r) => r.tx)).toEqual(sorted);
    expect(pg.last?.tx).toBe(1_000_000);
    const rest = await log.page(VIN, { tx: 99_999, ord: 1 }, 2_000_000, 4000, null);
    expect(rest.records.map((r) => r.tx)).toEqual([100_000, 100_001, 999_999, 1_000_000]);
  });
});

/** A transaction left running on its own connection (in the database of `url`), and its id. */
async function runningTransaction(url: string): Promise<{ open: pg.Client; t1: number }> {
  const open = new pg.Client({ connectionString: url });
  await open.connect();
  await open.query('BEGIN');
  const t1 = Number((await open.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]!.x);
  return { open, t1 };
}

/** Commits one stream-log entry of VIN (a record measured at BASE + 1 s) and returns its transaction id. */
async function commitEntry(): Promise<number> {
  await db.query('INSERT INTO stream_log (vin, ats, seqs) VALUES ($1, ARRAY[$2::timestamptz], ARRAY[1::int8])', [VIN, new Date(BASE + 1000)]);
  return Number((await db.query<{ x: string }>('SELECT max(tx)::text AS x FROM stream_log')).rows[0]!.x);
}

describe('the tail read (horizon and entries in one statement)', () => {
  it('gives the records range() gives below its horizon, for a few vehicles and for many', async () => {
    const t = await log.tail(0, [VIN]);
    expect(t.records.map((r) => r.tx)).toEqual((await log.range(0, t.h, [VIN])).map((r) => r.tx));
    expect(t.records.map((r) => r.tx)).toEqual(sorted.filter((x) => x < t.h));
    const many = [...Array.from({ length: 100 }, (_, i) => `WMANY${String(i).padStart(12, '0')}`), VIN];
    const m = await log.tail(0, many);
    expect(m.records.map((r) => [r.vin, r.tx, r.json({ categories: ['technical'], nulled: [] })])).toEqual(
      (await log.range(0, m.h, many)).map((r) => [r.vin, r.tx, r.json({ categories: ['technical'], nulled: [] })]),
    );
    // From lo on only; nobody followed: the horizon alone.
    expect((await log.tail(100_000, [VIN])).records.map((r) => r.tx)).toEqual(sorted.filter((x) => x >= 100_000 && x < t.h));
    const none = await log.tail(0, []);
    expect(none.records).toEqual([]);
    expect(none.h).toBeGreaterThan(0);
  });
});

describe('the horizon', () => {
  it('stops below a transaction still running, and says entries wait above it until it ends', async () => {
    await db.query('DELETE FROM stream_log');
    const { open, t1 } = await runningTransaction(tdb.url);
    try {
      // A younger transaction commits an entry while t1 runs.
      const t2 = await commitEntry();
      expect(t2).toBeGreaterThan(t1);
      const during = await log.horizon();
      expect(during.h).toBeLessThanOrEqual(t1);
      expect(during.waiting).toBe(true);
      await open.query('COMMIT');
      const after = await log.horizon();
      expect(after.h).toBeGreaterThan(t2);
      expect(after.waiting).toBe(false);
    } finally {
      await open.end();
    }
  });

  it('the one-statement tail read stops below a running transaction, and hands out what waited once it ends', async () => {
    await db.query('DELETE FROM stream_log');
    const { open, t1 } = await runningTransaction(tdb.url);
    try {
      const lo = (await log.tail(0, [VIN])).h;
      expect(lo).toBeLessThanOrEqual(t1);
      const t2 = await commitEntry();
      const during = await log.tail(lo, [VIN]);
      expect(during.h).toBeLessThanOrEqual(t1);
      expect(during.waiting).toBe(true);
      expect(during.records).toEqual([]);
      await open.query('COMMIT');
      const after = await log.tail(during.h, [VIN]);
      expect(after.h).toBeGreaterThan(t2);
      expect(after.waiting).toBe(false);
      expect(after.records.map((r) => [r.tx, r.ord, r.recordedAtMs])).toEqual([[t2, 1, BASE + 1000]]);
    } finally {
      await open.end();
    }
  });

  it('a transaction running in another database of the server does not hold it back', async () => {
    await db.query('DELETE FROM stream_log');
    const other = await createTestDatabase();
    const { open, t1 } = await runningTransaction(other.url);
    try {
      const t2 = await commitEntry();
      expect(t2).toBeGreaterThan(t1);
      const t = await log.tail(0, [VIN]);
      expect(t.h).toBeGreaterThan(t2);
      expect(t.records.map((r) => r.tx)).toEqual([t2]);
      await open.query('ROLLBACK');
    } finally {
      await open.end();
      await other.drop();
    }
  });
});
