// Bench part `history` (issue 24): reads over long histories, through the real gateway.
//
// Builds, by bulk SQL straight into the tables in the writer's shape (every record in
// `telemetry`, its consumption counters copied into `obfcm_readings` as the writer does
// when sharing is allowed), in a fresh database (bench_history):
//   - one vehicle with a year of dense history: two one-hour trips a day at 1 record/s,
//     every group (technical, consumption, location) filled: 365 × 2 × 3,600 = 2,628,000
//     records, the trips 3 h and 13 h before the time of the run, every day for 365 days;
//   - a fleet of 10,000 vehicles with one consumption record a day for 90 days; vehicle i's
//     90 days end i mod 276 days before the run, so the fleet's readings spread over the
//     whole year: a 365-day report covers every vehicle, a 90-day report about a third of
//     them (those whose last reading is less than 90 days old), and most vehicles' latest
//     reading lies in an older chunk than the newest.
// Vehicles and ownership periods as VehicleRepo.create makes them; the per-vehicle hourly
// summaries the writer keeps are rebuilt for the bulk-loaded dense vehicle by
// storage/repos/series.ts rebuildSummaries() where it exists.
// Then, over HTTP against a gateway process on that database:
//   - /v1/vehicles/{vin}/series as the portal asks it (its charts: the server's bucket for
//     the chart fields; its track: the finest bucket giving ≤ 2,000 points, latitude and
//     longitude) for the last 24 h, 7 d, 30 d and 365 d: p50/p99 over a bounded number of
//     repetitions, the first (cold) one beside;
//   - the owner's full-year NDJSON export (/v1/vehicles/{vin}/cardata) and a 30-day one;
//   - the authority's OBFCM report (/v1/reports/obfcm) over 365 and 90 days, every page;
//   - bytes per record per table and per index.
// BENCH_HISTORY_SCALE (0 < s ≤ 1, default 1): a smaller build for a smoke run: the dense
// vehicle records every 1/s seconds over the same trips (same year, same chunks) and the
// fleet has 10,000·s vehicles. The targets are for s = 1.
import http from 'node:http';
import os from 'node:os';
import pg from 'pg';
import { createPgDb, typeParsers, type Db } from '../../storage/driver/db.ts';
import * as seriesRepo from '../../storage/repos/series.ts';
import { CONSUMPTION_COLUMNS, FIELD_COLUMNS } from '../../proto/fields.ts';
import { benchVin, percentile, round, rssBytes } from '../lib.ts';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const YEAR_DAYS = 365;
const TRIP_SECONDS = 3600;
/** Trips start this long before the run's time, every day. */
const TRIP_OFFSETS_H = [3, 13];
const FLEET_DAYS = 90;
const FLEET_SPREAD_DAYS = 276;

/** The portal's chart fields (web/early.js CHART_FIELDS) and its track's buckets (TRACK_BUCKETS). */
const CHART_FIELDS = [
  'technical.speedKmh',
  'technical.odometerKm',
  'technical.fuelLevelPct',
  'technical.batterySocPct',
  'technical.outsideTempC',
  'technical.coolantTempC',
  'technical.engineOilTempC',
  'consumption.totalFuelConsumedL',
  'consumption.totalDistanceKm',
  'consumption.totalGridEnergyIntoBatteryKwh',
];
const TRACK_BUCKETS: [string, number][] = [
  ['10s', 10_000],
  ['30s', 30_000],
  ['1m', 60_000],
  ['5m', 300_000],
  ['15m', 900_000],
  ['1h', HOUR_MS],
  ['3h', 3 * HOUR_MS],
  ['1d', DAY_MS],
];
const trackBucket = (spanMs: number): string => TRACK_BUCKETS.find(([, ms]) => spanMs / ms <= 2000)?.[0] ?? '1d';

const RANGES: [string, number][] = [
  ['24h', DAY_MS],
  ['7d', 7 * DAY_MS],
  ['30d', 30 * DAY_MS],
  ['365d', 365 * DAY_MS],
];

