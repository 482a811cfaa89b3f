// The storage layer's contract, run unchanged against both backends: the pg pool on a
// fresh database of the test server (TimescaleDB when it has the extension) and the
// embedded PGlite (in memory). Same repositories, same SQL, same assertions; the only
// allowed differences are `db.kind` and the hypertables (TimescaleDB only).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createTestDatabase } from '../helpers/db.ts';
import { FULL_CONSUMPTION, FULL_LOCATION, FULL_TECHNICAL, testVin, waitFor } from '../helpers/gateway.ts';
import { createPgDb, type Db, type QueryResult } from '../../storage/driver/db.ts';
import { createPgliteDb } from '../../storage/driver/pglite.ts';
import { createSeriesRepo, rebuildSummaries } from '../../storage/repos/series.ts';
import { migrate, type MigrationResult } from '../../storage/driver/migrate.ts';
import { createVehicleRepo, type VehicleRepo } from '../../storage/repos/vehicles.ts';
import { CONSENT_CHANNEL, createConsentRepo, type ConsentRepo } from '../../storage/repos/consent.ts';
import { createRightsRepo, type RightsRepo } from '../../storage/repos/rights.ts';
import { createReadRepo } from '../../storage/repos/reads.ts';
import { openShards, type Shards } from '../../storage/driver/shards.ts';
import { createBatchWriter, type BatchStats, type QuarantineRow, type TelemetryRow, type WriteItem } from '../../storage/writer/writer.ts';
import { StorageError } from '../../storage/errors.ts';
import { GROUPS } from '../../proto/fields.ts';

const MIGRATION_FILES = readdirSync(fileURLToPath(new URL('../../storage/migrations/', import.meta.url)))
  .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
  .sort();

type TestDb = Db & { setKind(kind: string): void };

interface Backend {
  /** The control database (everything when not sharded). */
  db: TestDb;
  /** SHARD_URLS mode: opens the shards holding the telemetry-side tables (after the control database is migrated). */
  shards?: () => Promise<Shards>;
  /** The kinds this backend may report after migrate(). */
  kinds: string[];
  cleanup(): Promise<void>;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  let err: unknown = null;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, `expected a rejection with ${code}`).toBeInstanceOf(StorageError);
  expect((err as StorageError).code).toBe(code);
}

const bytes = (v: unknown): Buffer => Buffer.from(v as Uint8Array);

/** A telemetry row with every group, values derived from i so each row is recognisable. */
function fullRow(vin: string, seq: number, recordedAtMs: number, i = seq, shareObfcm = true): TelemetryRow {
  return {
    vin,
    seq,
    recordedAtMs,
    technical: { ...FULL_TECHNICAL, speedKmh: i },
    consumption: { ...FULL_CONSUMPTION, totalDistanceKm: 1000 + i },
    location: { ...FULL_LOCATION, headingDeg: i },
    shareObfcm,
  };
}

function quarantineRow(vin: string | null, key: string, payload: Buffer | null, extra: Partial<QuarantineRow> = {}): QuarantineRow {
  return {
    vin,
    reason: 'GW_ERR_DECODE',
    detail: `test ${key}`,
    seq: null,
    recordedAtMs: null,
    payload,
    payloadBytes: payload?.length ?? 0,
    dedupeKey: Buffer.from(`dedupe-${key}-${Math.random()}`),
    ...extra,
  };
}

