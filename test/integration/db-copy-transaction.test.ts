// storage/driver/db.ts: the COPY transaction's one-round-trip forms (`begin` statements with BEGIN,
// commitWith), on real PostgreSQL: what commits, and what a failing statement rolls back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb, type Db } from '../../storage/driver/db.ts';

let tdb: TestDatabase;
let db: Db;
beforeAll(async () => {
  tdb = await createTestDatabase();
  db = createPgDb(tdb.url, { max: 1 });
  await db.query('CREATE TABLE t (k int PRIMARY KEY, v text NOT NULL)');
});
afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

describe('CopyCapability#transaction', () => {
  it('runs the begin statements, the COPY and the final statements with COMMIT; returns each result', async () => {
    const r = await db.copy!.transaction(
      async (tx) => {
        await tx.copyFrom('COPY stage (k, v) FROM STDIN', Buffer.from('1\tone\n2\ttwo\n'));
        return tx.commitWith<{ n: number }>(['INSERT INTO t SELECT * FROM stage ON CONFLICT DO NOTHING', 'SELECT count(*)::int AS n FROM t']);
      },
      { begin: 'CREATE TEMP TABLE IF NOT EXISTS stage (k int, v text) ON COMMIT DELETE ROWS' },
    );
    expect(r.map((x) => x.rowCount)).toEqual([2, 1]);
    expect(r[1]!.rows).toEqual([{ n: 2 }]);
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 2 }]);
  });

  it('a failing final statement rolls everything back, COMMIT is not run, and the connection serves the next transaction', async () => {
    await expect(
      db.copy!.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (3, 'three')");
        return tx.commitWith(['INSERT INTO t VALUES (4, NULL)', "INSERT INTO t VALUES (5, 'five')"]);
      }),
    ).rejects.toThrow(/null value/);
    expect((await db.query<{ k: number }>('SELECT k FROM t ORDER BY k')).rows.map((x) => x.k)).toEqual([1, 2]);
    // The one pooled connection is not left inside an aborted transaction.
    await db.copy!.transaction(async (tx) => {
      await tx.query("INSERT INTO t VALUES (6, 'six')");
    });
    expect((await db.query<{ k: number }>('SELECT k FROM t ORDER BY k')).rows.map((x) => x.k)).toEqual([1, 2, 6]);
  });
});
