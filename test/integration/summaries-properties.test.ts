// Property (fast-check) through the real storage path, on TimescaleDB and on the embedded
// database: the hourly summaries (migration 011, storage/repos/summaries.ts) stay equal to
// the rows they sum, whatever happens to the rows, and /series' summary-backed answer equals
// the answer computed from the rows alone.
//
// Per run: a fresh vehicle; a random sequence of batches through the real batch writer
// (random measurement times over two days, groups and fields present or not, resent
// duplicates), ownership transfers, erasures (whole or one category, by the current or an
// earlier owner), location opt-outs that erase the history, and retention (contracts ended,
// an age cap). Then:
// - for every hour of the vehicle: the summary row holds exactly the rows' count, per-field
//   counts, minimum and maximum, and their sum (to rounding); no summary without rows;
// - for a random owner, range and bucket (whole hours, or not: then rows only), the series
//   equals the same aggregation over the rows of that owner's periods (the query /series
//   ran before the summaries existed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, testVin } from '../helpers/gateway.ts';
import { createPgDb, type Db } from '../../storage/driver/db.ts';
import { createPgliteDb } from '../../storage/driver/pglite.ts';
import { migrate } from '../../storage/driver/migrate.ts';
import { createVehicleRepo } from '../../storage/repos/vehicles.ts';
import { createConsentRepo } from '../../storage/repos/consent.ts';
import { createRightsRepo, periodCondition } from '../../storage/repos/rights.ts';
import { createSeriesRepo } from '../../storage/repos/series.ts';
import { applyRetention } from '../../storage/ops/retention.ts';
import { createBatchWriter, type TelemetryRow } from '../../storage/writer/writer.ts';
import { FIELD_COLUMNS, GROUPS, type Group } from '../../proto/fields.ts';
import type { OwnershipPeriod } from '../../proto/ownership.ts';
import type { Series } from '../../proto/records.ts';

const HOUR = 3_600_000;
const ORIGIN = '2000-01-01 00:00:00+00';

type Action =
  | { kind: 'write'; n: number; spreadH: number; seed: number; resend: boolean }
  | { kind: 'transfer' }
  | { kind: 'erase'; owner: number; category: Group | null }
  | { kind: 'locationOptOut' }
  | { kind: 'retention'; ageDays: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), n: fc.integer({ min: 1, max: 40 }), spreadH: fc.integer({ min: 1, max: 48 }), seed: fc.integer(), resend: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'transfer' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('erase' as const), owner: fc.nat(3), category: fc.constantFrom<Group | null>(null, ...GROUPS) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'locationOptOut' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('retention' as const), ageDays: fc.constantFrom(0, 1, 2) }) },
);

/** A small deterministic generator, so that a failing run's batches are reproducible from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** Each template's fields, some dropped (a field may be absent from a record), values varied. */
function groupValues(template: Record<string, number>, r: () => number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(template)) if (r() > 0.2) out[k] = Math.round(v * (0.5 + r()) * 1000) / 1000;
  return out;
}

function rows(vin: string, a: Extract<Action, { kind: 'write' }>, seqBase: number, now: number): TelemetryRow[] {
  const r = rng(a.seed);
  const out: TelemetryRow[] = [];
  for (let i = 0; i < a.n; i++) {
    const row: TelemetryRow = { vin, seq: seqBase + i, recordedAtMs: now - Math.floor(r() * a.spreadH * HOUR), shareObfcm: r() > 0.3 };
    if (r() > 0.2) row.technical = groupValues(FULL_TECHNICAL, r);
    if (r() > 0.4) row.consumption = groupValues(FULL_CONSUMPTION, r);
    if (r() > 0.3) row.location = groupValues(FULL_LOCATION, r);
    out.push(row);
  }
  return out;
}

