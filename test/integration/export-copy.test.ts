// The NDJSON export on pg reads telemetry by binary COPY and writes the JSON in the gateway
// (storage/driver/copy-out.ts). Here, against the real TimescaleDB: the lines it builds equal, value
// for value, the lines PostgreSQL builds itself (the path PGlite takes), on edge values:
// times before 2000 and on millisecond boundaries, -0, subnormals, 1e21, large seqs, groups
// carried with every field absent, groups not carried; and a torn or foreign stream is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb, type CopyDb, type Db } from '../../storage/driver/db.ts';
import { migrate } from '../../storage/driver/migrate.ts';
import { createReadRepo } from '../../storage/repos/reads.ts';
import { createVehicleRepo } from '../../storage/repos/vehicles.ts';
import { createRightsRepo } from '../../storage/repos/rights.ts';
import { CopyFormatError, copyDataStart, ndjsonPlan, rowOffsets } from '../../storage/driver/copy-out.ts';
import { FIELD_COLUMNS, GROUPS, type Group } from '../../proto/fields.ts';

const VIN = 'WCPYX000000000001';
const ALL: Group[] = [...GROUPS];

let tdb: TestDatabase;
let db: CopyDb;

/** The same Db without the COPY capability: ndjson() then takes the keyset path whose lines PostgreSQL builds. */
const withoutCopy = (d: Db): Db => Object.assign(Object.create(d) as Db, { copy: null });

const collect = async <T,>(g: AsyncGenerator<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const x of g) out.push(x);
  return out;
};

// [recorded_at, seq, has_technical, has_consumption, has_location, value for every column or null]
const EDGE_TIMES = [
  '1970-01-01 00:00:00+00',
  '1999-12-31 23:59:59.999999+00', // negative µs since 2000, truncated to .999
  '1999-12-31 23:59:59.0005+00',
  '2000-01-01 00:00:00+00',
  '2000-01-01 00:00:00.000999+00',
  '2024-02-29 12:00:00.01+00',
  '2024-02-29 12:00:00.1+00',
  '2026-11-25 01:02:03.456789+00',
];
const EDGE_VALUES = [0, -0, 1, -1, 0.1, 1 / 3, 12.345, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, -2.2250738585072014e-308, 123456789.123456, 48.137154];

beforeAll(async () => {
  tdb = await createTestDatabase();
  db = createPgDb(tdb.url, { max: 3 });
  await migrate(db);
  await createVehicleRepo(db).create({ vin: VIN, ownerId: 'copy-owner', secretHash: 'x' });
  const cols = FIELD_COLUMNS.map((c) => c.column);
  let seq = 2 ** 40;
  let k = 0;
  for (const t of EDGE_TIMES) {
    for (let variant = 0; variant < 4; variant++) {
      // variant 0: every field; 1: groups carried, every other field absent; 2: groups carried, all absent; 3: no group carried
      const values = cols.map((_, i) => (variant === 0 || (variant === 1 && i % 2 === 0) ? EDGE_VALUES[k++ % EDGE_VALUES.length]! : null));
      const carried = variant !== 3;
      await db.query(
        `INSERT INTO telemetry (vin, recorded_at, seq, ${cols.join(', ')}, has_technical, has_consumption, has_location)
         VALUES ($1, $2, $3, ${cols.map((_, i) => `$${i + 4}::float8`).join(', ')}, $${cols.length + 4}, $${cols.length + 4}, $${cols.length + 4})`,
        [VIN, t, seq++, ...values, carried],
      );
    }
  }
  // A run of plain rows, so segments split inside one second and across seconds.
  await db.query(
    `INSERT INTO telemetry (vin, recorded_at, seq, speed_kmh, latitude, has_technical, has_location)
     SELECT $1, timestamptz '2025-06-01 00:00:00+00' + g * interval '250 microseconds', g, g / 7.0, g / 3.0, true, g % 3 = 0 FROM generate_series(1, 2500) g`,
    [VIN],
  );
});
afterAll(async () => {
  await db?.close();
  await tdb?.drop();
});

