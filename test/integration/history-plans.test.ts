// The plans of two reads over long histories, asserted on the real TimescaleDB where a
// regression would be silent (issue 24), as migration 009's index test does for ownership:
// - an export's keyset segment after the first carries a plain `recorded_at >= <the key's
//   time>`, so the chunks before the key are excluded when it is planned (the row comparison
//   `(recorded_at, seq) > (…)` alone excludes none: asserted too, as the reason for the bound);
// - a page of the OBFCM report probes, per VIN and period, the primary key backwards for its
//   latest reading (LATERAL … LIMIT 1 over an ordered ChunkAppend of the range's chunks only),
//   never scanning or sorting every reading of the range.
// And the report's rows and disclosures are the same whatever the page size, pages of VINs
// without a reading included.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb, type Db, type Queryable } from '../../storage/driver/db.ts';
import { migrate } from '../../storage/driver/migrate.ts';
import { createReadRepo, exportSegmentSql, isoMicros, obfcmPageSql, OBFCM_VIN_PAGE_SQL, probeReadings } from '../../storage/repos/reads.ts';

const VINS = Array.from({ length: 20 }, (_, i) => `WHPL${String(i).padStart(13, '0')}`);
const DENSE = VINS[0]!;
const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');
/** Microseconds from the Unix epoch to PostgreSQL's. */
const PG_EPOCH_US = 946_684_800_000_000;
const CHUNK = /_hyper_(\d+)_(\d+)_chunk/g;

let tdb: TestDatabase;
let db: Db;
let ids: { telemetry: number; obfcm: number };

beforeAll(async () => {
  tdb = await createTestDatabase();
  db = createPgDb(tdb.url, { max: 2 });
  await migrate(db);
  const ext = await tdb.query("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'");
  expect(ext.length, 'these plans are TimescaleDB plans: the test server runs it (scripts/timescaledb.sh)').toBe(1);
  await tdb.query(`INSERT INTO vehicles (vin, owner_id, secret_hash) SELECT v, 'owner-' || v, 'x' FROM unnest($1::text[]) v`, [VINS]);
  await tdb.query('INSERT INTO ownership_periods (vin, owner_id, started_at) SELECT vin, owner_id, created_at FROM vehicles');
  // One vehicle: a record an hour for 30 days (30 daily chunks).
  await tdb.query(
    `INSERT INTO telemetry (vin, recorded_at, seq, has_technical, speed_kmh)
     SELECT $1, $2::timestamptz + g * interval '1 hour', g + 1, true, g FROM generate_series(0, 30 * 24 - 1) g`,
    [DENSE, new Date(T0)],
  );
  // VIN i (of the first 15): a reading a day for 70 - 5i days (10 weekly chunks in all), so
  // the latest reading of each lies elsewhere, some before the report's range; the last 5: none.
  await tdb.query(
    `INSERT INTO obfcm_readings (vin, recorded_at, seq, total_distance_km)
     SELECT v.vin, $2::timestamptz + g * interval '1 day', g + 1, g * 10.5
       FROM unnest($1::text[]) WITH ORDINALITY AS v(vin, i) CROSS JOIN LATERAL generate_series(0, 69 - 5 * (v.i::int - 1)) g
      WHERE v.i <= 15`,
    [VINS, new Date(T0)],
  );
  await tdb.query('ANALYZE');
  const h = await tdb.query<{ table_name: string; id: number }>(
    "SELECT table_name, id FROM _timescaledb_catalog.hypertable WHERE table_name IN ('telemetry', 'obfcm_readings')",
  );
  ids = { telemetry: h.find((x) => x.table_name === 'telemetry')!.id, obfcm: h.find((x) => x.table_name === 'obfcm_readings')!.id };
});
afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

/** The plan of `sql` (EXPLAIN, not run) as one text; `seqscan: false` as migrations.test.ts does on tables this small. */
async function explain(sql: string, params: unknown[] = [], opts: { seqscan?: boolean } = {}): Promise<string> {
  return db.transaction(async (tx) => {
    if (opts.seqscan === false) await tx.query('SET LOCAL enable_seqscan = off');
    const r = await tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
    return r.rows.map((x) => x['QUERY PLAN']).join('\n');
  });
}

