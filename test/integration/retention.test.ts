// Retention: data measured longer ago than RETENTION_DAYS goes; newer data stays. On
// TimescaleDB (Apache build here) by drop_chunks, on PGlite by DELETE.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb, type Db } from '../../storage/db.ts';
import { createPgliteDb } from '../../storage/pglite.ts';
import { migrate } from '../../storage/migrate.ts';
import { applyRetention } from '../../storage/retention.ts';

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
      const r = await applyRetention(db, 30);
      expect(r.method).toBe(method);
      for (const t of ['telemetry', 'obfcm_readings', 'quarantine']) expect(await vins(db, t), t).toEqual(['WNEW0000000000001']);
    } finally {
      await db.close();
    }
  });
});
