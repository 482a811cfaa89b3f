// Retention per purpose, run by the gateway's own timer (works on the Apache-licensed
// TimescaleDB, which has no policies):
// - the owner's telemetry (connected service): kept while the owner's contract runs and
//   until `afterContractDays` after it ends (an ownership transfer ends it): a per-vehicle
//   DELETE; optionally also capped by age of measurement (`telemetryDays`, 0 = off);
// - shareable OBFCM readings (reporting to the authorities): by age of measurement;
// - quarantine: by age of reception.
// Age caps drop whole chunks on TimescaleDB (drop_chunks), or DELETE elsewhere; with the
// community licence TimescaleDB's own retention policy does it.
import type { Queryable } from '../driver/db.ts';
import { afterCutoff, afterDeleteBefore } from '../repos/summaries.ts';

/** A connection or transaction that knows its server kind (Db, or the transaction runOncePerPeriod hands out). */
export type RetentionDb = Queryable & { readonly kind: string };

export interface RetentionPolicy {
  /** Telemetry of an ownership period is deleted this long after the period ended, days. */
  afterContractDays: number;
  /** Telemetry older than this (by measurement) is deleted whatever the contract, days; 0 = off. */
  telemetryDays: number;
  /** Shareable OBFCM readings older than this (by measurement) are deleted, days. */
  obfcmDays: number;
  /** Quarantined payloads older than this (by reception) are deleted, days. */
  quarantineDays: number;
}

export interface RetentionResult {
  method: 'timescale_policy' | 'drop_chunks' | 'delete';
  afterContract: number;
  telemetry: number;
  obfcm: number;
  quarantine: number;
}

const days = (n: number) => `${Math.floor(n)} days`;

/** Each vehicle whose last contract ended more than $1 ago, and when (vin, until). */
const ENDED_CONTRACTS = `SELECT vin, max(ended_at) AS until FROM ownership_periods
                  WHERE ended_at IS NOT NULL AND ended_at < now() - $1::interval GROUP BY vin`;

/** Drops (or deletes) rows of a time-partitioned table older than `n` days; returns what went. */
async function capByAge(db: RetentionDb, table: 'telemetry' | 'obfcm_readings', n: number, license: string | undefined): Promise<{ method: RetentionResult['method']; count: number }> {
  if (db.kind === 'timescaledb') {
    if (license === 'timescale') {
      await db.query(`SELECT remove_retention_policy('${table}', if_exists => true)`);
      await db.query(`SELECT add_retention_policy('${table}', drop_after => $1::interval)`, [days(n)]);
      return { method: 'timescale_policy', count: 0 };
    }
    const r = await db.query(`SELECT drop_chunks('${table}', older_than => now() - $1::interval)`, [days(n)]);
    if (table === 'telemetry') {
      // Whole chunks went: the summaries of the hours before the oldest chunk left (chunk
      // ranges are whole days, so whole hours) have no rows any more.
      const b = await db.query<{ b: Date }>(
        `SELECT least(min(range_start), now() - $1::interval) AS b FROM timescaledb_information.chunks
          WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry'`,
        [days(n)],
      );
      await db.query('DELETE FROM telemetry_hourly WHERE hour < $1', [b.rows[0]!.b]);
    }
    return { method: 'drop_chunks', count: r.rows.length };
  }
  const cutoff = (await db.query<{ c: Date }>('SELECT now() - $1::interval AS c', [days(n)])).rows[0]!.c;
  const r = await db.query(`DELETE FROM ${table} WHERE recorded_at < $1`, [cutoff]);
  if (table === 'telemetry') await afterCutoff(db, cutoff);
  return { method: 'delete', count: r.rowCount };
}