/** The answer from the rows alone: the query /series ran before the summaries existed. */
async function rawSeries(db: Db, vin: string, periods: readonly OwnershipPeriod[], range: { from: Date; to: Date }, bucketMs: number): Promise<Series> {
  const per = periodCondition(periods, 5);
  const bucket = db.kind === 'timescaledb' ? `time_bucket($2::interval, recorded_at, timestamptz '${ORIGIN}')` : `date_bin($2::interval, recorded_at, timestamptz '${ORIGIN}')`;
  const aggs = FIELD_COLUMNS.flatMap((c, i) => [`avg(${c.column}) AS a${i}`, `min(${c.column}) AS n${i}`, `max(${c.column}) AS x${i}`]);
  const r = await db.query<Record<string, unknown>>(
    `SELECT (extract(epoch FROM ${bucket}) * 1000)::int8::text AS b, count(*)::int AS n, ${aggs.join(', ')}
       FROM telemetry WHERE vin = $1 AND recorded_at >= $3 AND recorded_at < $4 AND ${per.sql}
      GROUP BY 1 ORDER BY 1`,
    [vin, `${bucketMs / 1000} seconds`, range.from, range.to, ...per.params],
  );
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const out: Series = { t: r.rows.map((x) => Number(x.b)), count: r.rows.map((x) => Number(x.n)), fields: {} };
  FIELD_COLUMNS.forEach((c, i) => {
    out.fields[`${c.group}.${c.jsName}`] = { avg: r.rows.map((x) => num(x[`a${i}`])), min: r.rows.map((x) => num(x[`n${i}`])), max: r.rows.map((x) => num(x[`x${i}`])) };
  });
  return out;
}

const close = (a: number | null, b: number | null): boolean => (a === null || b === null ? a === b : Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b)));

/** Every summary of `vin` against the aggregate of its rows; returns the differences. */
async function summaryMismatches(db: Db, vin: string): Promise<string[]> {
  const cols = FIELD_COLUMNS.map((c) => c.column);
  const hour = `date_bin('1 hour', recorded_at, timestamptz '${ORIGIN}')`;
  const fromRows = await db.query<Record<string, unknown>>(
    `SELECT extract(epoch FROM ${hour})::int8::text AS h, count(*)::int AS n, ${cols.map((c) => `count(${c})::int AS ${c}_n, sum(${c}) AS ${c}_sum, min(${c}) AS ${c}_min, max(${c}) AS ${c}_max`).join(', ')}
       FROM telemetry WHERE vin = $1 GROUP BY 1`,
    [vin],
  );
  const fromSummaries = await db.query<Record<string, unknown>>(`SELECT extract(epoch FROM hour)::int8::text AS h, * FROM telemetry_hourly WHERE vin = $1`, [vin]);
  const want = new Map(fromRows.rows.map((r) => [String(r.h), r]));
  const got = new Map(fromSummaries.rows.map((r) => [String(r.h), r]));
  const diffs: string[] = [];
  for (const h of new Set([...want.keys(), ...got.keys()])) {
    const w = want.get(h);
    const g = got.get(h);
    if (!w || !g) {
      diffs.push(`hour ${h}: ${w ? 'rows but no summary' : 'a summary but no rows'}`);
      continue;
    }
    if (Number(w.n) !== Number(g.n)) diffs.push(`hour ${h}: n ${String(g.n)} != ${String(w.n)}`);
    for (const c of cols) {
      if (Number(w[`${c}_n`]) !== Number(g[`${c}_n`])) diffs.push(`hour ${h}: ${c}_n ${String(g[`${c}_n`])} != ${String(w[`${c}_n`])}`);
      for (const k of ['sum', 'min', 'max']) {
        const a = w[`${c}_${k}`] == null ? null : Number(w[`${c}_${k}`]);
        const b = g[`${c}_${k}`] == null ? null : Number(g[`${c}_${k}`]);
        if (k === 'sum' ? !close(a, b) : a !== b) diffs.push(`hour ${h}: ${c}_${k} ${String(b)} != ${String(a)}`);
      }
    }
  }
  return diffs;
}

interface Backend {
  name: string;
  open(): Promise<{ db: Db; cleanup(): Promise<void> }>;
  runs: number;
}