export interface HistoryOptions {
  /** 0 < scale ≤ 1: records per second of the dense vehicle and share of the fleet. */
  scale: number;
  /** Repetitions of each /series request (charts and track) per range. */
  seriesRuns: number;
  /** Most time spent repeating one range's requests, ms (at least 3 runs are made). */
  seriesBudgetMs: number;
}

export function historyOptions(env: NodeJS.ProcessEnv, quick: boolean): HistoryOptions {
  const scale = env.BENCH_HISTORY_SCALE === undefined ? 1 : Number(env.BENCH_HISTORY_SCALE);
  if (!(scale > 0 && scale <= 1)) throw new Error(`BENCH_HISTORY_SCALE must be a number in (0, 1], not ${env.BENCH_HISTORY_SCALE}`);
  return { scale, seriesRuns: quick ? 5 : 20, seriesBudgetMs: quick ? 20_000 : 60_000 };
}

/** What the part needs of the benchmark's runner (bench/run.ts). */
export interface HistoryDeps<G extends { pid: number; httpPort: number; adminToken: string }> {
  server: string;
  secretHash: string;
  owner: string;
  log(msg: string): void;
  freshSchema(server: string, name: string): Promise<string>;
  startGateway(name: string, url: string): Promise<G>;
  stopGateway(gw: G | null): Promise<void>;
  dropQuietly(server: string, name: string): Promise<void>;
}

export interface Built {
  denseVin: string;
  denseRows: number;
  fleetVehicles: number;
  fleetRows: number;
  /** The time the trips are laid out from (ms). */
  anchorMs: number;
  fillSec: number;
  summaries: { rebuilt: boolean; sec: number | null; denseSec: number | null };
}

const loadAvg = (): number => round(os.loadavg()[0]!, 2);

/**
 * The dataset, into the (migrated, empty) database at `url`. Returns its size and how long
 * each step took.
 */