export async function applyRetention(db: RetentionDb, p: RetentionPolicy, ended?: EndedContracts): Promise<RetentionResult> {
  const license =
    db.kind === 'timescaledb' ? (await db.query<{ l: string }>("SELECT current_setting('timescaledb.license', true) AS l")).rows[0]?.l : undefined;
  // Contracts that ended long enough ago: everything measured before their end goes.
  let afterContract = 0;
  if (!ended) {
    afterContract = (
      await db.query(
        `DELETE FROM telemetry t
          USING (${ENDED_CONTRACTS}) e
          WHERE t.vin = e.vin AND t.recorded_at < e.until`,
        [days(p.afterContractDays)],
      )
    ).rowCount;
    // The same contracts (now() is the transaction's: the claim runs this in one).
    await afterDeleteBefore(db, { sql: `(${ENDED_CONTRACTS})`, params: [days(p.afterContractDays)] });
  } else {
    // Sharded: the contracts come from the control database, this shard's vehicles only.
    for (let i = 0; i < ended.vins.length; i += CONTRACTS_PER_STATEMENT) {
      afterContract += (
        await db.query(
          `DELETE FROM telemetry t USING unnest($1::text[], $2::timestamptz[]) AS e(vin, until)
            WHERE t.vin = e.vin AND t.recorded_at < e.until`,
          [ended.vins.slice(i, i + CONTRACTS_PER_STATEMENT), ended.until.slice(i, i + CONTRACTS_PER_STATEMENT)],
        )
      ).rowCount;
      await afterDeleteBefore(db, {
        sql: 'unnest($1::text[], $2::timestamptz[])',
        params: [ended.vins.slice(i, i + CONTRACTS_PER_STATEMENT), ended.until.slice(i, i + CONTRACTS_PER_STATEMENT)],
      });
    }
  }
  const quarantine = (await db.query('DELETE FROM quarantine WHERE received_at < now() - $1::interval', [days(p.quarantineDays)])).rowCount;
  const obfcm = await capByAge(db, 'obfcm_readings', p.obfcmDays, license);
  const telemetry = p.telemetryDays > 0 ? await capByAge(db, 'telemetry', p.telemetryDays, license) : { method: obfcm.method, count: 0 };
  return { method: obfcm.method, afterContract, telemetry: telemetry.count, obfcm: obfcm.count, quarantine };
}

/** Vehicles whose last contract ended long enough ago, with that end (parallel arrays). */
export interface EndedContracts {
  vins: string[];
  until: Date[];
}

const CONTRACTS_PER_STATEMENT = 10_000;

/**
 * From the control database: every vehicle whose last ended ownership period ended more
 * than `afterContractDays` ago, and when; `keep` picks those of one shard.
 */
export async function endedContracts(control: Queryable, afterContractDays: number, keep: (vin: string) => boolean): Promise<EndedContracts> {
  const r = await control.query<{ vin: string; until: Date }>(
    `SELECT vin, max(ended_at) AS until FROM ownership_periods
      WHERE ended_at IS NOT NULL AND ended_at < now() - $1::interval GROUP BY vin`,
    [days(afterContractDays)],
  );
  const out: EndedContracts = { vins: [], until: [] };
  for (const row of r.rows) {
    if (!keep(row.vin)) continue;
    out.vins.push(row.vin);
    out.until.push(row.until);
  }
  return out;
}

const HYPERTABLES = ['telemetry', 'obfcm_readings'] as const;

/**
 * On the community-licensed TimescaleDB (the official Docker image), native compression
 * of chunks older than `compressAfterDays` (segmented by VIN, so one vehicle's export
 * reads few segments). Not available on the Apache build: returns false there.
 */
export async function enableCompression(db: RetentionDb, compressAfterDays = 7): Promise<boolean> {
  if (db.kind !== 'timescaledb') return false;
  const lic = await db.query<{ l: string }>("SELECT current_setting('timescaledb.license', true) AS l");
  if (lic.rows[0]?.l !== 'timescale') return false;
  const on = new Set(
    (await db.query<{ t: string }>("SELECT hypertable_name AS t FROM timescaledb_information.hypertables WHERE compression_enabled")).rows.map((r) => r.t),
  );
  for (const t of HYPERTABLES) {
    // Once per table: ALTER … SET (timescaledb.compress) on a table with compressed chunks fails.
    if (!on.has(t)) await db.query(`ALTER TABLE ${t} SET (timescaledb.compress, timescaledb.compress_segmentby = 'vin', timescaledb.compress_orderby = 'recorded_at, seq')`);
    await db.query(`SELECT add_compression_policy('${t}', compress_after => $1::interval, if_not_exists => true)`, [days(compressAfterDays)]);
  }
  return true;
}
