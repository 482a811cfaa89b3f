// The database's own ingest ceiling: rows of the gateway's shape (telemetry with its 23
// double columns + the OBFCM copy, as the gateway writes them for vehicles with default
// consent) written straight into the same tables, no MQTT, with as many connections as
// the gateway's writer. Methods: the writer itself (storage/writer/writer.ts) with large
// batches, by each of its paths (binary COPY into staging tables + INSERT … SELECT ON
// CONFLICT, and its single unnest statement with data-modifying CTEs), and a
// hand-written multi-row VALUES statement (prepared once, same two tables).
import pg from 'pg';
import { createBatchWriter, type TelemetryRow } from '../storage/writer/writer.ts';
import { CONSUMPTION_COLUMNS, FIELD_COLUMNS } from '../proto/fields.ts';
import { typeParsers, type Db } from '../storage/driver/db.ts';
import { samplesFor, type FleetSample } from './fleet.ts';
import { SEQ_BASE } from './mqtt-wire.ts';
import { benchVin, round } from './lib.ts';

export interface CeilingMethod {
  method: string;
  rowsPerStatement: number;
  recordsPerSec: number;
  statements: number;
  meanStatementMs: number;
}

const VEHICLES = 1000;

function rowFactory() {
  const pool: { vin: string; s: FleetSample[] }[] = [];
  for (let i = 0; i < VEHICLES; i++) pool.push({ vin: benchVin('K', i), s: samplesFor(i, 10) });
  let seq = SEQ_BASE;
  let v = 0;
  return (n: number): TelemetryRow[] => {
    const out: TelemetryRow[] = new Array(n);
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      const p = pool[v]!;
      const s = p.s[seq % 10]!;
      out[i] = { vin: p.vin, seq: seq++, recordedAtMs: now, technical: s.technical as never, consumption: s.consumption as never, location: s.location as never, shareObfcm: true };
      v = (v + 1) % VEHICLES;
    }
    return out;
  };
}

/** The production writer fed with full batches, `concurrency` statements at once, by either of its methods. */
export async function ceilingWriter(
  db: Db,
  opts: { batchRows: number; concurrency: number; warmupMs: number; measureMs: number; method: 'copy' | 'unnest' },
): Promise<CeilingMethod> {
  const make = rowFactory();
  const t0 = performance.now();
  const from = t0 + opts.warmupMs;
  const to = from + opts.measureMs;
  let rows = 0;
  let stmts = 0;
  let stmtMs = 0;
  let failed: unknown = null;
  const w = createBatchWriter(db, {
    method: opts.method === 'copy' ? 'auto' : 'unnest',
    batchMaxRows: opts.batchRows,
    concurrency: opts.concurrency,
    maxPendingRows: opts.batchRows * opts.concurrency * 2,
    onBatch: (s) => {
      const t = performance.now();
      if (t >= from && t < to) {
        rows += s.telemetryRows;
        stmts++;
        stmtMs += s.durationMs;
      }
    },
    onError: (err) => (failed = err),
  });
  while (performance.now() < to && !failed) {
    if (!w.hasRoom()) {
      await w.whenRoom();
      continue;
    }
    w.write({ telemetry: make(opts.batchRows), quarantine: [] }).catch((e) => (failed = e));
  }
  await w.close(60_000);
  if (failed) throw failed as Error;
  return {
    method: opts.method === 'copy' ? 'binary COPY + INSERT … SELECT ON CONFLICT (storage/writer/writer.ts)' : 'unnest (storage/writer/writer.ts)',
    rowsPerStatement: opts.batchRows, recordsPerSec: round(rows / (opts.measureMs / 1000)), statements: stmts, meanStatementMs: round(stmtMs / Math.max(1, stmts), 1) };
}

/** Multi-row VALUES into telemetry and obfcm_readings (one statement, two CTEs), prepared. */
export async function ceilingValues(
  url: string,
  opts: { rowsPerStatement: number; concurrency: number; warmupMs: number; measureMs: number; /** Called once every worker is done, before the connections close. */ atEnd?: () => void },
): Promise<CeilingMethod> {
  const make = rowFactory();
  const n = opts.rowsPerStatement;
  const cols = FIELD_COLUMNS.map((c) => c.column);
  const per = 3 + cols.length + 3;
  const tel: string[] = [];
  const obf: string[] = [];
  const consIdx = CONSUMPTION_COLUMNS.map((c) => FIELD_COLUMNS.indexOf(c));
  for (let r = 0; r < n; r++) {
    const b = r * per;
    const ps = Array.from({ length: per }, (_, k) => `$${b + k + 1}`);
    tel.push(`(${ps.join(',')})`);
    obf.push(`(${[ps[0], ps[1], ps[2], ...consIdx.map((ci) => ps[3 + ci])].join(',')})`);
  }
  const text = `WITH t AS (INSERT INTO telemetry (vin, recorded_at, seq, ${cols.join(', ')}, has_technical, has_consumption, has_location)
      VALUES ${tel.join(',')} ON CONFLICT DO NOTHING RETURNING 1),
    o AS (INSERT INTO obfcm_readings (vin, recorded_at, seq, ${CONSUMPTION_COLUMNS.map((c) => c.column).join(', ')})
      VALUES ${obf.join(',')} ON CONFLICT DO NOTHING RETURNING 1)
    SELECT (SELECT count(*) FROM t)::int AS t, (SELECT count(*) FROM o)::int AS o`;
  const t0 = performance.now();
  const from = t0 + opts.warmupMs;
  const to = from + opts.measureMs;
  let rows = 0;
  let stmts = 0;
  let stmtMs = 0;
  let running = opts.concurrency;
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));
  const worker = async (k: number) => {
    const c = new pg.Client({ connectionString: url, types: typeParsers(), application_name: `bench-ceiling-${k}` });
    await c.connect();
    try {
      while (performance.now() < to) {
        const batch = make(n);
        const values: unknown[] = new Array(n * per);
        let j = 0;
        for (const r of batch) {
          values[j++] = r.vin;
          values[j++] = new Date(r.recordedAtMs).toISOString();
          values[j++] = r.seq;
          for (const col of FIELD_COLUMNS) values[j++] = (r[col.group] as Record<string, number> | null | undefined)?.[col.jsName] ?? null;
          values[j++] = r.technical != null;
          values[j++] = r.consumption != null;
          values[j++] = r.location != null;
        }
        const s0 = performance.now();
        await c.query({ name: `values_${n}`, text, values });
        const t = performance.now();
        if (t >= from && t < to) {
          rows += n;
          stmts++;
          stmtMs += t - s0;
        }
      }
    } finally {
      if (--running === 0) {
        opts.atEnd?.();
        allDone();
      }
      await done;
      await c.end();
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, (_, k) => worker(k)));
  return { method: 'multi-row VALUES, prepared', rowsPerStatement: n, recordsPerSec: round(rows / (opts.measureMs / 1000)), statements: stmts, meanStatementMs: round(stmtMs / Math.max(1, stmts), 1) };
}