describe('NDJSON by binary COPY (pg)', () => {
  it('builds the same lines as PostgreSQL, value for value, at every segment size and category set', async () => {
    const periods = await createRightsRepo(db).periodsOf(VIN, 'copy-owner');
    const reference = createReadRepo(withoutCopy(db));
    const copy = createReadRepo(db);
    const total = EDGE_TIMES.length * 4 + 2500;
    for (const categories of [ALL, ['location'], ['consumption', 'technical']] as Group[][]) {
      const expected = (await collect(reference.ndjson(VIN, periods, { from: null, to: null }, categories, 5000))).join('').trimEnd().split('\n');
      expect(expected).toHaveLength(total);
      for (const segment of [1, 7, 1000, 10_000]) {
        if (segment === 1 && categories !== ALL) continue;
        const got = (await collect(copy.ndjson(VIN, periods, { from: null, to: null }, categories, segment))).join('');
        expect(got.endsWith('\n')).toBe(true);
        const lines = got.trimEnd().split('\n');
        expect(lines, `${categories.join('+')}, segments of ${segment}`).toHaveLength(total);
        for (let i = 0; i < total; i++) {
          const a = JSON.parse(lines[i]!);
          const b = JSON.parse(expected[i]!);
          // -0 prints as 0 in JavaScript and -0 in PostgreSQL: equal as JSON numbers.
          if (JSON.stringify(a) !== JSON.stringify(b)) expect(a, `line ${i + 1}: ${lines[i]} vs ${expected[i]}`).toEqual(b);
        }
      }
    }
    // spot checks of the text itself
    const first = (await collect(copy.ndjson(VIN, periods, { from: null, to: null }, ALL)))[0]!.toString().split('\n')[0]!;
    expect(first).toMatch(new RegExp(`^\\{"vin":"${VIN}","seq":1099511627776,"recordedAt":"1970-01-01T00:00:00\\.000Z","receivedAt":"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z","technical":\\{"odometerKm":0,"speedKmh":0,"fuelLevelPct":1,`));
  });

  it('prints times at millisecond precision like Date#toISOString, before 2000 included', async () => {
    const periods = await createRightsRepo(db).periodsOf(VIN, 'copy-owner');
    const text = (await collect(createReadRepo(db).ndjson(VIN, periods, { from: null, to: new Date('2025-01-01T00:00:00Z') }, ['technical']))).join('');
    const times = [...new Set(text.trimEnd().split('\n').map((l) => JSON.parse(l).recordedAt as string))];
    // in time order; 2026 lies outside the range; .0005 s and .000999 s truncate to .000
    expect(times).toEqual(['1970-01-01T00:00:00.000Z', '1999-12-31T23:59:59.000Z', '1999-12-31T23:59:59.999Z', '2000-01-01T00:00:00.000Z', '2024-02-29T12:00:00.010Z', '2024-02-29T12:00:00.100Z']);
  });

  it('honours the range and the ownership periods, with literals the server parses back exactly', async () => {
    const periods = await createRightsRepo(db).periodsOf(VIN, 'copy-owner');
    const from = new Date('2025-06-01T00:00:00.100Z');
    const to = new Date('2025-06-01T00:00:00.200Z');
    const text = (await collect(createReadRepo(db).ndjson(VIN, periods, { from, to }, ['location'], 100))).join('');
    const seqs = text.trimEnd().split('\n').map((l) => JSON.parse(l).seq as number);
    // 250 µs apart from g = 1: [100 ms, 200 ms) holds g = 400 … 799
    expect(seqs).toEqual(Array.from({ length: 400 }, (_, i) => 400 + i));
    expect(await collect(createReadRepo(db).ndjson(VIN, await createRightsRepo(db).periodsOf(VIN, 'someone-else'), { from: null, to: null }, ALL))).toEqual([]);
  });

  it('refuses a stream that is not binary COPY, or that ends inside a row', async () => {
    const b = await db.copy.copyOut(`COPY (SELECT ${ndjsonPlan(VIN, ALL).select} FROM telemetry WHERE vin = '${VIN}' ORDER BY recorded_at, seq LIMIT 3) TO STDOUT (FORMAT binary)`);
    const start = copyDataStart(b);
    expect(rowOffsets(b, start)).toHaveLength(3);
    expect(() => copyDataStart(Buffer.from('seq,recorded_at\n'))).toThrow(CopyFormatError);
    expect(() => rowOffsets(b.subarray(0, b.length - 40), start)).toThrow(/ends inside a row/);
    expect(() => rowOffsets(b.subarray(0, start + 1), start)).toThrow(CopyFormatError);
  });

  it('copyOut(sql, into): fills the caller\'s buffer when the bound holds, falls back to a new one when it does not', async () => {
    const plan = ndjsonPlan(VIN, ALL);
    const sql = (n: number) => `COPY (SELECT ${plan.select} FROM telemetry WHERE vin = '${VIN}' ORDER BY recorded_at, seq LIMIT ${n}) TO STDOUT (FORMAT binary)`;
    const plain = await db.copy.copyOut(sql(500));
    expect(rowOffsets(plain, copyDataStart(plain))).toHaveLength(500);
    // every field present in the first rows: the bound is reached by full rows
    expect(plain.length).toBeLessThanOrEqual(plan.maxCopyBytes(500));
    const into = Buffer.alloc(plan.maxCopyBytes(500));
    const got = await db.copy.copyOut(sql(500), into);
    expect(got.buffer).toBe(into.buffer);
    expect(got.equals(plain)).toBe(true);
    const small = Buffer.alloc(100);
    const got2 = await db.copy.copyOut(sql(500), small);
    expect(got2.buffer).not.toBe(small.buffer);
    expect(got2.equals(plain)).toBe(true);
    // the bound is exact for a row with every field
    const one = await db.copy.copyOut(sql(1));
    expect(one.length).toBe(plan.maxCopyBytes(1));
  });

  it('a failing COPY rejects, and the pool goes on serving', async () => {
    await expect(db.copy.copyOut('COPY (SELECT no_such_column FROM telemetry) TO STDOUT (FORMAT binary)')).rejects.toThrow(/no_such_column/);
    for (let i = 0; i < 5; i++) expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry')).rows[0]!.n).toBe(EDGE_TIMES.length * 4 + 2500);
  });
});