export async function buildHistory(url: string, o: { scale: number; owner: string; secretHash: string; log(msg: string): void }): Promise<Built> {
  const t0 = performance.now();
  const c = new pg.Client({ connectionString: url, types: typeParsers() });
  await c.connect();
  const denseVin = benchVin('H', 1);
  const fleetVehicles = Math.max(1, Math.round(10_000 * o.scale));
  const fleet = Array.from({ length: fleetVehicles }, (_, i) => benchVin('F', i + 1));
  // Whole seconds, so that the records' times are exact.
  const anchorMs = Math.floor(Date.now() / 1000) * 1000;
  const step = 1 / o.scale; // seconds between the dense vehicle's records
  const perTrip = Math.floor(TRIP_SECONDS * o.scale);
  try {
    await c.query('BEGIN');
    await c.query(
      `INSERT INTO vehicles (vin, owner_id, secret_hash) SELECT v, CASE WHEN v = $2 THEN $3 ELSE 'fleet-' || v END, $4 FROM unnest($1::text[]) AS v`,
      [[denseVin, ...fleet], denseVin, o.owner, o.secretHash],
    );
    await c.query('INSERT INTO ownership_periods (vin, owner_id, started_at) SELECT vin, owner_id, created_at FROM vehicles');
    await c.query('COMMIT');

    // The dense vehicle, 30 days per statement. Record k of trip t (t = 2·day + which):
    // recorded at anchor − day − offset(which) + k·step seconds; seq counts up in time.
    const allCols = FIELD_COLUMNS.map((f) => f.column);
    const x = 'n::float8'; // the record's number since the start of the year (monotonic)
    const s = 'k::float8 * $4::float8'; // seconds into its trip
    const value: Record<string, string> = {
      odometer_km: `20000 + ${x} * 0.0139 * $4::float8`,
      speed_kmh: `greatest(0, 62 + 48 * sin(${s} / 97.0))`,
      fuel_level_pct: `80 - 60 * (n % 300000) / 300000.0`,
      battery_soc_pct: `55 + 35 * cos(${s} / 1100.0)`,
      engine_rpm: `1800 + 900 * sin(${s} / 31.0)`,
      coolant_temp_c: `88 + 4 * sin(${s} / 57.0)`,
      outside_temp_c: `11 + 9 * sin(n / 1e5)`,
      aux_battery_voltage_v: `13.8 + 0.3 * sin(${s} / 13.0)`,
      remaining_range_km: `420 - 300 * (n % 300000) / 300000.0`,
      engine_oil_temp_c: `96 + 6 * sin(${s} / 71.0)`,
      total_fuel_consumed_l: `1400 + ${x} * 0.00091 * $4::float8`,
      total_distance_km: `20000 + ${x} * 0.0139 * $4::float8`,
      total_fuel_consumed_charge_depleting_l: `200 + ${x} * 0.0001 * $4::float8`,
      total_fuel_consumed_charge_increasing_l: `1200 + ${x} * 0.0008 * $4::float8`,
      total_distance_charge_depleting_engine_off_km: `5000 + ${x} * 0.004 * $4::float8`,
      total_distance_charge_depleting_engine_running_km: `3000 + ${x} * 0.002 * $4::float8`,
      total_distance_charge_increasing_km: `12000 + ${x} * 0.0079 * $4::float8`,
      total_grid_energy_into_battery_kwh: `900 + ${x} * 0.0007 * $4::float8`,
      latitude: `52.37 + 0.05 * sin(${s} / 600.0 + t)`,
      longitude: `4.89 + 0.08 * cos(${s} / 450.0 + t)`,
      heading_deg: `(${s} * 0.7)::int8 % 360`,
      altitude_m: `3 + 12 * sin(${s} / 300.0)`,
      accuracy_m: `3 + (k % 7)`,
    };
    for (const col of allCols) if (!value[col]) throw new Error(`no bench value for telemetry.${col}`);
    const consumption = CONSUMPTION_COLUMNS.map((f) => f.column);
    const trips = YEAR_DAYS * TRIP_OFFSETS_H.length;
    const tripsPerStatement = 30 * TRIP_OFFSETS_H.length;
    for (let first = 0; first < trips; first += tripsPerStatement) {
      const last = Math.min(trips, first + tripsPerStatement) - 1;
      // Oldest trips first, as the writer would have stored them: trip t (0 = the oldest)
      // is day (YEAR_DAYS − 1 − ⌊t/2⌋) before the anchor, its offset 13 h then 3 h.
      await c.query(
        `WITH r AS (
           SELECT t, k, t::int8 * $3::int8 + k AS n,
                  $2::timestamptz - ((${YEAR_DAYS - 1} - t / 2) * interval '1 day')
                    - (CASE WHEN t % 2 = 0 THEN ${TRIP_OFFSETS_H[1]} ELSE ${TRIP_OFFSETS_H[0]} END) * interval '1 hour'
                    + (k * $4::float8) * interval '1 second' AS at
             FROM generate_series($5::int, $6::int) AS t, generate_series(0, $3::int - 1) AS k
         ), ins AS (
           INSERT INTO telemetry (vin, recorded_at, seq, ${allCols.join(', ')}, has_technical, has_consumption, has_location)
           SELECT $1, at, n + 1, ${allCols.map((col) => value[col]).join(', ')}, true, true, true FROM r
           RETURNING vin, recorded_at, seq, ${consumption.join(', ')}
         )
         INSERT INTO obfcm_readings (vin, recorded_at, seq, ${consumption.join(', ')}) SELECT vin, recorded_at, seq, ${consumption.join(', ')} FROM ins`,
        [denseVin, new Date(anchorMs), perTrip, step, first, last],
      );
      o.log(`history: dense vehicle, trips ${first + 1}-${last + 1} of ${trips} stored (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
    // The fleet: vehicle i (1-based) a consumption record a day at 09:00 before the anchor's
    // time of day, for FLEET_DAYS days ending (i mod FLEET_SPREAD_DAYS) days before it.
    const chunk = 2000;
    for (let i = 0; i < fleet.length; i += chunk) {
      const vins = fleet.slice(i, i + chunk);
      await c.query(
        `WITH r AS (
           SELECT v.vin, v.i + $3::int AS i, d,
                  $2::timestamptz - (((v.i + $3::int) % ${FLEET_SPREAD_DAYS}) + d) * interval '1 day' - interval '9 hours' AS at
             FROM unnest($1::text[]) WITH ORDINALITY AS v(vin, i), generate_series(0, ${FLEET_DAYS - 1}) AS d
         ), ins AS (
           INSERT INTO telemetry (vin, recorded_at, seq, ${consumption.join(', ')}, has_consumption)
           SELECT vin, at, ${FLEET_DAYS} - d, 30000 + i * 3 - d * 1.7, 400000 + i * 50 - d * 23.1, 10 + i % 17 - d * 0.05, 40 + i % 13 - d * 0.1,
                  2000 + i % 29 - d * 6.5, 1500 + i % 31 - d * 4.2, 300000 + i * 40 - d * 19.2, 900 + i % 37 - d * 3.3, true
             FROM r
           RETURNING vin, recorded_at, seq, ${consumption.join(', ')}
         )
         INSERT INTO obfcm_readings (vin, recorded_at, seq, ${consumption.join(', ')}) SELECT vin, recorded_at, seq, ${consumption.join(', ')} FROM ins`,
        [vins, new Date(anchorMs), i],
      );
    }
    o.log(`history: fleet of ${fleet.length} vehicles stored (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    // Hint bits, visibility map and statistics, as autovacuum would have left them.
    await c.query('VACUUM (ANALYZE) telemetry, obfcm_readings, vehicles, ownership_periods');
  } finally {
    await c.end();
  }
  const fillSec = round((performance.now() - t0) / 1000, 1);
  // The dense vehicle over its year; each fleet vehicle over its own 90 days (a day's margin).
  const windows = [
    { vin: denseVin, from: new Date(anchorMs - (YEAR_DAYS + 1) * DAY_MS), to: new Date(anchorMs + HOUR_MS) },
    ...fleet.map((vin, i) => {
      const end = anchorMs - ((i + 1) % FLEET_SPREAD_DAYS) * DAY_MS;
      return { vin, from: new Date(end - (FLEET_DAYS + 1) * DAY_MS), to: new Date(end + DAY_MS) };
    }),
  ];
  const summaries = await rebuild(url, windows, o.log);
  return { denseVin, denseRows: YEAR_DAYS * TRIP_OFFSETS_H.length * perTrip, fleetVehicles, fleetRows: fleetVehicles * FLEET_DAYS, anchorMs, fillSec, summaries };
}

type Rebuild = (db: Db, vin: string, from: Date, to: Date) => Promise<unknown>;

/**
 * The hourly summaries the writer keeps for rows it stores, for rows stored here in bulk:
 * storage/repos/series.ts rebuildSummaries(db, vin, from, to) for the dense vehicle (timed), then rebuildAllSummaries(db) for all,
 * where it exists.
 */
async function rebuild(url: string, windows: { vin: string; from: Date; to: Date }[], log: (m: string) => void): Promise<{ rebuilt: boolean; sec: number | null; denseSec: number | null }> {
  const fn = (seriesRepo as Record<string, unknown>)['rebuildSummaries'];
  if (typeof fn !== 'function') {
    log('history: storage/repos/series.ts has no rebuildSummaries(): /series reads the raw rows (figures without summaries)');
    return { rebuilt: false, sec: null, denseSec: null };
  }
  const db = createPgDb(url, { max: 4 });
  try {
    const t0 = performance.now();
    // Every vehicle at once, one pass over the table (rebuildAllSummaries); the dense
    // vehicle's year is timed on its own first with the per-vehicle rebuild.
    const [dense] = windows;
    await (fn as Rebuild)(db, dense!.vin, dense!.from, dense!.to);
    const denseSec = round((performance.now() - t0) / 1000, 1);
    await seriesRepo.rebuildAllSummaries(db);
    const sec = round((performance.now() - t0) / 1000, 1);
    log(`history: hourly summaries rebuilt in ${sec} s (the dense vehicle's year alone in ${denseSec} s, then all ${windows.length} vehicles in one statement)`);
    return { rebuilt: true, sec, denseSec };
  } finally {
    await db.close();
  }
}

/** GET over HTTP: status, time to the end of the body, its bytes and lines (the body is not kept). */
function get(port: number, path: string, token: string, timeoutMs: number, onData?: () => void): Promise<{ status: number; ms: number; bytes: number; lines: number; body: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let bytes = 0;
    let lines = 0;
    let head = '';
    const req = http.get({ host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        if (head.length < 4096) head += d.toString('latin1', 0, Math.min(d.length, 4096));
        for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++;
        onData?.();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, bytes, lines, body: head }));
      res.on('error', fail);
    });
    // Where an answer broke off: the gateway ends a response whose source failed (its log says why).
    function fail(err: Error): void {
      reject(new Error(`GET ${path.slice(0, 80)}: ${err.message} after ${lines} lines, ${bytes} bytes, ${Math.round(performance.now() - t0)} ms`));
    }
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`took over ${timeoutMs} ms`)));
    req.on('error', fail);
  });
}

