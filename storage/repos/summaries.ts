// Per-vehicle hourly summaries of `telemetry` (migration 011): the SQL that keeps them in
// step with the rows, and the planning of a bucketed read over them.
//
// Who keeps them:
// - the batch writer and a shard move add the rows they inserted, in the same statement
//   (summaryUpsert over the CTE that inserted them: a duplicate inserts nothing, so it is
//   never counted twice);
// - an erasure, a location opt-out's history erasure, retention and a shard move's
//   deletion fix the hours they touched, in their own transaction (afterChange,
//   dropBefore, rebuildRange).
// Invariant (asserted by test/integration/summaries-properties.test.ts): for every vehicle and
// hour, the summary row equals the aggregate of that hour's rows, and an hour without rows
// has no summary row.
import type { Queryable } from '../driver/db.ts';
import { FIELD_COLUMNS, type FieldColumn, type Group } from '../../proto/fields.ts';
import type { OwnershipPeriod } from '../../proto/ownership.ts';

export const HOUR_MS = 3_600_000;

/** The bucket origin of every time bucket in this project (series.ts draws with it too). */
export const ORIGIN = '2000-01-01 00:00:00+00';
const ORIGIN_MS = Date.UTC(2000, 0, 1);

/** `hour` of a row: independent of the session's time zone (date_trunc is not). */
export const HOUR_OF = (col: string): string => `date_bin('1 hour', ${col}, timestamptz '${ORIGIN}')`;

const summaryCols = (c: FieldColumn): [string, string, string, string] => [`${c.column}_n`, `${c.column}_sum`, `${c.column}_min`, `${c.column}_max`];

/** Summary columns in table order, after vin, hour, n. */
const SUMMARY_COLUMNS = FIELD_COLUMNS.flatMap(summaryCols);

/** The aggregates of the rows of `source` (aliased or a table name) per vin and hour. */
const AGGREGATES = FIELD_COLUMNS.flatMap((c) => [`count(${c.column})::int`, `sum(${c.column})`, `min(${c.column})`, `max(${c.column})`]);

const INSERT_HEAD = `INSERT INTO telemetry_hourly (vin, hour, n, ${SUMMARY_COLUMNS.join(', ')})`;

/** The columns `source` must have for summaryUpsert: the key and every value column. */
export const SUMMARY_SOURCE_COLUMNS = ['vin', 'recorded_at', ...FIELD_COLUMNS.map((c) => c.column)] as const;

/**
 * Adds the rows of `source` (a CTE of freshly inserted rows with SUMMARY_SOURCE_COLUMNS) to
 * their hours. Ordered by key so that two writers' statements lock summary rows in the same
 * order (no deadlock between the writer's concurrent batches).
 */
export function summaryUpsert(source: string): string {
  const merge = FIELD_COLUMNS.flatMap((c) => {
    const [n, s, lo, hi] = summaryCols(c);
    return [
      `${n} = telemetry_hourly.${n} + excluded.${n}`,
      // NULL + x is NULL: then whichever side has a sum.
      `${s} = coalesce(telemetry_hourly.${s} + excluded.${s}, telemetry_hourly.${s}, excluded.${s})`,
      // least/greatest skip NULLs.
      `${lo} = least(telemetry_hourly.${lo}, excluded.${lo})`,
      `${hi} = greatest(telemetry_hourly.${hi}, excluded.${hi})`,
    ];
  });
  return `${INSERT_HEAD}
      SELECT vin, ${HOUR_OF('recorded_at')}, count(*)::int, ${AGGREGATES.join(', ')}
        FROM ${source} GROUP BY 1, 2 ORDER BY 1, 2
      ON CONFLICT (vin, hour) DO UPDATE SET n = telemetry_hourly.n + excluded.n, ${merge.join(', ')}`;
}

/**
 * Rebuilds `vin`'s summaries of the whole hours in [from, to) from its rows (`from`, `to`
 * are rounded out to whole hours; null = unbounded). Also how rows loaded in bulk (a
 * benchmark, a restore) get their summaries.
 */
