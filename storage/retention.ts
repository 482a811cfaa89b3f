// Retention: data older than RETENTION_DAYS goes, by time of measurement. On TimescaleDB
// whole chunks are dropped (cheap); with the community licence its own background policy
// does it; on plain PostgreSQL/PGlite a DELETE. The gateway runs this on a timer.
import type { Db } from './db.ts';

export interface RetentionResult {
  method: 'timescale_policy' | 'drop_chunks' | 'delete';
  telemetry: number;
  obfcm: number;
  quarantine: number;
}

const HYPERTABLES = ['telemetry', 'obfcm_readings'] as const;

export async function applyRetention(db: Db, days: number): Promise<RetentionResult> {
  const interval = `${Math.floor(days)} days`;
  const quarantine = (await db.query('DELETE FROM quarantine WHERE received_at < now() - $1::interval', [interval])).rowCount;
  if (db.kind === 'timescaledb') {
    const lic = await db.query<{ l: string }>("SELECT current_setting('timescaledb.license', true) AS l");
    if (lic.rows[0]?.l === 'timescale') {
      // Community licence: TimescaleDB's own job drops the chunks.
      for (const t of HYPERTABLES) {
        await db.query(`SELECT remove_retention_policy('${t}', if_exists => true)`);
        await db.query(`SELECT add_retention_policy('${t}', drop_after => $1::interval)`, [interval]);
      }
      return { method: 'timescale_policy', telemetry: 0, obfcm: 0, quarantine };
    }
    // Apache build: no policies, but drop_chunks works.
    const n: number[] = [];
    for (const t of HYPERTABLES) {
      const r = await db.query(`SELECT drop_chunks('${t}', older_than => now() - $1::interval)`, [interval]);
      n.push(r.rows.length);
    }
    return { method: 'drop_chunks', telemetry: n[0]!, obfcm: n[1]!, quarantine };
  }
  const telemetry = (await db.query('DELETE FROM telemetry WHERE recorded_at < now() - $1::interval', [interval])).rowCount;
  const obfcm = (await db.query('DELETE FROM obfcm_readings WHERE recorded_at < now() - $1::interval', [interval])).rowCount;
  return { method: 'delete', telemetry, obfcm, quarantine };
}

/**
 * On the community-licensed TimescaleDB (the official Docker image), native compression
 * of chunks older than `compressAfterDays` (segmented by VIN, so one vehicle's export
 * reads few segments). Not available on the Apache build: returns false there.
 */
export async function enableCompression(db: Db, compressAfterDays = 7): Promise<boolean> {
  if (db.kind !== 'timescaledb') return false;
  const lic = await db.query<{ l: string }>("SELECT current_setting('timescaledb.license', true) AS l");
  if (lic.rows[0]?.l !== 'timescale') return false;
  for (const t of HYPERTABLES) {
    await db.query(`ALTER TABLE ${t} SET (timescaledb.compress, timescaledb.compress_segmentby = 'vin', timescaledb.compress_orderby = 'recorded_at, seq')`);
    await db.query(`SELECT add_compression_policy('${t}', compress_after => $1::interval, if_not_exists => true)`, [`${Math.floor(compressAfterDays)} days`]);
  }
  return true;
}
