// Retention: data measured longer ago than RETENTION_DAYS goes; newer data stays. On
// TimescaleDB (Apache build here) by drop_chunks, on PGlite by DELETE.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb, type Db } from '../../storage/driver/db.ts';
import { createPgliteDb } from '../../storage/driver/pglite.ts';
import { migrate } from '../../storage/driver/migrate.ts';
import { applyRetention } from '../../storage/ops/retention.ts';

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(async () => tdb?.drop());

async function seed(db: Db): Promise<void> {
  for (const [vin, days] of [['WOLD0000000000001', 40], ['WNEW0000000000001', 2]] as const) {
    await db.query(`INSERT INTO telemetry (vin, recorded_at, seq, speed_kmh) VALUES ($1, now() - $2::interval, 1, 1)`, [vin, `${days} days`]);
    await db.query(`INSERT INTO obfcm_readings (vin, recorded_at, seq, total_distance_km) VALUES ($1, now() - $2::interval, 1, 1)`, [vin, `${days} days`]);
    await db.query(`INSERT INTO quarantine (vin, received_at, reason, detail, payload_bytes, dedupe_key) VALUES ($1, now() - $2::interval, 'GW_ERR_DECODE', '', 0, $3)`, [vin, `${days} days`, Buffer.from(vin)]);
  }
}

async function vins(db: Db, table: string): Promise<string[]> {
  return (await db.query<{ vin: string }>(`SELECT vin FROM ${table} ORDER BY vin`)).rows.map((r) => r.vin);
}

describe.each([
  ['timescaledb', async () => createPgDb(tdb.url, { max: 2 }), 'drop_chunks'],
  ['pglite', async () => createPgliteDb(null), 'delete'],
] as const)('retention on %s', (_name, make, method) => {
  it('removes what is older than the retention period from every table, keeps the rest', async () => {
    const db = await make();
    try {
      await migrate(db);
      await seed(db);
      const r = await applyRetention(db, { afterContractDays: 3650, telemetryDays: 30, obfcmDays: 30, quarantineDays: 30 });
      expect(r.method).toBe(method);
      for (const t of ['telemetry', 'obfcm_readings', 'quarantine']) expect(await vins(db, t), t).toEqual(['WNEW0000000000001']);
    } finally {
      await db.close();
    }
  });

  it('deletes telemetry of an ownership that ended longer ago than the after-contract period, keeps the current owner\'s', async () => {
    const db = await make();
    try {
      await migrate(db);
      const vin = 'WKNTRACT000000001';
      await db.query(`INSERT INTO vehicles (vin, owner_id, secret_hash) VALUES ($1, 'new', 'x')`, [vin]);
      // first owner until 20 days ago, then the current owner
      await db.query(`INSERT INTO ownership_periods (vin, owner_id, started_at, ended_at) VALUES ($1, 'old', now() - interval '400 days', now() - interval '20 days'), ($1, 'new', now() - interval '20 days', NULL)`, [vin]);
      for (const d of [100, 25, 10, 1]) {
        await db.query(`INSERT INTO telemetry (vin, recorded_at, seq, speed_kmh) VALUES ($1, now() - $2::interval, $3, 1)`, [vin, `${d} days`, d]);
      }
      const keep = await applyRetention(db, { afterContractDays: 30, telemetryDays: 0, obfcmDays: 3650, quarantineDays: 30 });
      expect(keep.afterContract).toBe(0); // the contract ended 20 days ago: not yet
      const r = await applyRetention(db, { afterContractDays: 15, telemetryDays: 0, obfcmDays: 3650, quarantineDays: 30 });
      expect(r.afterContract).toBe(2);
      expect((await db.query<{ seq: number }>('SELECT seq FROM telemetry WHERE vin = $1 ORDER BY seq', [vin])).rows.map((x) => x.seq)).toEqual([1, 10]);
    } finally {
      await db.close();
    }
  });
});
