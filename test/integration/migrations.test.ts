// storage/driver/migrate.ts on a fresh database: safe from several processes at once, applied
// once, and the schema it makes has a column for every field of the .proto contract.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createPgDb } from '../../storage/driver/db.ts';
import { migrate, type MigrationResult } from '../../storage/driver/migrate.ts';
import { CONSUMPTION_COLUMNS, FIELD_COLUMNS } from '../../proto/fields.ts';

const MIGRATION_FILES = readdirSync(fileURLToPath(new URL('../../storage/migrations/', import.meta.url)))
  .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
  .sort();

let db: TestDatabase;
let first: [MigrationResult, MigrationResult];
let extensionPresent: boolean;

beforeAll(async () => {
  db = await createTestDatabase();
  // A fresh database: nothing migrated yet.
  const before = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('schema_migrations', 'telemetry')");
  expect(before[0]!.n).toBe(0);
  const a = createPgDb(db.url, { max: 2, applicationName: 'migrate-a' });
  const b = createPgDb(db.url, { max: 2, applicationName: 'migrate-b' });
  try {
    first = await Promise.all([migrate(a), migrate(b)]);
  } finally {
    await a.close();
    await b.close();
  }
  extensionPresent = (await db.query("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).length === 1;
});
afterAll(async () => {
  await db?.drop();
});

describe('migrate()', () => {
  it('has migrations to apply', () => {
    expect(MIGRATION_FILES.length).toBeGreaterThan(0);
  });

  it('two concurrent runs both succeed; together they apply every file exactly once', () => {
    const applied = [...first[0].applied, ...first[1].applied].sort();
    expect(applied).toEqual(MIGRATION_FILES);
    // One of them did all the work, the other found it done (the advisory lock serialises them).
    expect([first[0].applied.length, first[1].applied.length].sort()).toEqual([0, MIGRATION_FILES.length]);
  });

  it('schema_migrations records each file once, with its sha256', async () => {
    const rows = await db.query<{ name: string; sha256: string }>('SELECT name, sha256 FROM schema_migrations ORDER BY name');
    expect(rows.map((r) => r.name)).toEqual(MIGRATION_FILES);
    for (const r of rows) expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a third run applies nothing and changes nothing', async () => {
    const before = await db.query('SELECT name, sha256, applied_at FROM schema_migrations ORDER BY name');
    const c = createPgDb(db.url, { max: 1 });
    try {
      const r = await migrate(c);
      expect(r.applied).toEqual([]);
      expect(r.timescaledb).toBe(extensionPresent);
      expect(c.kind).toBe(extensionPresent ? 'timescaledb' : 'postgres');
    } finally {
      await c.close();
    }
    expect(await db.query('SELECT name, sha256, applied_at FROM schema_migrations ORDER BY name')).toEqual(before);
  });

  it('reports whether TimescaleDB is loaded, as the catalog says', () => {
    expect(first[0].timescaledb).toBe(extensionPresent);
    expect(first[1].timescaledb).toBe(extensionPresent);
  });

  it('makes telemetry and obfcm_readings hypertables when TimescaleDB is present', async (ctx) => {
    if (!extensionPresent) ctx.skip('the server TEST_DATABASE_URL points at has no TimescaleDB extension: no hypertables to check');
    const rows = await db.query<{ hypertable_name: string }>(
      "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public' ORDER BY hypertable_name",
    );
    expect(rows.map((r) => r.hypertable_name)).toEqual(['obfcm_readings', 'telemetry']);
  });

  it('indexes the stored rows by their primary key only (no time-only index to maintain per row), chunks included', async () => {
    // A chunk exists once a row is stored: insert one per table, then look at every index
    // on the hypertables and their chunks.
    const at = '2026-01-01T00:00:00Z';
    await db.query("INSERT INTO telemetry (vin, recorded_at, seq) VALUES ('WIDX0000000000001', $1, 1)", [at]);
    await db.query("INSERT INTO obfcm_readings (vin, recorded_at, seq) VALUES ('WIDX0000000000001', $1, 1)", [at]);
    const idx = await db.query<{ table: string; def: string }>(
      `SELECT c.relname AS table, pg_get_indexdef(i.indexrelid) AS def
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname IN ('telemetry', 'obfcm_readings')
           OR (n.nspname = '_timescaledb_internal' AND c.relname LIKE '_hyper_%_chunk')`,
    );
    expect(idx.length).toBeGreaterThanOrEqual(2);
    for (const x of idx) expect(x.def, x.table).toMatch(/\(vin, recorded_at, seq\)$/);
    if (extensionPresent) expect(idx.some((x) => x.table.includes('chunk')), 'chunk indexes seen').toBe(true);
  });
});

describe('reads by vehicle use an index', () => {
  it('ownership periods of a VIN, in their order, come from ownership_by_vin (no sequential scan of the table)', async () => {
    // On a table this small the planner may prefer a sequential scan; with those disabled
    // it still takes one when no index serves the query.
    const text = await explain(`SELECT owner_id, started_at, ended_at FROM ownership_periods WHERE vin = 'WIDX0000000000001' ORDER BY started_at, id`);
    expect(text).toContain('ownership_by_vin');
    expect(text).not.toContain('Seq Scan');
    const page = await explain(`SELECT vin, owner_id FROM ownership_periods WHERE vin > 'WIDX' ORDER BY vin, started_at, id LIMIT 100`);
    expect(page).toContain('ownership_by_vin');
  });
});

/** The plan of `sql` with sequential scans disabled, as one text. */
async function explain(sql: string): Promise<string> {
  const c = createPgDb(db.url, { max: 1 });
  try {
    return await c.transaction(async (tx) => {
      await tx.query('SET LOCAL enable_seqscan = off');
      const r = await tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`);
      return r.rows.map((x) => x['QUERY PLAN']).join('\n');
    });
  } finally {
    await c.close();
  }
}

describe('the schema covers the .proto contract', () => {
  async function doubleColumns(table: string): Promise<Set<string>> {
    const rows = await db.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 AND data_type = 'double precision'",
      [table],
    );
    return new Set(rows.map((r) => r.column_name));
  }

  it('FIELD_COLUMNS lists every field of TechnicalData, ConsumptionData and Location', () => {
    const counts = { technical: 0, consumption: 0, location: 0 };
    for (const c of FIELD_COLUMNS) counts[c.group]++;
    expect(counts).toEqual({ technical: 10, consumption: 8, location: 5 });
    for (const c of FIELD_COLUMNS) expect(c.column).toMatch(/^[a-z][a-z0-9_]*$/);
  });

  it('telemetry has a double precision column for every field, and no value column without a field', async () => {
    const cols = await doubleColumns('telemetry');
    for (const c of FIELD_COLUMNS) expect(cols.has(c.column), `telemetry.${c.column} (${c.group})`).toBe(true);
    expect([...cols].sort()).toEqual(FIELD_COLUMNS.map((c) => c.column).sort());
  });

  it('obfcm_readings has a double precision column for every ConsumptionData field', async () => {
    const cols = await doubleColumns('obfcm_readings');
    expect([...cols].sort()).toEqual(CONSUMPTION_COLUMNS.map((c) => c.column).sort());
  });
});
