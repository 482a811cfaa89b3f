// Read paths for the portal: the vehicles a person owns, the latest stored record, and
// time-bucketed summaries (charts over a year read a few hundred rows, not the records).
// Bucketing runs in the database: time_bucket on TimescaleDB, date_bin elsewhere
// (PostgreSQL ≥ 14, PGlite); both aligned on the same origin so the answers agree.
import type { Db } from '../driver/db.ts';
import { FIELD_COLUMNS, GROUP_FLAG, type Group } from '../../proto/fields.ts';
import { periodCondition } from './rights.ts';
import { ORIGIN, planRead, summaryColumnsOf, type ReadPart } from './summaries.ts';
import type { StoredValues } from '../../proto/fields.ts';
import type { FieldFreshness, FieldSeries, Series, SeriesStore, StoredRecord } from '../../proto/records.ts';

/** freshness(): how many of the newest records are looked through for each field's newest value. */
export const FRESHNESS_DEPTH = 1000;
import type { ShardRouting } from './reads.ts';

/** The store this module implements (proto/records.ts). */
export type SeriesRepo = SeriesStore;

export { rebuildAll as rebuildAllSummaries, rebuildRange as rebuildSummaries } from './summaries.ts';

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
          `SELECT vin, seq, recorded_at, received_at, ${[...flags, ...cols].join(', ')} FROM telemetry
            WHERE vin = $1 AND ${per.sql}${window ? ` AND recorded_at > now() - interval '${window}'` : ''}
            ORDER BY recorded_at DESC, seq DESC LIMIT 1`,
          [vin, ...per.params],
        );
        if (r.rows.length > 0) break;
      }
      const row = r.rows[0];
      if (!row) return null;
      const rec: StoredRecord = { vin: row.vin as string, seq: Number(row.seq), recordedAt: row.recorded_at as Date, receivedAt: (row.received_at as Date | null) ?? null };
      for (const g of categories) rec[g] = groupOf(row, g);
      return rec;
    },

    async freshness(vin, periods, categories, depth = FRESHNESS_DEPTH) {
      const db = dbOf(vin);
      const per = periodCondition(periods, 2);
      const cols = FIELD_COLUMNS.filter((c) => categories.includes(c.group));
      if (cols.length === 0) return [];
      // Per field, its newest non-null value among the newest `depth` records: bounded work
      // (one backward index range of at most `depth` rows), whatever the history. The time
      // windows only spare TimescaleDB the planning over every chunk (as latest() above): a
      // window is widened until it holds `depth` records or none is left to widen to.
      const newest = (expr: string, col: string) => `(array_agg(${expr} ORDER BY recorded_at DESC, seq DESC) FILTER (WHERE ${col} IS NOT NULL))[1]`;
      const aggs = cols.flatMap((c, i) => [`${newest(c.column, c.column)} AS v${i}`, `${newest('recorded_at', c.column)} AS t${i}`, `${newest('received_at', c.column)} AS r${i}`]);
      let row: Record<string, unknown> | undefined;
      for (const window of ['2 days', '45 days', null]) {
        const r = await db.query<Record<string, unknown>>(
          `SELECT count(*)::int AS n, ${aggs.join(', ')} FROM (
             SELECT * FROM telemetry WHERE vin = $1 AND ${per.sql}${window ? ` AND recorded_at > now() - interval '${window}'` : ''}
              ORDER BY recorded_at DESC, seq DESC LIMIT ${Math.max(1, Math.floor(depth))}) x`,
          [vin, ...per.params],
        );
        row = r.rows[0];
        if (row && Number(row.n) >= depth) break;
      }
      if (!row) return [];
      const out: FieldFreshness[] = [];
      cols.forEach((c, i) => {
        const v = row[`v${i}`];
        if (v === null || v === undefined) return;
        out.push({ field: `${c.group}.${c.jsName}`, value: Number(v), recordedAt: row[`t${i}`] as Date, receivedAt: (row[`r${i}`] as Date | null) ?? null });
      });
      return out;
    },

    async series(vin, periods, range, bucketMs, categories, fields) {
      const db = dbOf(vin);
      // Only the columns asked for are aggregated and sent: a chart of three fields costs three.
      const cols = FIELD_COLUMNS.filter((c) => categories.includes(c.group) && (!fields || fields.includes(`${c.group}.${c.jsName}`)));
      // Whole hours come from the hourly summaries, the partial hours at the edges of the
      // range and of each ownership period from the rows (summaries.ts): a year of a car
      // reads a few thousand summary rows instead of millions of records.
      const parts = planRead(periods, range, bucketMs);
      const bucketOf = (col: string) =>
        db.kind === 'timescaledb' ? `time_bucket($2::interval, ${col}, timestamptz '${ORIGIN}')` : `date_bin($2::interval, ${col}, timestamptz '${ORIGIN}')`;
      // Bounds as literals (from Date#toISOString): TimescaleDB excludes chunks while planning.
      const within = (col: string, src: ReadPart['source']) =>
        parts
          .filter((p) => p.source === src)
          .map((p) => `(${col} >= '${p.from.toISOString()}' AND ${col} < '${p.to.toISOString()}')`)
          .join(' OR ');
      const selects: string[] = [];
      const rowsCond = within('recorded_at', 'rows');
      if (rowsCond) {
        // Aggregates skip NULLs: a field absent from a record (or a group withheld by a
        // filter) never pulls an average towards zero.
        const aggs = cols.flatMap((c) => [`count(${c.column})`, `sum(${c.column})`, `min(${c.column})`, `max(${c.column})`]);
        selects.push(`SELECT ${bucketOf('recorded_at')} AS b, count(*) AS n${aggs.map((a, i) => `, ${a} AS v${i}`).join('')}
                        FROM telemetry WHERE vin = $1 AND (${rowsCond}) GROUP BY 1`);
      }
      const hoursCond = within('hour', 'hourly');
      if (hoursCond) {
        const aggs = cols.flatMap((c) => {
          const s = summaryColumnsOf(c);
          return [`sum(${s.n})`, `sum(${s.sum})`, `min(${s.min})`, `max(${s.max})`];
        });
        selects.push(`SELECT ${bucketOf('hour')} AS b, sum(n) AS n${aggs.map((a, i) => `, ${a} AS v${i}`).join('')}
                        FROM telemetry_hourly WHERE vin = $1 AND (${hoursCond}) GROUP BY 1`);
      }
      const merged = cols.flatMap((_, i) => [
        `sum(v${4 * i + 1}) / nullif(sum(v${4 * i}), 0) AS a${i}`,
        `min(v${4 * i + 2}) AS n${i}`,
        `max(v${4 * i + 3}) AS x${i}`,
      ]);
      const r = selects.length
        ? await db.query<Record<string, unknown>>(
            `SELECT (extract(epoch FROM b) * 1000)::int8::text AS b, sum(n)::int AS n${merged.length ? ', ' + merged.join(', ') : ''}
               FROM (${selects.join(' UNION ALL ')}) p GROUP BY b ORDER BY b`,
            [vin, `${Math.round(bucketMs / 1000)} seconds`],
          )
        : { rows: [] as Record<string, unknown>[] };
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
