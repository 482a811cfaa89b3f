// ?from= on a stream: where it starts when a transaction that writes the vehicle's records
// is still running as the stream opens. Transaction ids are not commit-ordered: the one
// still running has the lower id, a later one has committed already. A start at the first
// visible entry (the later one) skipped the running one's records once it committed; the
// start must lie at or below the oldest transaction still running. Real gateway, real
// TimescaleDB; the two writing transactions are opened by hand as the writer writes them
// (rows and their log entry in one transaction).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { api, provision, startTestGateway } from '../helpers/gateway.ts';
import { openSse } from '../helpers/sse.ts';
import type { RunningGateway } from '../../app/gateway.ts';

let db: TestDatabase;
let gw: RunningGateway;

beforeAll(async () => {
  db = await createTestDatabase();
  gw = await startTestGateway(db.url, { JWT_KEYS: 'k1:stream-from-test-key-0123456789abcdef0123', STREAM_KEEPALIVE_MS: '1000' });
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

/** Writes records of `vin` and their log entry in the transaction open on `c`, as the batch writer does (one entry per vehicle and transaction). */
async function writeRecords(c: pg.Client, vin: string, recs: { seq: number; at: Date }[]): Promise<void> {
  await c.query(
    `WITH t AS (INSERT INTO telemetry (vin, recorded_at, seq, speed_kmh, has_technical)
                SELECT $1, at, seq, seq * 10, true FROM unnest($2::timestamptz[], $3::int8[]) AS u(at, seq) RETURNING vin, recorded_at, seq)
     INSERT INTO stream_log (vin, ats, seqs) SELECT vin, array_agg(recorded_at), array_agg(seq) FROM t GROUP BY vin`,
    [vin, recs.map((r) => r.at), recs.map((r) => r.seq)],
  );
}

describe('a stream opened with ?from= while a writing transaction is still running', () => {
  it('delivers the records that transaction commits after the stream opened, and those committed before, once each', async () => {
    const owner = 'fiona';
    const { vin } = await provision(gw, undefined, owner);
    const tok = (await api(gw, 'POST', '/v1/admin/tokens', { role: 'customer', subject: owner })).body.token as string;
    const now = Date.now();
    const early = new pg.Client({ connectionString: db.url });
    const late = new pg.Client({ connectionString: db.url });
    await early.connect();
    await late.connect();
    try {
      // The hypertable's chunks for these times exist before (a transaction that creates a
      // chunk holds others' inserts into it until it ends).
      for (const ms of [now - 15_000, now - 7_200_000]) await db.query('INSERT INTO telemetry (vin, recorded_at, seq, has_technical) VALUES ($1, $2, 0, true)', ['WPRIMEXXXXXXXXXX1', new Date(ms)]);
      // The first transaction takes its id and writes, and stays open.
      await early.query('BEGIN');
      await writeRecords(early, vin, [{ seq: 1, at: new Date(now - 20_000) }]);
      const ids = await early.query<{ tx: string }>('SELECT pg_current_xact_id()::text AS tx');
      // A second one, with a higher id, commits: its entry is the first one a reader sees.
      await late.query('BEGIN');
      // (Record 3 was measured before ?from=: not part of this stream's start.)
      await writeRecords(late, vin, [
        { seq: 2, at: new Date(now - 10_000) },
        { seq: 3, at: new Date(now - 7_200_000) },
      ]);
      await late.query('COMMIT');
      const lateTx = (await db.query<{ tx: string }>('SELECT max(tx)::text AS tx FROM stream_log WHERE vin = $1', [vin]))[0]!.tx;
      expect(Number(lateTx)).toBeGreaterThan(Number(ids.rows[0]!.tx));

      const s = await openSse(gw.httpPort, `/v1/vehicles/${vin}/stream?from=${new Date(now - 3_600_000).toISOString()}`, tok);
      expect(s.status).toBe(200);
      // Opened (the first keep-alive) and past its backlog; then the first transaction commits.
      await s.until(() => s.comments.length > 0, 5000);
      await new Promise((r) => setTimeout(r, 300));
      await early.query('COMMIT');
      // Woken by the next poll of the tail (every second at most) or a commit announcement.
      await late.query(`SELECT pg_notify('stream_committed', 'test')`);
      await s.until((ev) => ev.filter((e) => e.event === 'record').length >= 2, 5000).catch(() => {});
      await new Promise((r) => setTimeout(r, 1200));
      s.close();
      // Cursor order: the first transaction's record (lower id) before the second's.
      expect(s.records().map((r) => r.data.seq)).toEqual([1, 2]);
    } finally {
      await early.query('ROLLBACK').catch(() => {});
      await early.end();
      await late.end();
    }
  });
});