const BACKENDS: Backend[] = [
  {
    name: 'the test server (TimescaleDB)',
    runs: 30,
    async open() {
      const t: TestDatabase = await createTestDatabase();
      const db = createPgDb(t.url, { max: 3 });
      await migrate(db);
      return { db, cleanup: async () => { await db.close(); await t.drop(); } };
    },
  },
  {
    name: 'the embedded database (PGlite)',
    runs: 20,
    async open() {
      const db = await createPgliteDb(null);
      await migrate(db);
      return { db, cleanup: () => db.close() };
    },
  },
];

describe.each(BACKENDS)('hourly summaries on $name', (backend) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ db, cleanup } = await backend.open());
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it('equal the rows after any mix of writes, transfers, erasures, opt-outs and retention; /series from them equals /series from the rows', { timeout: 600_000 }, async () => {
    const vehicles = createVehicleRepo(db);
    const consents = createConsentRepo(db);
    const rights = createRightsRepo(db);
    const series = createSeriesRepo(db);
    let run = 0;
    let summaryBacked = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(action, { minLength: 1, maxLength: 10 }),
        fc.record({ owner: fc.nat(3), fromH: fc.integer({ min: 0, max: 52 }), spanH: fc.integer({ min: 1, max: 60 }), offMin: fc.integer({ min: 0, max: 59 }), bucket: fc.constantFrom(HOUR, 3 * HOUR, 24 * HOUR, 15 * 60_000) }),
        async (actions, read) => {
          const vin = testVin();
          const owners = [`sum-${++run}-0`];
          await vehicles.create({ vin, ownerId: owners[0]!, secretHash: 'h' });
          let seq = 0;
          let last: TelemetryRow[] = [];
          for (const a of actions) {
            if (a.kind === 'write') {
              const batch = rows(vin, a, seq, Date.now());
              seq += a.n;
              // A resend: the previous batch again, with this one; stored and summed once.
              const w = createBatchWriter(db);
              try {
                await w.write({ telemetry: a.resend ? [...last, ...batch] : batch, quarantine: [] });
              } finally {
                await w.close();
              }
              last = batch;
            } else if (a.kind === 'transfer') {
              owners.push(`sum-${run}-${owners.length}`);
              await rights.transfer(vin, owners[owners.length - 1]!, 'test');
            } else if (a.kind === 'erase') {
              await rights.erase(vin, owners[a.owner % owners.length]!, a.category);
            } else if (a.kind === 'locationOptOut') {
              await consents.set(vin, { location: false, eraseLocationHistory: true, actor: 'test', channel: 'test' });
            } else {
              // Contracts that ended (any age), and an age cap of 0-2 days (0: off).
              await db.transaction((tx) => applyRetention(Object.assign(tx, { kind: db.kind }), { afterContractDays: 0, telemetryDays: a.ageDays, obfcmDays: 3650, quarantineDays: 3650 }));
            }
          }
          expect(await summaryMismatches(db, vin), `summaries after ${JSON.stringify(actions)}`).toEqual([]);

          const periods = await rights.periodsOf(vin, owners[read.owner % owners.length]!);
          const to = new Date(Date.now() + HOUR - read.fromH * HOUR - read.offMin * 60_000);
          const range = { from: new Date(to.getTime() - read.spanH * HOUR), to };
          const got = await series.series(vin, periods, range, read.bucket, GROUPS);
          const want = await rawSeries(db, vin, periods, range, read.bucket);
          if (read.bucket % HOUR === 0 && read.spanH > 2) summaryBacked++;
          expect(got.t).toEqual(want.t);
          expect(got.count).toEqual(want.count);
          for (const [name, f] of Object.entries(want.fields)) {
            const g = got.fields[name]!;
            expect(g.min, name).toEqual(f.min);
            expect(g.max, name).toEqual(f.max);
            const bad = f.avg.map((v, i) => (close(v, g.avg[i] ?? null) ? null : `${i}: ${String(g.avg[i])} != ${String(v)}`)).filter(Boolean);
            expect(bad, `${name} avg`).toEqual([]);
          }
        },
      ),
      { numRuns: backend.runs },
    );
    // The property exercised the summaries, not only the rows.
    expect(summaryBacked).toBeGreaterThan(backend.runs / 4);
  });
});