/** The chunks of hypertable `id` a plan names. */
function chunksIn(plan: string, id: number): Set<string> {
  return new Set([...plan.matchAll(CHUNK)].filter((m) => Number(m[1]) === id).map((m) => m[0]));
}

describe('export segments exclude the chunks before their key when planned', () => {
  const keyMs = T0 + 20 * DAY_MS + 5 * 3_600_000; // day 20, 05:00
  const key = { seq: 20 * 24 + 5 + 1, pgMicros: keyMs * 1000 - PG_EPOCH_US };
  const w = { from: new Date(0), to: null };

  it('a segment after the key at day 20 of 30 is planned against days 20-29 only', async () => {
    const sql = exportSegmentSql('seq, recorded_at', DENSE, w, 4000, key);
    expect(sql).toContain(`recorded_at >= timestamptz '2026-01-21T05:00:00.000000Z'`);
    const all = (await tdb.query<{ n: number }>('SELECT count(*)::int AS n FROM show_chunks($1)', ['telemetry']))[0]!.n;
    expect(all).toBe(30);
    const planned = chunksIn(await explain(sql), ids.telemetry);
    expect(planned.size).toBe(10);
  });

  it('without that bound the row comparison alone excludes no chunk (why the bound is there)', async () => {
    const sql = exportSegmentSql('seq, recorded_at', DENSE, w, 4000, key).replace(/ AND recorded_at >= timestamptz '[^']+'/, '');
    expect(sql).not.toMatch(/recorded_at >= timestamptz/);
    expect(chunksIn(await explain(sql), ids.telemetry).size).toBe(30);
  });

  it('the first segment has no key bound, and an upper bound where the range has one', async () => {
    const first = exportSegmentSql('seq, recorded_at', DENSE, { from: new Date(T0 + 3 * DAY_MS), to: new Date(T0 + 5 * DAY_MS) }, 4000, null);
    expect(first).not.toContain('(recorded_at, seq) >');
    expect(chunksIn(await explain(first), ids.telemetry).size).toBe(2);
  });

  it('a segment with its own window is planned against the window\'s chunks only', async () => {
    const keyUs = keyMs * 1000;
    const sql = exportSegmentSql('seq, recorded_at', DENSE, w, 4000, key, { loUs: keyUs, hiUs: keyUs + 2 * DAY_MS * 1000 });
    expect(sql).toContain(`recorded_at < timestamptz '2026-01-23T05:00:00.000000Z'`);
    expect(chunksIn(await explain(sql), ids.telemetry).size).toBe(3);
  });

  it('the key bound is exact to the microsecond', () => {
    expect(isoMicros(Date.parse('2026-01-21T05:00:00.123Z') * 1000 + 456)).toBe('2026-01-21T05:00:00.123456Z');
    expect(isoMicros(-1)).toBe('1969-12-31T23:59:59.999999Z');
  });

  /** Every seq the NDJSON export of `vin` sends, in order, with segments of `rows`. */
  async function exported(vin: string, rows: number, range: { from: Date | null; to: Date | null } = { from: null, to: null }): Promise<number[]> {
    const repo = createReadRepo(db);
    const lines: string[] = [];
    for await (const chunk of repo.ndjson(vin, [{ ownerId: 'o', from: new Date(0), startedAt: new Date(0), to: null }], range, ['technical'], rows)) lines.push(...chunk.split('\n').filter(Boolean));
    return lines.map((l) => (JSON.parse(l) as { seq: number }).seq);
  }

  it('the export reads every row once, in order, across segment boundaries', async () => {
    const all = Array.from({ length: 30 * 24 }, (_, i) => i + 1);
    for (const rows of [7, 100, 719, 720, 4000]) expect(await exported(DENSE, rows), `segments of ${rows}`).toEqual(all);
    expect(await exported(DENSE, 50, { from: new Date(T0 + 2 * DAY_MS), to: new Date(T0 + 9 * DAY_MS + 1) })).toEqual(all.slice(48, 9 * 24 + 1));
  });

  it('each segment of a whole export is planned against the few chunks its window covers', async () => {
    const seen: string[] = [];
    const copy = db.copy!;
    const spy: Db = { ...db, copy: { ...copy, copyOut: (sql: string, into: Buffer) => (seen.push(sql), copy.copyOut(sql, into)) } };
    const lines: string[] = [];
    for await (const chunk of createReadRepo(spy).ndjson(DENSE, [{ ownerId: 'o', from: new Date(0), startedAt: new Date(0), to: null }], { from: null, to: null }, ['technical'], 100)) lines.push(chunk);
    expect(lines.join('').split('\n').filter(Boolean)).toHaveLength(30 * 24);
    expect(seen.length).toBeGreaterThan(7);
    const planned: number[] = [];
    for (const sql of seen) planned.push(chunksIn(await explain(/^COPY \((.*)\) TO STDOUT/s.exec(sql)![1]!), ids.telemetry).size);
    // 100 hourly rows span about 4 days: a window of twice that, never the 30 days to the end.
    expect(Math.max(...planned.slice(1, -1)), planned.join(',')).toBeLessThanOrEqual(10);
  });

  it('and across gaps longer than any window: months apart, bursts, equal times, the far future', async () => {
    const vin = VINS[19]!;
    const at = (ms: number) => new Date(ms);
    const times = [
      ...Array.from({ length: 30 }, (_, i) => at(T0 - 400 * DAY_MS + i * 1000)), // a burst a year before
      at(T0 - 90 * DAY_MS), at(T0 - 90 * DAY_MS), at(T0 - 90 * DAY_MS), // three at the same time
      at(T0 + 3 * DAY_MS),
      ...Array.from({ length: 25 }, (_, i) => at(Date.now() + i * 10)), // now
      at(Date.now() + 2 * DAY_MS), // ahead of the clock
      at(Date.parse('2031-06-01T00:00:00Z')), // years ahead
    ];
    await tdb.query(
      `INSERT INTO telemetry (vin, recorded_at, seq, has_technical, speed_kmh) SELECT $1, t, i, true, i FROM unnest($2::timestamptz[]) WITH ORDINALITY AS x(t, i)`,
      [vin, times],
    );
    const all = times.map((_, i) => i + 1);
    for (const rows of [1, 2, 3, 5, 29, 30, 31, 1000]) expect(await exported(vin, rows), `segments of ${rows}`).toEqual(all);
    expect(await exported(vin, 4, { from: new Date(T0 - 100 * DAY_MS), to: new Date(T0 + 4 * DAY_MS) })).toEqual([31, 32, 33, 34]);
  });
});