export async function rebuildRange(q: Queryable, vin: string, from: Date | null, to: Date | null): Promise<void> {
  const lo = from === null ? null : floorHour(from);
  const hi = to === null ? null : ceilHour(to);
  const cond = (col: string, p: number) => `($${p}::timestamptz IS NULL OR ${col} >= $${p}) AND ($${p + 1}::timestamptz IS NULL OR ${col} < $${p + 1})`;
  await q.query(`DELETE FROM telemetry_hourly WHERE vin = $1 AND ${cond('hour', 2)}`, [vin, lo, hi]);
  // Bounds as literals where known, so that TimescaleDB excludes chunks while planning.
  const rowCond = [lo ? `recorded_at >= '${lo.toISOString()}'` : null, hi ? `recorded_at < '${hi.toISOString()}'` : null].filter(Boolean);
  await q.query(
    `${INSERT_HEAD}
     SELECT vin, ${HOUR_OF('recorded_at')}, count(*)::int, ${AGGREGATES.join(', ')}
       FROM telemetry WHERE vin = $1${rowCond.length ? ` AND ${rowCond.join(' AND ')}` : ''}
      GROUP BY 1, 2`,
    [vin],
  );
}

/**
 * Rebuilds every vehicle's summaries from the rows in one statement (a restore, a bulk
 * load of many vehicles): one pass over the table instead of one query per vehicle.
 */
export async function rebuildAll(q: Queryable): Promise<void> {
  await q.query('DELETE FROM telemetry_hourly');
  await q.query(
    `${INSERT_HEAD}
     SELECT vin, ${HOUR_OF('recorded_at')}, count(*)::int, ${AGGREGATES.join(', ')}
       FROM telemetry GROUP BY 1, 2`,
  );
}

/** What a change did to the rows of the periods it covered. */
export type RowChange = { kind: 'delete' } | { kind: 'clear'; group: Group };

/**
 * After `change` was applied to every row of `vin` measured in `periods` (the same
 * transaction): hours wholly inside a period are deleted (or have the group's columns
 * cleared), the hours cut by a period's edges are rebuilt from what rows are left.
 */
export async function afterChange(q: Queryable, vin: string, periods: readonly { from: Date; to: Date | null }[], change: RowChange): Promise<void> {
  for (const p of periods) {
    const whole = wholeHours(p.from, p.to);
    if (whole) {
      const cond = `vin = $1 AND hour >= $2 AND ($3::timestamptz IS NULL OR hour < $3)`;
      if (change.kind === 'delete') await q.query(`DELETE FROM telemetry_hourly WHERE ${cond}`, [vin, whole.from, whole.to]);
      else {
        const set = FIELD_COLUMNS.filter((c) => c.group === change.group).flatMap((c) => {
          const [n, s, lo, hi] = summaryCols(c);
          return [`${n} = 0`, `${s} = NULL`, `${lo} = NULL`, `${hi} = NULL`];
        });
        await q.query(`UPDATE telemetry_hourly SET ${set.join(', ')} WHERE ${cond}`, [vin, whole.from, whole.to]);
      }
    }
    for (const h of edgeHours(p.from, p.to)) await rebuildRange(q, vin, h, new Date(h.getTime() + HOUR_MS));
  }
}

/**
 * After every row of some vehicles measured before their `until` was deleted (the same
 * transaction): their summaries of earlier hours go, the hour holding `until` is rebuilt.
 * `source` is a row source of (vin, until) with its parameters, e.g. an unnest of arrays or
 * the query that chose the rows: set-based, one statement each whatever the count.
 */
export async function afterDeleteBefore(q: Queryable, source: { sql: string; params: unknown[] }): Promise<void> {
  await q.query(`DELETE FROM telemetry_hourly s USING ${source.sql} AS e(vin, until) WHERE s.vin = e.vin AND s.hour < e.until`, source.params);
  await q.query(
    `${INSERT_HEAD}
     SELECT t.vin, ${HOUR_OF('t.recorded_at')}, count(*)::int, ${AGGREGATES.map((a) => a.replace(/\((\w+)\)/, '(t.$1)')).join(', ')}
       FROM ${source.sql} AS e(vin, until)
       JOIN telemetry t ON t.vin = e.vin AND t.recorded_at >= ${HOUR_OF('e.until')} AND t.recorded_at < ${HOUR_OF('e.until')} + interval '1 hour'
      WHERE e.until > ${HOUR_OF('e.until')}
      GROUP BY 1, 2`,
    source.params,
  );
}

