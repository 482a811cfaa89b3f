// Read paths for the portal: the vehicles a person owns, the latest stored record, and
// time-bucketed summaries (charts over a year read a few hundred rows, not the records).
// Bucketing runs in the database: time_bucket on TimescaleDB, date_bin elsewhere
// (PostgreSQL ≥ 14, PGlite); both aligned on the same origin so the answers agree.
import type { Db } from '../driver/db.ts';
import { FIELD_COLUMNS, GROUP_FLAG, type Group } from '../../proto/fields.ts';
import { periodCondition } from './rights.ts';
import type { StoredValues } from '../../proto/fields.ts';
import type { FieldSeries, Series, SeriesStore, StoredRecord } from '../../proto/records.ts';
import type { ShardRouting } from './reads.ts';

/** The store this module implements (proto/records.ts). */
export type SeriesRepo = SeriesStore;

/** Bucket origin shared by both functions (time_bucket's own default is a Monday in 2000). */
const ORIGIN = '2000-01-01 00:00:00+00';

function groupOf(row: Record<string, unknown>, group: Group): StoredValues | null {
  if (!row[GROUP_FLAG[group]]) return null;
  const out: StoredValues = {};
  for (const c of FIELD_COLUMNS) {
    if (c.group !== group) continue;
    const v = row[c.column];
    if (v !== null && v !== undefined) out[c.jsName] = Number(v);
  }
  return out;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** `control`: ownership; the records are read on the vehicle's shard when `shards` is sharded. */
export function createSeriesRepo(control: Db, shards?: ShardRouting): SeriesRepo {
  const dbOf = (vin: string): Db => (shards?.sharded ? shards.dbOf(vin) : control);
  return {
    async ownedBy(ownerId) {
      const r = await control.query<{ vin: string; started_at: Date }>(
        'SELECT vin, started_at FROM ownership_periods WHERE owner_id = $1 AND ended_at IS NULL ORDER BY vin',
        [ownerId],
      );
      return r.rows.map((x) => ({ vin: x.vin, since: x.started_at }));
    },

    async latest(vin, periods, categories) {
      const db = dbOf(vin);
      const per = periodCondition(periods, 2);
      const cols = FIELD_COLUMNS.filter((c) => categories.includes(c.group)).map((c) => c.column);
      const flags = categories.map((g) => GROUP_FLAG[g]);
      // The primary key (vin, recorded_at, seq) serves the ORDER BY … DESC LIMIT 1, but on
      // TimescaleDB planning it over every chunk of a year costs 150-280 ms (measured, 366
      // daily chunks): look in the recent past first, where a car in use has its newest
      // record, so that now() excludes all but a chunk or two before planning.
      let r: { rows: Record<string, unknown>[] } = { rows: [] };
      for (const window of ['2 days', '45 days', null]) {
        r = await db.query<Record<string, unknown>>(
          `SELECT vin, seq, recorded_at, ${[...flags, ...cols].join(', ')} FROM telemetry
            WHERE vin = $1 AND ${per.sql}${window ? ` AND recorded_at > now() - interval '${window}'` : ''}
            ORDER BY recorded_at DESC, seq DESC LIMIT 1`,
          [vin, ...per.params],
        );
        if (r.rows.length > 0) break;
      }
      const row = r.rows[0];
      if (!row) return null;
      const rec: StoredRecord = { vin: row.vin as string, seq: Number(row.seq), recordedAt: row.recorded_at as Date };
      for (const g of categories) rec[g] = groupOf(row, g);
      return rec;
    },

    async series(vin, periods, range, bucketMs, categories, fields) {
      const db = dbOf(vin);
      // Only the columns asked for are aggregated and sent: a chart of three fields costs three.
      const cols = FIELD_COLUMNS.filter((c) => categories.includes(c.group) && (!fields || fields.includes(`${c.group}.${c.jsName}`)));
      const per = periodCondition(periods, 5);
      const bucket =
        db.kind === 'timescaledb'
          ? `time_bucket($2::interval, recorded_at, timestamptz '${ORIGIN}')`
          : `date_bin($2::interval, recorded_at, timestamptz '${ORIGIN}')`;
      // Aggregates skip NULLs: a field absent from a record (or a group withheld by a
      // filter) never pulls an average towards zero.
      const aggs = cols.flatMap((c, i) => [`avg(${c.column}) AS a${i}`, `min(${c.column}) AS n${i}`, `max(${c.column}) AS x${i}`]);
      const r = await db.query<Record<string, unknown>>(
        `SELECT (extract(epoch FROM ${bucket}) * 1000)::int8::text AS b, count(*)::int AS n${aggs.length ? ', ' + aggs.join(', ') : ''}
           FROM telemetry
          WHERE vin = $1 AND recorded_at >= $3 AND recorded_at < $4 AND ${per.sql}
          GROUP BY 1 ORDER BY 1`,
        [vin, `${Math.round(bucketMs / 1000)} seconds`, range.from, range.to, ...per.params],
      );
      const out: Series = { t: [], count: [], fields: {} };
      const series = cols.map((c) => {
        const s: FieldSeries = { avg: [], min: [], max: [] };
        out.fields[`${c.group}.${c.jsName}`] = s;
        return s;
      });
      for (const row of r.rows) {
        out.t.push(Number(row.b));
        out.count.push(Number(row.n));
        series.forEach((s, i) => {
          s.avg.push(num(row[`a${i}`]));
          s.min.push(num(row[`n${i}`]));
          s.max.push(num(row[`x${i}`]));
        });
      }
      return out;
    },
  };
}