async function mint(port: number, adminToken: string, role: 'customer' | 'authority', subject: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ role, subject, ttlSeconds: 3600 }),
  });
  if (res.status !== 201) throw new Error(`token mint answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

const stats = (xs: number[]) => ({ p50: round(percentile(xs, 50), 1), p99: round(percentile(xs, 99), 1), max: round(Math.max(...xs), 1), n: xs.length });

/** Peak RSS of `pid` while `fn` runs, sampled every 50 ms. */
async function withPeakRss<T>(pid: number, fn: () => Promise<T>): Promise<{ value: T; idleMB: number; peakMB: number }> {
  const idle = rssBytes(pid);
  let peak = idle;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      // gone
    }
  }, 50);
  try {
    const value = await fn();
    return { value, idleMB: round(idle / 2 ** 20, 1), peakMB: round(peak / 2 ** 20, 1) };
  } finally {
    clearInterval(timer);
  }
}

/** Bytes on disk per table (heap, TOAST, each index) and per record, with the row counts. */
export async function sizes(url: string): Promise<Record<string, { rows: number; totalBytes: number; bytesPerRow: number; heapBytesPerRow: number; indexesBytesPerRow: Record<string, number> }>> {
  const c = new pg.Client({ connectionString: url, types: typeParsers() });
  await c.connect();
  try {
    const hyper = new Set(
      (await c.query<{ t: string }>("SELECT hypertable_name AS t FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public'").catch(() => ({ rows: [] as { t: string }[] }))).rows.map((r) => r.t),
    );
    // The telemetry-side tables, and any summary table beside them (named *summar* or *hourly*).
    const tables = (
      await c.query<{ t: string }>(
        `SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
            AND (c.relname IN ('telemetry', 'obfcm_readings') OR c.relname ~ '(summar|hourly)') ORDER BY 1`,
      )
    ).rows.map((r) => r.t);
    const out: Awaited<ReturnType<typeof sizes>> = {};
    for (const t of tables) {
      const rows = Number((await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${t}`)).rows[0]!.n);
      let heap: number;
      let total: number;
      const indexes: Record<string, number> = {};
      const idx = (await c.query<{ name: string }>('SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = $1::regclass', [t])).rows.map((r) => r.name);
      if (hyper.has(t)) {
        const d = (await c.query<{ table_bytes: string; toast_bytes: string; total_bytes: string }>('SELECT table_bytes::text, toast_bytes::text, total_bytes::text FROM hypertable_detailed_size($1)', [t])).rows[0]!;
        heap = Number(d.table_bytes) + Number(d.toast_bytes);
        total = Number(d.total_bytes);
        for (const i of idx) indexes[i] = Number((await c.query<{ b: string }>('SELECT hypertable_index_size($1::regclass)::text AS b', [i])).rows[0]!.b);
      } else {
        heap = Number((await c.query<{ b: string }>('SELECT pg_table_size($1::regclass)::text AS b', [t])).rows[0]!.b);
        total = Number((await c.query<{ b: string }>('SELECT pg_total_relation_size($1::regclass)::text AS b', [t])).rows[0]!.b);
        for (const i of idx) indexes[i] = Number((await c.query<{ b: string }>('SELECT pg_relation_size($1::regclass)::text AS b', [i])).rows[0]!.b);
      }
      const per = (b: number) => (rows > 0 ? round(b / rows, 1) : NaN);
      out[t] = {
        rows,
        totalBytes: total,
        bytesPerRow: per(total),
        heapBytesPerRow: per(heap),
        indexesBytesPerRow: Object.fromEntries(Object.entries(indexes).map(([k, v]) => [k, per(v)])),
      };
    }
    return out;
  } finally {
    await c.end();
  }
}