function contract(name: string, makeBackend: () => Promise<Backend>): void {
  describe(`storage contract: ${name}`, () => {
    let be: Backend;
    let db: TestDb;
    let firstMigration: MigrationResult;
    let vehicles: VehicleRepo;
    let consents: ConsentRepo;
    let rights: RightsRepo;
    /** Where the telemetry-side tables are: the shard when sharded (one shard), else the database. */
    let sdb: TestDb;
    let shards: Shards | undefined;
    const stats: BatchStats[] = [];

    const write = async (item: Partial<WriteItem>): Promise<void> => {
      const w = createBatchWriter(sdb, { onBatch: (s) => stats.push(s) });
      try {
        await w.write({ telemetry: item.telemetry ?? [], quarantine: item.quarantine ?? [] });
      } finally {
        await w.close();
      }
    };
    const rows = async <R = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> => (await db.query<R>(sql, params)).rows;
    /** rows() of the telemetry-side tables (telemetry, obfcm_readings, quarantine). */
    const trows = async <R = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> => (await sdb.query<R>(sql, params)).rows;
    const count = async (table: string, vin: string): Promise<number> =>
      (await trows<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE vin = $1`, [vin]))[0]!.n;
    const newVehicle = async (owner: string): Promise<string> => {
      const vin = testVin();
      await vehicles.create({ vin, ownerId: owner, secretHash: `hash-of-${vin}` });
      return vin;
    };

    beforeAll(async () => {
      be = await makeBackend();
      db = be.db;
      firstMigration = await migrate(db);
      shards = be.shards ? await be.shards() : undefined;
      sdb = (shards?.sharded ? shards.db(0) : db) as TestDb;
      vehicles = createVehicleRepo(db);
      consents = createConsentRepo(db, {}, shards);
      rights = createRightsRepo(db, {}, shards);
    });
    afterAll(async () => {
      await be?.cleanup();
    });

    describe('migrate()', () => {
      it('applies every migration on a fresh database, once', () => {
        expect(firstMigration.applied).toEqual(MIGRATION_FILES);
      });

      it('a second run applies nothing and leaves schema_migrations as it was', async () => {
        const before = await rows('SELECT name, sha256 FROM schema_migrations ORDER BY name');
        const again = await migrate(db);
        expect(again.applied).toEqual([]);
        expect(again.timescaledb).toBe(firstMigration.timescaledb);
        expect(await rows('SELECT name, sha256 FROM schema_migrations ORDER BY name')).toEqual(before);
        expect(before.map((r) => r.name)).toEqual(MIGRATION_FILES);
      });

      it('reports its kind (the one allowed difference)', () => {
        expect(be.kinds).toContain(db.kind);
        expect(db.kind === 'timescaledb').toBe(firstMigration.timescaledb);
      });

      it('makes telemetry and obfcm_readings hypertables when the kind is timescaledb', async (ctx) => {
        if (db.kind !== 'timescaledb') ctx.skip(`no hypertables on ${db.kind}: this contract suite runs against the embedded database too`);
        const r = await rows<{ hypertable_name: string }>(
          "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public' ORDER BY hypertable_name",
        );
        expect(r.map((x) => x.hypertable_name)).toEqual(['obfcm_readings', 'telemetry']);
      });
    });

    describe('the Db seam', () => {
      it('rowCount: rows returned by a SELECT (incl. FOR UPDATE), rows changed by INSERT/UPDATE/DELETE; inside and outside a transaction', async () => {
        await db.query('CREATE TABLE IF NOT EXISTS seam_probe (k int PRIMARY KEY, v text)');
        await db.query('DELETE FROM seam_probe');
        expect((await db.query('INSERT INTO seam_probe VALUES (1, $1), (2, $1), (3, $1)', ['x'])).rowCount).toBe(3);
        const sel = await db.query<{ k: number }>('SELECT k FROM seam_probe WHERE v = $1 ORDER BY k', ['x']);
        expect(sel.rows.map((r) => r.k)).toEqual([1, 2, 3]);
        expect(sel.rowCount).toBe(3);
        expect((await db.query('SELECT 1 FROM seam_probe WHERE k = $1', [2])).rowCount).toBe(1);
        expect((await db.query('SELECT 1 FROM seam_probe WHERE k = $1', [9])).rowCount).toBe(0);
        expect((await db.query('UPDATE seam_probe SET v = $1 WHERE k >= $2', ['y', 2])).rowCount).toBe(2);
        await db.transaction(async (tx) => {
          expect((await tx.query('SELECT 1 FROM seam_probe WHERE k = $1 FOR UPDATE', [1])).rowCount).toBe(1);
          expect((await tx.query('SELECT k FROM seam_probe WHERE v = $1', ['y'])).rowCount).toBe(2);
          expect((await tx.query('DELETE FROM seam_probe WHERE k = $1', [3])).rowCount).toBe(1);
        });
        expect((await db.query('DELETE FROM seam_probe')).rowCount).toBe(2);
      });

      it('transaction(): commits on return, rolls back on throw', async () => {
        await db.query('CREATE TABLE IF NOT EXISTS seam_tx (k int PRIMARY KEY)');
        expect(await db.transaction(async (tx) => (await tx.query('INSERT INTO seam_tx VALUES ($1)', [1])).rowCount)).toBe(1);
        await expect(
          db.transaction(async (tx) => {
            await tx.query('INSERT INTO seam_tx VALUES ($1)', [2]);
            throw new Error('boom');
          }),
        ).rejects.toThrow('boom');
        expect((await rows<{ k: number }>('SELECT k FROM seam_tx ORDER BY k')).map((r) => r.k)).toEqual([1]);
        const s = db.stats();
        expect(s.total).toBeGreaterThanOrEqual(1);
        expect(s.waiting).toBe(0);
      });
    });

    describe('vehicles', () => {
      it('create, getCredentials, list in VIN order with keyset paging', async () => {
        const vins = [testVin(), testVin(), testVin()].sort();
        const created = [];
        for (const [i, vin] of vins.entries()) created.push(await vehicles.create({ vin, ownerId: `owner-${i}`, secretHash: `scrypt$hash${i}` }));
        expect(created.map((c) => c.vin)).toEqual(vins);
        expect(created[0]!.ownerId).toBe('owner-0');
        expect(created[0]!.createdAt).toBeInstanceOf(Date);
        expect(Math.abs(created[0]!.createdAt.getTime() - Date.now())).toBeLessThan(60_000);

        expect(await vehicles.getCredentials(vins[1]!)).toEqual({ vin: vins[1], ownerId: 'owner-1', secretHash: 'scrypt$hash1' });
        expect(await vehicles.getCredentials('WNOTPROVISIONED00')).toBeNull();

        const all = await vehicles.list({ limit: 1000 });
        const mine = all.filter((v) => vins.includes(v.vin));
        expect(mine.map((v) => v.vin)).toEqual(vins);
        expect(all.map((v) => v.vin)).toEqual(all.map((v) => v.vin).sort());
        expect(mine[2]!.createdAt).toBeInstanceOf(Date);

        const page = await vehicles.list({ afterVin: vins[0]!, limit: 1 });
        expect(page.map((v) => v.vin)).toEqual([vins[1]]);
        expect(await vehicles.list({ afterVin: vins[2]!, limit: 10 })).toEqual(all.filter((v) => v.vin > vins[2]!));

        // provisioning also opens the first ownership period
        expect(await rights.currentOwner(vins[2]!)).toBe('owner-2');
      });

      it('a second create of the same VIN is STO_ERR_CONFLICT and changes nothing', async () => {
        const vin = await newVehicle('first-owner');
        await expectCode(vehicles.create({ vin, ownerId: 'second-owner', secretHash: 'x' }), 'STO_ERR_CONFLICT');
        expect((await vehicles.getCredentials(vin))?.ownerId).toBe('first-owner');
        expect(await rights.allPeriods(vin)).toHaveLength(1);
      });
    });

    describe('consent', () => {
      it('defaults without events; set() appends events; timeline and history report them with the previous values', async () => {
        const vin = await newVehicle('c-owner');
        expect(await consents.timeline(vin, 0)).toEqual([{ sinceMs: 0, location: true, co2Sharing: true, restricted: false }]);
        expect(await consents.history(vin)).toEqual([]);

        const t0 = Date.now();
        const a = await consents.set(vin, { location: false, actor: 'customer:c-owner', channel: 'test' });
        expect(a).toMatchObject({ location: false, co2Sharing: true, restricted: false, erasedLocationRows: 0 });
        expect(Math.abs(a.sinceMs - t0)).toBeLessThan(60_000);
        await new Promise((r) => setTimeout(r, 5));
        const b = await consents.set(vin, { co2Sharing: false, restricted: true, actor: 'admin', channel: 'test' });
        expect(b).toMatchObject({ location: false, co2Sharing: false, restricted: true });
        expect(b.sinceMs).toBeGreaterThanOrEqual(a.sinceMs);

        const tl = await consents.timeline(vin, 0);
        expect(tl.map(({ sinceMs: _s, ...s }) => s)).toEqual([
          { location: true, co2Sharing: true, restricted: false },
          { location: false, co2Sharing: true, restricted: false },
          { location: false, co2Sharing: false, restricted: true },
        ]);
        expect(tl[1]!.sinceMs).toBe(a.sinceMs);
        expect(tl[2]!.sinceMs).toBe(b.sinceMs);
        // from a time after both: only the state in force
        const now = await consents.timeline(vin, b.sinceMs + 1);
        expect(now).toEqual([{ sinceMs: b.sinceMs, location: false, co2Sharing: false, restricted: true }]);

        const h = await consents.history(vin);
        expect(h).toHaveLength(2);
        expect(h[0]).toMatchObject({
          location: false,
          co2Sharing: true,
          restricted: false,
          actor: 'customer:c-owner',
          channel: 'test',
          ownerId: 'c-owner',
          previous: { location: true, co2Sharing: true, restricted: false },
          erasedLocationHistory: false,
        });
        expect(h[1]).toMatchObject({ actor: 'admin', previous: { location: false, co2Sharing: true, restricted: false } });
        expect(h[0]!.effectiveAt).toBeInstanceOf(Date);
        expect(h[0]!.effectiveAt.getTime()).toBe(Math.floor(a.sinceMs));
        expect(typeof h[0]!.id).toBe('number');
        expect(h[1]!.id).toBeGreaterThan(h[0]!.id);
        expect(await consents.history(vin, b.sinceMs)).toHaveLength(1);
      });

      it('announces every committed change through NOTIFY on the same backend (db.listen)', async () => {
        const vin = await newVehicle('n-owner');
        const got: string[] = [];
        const stop = await db.listen(CONSENT_CHANNEL, (p) => got.push(p));
        try {
          await consents.set(vin, { location: false, actor: 'test', channel: 'test' });
          await waitFor(async () => got.includes(vin), 5000);
          // a failed change (unknown vehicle) announces nothing
          await expectCode(consents.set('WNOTPROVISIONED00', { location: false, actor: 'test', channel: 'test' }), 'STO_ERR_NOT_FOUND');
          await consents.set(vin, { location: true, actor: 'test', channel: 'test' });
          await waitFor(async () => got.filter((x) => x === vin).length === 2, 5000);
          expect(got).not.toContain('WNOTPROVISIONED00');
        } finally {
          await stop();
        }
        // stopped: no more deliveries
        await consents.set(vin, { location: false, actor: 'test', channel: 'test' });
        await new Promise((r) => setTimeout(r, 200));
        expect(got.filter((x) => x === vin)).toHaveLength(2);
      });

      it('a location opt-out with eraseLocationHistory erases the stored positions of the current owner', async () => {
        const vin = await newVehicle('l-owner');
        const t = Date.now() - 60_000;
        await write({ telemetry: [fullRow(vin, 1, t), fullRow(vin, 2, t + 1)], quarantine: [quarantineRow(vin, 'loc', Buffer.from([1, 2, 3]))] });
        const r = await consents.set(vin, { location: false, eraseLocationHistory: true, actor: 'test', channel: 'test' });
        expect(r.erasedLocationRows).toBe(2);
        const left = await trows<Record<string, unknown>>('SELECT latitude, longitude, has_location, speed_kmh FROM telemetry WHERE vin = $1 ORDER BY seq', [vin]);
        expect(left).toEqual([
          { latitude: null, longitude: null, has_location: false, speed_kmh: 1 },
          { latitude: null, longitude: null, has_location: false, speed_kmh: 2 },
        ]);
        expect((await consents.history(vin))[0]!.erasedLocationHistory).toBe(true);
        // quarantined bytes may hold positions: the reason stays, the bytes go
        const q = await trows<Record<string, unknown>>('SELECT reason, payload, payload_bytes FROM quarantine WHERE vin = $1', [vin]);
        expect(q).toEqual([{ reason: 'GW_ERR_DECODE', payload: null, payload_bytes: 3 }]);
      });
    });

    describe('batch writer', () => {
      it('writes telemetry, OBFCM and quarantine rows (bytea payload intact) in one statement', async () => {
        const vin = testVin();
        const t = Date.UTC(2024, 4, 1, 12, 0, 0, 123);
        const payload = Buffer.from([0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x5c, 0x27, 0x22, 0x2c, 0x7b, 0x7d]);
        const before = stats.length;
        await write({
          telemetry: [
            fullRow(vin, 1, t),
            { vin, seq: 2, recordedAtMs: t + 1, technical: { speedKmh: 0 }, shareObfcm: true }, // no consumption: no OBFCM row
            { ...fullRow(vin, 3, t + 2), shareObfcm: false }, // consumption kept, not shareable
          ],
          quarantine: [
            quarantineRow(vin, 'a', payload, { reason: 'GW_ERR_OUT_OF_RANGE', seq: 7, recordedAtMs: t }),
            quarantineRow(null, 'b', null, { payloadBytes: 6 }),
          ],
        });
        expect(stats.slice(before)).toHaveLength(1);
        expect(stats[before]).toMatchObject({ items: 1, telemetryRows: 3, telemetryInserted: 3, obfcmInserted: 1, quarantineInserted: 2 });

        const tel = await trows<Record<string, unknown>>('SELECT * FROM telemetry WHERE vin = $1 ORDER BY seq', [vin]);
        expect(tel.map((r) => r.seq)).toEqual([1, 2, 3]);
        expect((tel[0]!.recorded_at as Date).getTime()).toBe(t);
        expect(tel[0]!.recorded_at).toBeInstanceOf(Date);
        expect(tel[0]).toMatchObject({ speed_kmh: 1, odometer_km: FULL_TECHNICAL.odometerKm, total_distance_km: 1001, latitude: FULL_LOCATION.latitude, heading_deg: 1 });
        expect([tel[0]!.has_technical, tel[0]!.has_consumption, tel[0]!.has_location]).toEqual([true, true, true]);
        expect(tel[1]).toMatchObject({ speed_kmh: 0, odometer_km: null, has_technical: true, has_consumption: false, has_location: false });
        expect(tel[2]!.total_fuel_consumed_l).toBe(FULL_CONSUMPTION.totalFuelConsumedL);

        const obf = await trows<Record<string, unknown>>('SELECT * FROM obfcm_readings WHERE vin = $1 ORDER BY seq', [vin]);
        expect(obf.map((r) => r.seq)).toEqual([1]);
        expect(obf[0]).toMatchObject({ total_distance_km: 1001, total_grid_energy_into_battery_kwh: FULL_CONSUMPTION.totalGridEnergyIntoBatteryKwh });
        expect((obf[0]!.recorded_at as Date).getTime()).toBe(t);

        const q = await trows<Record<string, unknown>>('SELECT * FROM quarantine WHERE vin = $1 OR detail = $2 ORDER BY id', [vin, 'test b']);
        expect(q).toHaveLength(2);
        expect(q[0]).toMatchObject({ vin, reason: 'GW_ERR_OUT_OF_RANGE', detail: 'test a', seq: 7, payload_bytes: payload.length });
        expect((q[0]!.recorded_at as Date).getTime()).toBe(t);
        expect(bytes(q[0]!.payload).equals(payload)).toBe(true);
        expect(q[1]).toMatchObject({ vin: null, reason: 'GW_ERR_DECODE', payload: null, payload_bytes: 6, seq: null, recorded_at: null });
        expect(bytes(q[1]!.dedupe_key).toString()).toMatch(/^dedupe-b-/);
      });

      it('writes a large batch (binary COPY path on pg) with every value, null and time exact, once on resend', async () => {
        const vin = testVin();
        const t = Date.UTC(2024, 4, 2, 0, 0, 0, 1);
        // 2500 rows > the COPY threshold; odd values: negatives, tiny and huge doubles, absent fields
        const big: TelemetryRow[] = Array.from({ length: 2500 }, (_, i) => ({
          ...fullRow(vin, i + 1, t + i * 997, i),
          technical: i % 3 === 0 ? { speedKmh: i, outsideTempC: -40.125 + i / 1e6, odometerKm: 1e9 + 0.1 } : { ...FULL_TECHNICAL, speedKmh: i },
          location: i % 5 === 0 ? null : { ...FULL_LOCATION, latitude: -89.999999 + i / 1e7 },
          shareObfcm: i % 2 === 0,
        }));
        const before = stats.length;
        await write({ telemetry: big, quarantine: [quarantineRow(vin, 'big', Buffer.from('x'))] });
        expect(stats[before]).toMatchObject({ telemetryRows: 2500, telemetryInserted: 2500, obfcmInserted: 1250, quarantineInserted: 1 });
        const tel = await trows<Record<string, any>>('SELECT * FROM telemetry WHERE vin = $1 ORDER BY seq', [vin]);
        expect(tel).toHaveLength(2500);
        for (const [i, r] of tel.entries()) {
          const src = big[i]!;
          expect((r.recorded_at as Date).getTime(), `row ${i} time`).toBe(src.recordedAtMs);
          expect(r.speed_kmh).toBe(i);
          expect(r.outside_temp_c).toBe(src.technical!.outsideTempC ?? null);
          expect(r.odometer_km).toBe(src.technical!.odometerKm ?? null);
          expect(r.latitude).toBe(src.location ? src.location.latitude : null);
          expect(r.has_location).toBe(src.location != null);
          expect(r.total_distance_km).toBe(1000 + i);
        }
        expect(await count('obfcm_readings', vin)).toBe(1250);
        // the same batch again: nothing new, no error
        await write({ telemetry: big, quarantine: [] });
        expect(stats[stats.length - 1]).toMatchObject({ telemetryRows: 2500, telemetryInserted: 0, obfcmInserted: 0 });
        expect(await count('telemetry', vin)).toBe(2500);
        // a smaller batch with other values, encoded into the buffers the first one used:
        // nothing of the previous bytes may leak into it
        const vin2 = testVin();
        const other: TelemetryRow[] = Array.from({ length: 2100 }, (_, i) => ({
          ...fullRow(vin2, i + 1, t + i * 991, i),
          technical: i % 2 === 0 ? null : { speedKmh: -i },
          consumption: { totalDistanceKm: 5 + i },
          location: i % 7 === 0 ? { latitude: 1 + i / 1e6 } : null,
          shareObfcm: i % 3 === 0,
        }));
        await write({ telemetry: other, quarantine: [] });
        const tel2 = await trows<Record<string, any>>('SELECT * FROM telemetry WHERE vin = $1 ORDER BY seq', [vin2]);
        expect(tel2).toHaveLength(2100);
        for (const [i, r] of tel2.entries()) {
          const src = other[i]!;
          expect((r.recorded_at as Date).getTime(), `row ${i} time`).toBe(src.recordedAtMs);
          expect(r.speed_kmh, `row ${i} speed`).toBe(i % 2 === 0 ? null : -i);
          expect(r.has_technical).toBe(i % 2 !== 0);
          expect(r.outside_temp_c).toBe(null);
          expect(r.total_distance_km).toBe(5 + i);
          expect(r.total_fuel_consumed_l).toBe(null);
          expect(r.latitude).toBe(i % 7 === 0 ? 1 + i / 1e6 : null);
          expect(r.longitude).toBe(null);
        }
        expect(await count('obfcm_readings', vin2)).toBe(700);
      });

      it('is idempotent on resend: same (vin, recorded time, seq) and same dedupe key are stored once', async () => {
        const vin = testVin();
        const t = Date.UTC(2024, 4, 2, 8, 0, 0, 0);
        const q = quarantineRow(vin, 'resend', Buffer.from([1, 2, 3]));
        const item: WriteItem = { telemetry: [fullRow(vin, 1, t), fullRow(vin, 2, t + 1000)], quarantine: [q] };
        await write(item);
        const before = stats.length;
        await write(item);
        // the same key with other values: the first stays
        await write({ telemetry: [{ ...fullRow(vin, 1, t), technical: { speedKmh: 99 } }] });
        expect(stats.slice(before)).toMatchObject([
          { telemetryRows: 2, telemetryInserted: 0, obfcmInserted: 0, quarantineInserted: 0 },
          { telemetryRows: 1, telemetryInserted: 0, obfcmInserted: 0 },
        ]);
        expect(await count('telemetry', vin)).toBe(2);
        expect(await count('obfcm_readings', vin)).toBe(2);
        expect(await count('quarantine', vin)).toBe(1);
        expect((await trows<{ speed_kmh: number }>('SELECT speed_kmh FROM telemetry WHERE vin = $1 AND seq = 1', [vin]))[0]!.speed_kmh).toBe(1);
        // same seq at another time, or another seq at the same time: distinct records
        await write({ telemetry: [fullRow(vin, 1, t + 5), fullRow(vin, 3, t)] });
        expect(await count('telemetry', vin)).toBe(4);
      });

      it('many items in one batch; hasRoom() is false above maxPendingRows until written', async () => {
        const vin = testVin();
        const t = Date.UTC(2024, 4, 3);
        const batches: BatchStats[] = [];
        const w = createBatchWriter(sdb, { maxPendingRows: 5, onBatch: (s) => batches.push(s) });
        try {
          expect(w.hasRoom()).toBe(true);
          const p1 = w.write({ telemetry: [1, 2, 3].map((s) => fullRow(vin, s, t + s)), quarantine: [] });
          expect(w.hasRoom()).toBe(true); // 3 of 5
          const p2 = w.write({ telemetry: [4, 5, 6].map((s) => fullRow(vin, s, t + s)), quarantine: [] });
          expect(w.hasRoom()).toBe(false); // 3 + 3 > 5
          // the bound is hard: the second item waits outside until the first is written
          expect(w.pending()).toMatchObject({ rows: 3, waitingRows: 3 });
          const room = w.whenRoom();
          await Promise.all([p1, p2, room]);
          expect(w.hasRoom()).toBe(true);
          expect(w.pending()).toEqual({ rows: 0, items: 0, inFlight: 0, waitingRows: 0 });
          expect(batches.reduce((n, b) => n + b.telemetryInserted, 0)).toBe(6);
          expect(batches.map((b) => b.telemetryRows)).toEqual([3, 3]);
        } finally {
          await w.close();
        }
        expect(await count('telemetry', vin)).toBe(6);
        await expectCode(w.write({ telemetry: [fullRow(vin, 9, t)], quarantine: [] }), 'STO_ERR_CLOSED');
      });

      it('linger: with a statement in flight, the next gathers lingerRows rows or waits lingerMs; an idle writer never waits', async () => {
        const vin = testVin();
        const t = Date.UTC(2024, 4, 5);
        // The first telemetry statement waits at a gate before going to the database: a
        // statement in flight for as long as the test wants.
        const gated = (): { gdb: TestDb; release: () => void } => {
          let release!: () => void;
          const gate = new Promise<void>((r) => (release = r));
          let first = true;
          const gdb = Object.assign(Object.create(sdb) as TestDb, {
            query: async (text: string, params?: readonly unknown[], name?: string) => {
              if (first && /INSERT INTO telemetry/.test(text)) {
                first = false;
                await gate;
              }
              return sdb.query(text, params, name);
            },
          });
          return { gdb, release };
        };
        const rows = (from: number, n: number) => Array.from({ length: n }, (_, i) => fullRow(vin, from + i, t + from + i));
        const until = async (cond: () => boolean, ms: number) => {
          const end = performance.now() + ms;
          while (!cond() && performance.now() < end) await sleep(2);
          return cond();
        };

        // by rows: B (1 row) waits while A is in flight; C (9 rows) makes 10 = lingerRows: B + C go at once
        {
          const { gdb, release } = gated();
          const batches: BatchStats[] = [];
          const w = createBatchWriter(gdb, { lingerMs: 60_000, lingerRows: 10, method: 'unnest', onBatch: (b) => batches.push(b) });
          try {
            const a = w.write({ telemetry: rows(1, 1), quarantine: [] });
            expect(await until(() => w.pending().inFlight === 1, 2000)).toBe(true);
            const b = w.write({ telemetry: rows(2, 1), quarantine: [] });
            await sleep(150);
            expect(w.pending(), 'B waits for more rows').toMatchObject({ inFlight: 1, items: 1 });
            const c = w.write({ telemetry: rows(3, 9), quarantine: [] });
            // B + C start once 10 rows are queued, as one statement, while A is still held
            const done = await Promise.race([Promise.all([b, c]).then(() => true), sleep(5000).then(() => false)]);
            expect(done, 'B + C written while A is in flight').toBe(true);
            expect(batches.map((x) => x.telemetryRows)).toEqual([10]);
            release();
            await a;
            expect(batches.map((x) => x.telemetryRows).sort((x, y) => x - y)).toEqual([1, 10]);
          } finally {
            release();
            await w.close();
          }
        }

        // by time: D (1 row) starts about lingerMs after it was queued, though A is still in flight
        {
          const { gdb, release } = gated();
          const w = createBatchWriter(gdb, { lingerMs: 250, lingerRows: 1000, method: 'unnest' });
          try {
            const a = w.write({ telemetry: rows(20, 1), quarantine: [] });
            expect(await until(() => w.pending().inFlight === 1, 2000)).toBe(true);
            const t0 = performance.now();
            const d = w.write({ telemetry: rows(21, 1), quarantine: [] });
            await d;
            const waited = performance.now() - t0;
            expect(waited, 'D waited out the linger').toBeGreaterThanOrEqual(240);
            expect(waited, 'D did not wait for A').toBeLessThan(5000);
            expect(w.pending().inFlight).toBe(1); // A still held at its gate
            release();
            await a;
          } finally {
            release();
            await w.close();
          }
        }

        // idle: nothing in flight, so no linger at all
        {
          const w = createBatchWriter(sdb, { lingerMs: 10_000, lingerRows: 1000 });
          try {
            const t0 = performance.now();
            await w.write({ telemetry: rows(30, 1), quarantine: [] });
            expect(performance.now() - t0).toBeLessThan(5000);
          } finally {
            await w.close();
          }
        }
        expect(await count('telemetry', vin)).toBe(14);
      });

      it('a refused row fails only its own message (STO_ERR_REJECTED); the rest of the batch is stored', async () => {
        const good = testVin();
        const errors: boolean[] = [];
        const w = createBatchWriter(sdb, { onError: (_e, retry) => errors.push(retry) });
        const t = Date.UTC(2024, 4, 4);
        try {
          const ok = w.write({ telemetry: [fullRow(good, 1, t)], quarantine: [] });
          // quarantine.reason is NOT NULL: the database refuses this row
          const bad = w.write({ telemetry: [], quarantine: [quarantineRow(good, 'bad', null, { reason: null as unknown as string })] });
          const [a, b] = await Promise.allSettled([ok, bad]);
          expect(a.status).toBe('fulfilled');
          expect(b.status).toBe('rejected');
          expect(((b as PromiseRejectedResult).reason as StorageError).code).toBe('STO_ERR_REJECTED');
          expect(errors).toContain(false);
        } finally {
          await w.close();
        }
        expect(await count('telemetry', good)).toBe(1);
      });
    });

    describe('rights', () => {
      it('transfer ends the period, starts the new owner, resets consent to the defaults', async () => {
        const vin = await newVehicle('t-old');
        await consents.set(vin, { location: false, co2Sharing: false, actor: 'customer:t-old', channel: 'test' });
        const p = await rights.transfer(vin, 't-new', 'admin');
        expect(p.ownerId).toBe('t-new');
        expect(p.to).toBeNull();
        expect(p.from).toBeInstanceOf(Date);
        expect(p.startedAt.getTime()).toBe(p.from.getTime());

        const all = await rights.allPeriods(vin);
        expect(all).toHaveLength(2);
        expect(all[0]).toMatchObject({ ownerId: 't-old', from: new Date(0) });
        expect(all[0]!.to?.getTime()).toBe(p.from.getTime());
        expect(all[0]!.startedAt.getTime()).toBeLessThanOrEqual(p.from.getTime());
        expect(all[1]).toMatchObject({ ownerId: 't-new', to: null });
        expect(all[1]!.from.getTime()).toBe(p.from.getTime());
        expect(await rights.periodsOf(vin, 't-old')).toEqual([all[0]]);
        expect(await rights.periodsOf(vin, 't-new')).toEqual([all[1]]);
        expect(await rights.periodsOf(vin, 'nobody')).toEqual([]);
        expect(await rights.currentOwner(vin)).toBe('t-new');
        expect((await vehicles.getCredentials(vin))?.ownerId).toBe('t-new');

        const tl = await consents.timeline(vin, Date.now() + 1000);
        expect(tl[tl.length - 1]).toMatchObject({ location: true, co2Sharing: true, restricted: false });
        const h = await consents.history(vin);
        expect(h[h.length - 1]).toMatchObject({
          channel: 'transfer',
          actor: 'admin',
          ownerId: 't-new',
          location: true,
          co2Sharing: true,
          // the previous state was another person's choice: not recorded in the new owner's event
          previous: null,
        });
        expect(h[h.length - 2]).toMatchObject({ ownerId: 't-old', location: false, co2Sharing: false });

        await expectCode(rights.transfer(vin, 't-new', 'admin'), 'STO_ERR_CONFLICT');
        await expectCode(rights.transfer('WNOTPROVISIONED00', 'x', 'admin'), 'STO_ERR_NOT_FOUND');
        expect(await rights.currentOwner('WNOTPROVISIONED00')).toBeNull();
      });

      it('erase: by category, then all; only the asking owner\'s periods; OBFCM kept unless CO2 sharing is refused', async () => {
        const vin = await newVehicle('e-one');
        const past = Date.now() - 10 * 60_000;
        await write({
          telemetry: [1, 2, 3, 4].map((s) => fullRow(vin, s, past + s)),
          quarantine: [quarantineRow(vin, 'erase-1', Buffer.from([9, 9]))],
        });
        await rights.transfer(vin, 'e-two', 'admin');
        const future = Date.now() + 60_000;
        await write({ telemetry: [5, 6].map((s) => fullRow(vin, s, future + s)) });

        const loc = await rights.erase(vin, 'e-one', 'location');
        expect(loc).toEqual({ telemetryDeleted: 0, telemetryUpdated: 4, obfcmDeleted: 0, obfcmKept: 0, quarantineDeleted: 0 });
        const locRows = await trows<Record<string, unknown>>('SELECT seq, latitude, has_location, speed_kmh FROM telemetry WHERE vin = $1 ORDER BY seq', [vin]);
        expect(locRows.map((r) => [r.seq, r.latitude, r.has_location, r.speed_kmh])).toEqual([
          [1, null, false, 1],
          [2, null, false, 2],
          [3, null, false, 3],
          [4, null, false, 4],
          [5, FULL_LOCATION.latitude, true, 5],
          [6, FULL_LOCATION.latitude, true, 6],
        ]);

        // CO2 sharing not refused: the OBFCM readings stay ((EU) 2021/392)
        const cons = await rights.erase(vin, 'e-one', 'consumption');
        expect(cons).toEqual({ telemetryDeleted: 0, telemetryUpdated: 4, obfcmDeleted: 0, obfcmKept: 4, quarantineDeleted: 0 });
        expect(await count('obfcm_readings', vin)).toBe(6);
        const c = await trows<Record<string, unknown>>('SELECT seq, total_distance_km, has_consumption FROM telemetry WHERE vin = $1 ORDER BY seq', [vin]);
        expect(c.map((r) => [r.total_distance_km, r.has_consumption])).toEqual([
          [null, false],
          [null, false],
          [null, false],
          [null, false],
          [1005, true],
          [1006, true],
        ]);

        // CO2 sharing refused now: an erasure deletes the readings too
        await consents.set(vin, { co2Sharing: false, actor: 'customer:e-two', channel: 'test' });
        const all = await rights.erase(vin, 'e-one', null);
        expect(all).toEqual({ telemetryDeleted: 4, telemetryUpdated: 0, obfcmDeleted: 4, obfcmKept: 0, quarantineDeleted: 1, connectivityDeleted: 0 });
        expect((await trows<{ seq: number }>('SELECT seq FROM telemetry WHERE vin = $1 ORDER BY seq', [vin])).map((r) => r.seq)).toEqual([5, 6]);
        expect((await trows<{ seq: number }>('SELECT seq FROM obfcm_readings WHERE vin = $1 ORDER BY seq', [vin])).map((r) => r.seq)).toEqual([5, 6]);
        expect(await count('quarantine', vin)).toBe(0);

        const log = await rows<{ owner_id: string; category: string | null; rows_affected: unknown; period_from: Date; period_to: Date | null }>(
          'SELECT owner_id, category, rows_affected, period_from, period_to FROM erasure_log WHERE vin = $1 ORDER BY id',
          [vin],
        );
        expect(log.map((l) => [l.owner_id, l.category])).toEqual([
          ['e-one', 'location'],
          ['e-one', 'consumption'],
          ['e-one', null],
        ]);
        const affected = typeof log[2]!.rows_affected === 'string' ? JSON.parse(log[2]!.rows_affected) : log[2]!.rows_affected;
        expect(affected).toEqual(all);
        expect(log[2]!.period_from.getTime()).toBe(0);
        expect(log[2]!.period_to).toBeInstanceOf(Date);

        // someone who never owned it erases nothing
        expect(await rights.erase(vin, 'stranger', null)).toEqual({ telemetryDeleted: 0, telemetryUpdated: 0, obfcmDeleted: 0, obfcmKept: 0, quarantineDeleted: 0 });
        expect(await count('telemetry', vin)).toBe(2);
        await expectCode(rights.erase('WNOTPROVISIONED00', 'x', null), 'STO_ERR_NOT_FOUND');
      });
    });

    describe('series (the portal\'s reads: time_bucket on TimescaleDB, date_bin elsewhere)', () => {
      const T0 = Date.UTC(2024, 6, 1, 10, 0, 0, 0);
      const whole = (owner: string) => [{ ownerId: owner, from: new Date(0), startedAt: new Date(0), to: null }];

      it('buckets counts, averages and extremes; the latest record; the vehicles owned', async () => {
        const vin = await newVehicle('series-owner');
        await trows(
          `INSERT INTO telemetry (vin, recorded_at, seq, speed_kmh, odometer_km, latitude, has_technical, has_location)
           SELECT $1, to_timestamp($2::float8 / 1000) + i * interval '1 minute', i + 1, i % 60, 1000 + i, CASE WHEN i < 60 THEN 48 + i / 1000.0 END, true, i < 60
             FROM generate_series(0, 119) i`,
          [vin, T0],
        );
        // Rows loaded around the writer get their hourly summaries as a bulk load would.
        await rebuildSummaries(sdb, vin, null, null);
        const repo = createSeriesRepo(db, shards);
        const s = await repo.series(vin, whole('series-owner'), { from: new Date(T0), to: new Date(T0 + 3 * 3_600_000) }, 3_600_000, ['technical']);
        expect(s.t).toEqual([T0, T0 + 3_600_000]);
        expect(s.count).toEqual([60, 60]);
        expect(s.fields['technical.speedKmh']).toEqual({ avg: [29.5, 29.5], min: [0, 0], max: [59, 59] });
        expect(s.fields['technical.odometerKm']!.max).toEqual([1059, 1119]);
        expect(s.fields['location.latitude']).toBeUndefined();
        // Absent values are skipped, not counted as zero: positions only in the first hour.
        const loc = await repo.series(vin, whole('series-owner'), { from: new Date(T0), to: new Date(T0 + 3 * 3_600_000) }, 3_600_000, ['location']);
        expect(loc.fields['location.latitude']!.min[0]).toBeCloseTo(48, 9);
        expect(loc.fields['location.latitude']!.avg[1]).toBeNull();
        // Another owner's period sees none of it.
        const other = await repo.series(vin, [{ ownerId: 'x', from: new Date(T0 + 10 * 3_600_000), startedAt: new Date(T0 + 10 * 3_600_000), to: null }], { from: new Date(T0), to: new Date(T0 + 3 * 3_600_000) }, 3_600_000, ['technical']);
        expect(other.t).toEqual([]);
        const latest = await repo.latest(vin, whole('series-owner'), ['technical', 'location']);
        expect(latest).toMatchObject({ vin, seq: 120, recordedAt: new Date(T0 + 119 * 60_000), technical: { speedKmh: 59, odometerKm: 1119 }, location: null });
        expect(await repo.latest(vin, [], ['technical'])).toBeNull();
        expect((await repo.ownedBy('series-owner')).map((v) => v.vin)).toEqual([vin]);
      });
    });

    describe('reads', () => {
      let vin: string;
      const base = Date.UTC(2024, 5, 1, 0, 0, 0, 0);
      // 25 records; three share each recorded_at (seq breaks the tie), so pages of 7 cut
      // inside groups of equal timestamps. The last five carry no location.
      const times = Array.from({ length: 25 }, (_, i) => base + Math.floor(i / 3) * 1000);
      const expected = times.map((t, i) => ({ seq: i + 1, t })).sort((a, b) => a.t - b.t || a.seq - b.seq);

      beforeAll(async () => {
        vin = await newVehicle('r-owner');
        // written in shuffled order, in several messages
        const all = times.map((t, i) => {
          const r = fullRow(vin, i + 1, t);
          return i >= 20 ? { ...r, location: null } : r;
        });
        const shuffled = [...all].sort((a, b) => ((a.seq * 7919) % 25) - ((b.seq * 7919) % 25));
        await write({ telemetry: shuffled.slice(0, 10) });
        await write({ telemetry: shuffled.slice(10) });
      });

      /** The telemetry-side Db, counting its queries. */
      function counting(): { db: Db; queries: () => number } {
        let n = 0;
        const wrapped: Db = {
          get kind() {
            return sdb.kind;
          },
          query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
            n++;
            return sdb.query<R>(text, params);
          },
          // No COPY: every read goes through query(), where it is counted.
          copy: null,
          transaction: (fn) => sdb.transaction(fn),
          listen: (c, m, h) => sdb.listen(c, m, h),
          stats: () => sdb.stats(),
          close: () => sdb.close(),
        };
        return { db: wrapped, queries: () => n };
      }

      async function collect<T>(gen: AsyncGenerator<T>): Promise<T[]> {
        const out: T[] = [];
        for await (const r of gen) out.push(r);
        return out;
      }

      it('records(): keyset paging with a small page returns every row once, in (recorded_at, seq) order', async () => {
        const c = counting();
        // Sharded: the control database as ever, the counted Db as the (one) shard.
        const reads = shards?.sharded ? createReadRepo(db, { sharded: true, count: 1, db: () => c.db, dbOf: () => c.db, shardOf: () => 0 }) : createReadRepo(c.db);
        const periods = await rights.periodsOf(vin, 'r-owner');
        const recs = await collect(reads.records(vin, periods, { from: null, to: null }, GROUPS, 7));
        expect(recs.map((r) => [r.seq, r.recordedAt.getTime()])).toEqual(expected.map((e) => [e.seq, e.t]));
        expect(c.queries()).toBe(4); // 7 + 7 + 7 + 4
        const first = recs[0]!;
        expect(first.vin).toBe(vin);
        expect(first.technical).toEqual({ ...FULL_TECHNICAL, speedKmh: 1 });
        expect(first.consumption).toEqual({ ...FULL_CONSUMPTION, totalDistanceKm: 1001 });
        expect(first.location).toEqual({ ...FULL_LOCATION, headingDeg: 1 });
        expect(recs[24]!.location).toBeNull();

        // a page size that divides the count exactly, and one of 1
        expect((await collect(reads.records(vin, periods, { from: null, to: null }, ['technical'], 5))).map((r) => r.seq)).toEqual(expected.map((e) => e.seq));
        expect((await collect(reads.records(vin, periods, { from: null, to: null }, ['technical'], 1))).map((r) => r.seq)).toEqual(expected.map((e) => e.seq));
      });

      it('ndjson(): the same records as JSON lines (binary COPY on pg, built by the database on PGlite), across segment and page boundaries', async () => {
        const reads = createReadRepo(db, shards);
        const periods = await rights.periodsOf(vin, 'r-owner');
        const all = GROUPS;
        const recs = await collect(reads.records(vin, periods, { from: null, to: null }, all, 7));
        for (const pageSize of [7, 5, 1, 5000]) {
          const text = (await collect(reads.ndjson(vin, periods, { from: null, to: null }, all, pageSize))).join('');
          const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
          expect(lines, `page size ${pageSize}`).toEqual(recs.map((r) => ({ ...r, recordedAt: r.recordedAt.toISOString(), receivedAt: r.receivedAt!.toISOString() })));
        }
        const from = new Date(base + 2000);
        const to = new Date(base + 5000);
        const part = (await collect(reads.ndjson(vin, periods, { from, to }, ['location'], 2))).join('').trimEnd().split('\n').map((l) => JSON.parse(l));
        expect(part.map((l) => l.seq)).toEqual(expected.filter((e) => e.t >= from.getTime() && e.t < to.getTime()).map((e) => e.seq));
        expect(Object.keys(part[0]).sort()).toEqual(['location', 'receivedAt', 'recordedAt', 'seq', 'vin']);
        expect(await collect(reads.ndjson(vin, await rights.periodsOf(vin, 'nobody'), { from: null, to: null }, all, 7))).toEqual([]);
      });

      it('ndjson() and records() with fields (a field-level grant): only those columns, in every implementation', async () => {
        const reads = createReadRepo(db, shards);
        const periods = await rights.periodsOf(vin, 'r-owner');
        const fields = ['technical.speedKmh', 'location.latitude', 'location.longitude'];
        const cats = ['technical', 'location'] as const;
        const recs = await collect(reads.records(vin, periods, { from: null, to: null }, cats, 7, fields));
        expect(recs.map((r) => r.seq)).toEqual(expected.map((e) => e.seq));
        expect(recs[0]!.technical).toEqual({ speedKmh: 1 });
        expect(recs[0]!.location).toEqual({ latitude: FULL_LOCATION.latitude, longitude: FULL_LOCATION.longitude });
        expect(recs[24]!.location).toBeNull();
        for (const pageSize of [7, 5000]) {
          const lines = (await collect(reads.ndjson(vin, periods, { from: null, to: null }, cats, pageSize, fields))).join('').trimEnd().split('\n').map((l) => JSON.parse(l));
          // (times as the lines write them)
          expect(lines, `page size ${pageSize}`).toEqual(recs.map((r) => JSON.parse(JSON.stringify(r)) as unknown));
        }
      });

      it('records(): range [from, to) and categories', async () => {
        const reads = createReadRepo(db, shards);
        const periods = await rights.periodsOf(vin, 'r-owner');
        const from = new Date(base + 2000);
        const to = new Date(base + 5000);
        const recs = await collect(reads.records(vin, periods, { from, to }, ['technical'], 2));
        expect(recs.map((r) => r.seq)).toEqual(expected.filter((e) => e.t >= from.getTime() && e.t < to.getTime()).map((e) => e.seq));
        expect(recs).toHaveLength(9);
        expect(Object.keys(recs[0]!).sort()).toEqual(['receivedAt', 'recordedAt', 'seq', 'technical', 'vin']);
        // a stranger's periods: nothing
        expect(await collect(reads.records(vin, await rights.periodsOf(vin, 'nobody'), { from: null, to: null }, ['technical'], 7))).toEqual([]);
      });

      it('latestLocation(): the newest record that has a position', async () => {
        const reads = createReadRepo(db, shards);
        const l = await reads.latestLocation(vin, await rights.periodsOf(vin, 'r-owner'));
        expect(l).not.toBeNull();
        expect(l!.seq).toBe(20);
        expect(l!.recordedAt.getTime()).toBe(times[19]);
        expect(l!.location).toEqual({ ...FULL_LOCATION, headingDeg: 20 });
        expect(await reads.latestLocation(vin, [])).toBeNull();
      });

      it('consumptionForWorkshop(): the newest rows, oldest first, and a disclosure row', async () => {
        const reads = createReadRepo(db, shards);
        const period = (await rights.periodsOf(vin, 'r-owner')).pop()!;
        const got = await reads.consumptionForWorkshop(
          vin,
          period,
          { from: null, to: null },
          { vin, role: 'workshop', subject: 'garage-1', endpoint: 'GET /v1/workshop/vehicles/{vin}/consumption', categories: ['consumption'], rangeFrom: null, rangeTo: null },
          5,
        );
        expect(got.map((g) => g.seq)).toEqual(expected.slice(-5).map((e) => e.seq));
        expect(got[4]!.consumption).toEqual({ ...FULL_CONSUMPTION, totalDistanceKm: 1000 + got[4]!.seq });
        expect(got[0]!.recordedAt).toBeInstanceOf(Date);
        const d = await reads.disclosures(vin, await rights.periodsOf(vin, 'r-owner'));
        expect(d).toHaveLength(1);
        expect(d[0]).toMatchObject({ vin, role: 'workshop', subject: 'garage-1', categories: ['consumption'], rangeTo: null });
        expect(d[0]!.rangeFrom?.getTime()).toBe(0);
        expect(d[0]!.at).toBeInstanceOf(Date);
      });

      it('obfcmReport(): the latest reading per VIN, excluding refused CO2 sharing and restricted processing; logs a disclosure per VIN', async () => {
        const refused = await newVehicle('o-refused');
        const restricted = await newVehicle('o-restricted');
        const t = base + 100_000;
        await write({ telemetry: [refused, restricted].flatMap((v) => [fullRow(v, 1, t), fullRow(v, 2, t + 1)]) });
        expect(await count('obfcm_readings', refused)).toBe(2);
        await consents.set(refused, { co2Sharing: false, actor: 'test', channel: 'test' });
        await consents.set(restricted, { restricted: true, actor: 'test', channel: 'test' });

        const reads = createReadRepo(db, shards);
        const range = { from: new Date(base), to: new Date(base + 200_000) };
        const report = await reads.obfcmReport(range, { role: 'authority', subject: 'eu-commission', endpoint: 'GET /v1/reports/obfcm' });
        const vins = report.map((r) => r.vin);
        expect(vins).toContain(vin);
        expect(vins).not.toContain(refused);
        expect(vins).not.toContain(restricted);
        expect(vins).toEqual([...vins].sort());
        const mine = report.find((r) => r.vin === vin)!;
        const last = expected[expected.length - 1]!;
        expect(mine.recordedAt.getTime()).toBe(last.t);
        expect(mine.values).toEqual({ ...FULL_CONSUMPTION, totalDistanceKm: 1000 + last.seq });

        const d = await reads.disclosures(vin, await rights.periodsOf(vin, 'r-owner'));
        expect(d.map((x) => x.role)).toEqual(['workshop', 'authority']);
        expect(d[1]).toMatchObject({ subject: 'eu-commission', endpoint: 'GET /v1/reports/obfcm', categories: ['consumption'] });
        expect(d[1]!.rangeFrom?.getTime()).toBe(range.from.getTime());
        expect(d[1]!.rangeTo?.getTime()).toBe(range.to.getTime());
        expect(await reads.disclosures(refused, await rights.periodsOf(refused, 'o-refused'))).toEqual([]);
      });
    });
    describe('sharded: nothing telemetry-side in the control database', () => {
      it('telemetry, obfcm_readings and quarantine of the control database stay empty (after the tests above too): the rows are on the shard', async (ctx) => {
        if (!shards?.sharded) ctx.skip('this implementation is not sharded: the control database holds the telemetry itself');
        const vin = await newVehicle('s-owner');
        await write({ telemetry: [fullRow(vin, 1, Date.now() - 1000)], quarantine: [quarantineRow(vin, 's', null)] });
        for (const t of ['telemetry', 'obfcm_readings', 'quarantine']) {
          expect((await rows<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`))[0]!.n, t).toBe(0);
          expect(await count(t, vin), t).toBe(1);
        }
      });
    });

  });
}

contract('pg', async () => {
  const t = await createTestDatabase();
  const db = createPgDb(t.url, { max: 4, applicationName: 'storage-contract' });
  return {
    db,
    kinds: ['timescaledb', 'postgres'],
    async cleanup() {
      await db.close();
      await t.drop();
    },
  };
});

// SHARD_URLS with one shard: the control database and one shard database; every
// telemetry-side assertion reads the shard (README "Sharding").
contract('pg, SHARD_URLS with one shard', async () => {
  const control = await createTestDatabase();
  const shard = await createTestDatabase();
  const db = createPgDb(control.url, { max: 4, applicationName: 'storage-contract' });
  let opened: Shards | null = null;
  return {
    db,
    kinds: ['timescaledb', 'postgres'],
    async shards() {
      opened = await openShards(db, [shard.url], { role: 'test', max: 4 });
      return opened;
    },
    async cleanup() {
      await opened?.close();
      await db.close();
      await control.drop();
      await shard.drop();
    },
  };
});

contract('pglite', async () => {
  const db = await createPgliteDb(null);
  return {
    db,
    kinds: ['pglite'],
    async cleanup() {
      await db.close();
    },
  };
});