describe('the OBFCM report probes an index per VIN', () => {
  const from = new Date(T0 + 50 * DAY_MS);
  const to = new Date(T0 + 78 * DAY_MS);
  const params = [from, to, 'authority', 'plan-test', 'GET /v1/reports/obfcm', VINS.slice(0, 10)];

  it('a page reads each VIN\'s latest reading by a backward probe of the primary key, in the range\'s chunks only', async () => {
    const plan = await explain(obfcmPageSql(), params, { seqscan: false });
    const lines = plan.split('\n');
    const obfcmLines = lines.filter((l) => chunksIn(l, ids.obfcm).size > 0 && /Scan/.test(l));
    expect(obfcmLines.length).toBeGreaterThan(0);
    for (const l of obfcmLines) expect(l, 'every obfcm chunk is read by a backward index scan').toMatch(/Index Scan Backward using "?\d+_\d+_obfcm_readings_pkey"? on _hyper_/);
    // One ordered append under a LIMIT: the probe stops at the first (latest) reading.
    const append = lines.findIndex((l) => /ChunkAppend\) on obfcm_readings/.test(l));
    expect(append).toBeGreaterThan(0);
    expect(lines[append - 1]).toMatch(/->\s+Limit/);
    expect(lines[append + 1]).toMatch(/Order: \S+\.recorded_at DESC, \S+\.seq DESC/);
    expect(plan).not.toMatch(/Hash Join/);
    // Only the chunks overlapping days 50-77, of the 10 weekly ones.
    const c = await tdb.query<{ total: number; overlapping: number }>(
      `SELECT count(*)::int AS total, (count(*) FILTER (WHERE range_start < $1 AND range_end > $2))::int AS overlapping
         FROM timescaledb_information.chunks WHERE hypertable_name = 'obfcm_readings'`,
      [to, from],
    );
    expect(c[0]!.total).toBe(10);
    expect(c[0]!.overlapping).toBeLessThan(5);
    expect(chunksIn(plan, ids.obfcm).size).toBe(c[0]!.overlapping);
  });

  it('left to the planner, it is still one LIMIT 1 per VIN and period, never a join over every reading', async () => {
    // (On chunks this small the planner may read one by a sequential scan: what matters is
    // that the shape cannot turn into a hash join over every reading of the range.)
    const plan = await explain(obfcmPageSql(), params);
    expect(plan).not.toMatch(/Hash Join|Merge Join/);
    const lines = plan.split('\n');
    const firstObfcm = lines.findIndex((l) => chunksIn(l, ids.obfcm).size > 0);
    expect(firstObfcm).toBeGreaterThan(0);
    // The nearest LIMIT above the readings is the lateral's, inside the nested loop over periods.
    const limit = lines.slice(0, firstObfcm).findLastIndex((l) => /->\s+Limit/.test(l));
    expect(limit).toBeGreaterThan(lines.findIndex((l) => /Nested Loop\s/.test(l)));
  });

  it('the probes run without runtime chunk exclusion (each loop re-checked every chunk: 8× slower, see probeReadings)', async () => {
    const analyze = (q: Queryable) => q.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF) ${obfcmPageSql()}`, [from, to, 'authority', 'plan-analyze', 'test', VINS.slice(0, 10)]);
    const plain = (await db.transaction(analyze)).rows.map((x) => x['QUERY PLAN']).join('\n');
    expect(plain, 'what the setting turns off').toMatch(/Chunks excluded during runtime/);
    const probed = (await probeReadings(db, analyze)).rows.map((x) => x['QUERY PLAN']).join('\n');
    expect(probed).toMatch(/ChunkAppend\) on obfcm_readings/);
    expect(probed).not.toMatch(/Chunks excluded during runtime/);
  });

  it('pages of VINs come from ownership_by_vin', async () => {
    const plan = await explain(OBFCM_VIN_PAGE_SQL, ['', 1000], { seqscan: false });
    expect(plan).toContain('ownership_by_vin');
    expect(plan).not.toContain('Seq Scan');
  });

  it('the rows and disclosures are the same for any page size, pages without a reading skipped', async () => {
    const expected = await tdb.query<{ vin: string; recorded_at: Date; total_distance_km: number }>(
      `SELECT DISTINCT ON (vin) vin, recorded_at, total_distance_km FROM obfcm_readings
        WHERE recorded_at >= $1 AND recorded_at < $2 ORDER BY vin, recorded_at DESC, seq DESC`,
      [from, to],
    );
    // Some VINs have readings only before the range, the last five none at all.
    expect(expected.length).toBeGreaterThan(3);
    expect(expected.length).toBeLessThan(15);
    const repo = createReadRepo(db);
    for (const pageSize of [1000, 3, 1]) {
      const subject = `pages-${pageSize}`;
      const rows: { vin: string; recordedAt: Date; values: Record<string, number> }[] = [];
      let pages = 0;
      for await (const page of repo.obfcmReportPages({ from, to }, { role: 'authority', subject, endpoint: 'GET /v1/reports/obfcm' }, pageSize)) {
        expect(page.length).toBeGreaterThan(0);
        pages++;
        rows.push(...page);
      }
      expect(rows.map((r) => [r.vin, r.recordedAt.toISOString(), r.values.totalDistanceKm]), `page size ${pageSize}`).toEqual(
        expected.map((e) => [e.vin, e.recorded_at.toISOString(), e.total_distance_km]),
      );
      if (pageSize === 1) expect(pages).toBe(expected.length);
      const filed = await tdb.query<{ vin: string; owner_id: string }>('SELECT vin, owner_id FROM disclosures WHERE subject = $1 ORDER BY vin', [subject]);
      expect(filed).toEqual(expected.map((e) => ({ vin: e.vin, owner_id: `owner-${e.vin}` })));
    }
  });
});