/** The part: build, measure, and the results (bench/results/latest.json `history`). */
export async function runHistory<G extends { pid: number; httpPort: number; adminToken: string }>(deps: HistoryDeps<G>, o: HistoryOptions): Promise<Record<string, unknown>> {
  const name = 'bench_history';
  const out: Record<string, unknown> = { scale: o.scale };
  const url = await deps.freshSchema(deps.server, name);
  let gw: G | null = null;
  try {
    deps.log(`history: building (scale ${o.scale}): a year of one dense vehicle and a fleet's readings`);
    const b = await buildHistory(url, { scale: o.scale, owner: deps.owner, secretHash: deps.secretHash, log: deps.log });
    out.data = { denseVin: b.denseVin, denseRecords: b.denseRows, fleetVehicles: b.fleetVehicles, fleetRecords: b.fleetRows, fillSec: b.fillSec, summariesRebuilt: b.summaries.rebuilt, summariesSec: b.summaries.sec, denseSummariesSec: b.summaries.denseSec };
    deps.log(`history: built ${b.denseRows.toLocaleString('en-US')} dense records + ${b.fleetRows.toLocaleString('en-US')} fleet records (${b.fleetVehicles} vehicles): filled in ${b.fillSec} s, summaries in ${b.summaries.sec ?? 'n/a'} s`);

    gw = await deps.startGateway('gateway-history', url);
    const port = gw.httpPort;
    const customer = await mint(port, gw.adminToken, 'customer', deps.owner);
    const authority = await mint(port, gw.adminToken, 'authority', 'bench-authority');

    // /series, as the portal asks for each range.
    const byRange: Record<string, unknown> = {};
    let yearAll: number[] = [];
    for (const [label, span] of RANGES) {
      const kinds = {
        charts: (from: string, to: string) => `/v1/vehicles/${b.denseVin}/series?from=${from}&to=${to}&fields=${CHART_FIELDS.join(',')}`,
        track: (from: string, to: string) => `/v1/vehicles/${b.denseVin}/series?from=${from}&to=${to}&bucket=${trackBucket(span)}&fields=location.latitude,location.longitude`,
      };
      const times: Record<string, number[]> = { charts: [], track: [] };
      const t0 = performance.now();
      const load = loadAvg();
      for (let run = 0; run < o.seriesRuns && (run < 3 || performance.now() - t0 < o.seriesBudgetMs); run++) {
        const to = new Date();
        const from = new Date(to.getTime() - span);
        for (const [kind, path] of Object.entries(kinds)) {
          const r = await get(port, path(from.toISOString(), to.toISOString()), customer, 180_000);
          if (r.status !== 200) throw new Error(`/series ${label} ${kind} answered ${r.status}: ${r.body.slice(0, 300)}`);
          times[kind]!.push(r.ms);
        }
      }
      const all = [...times.charts!, ...times.track!];
      if (label === '365d') yearAll = all;
      byRange[label] = {
        ...stats(all),
        coldMs: round(times.charts![0]!, 1),
        charts: stats(times.charts!),
        track: { bucket: trackBucket(span), ...stats(times.track!) },
        loadAvg1: load,
      };
      const r = byRange[label] as { p50: number; p99: number; n: number };
      deps.log(`history: /series last ${label} (${b.denseRows.toLocaleString('en-US')} records in the year): p50 ${r.p50} ms, p99 ${r.p99} ms over ${r.n} requests (charts + track), first ${round(times.charts![0]!, 1)} ms; load ${load}`);
    }
    out.seriesMs = { ...stats(yearAll), range: '365d', byRange };

    // The owner's NDJSON export: the whole year, then the last 30 days.
    const exportRun = async (label: string, query: string) => {
      const load = loadAvg();
      const m = await withPeakRss(gw!.pid, () => get(port, `/v1/vehicles/${b.denseVin}/cardata?format=ndjson${query}`, customer, 900_000));
      if (m.value.status !== 200) throw new Error(`export ${label} answered ${m.value.status}: ${m.value.body.slice(0, 300)}`);
      const res = { rows: m.value.lines, seconds: round(m.value.ms / 1000, 2), rowsPerSec: round(m.value.lines / (m.value.ms / 1000)), MB: round(m.value.bytes / 2 ** 20, 1), idleRssMB: m.idleMB, peakRssMB: m.peakMB, loadAvg1: load };
      deps.log(`history: export ${label}: ${res.rows.toLocaleString('en-US')} rows in ${res.seconds} s = ${res.rowsPerSec.toLocaleString('en-US')} rows/s; RSS ${res.idleRssMB} → ${res.peakRssMB} MiB; load ${load}`);
      return res;
    };
    const year = await exportRun('full year', '');
    if (year.rows !== b.denseRows) throw new Error(`the full-year export sent ${year.rows} rows, ${b.denseRows} are stored`);
    const month = await exportRun('last 30 days', `&from=${new Date(Date.now() - 30 * DAY_MS).toISOString()}`);
    out.exportRowsPerSec = year.rowsPerSec;
    out.export = { year, last30Days: month, perRowRatioYearTo30Days: round(year.rowsPerSec / month.rowsPerSec, 2) };

    // The authority's OBFCM report, every page.
    const reportRun = async (days: number) => {
      const load = loadAvg();
      const to = new Date();
      const from = new Date(to.getTime() - days * DAY_MS);
      const m = await withPeakRss(gw!.pid, () => get(port, `/v1/reports/obfcm?from=${from.toISOString()}&to=${to.toISOString()}`, authority, 600_000));
      if (m.value.status !== 200) throw new Error(`OBFCM report ${days} d answered ${m.value.status}: ${m.value.body.slice(0, 300)}`);
      const vins = Math.max(0, m.value.lines - 1); // less the header
      const res = { ms: round(m.value.ms), vins, msPer1000Vins: round((1000 * m.value.ms) / Math.max(1, vins), 1), idleRssMB: m.idleMB, peakRssMB: m.peakMB, loadAvg1: load };
      deps.log(`history: OBFCM report ${days} days: ${vins.toLocaleString('en-US')} VINs in ${res.ms} ms (${b.fleetVehicles + 1} vehicles, ${(b.fleetRows + b.denseRows).toLocaleString('en-US')} readings); RSS ${res.idleRssMB} → ${res.peakRssMB} MiB; load ${load}`);
      return res;
    };
    const r365 = await reportRun(365);
    const r90 = await reportRun(90);
    if (r365.vins !== b.fleetVehicles + 1) throw new Error(`the 365-day report holds ${r365.vins} VINs; ${b.fleetVehicles + 1} have a reading in the range`);
    out.reportMs = r365.ms;
    out.report = { days365: r365, days90: r90 };

    // Bytes on disk.
    const sz = await sizes(url);
    const total = Object.values(sz).reduce((a, t) => a + t.totalBytes, 0);
    const records = sz.telemetry?.rows ?? NaN;
    out.bytesPerRecord = round(total / records, 1);
    // Per table: bytes per row of its own, and its share of each telemetry record.
    const perRecord = Object.fromEntries(Object.entries(sz).map(([t, v]) => [t, round(v.totalBytes / records, 1)]));
    out.bytes = { perTable: sz, perTelemetryRecord: perRecord, note: 'bytesPerRecord: every table here (telemetry, its OBFCM copy, the summaries) over the telemetry records' };
    deps.log(
      `history: bytes per record ${out.bytesPerRecord as number} (${records.toLocaleString('en-US')} records): ` +
        Object.entries(sz)
          .map(([t, v]) => `${t} ${perRecord[t]} per record (${v.rows.toLocaleString('en-US')} rows of ${v.bytesPerRow} B: heap ${v.heapBytesPerRow}, ${Object.entries(v.indexesBytesPerRow).map(([i, b2]) => `${i} ${b2}`).join(', ')})`)
          .join('; '),
    );
    return out;
  } finally {
    await deps.stopGateway(gw);
    await deps.dropQuietly(deps.server, name);
  }
}