/**
 * After every row measured before `cutoff` was deleted (all vehicles; the same
 * transaction): summaries of earlier hours go; the hour holding `cutoff` is rebuilt.
 */
export async function afterCutoff(q: Queryable, cutoff: Date): Promise<void> {
  const edge = floorHour(cutoff);
  await q.query('DELETE FROM telemetry_hourly WHERE hour < $1', [cutoff]);
  if (edge.getTime() === cutoff.getTime()) return;
  await q.query(
    `${INSERT_HEAD}
     SELECT vin, ${HOUR_OF('recorded_at')}, count(*)::int, ${AGGREGATES.join(', ')}
       FROM telemetry WHERE recorded_at >= '${edge.toISOString()}' AND recorded_at < '${new Date(edge.getTime() + HOUR_MS).toISOString()}'
      GROUP BY 1, 2`,
  );
}

// ---------------------------------------------------------------------------
// Hour arithmetic (hours counted from ORIGIN, which is itself on a whole hour).

export function floorHour(t: Date): Date {
  return new Date(ORIGIN_MS + Math.floor((t.getTime() - ORIGIN_MS) / HOUR_MS) * HOUR_MS);
}
export function ceilHour(t: Date): Date {
  return new Date(ORIGIN_MS + Math.ceil((t.getTime() - ORIGIN_MS) / HOUR_MS) * HOUR_MS);
}

/** The whole hours inside [from, to) (to null: unbounded), or null when there is none. */
export function wholeHours(from: Date, to: Date | null): { from: Date; to: Date | null } | null {
  const a = ceilHour(from);
  const b = to === null ? null : floorHour(to);
  if (b !== null && b.getTime() <= a.getTime()) return null;
  return { from: a, to: b };
}

/** The hours [from, to) cuts (holds part of, not all), at most two. */
export function edgeHours(from: Date, to: Date | null): Date[] {
  const out = new Map<number, Date>();
  for (const t of to === null ? [from] : [from, to]) {
    const h = floorHour(t);
    if (h.getTime() !== t.getTime()) out.set(h.getTime(), h);
  }
  return [...out.values()];
}

// ---------------------------------------------------------------------------
// Reads

/** One stretch of time read from the summaries (whole hours) or from the rows. */
export interface ReadPart {
  source: 'hourly' | 'rows';
  from: Date;
  to: Date;
}

/**
 * How a bucketed read of [range.from, range.to) within `periods` splits: whole hours from
 * the summaries, the rest (at most two partial hours per period) from the rows. Only for
 * buckets of whole hours (every bucket then holds whole hours, as the origin is on one);
 * others read rows only. Pure, so that it is tested on its own.
 */
export function planRead(periods: readonly Pick<OwnershipPeriod, 'from' | 'to'>[], range: { from: Date; to: Date }, bucketMs: number): ReadPart[] {
  const parts: ReadPart[] = [];
  const useHours = bucketMs >= HOUR_MS && bucketMs % HOUR_MS === 0;
  for (const p of periods) {
    const from = new Date(Math.max(p.from.getTime(), range.from.getTime()));
    const to = new Date(Math.min(p.to === null ? Infinity : p.to.getTime(), range.to.getTime()));
    if (from.getTime() >= to.getTime()) continue;
    const whole = useHours ? wholeHours(from, to) : null;
    if (!whole || whole.to === null) {
      parts.push({ source: 'rows', from, to });
      continue;
    }
    if (from.getTime() < whole.from.getTime()) parts.push({ source: 'rows', from, to: whole.from });
    parts.push({ source: 'hourly', from: whole.from, to: whole.to });
    if (whole.to.getTime() < to.getTime()) parts.push({ source: 'rows', from: whole.to, to });
  }
  return parts;
}

/** The summary columns of a field column (for reads). */
export function summaryColumnsOf(c: FieldColumn): { n: string; sum: string; min: string; max: string } {
  const [n, sum, min, max] = summaryCols(c);
  return { n, sum, min, max };
}