type Add = (key: string, value: number | undefined | null, target: string, ok: (v: number) => boolean) => void;

/** The part's targets (issue 24), into the runner's table. */
export function historyTargets(h: Record<string, any> | undefined, add: Add): void {
  if (!h || h.scale === undefined) return;
  const full = h.scale === 1;
  // At a reduced scale the figures are reported but judged against nothing.
  const v = (x: unknown) => (full && typeof x === 'number' ? x : null);
  add('history.seriesMs.p99', v(h.seriesMs?.p99), '< 200 ms (last 365 d, the portal\'s requests)', (x) => x < 200);
  add('history.seriesMs.byRange.365d.coldMs', v(h.seriesMs?.byRange?.['365d']?.coldMs), '< 2000 ms (first request of "Last year")', (x) => x < 2000);
  add('history.exportRowsPerSec', v(h.exportRowsPerSec), '>= 250,000 rows/s (full year)', (x) => x >= 250_000);
  add('history.export.perRowRatioYearTo30Days', v(h.export?.perRowRatioYearTo30Days), '>= 0.9 (a year per row as fast as 30 days)', (x) => x >= 0.9);
  add('history.reportMs', v(h.reportMs), '< 5000 ms (365 days, 10,001 vehicles)', (x) => x < 5000);
}

type Fmt = (v: number | string | boolean | null | undefined, unit?: string) => string;

/** The part's rows of the printed table. */
export function historyRows(h: Record<string, any> | undefined, fmt: Fmt, verdict: (k: string) => string): [string, string, string][] {
  if (!h || h.scale === undefined) return [];
  const d = h.data ?? {};
  const size = `${fmt(d.denseRecords)} + ${fmt(d.fleetRecords)} records${h.scale === 1 ? '' : `, scale ${h.scale}`}${d.summariesRebuilt ? '' : ', no summaries'}`;
  const r = h.seriesMs?.byRange ?? {};
  return [
    [`history.seriesMs.p99 (last 365 d; ${size})`, fmt(h.seriesMs?.p99, ' ms'), verdict('history.seriesMs.p99')],
    ['history.seriesMs p50/p99 last 24 h, 7 d, 30 d', ['24h', '7d', '30d'].map((k) => `${fmt(r[k]?.p50)}/${fmt(r[k]?.p99)}`).join(', ') + ' ms', ''],
    ['history.seriesMs.byRange.365d.coldMs (first request)', fmt(r['365d']?.coldMs, ' ms'), verdict('history.seriesMs.byRange.365d.coldMs')],
    [`history.exportRowsPerSec (full year, ${fmt(h.export?.year?.rows)} rows)`, fmt(h.exportRowsPerSec), verdict('history.exportRowsPerSec')],
    [`history.export last 30 d (${fmt(h.export?.last30Days?.rows)} rows) / ratio`, `${fmt(h.export?.last30Days?.rowsPerSec)} / ${fmt(h.export?.perRowRatioYearTo30Days)}`, verdict('history.export.perRowRatioYearTo30Days')],
    [`history.reportMs (365 d, ${fmt(h.report?.days365?.vins)} VINs)`, fmt(h.reportMs, ' ms'), verdict('history.reportMs')],
    [`history.report 90 d (${fmt(h.report?.days90?.vins)} VINs)`, fmt(h.report?.days90?.ms, ' ms'), ''],
    ['history.bytesPerRecord (telemetry + OBFCM copy + summaries)', fmt(h.bytesPerRecord, ' B'), ''],
  ];
}
