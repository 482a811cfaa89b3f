// Read side of the stream log (migration 006): what the live streams deliver, in commit
// order, with the cursor of each record.
//
// Position of a record: (tx, ord) = the writing transaction's id (xid8) and the record's
// place in that transaction's entry for its vehicle. Readers take only entries of
// transactions older than the horizon = pg_snapshot_xmin(pg_current_snapshot()): every
// such transaction has ended, so no entry can appear below the horizon later. Entries
// below it, in (tx, ord) order, are therefore a list that only grows at its end, and
// "every record after cursor c" is the same set whenever it is asked for: no gap and no
// duplicate across a reconnect, whatever the commit order of concurrent writers or the
// measurement time of late records. (Precisely: the horizon is the oldest transaction of
// this database still running, see horizon().)
//
// Records are read joined to `telemetry` (so erased or rewritten rows are read as they are
// now) and turned into NDJSON lines by the export's own code: binary COPY and ndjsonPlan on
// pg, the export's row mapping (groupOf) elsewhere (PGlite).
import type { Db } from './db.ts';
import { FIELD_COLUMNS, GROUP_FLAG, type Group } from '../proto/fields.ts';
import { copyDataStart, ndjsonPlan, rowKey, rowOffsets, sqlLiteral, type NdjsonPlan } from './copy-out.ts';
import { groupOf } from './reads.ts';

/** NOTIFY channel that wakes the streams of every instance after a commit (payload: a tag of the sending process). */
export const STREAM_CHANNEL = 'stream_committed';

const ALL: readonly Group[] = ['technical', 'consumption', 'location'];
const PG_EPOCH_MS = 946_684_800_000;
const PG_EPOCH_US = PG_EPOCH_MS * 1000;
/** Backlog reads: keys further apart than this (measurement time) are read as separate ranges, µs. */
const RANGE_GAP_US = 60_000_000;
/** At most this many ranges per page (the closest ones are merged). */
const MAX_RANGES = 32;

export interface StreamPos {
  /** Transaction id (xid8) of the write. */
  tx: number;
  /** 1-based place of the record in that transaction's entry for the vehicle. */
  ord: number;
}

/** Which categories a line carries, and which of them are written as null. */
export interface LineProjection {
  categories: readonly Group[];
  nulled: readonly Group[];
}

export interface LogRecord {
  vin: string;
  tx: number;
  ord: number;
  recordedAtMs: number;
  /** The record as one NDJSON export line (without the newline), projected. */
  json(p: LineProjection): string;
}

export interface StreamLogRepo {
  /** The current horizon, and whether committed entries wait at or above it. */
  horizon(): Promise<{ h: number; waiting: boolean }>;
  /** Records of entries with lo <= tx < hi of these vehicles, by vin, then (tx, ord). */
  range(lo: number, hi: number, vins: readonly string[]): Promise<LogRecord[]>;
  /**
   * One page of a vehicle's records after `after` (null: from the start) below `bound`:
   * whole log entries, about `maxRecords` records (at least one entry, however large),
   * measured at or after `fromMs` when given. `last` is the position the next page starts
   * after (null: nothing left below bound).
   */
  page(vin: string, after: StreamPos | null, bound: number, maxRecords: number, fromMs: number | null): Promise<{ records: LogRecord[]; last: StreamPos | null }>;
  /** Where a stream from `fromMs` (measurement time) begins: just before the first entry that can hold such records. */
  startFor(vin: string, fromMs: number, marginMs: number): Promise<StreamPos | null>;
  /** Entries with tx <= this were dropped by retention. */
  trimmedBelow(): Promise<number>;
  /** Drops entries of transactions started before `beforeMs`. */
  trim(beforeMs: number): Promise<number>;
}

/** Lines are built one at a time into this buffer (no line is longer than a plan's maxLineBytes, ~1.5 kB). */
const LINE_BYTES = 16 * 1024;

export function createStreamLogRepo(db: Db): StreamLogRepo {
  const copyOut = db.copy ? db.copy.copyOut.bind(db.copy) : undefined;
  const line = Buffer.allocUnsafe(LINE_BYTES);
  // Plans per (vehicle, projection): built once, reused for every record of that stream.
  const plans = new Map<string, NdjsonPlan>();
  const planFor = (vin: string, p: LineProjection): NdjsonPlan => {
    const key = `${vin}|${p.categories.join(',')}|${p.nulled.join(',')}`;
    let plan = plans.get(key);
    if (!plan) {
      if (plans.size >= 20_000) plans.clear();
      plan = ndjsonPlan(vin, p.categories, { layout: ALL, nulled: p.nulled });
      plans.set(key, plan);
    }
    return plan;
  };
  const select = ndjsonPlan('', ALL).select;

  /** Binary COPY of `sql` (which selects `select`, then vin, tx, ord) into records. */
  async function viaCopy(sql: string): Promise<LogRecord[]> {
    const b = await copyOut!(`COPY (${sql}) TO STDOUT (FORMAT binary)`);
    const offs = rowOffsets(b, copyDataStart(b));
    const out = new Array<LogRecord>(offs.length);
    for (let i = 0; i < offs.length; i++) {
      const off = offs[i]!;
      const t = trailing(b, off);
      const us = rowKey(b, off).pgMicros;
      out[i] = {
        vin: t.vin,
        tx: t.tx,
        ord: t.ord,
        recordedAtMs: Math.floor(us / 1000) + PG_EPOCH_MS,
        json(p) {
          const { bytes } = planFor(t.vin, p).fill(b, [off], 0, line);
          return line.toString('latin1', 0, bytes - 1);
        },
      };
    }
    return out;
  }

  /** The same through parameters and rows (PGlite): the export's row mapping. */
  async function viaRows(sql: string, params: unknown[]): Promise<LogRecord[]> {
    const r = await db.query<Record<string, unknown>>(sql, params);
    return r.rows.map((row) => {
      const vin = row.l_vin as string;
      const at = row.recorded_at as Date;
      return {
        vin,
        tx: Number(row.l_tx),
        ord: Number(row.ord),
        recordedAtMs: at.getTime(),
        json(p) {
          const o: Record<string, unknown> = { vin, seq: Number(row.seq), recordedAt: at.toISOString() };
          for (const g of ALL) if (p.categories.includes(g)) o[g] = p.nulled.includes(g) ? null : groupOf(row, g);
          return JSON.stringify(o);
        },
      };
    });
  }

  /**
   * A backlog page on pg. Its keys come from the log; the rows are read by time ranges of
   * the vehicle's primary key (a few index range scans) and put in cursor order here.
   * Probing the key of each record instead costs an index descent through the hypertable's
   * chunk append per record: measured 50,000 records in ~1 s against ~0.12 s by ranges.
   */
  async function pageViaRanges(vin: string, a: StreamPos, fromMs: number | null, entriesSql: string, params: unknown[]): Promise<{ records: LogRecord[]; last: StreamPos | null }> {
    const r = await db.query<{ tx: string; us: string; seqs: string }>(
      `SELECT tx::text AS tx, ARRAY(SELECT (extract(epoch FROM k) * 1000000)::int8 FROM unnest(p.ats) k)::text AS us, seqs::text AS seqs
         FROM (${entriesSql}) p ORDER BY tx`,
      params,
    );
    if (r.rows.length === 0) return { records: [], last: null };
    const entries = r.rows.map((e) => ({ tx: Number(e.tx), us: intArray(e.us), seqs: intArray(e.seqs) }));
    const last: StreamPos = { tx: entries[entries.length - 1]!.tx, ord: Number.MAX_SAFE_INTEGER };
    const all: number[] = [];
    for (const e of entries) for (const u of e.us) all.push(u);
    const ranges = timeRanges(all, RANGE_GAP_US, MAX_RANGES);
    const since = fromMs === null ? '' : ` AND recorded_at >= ${sqlLiteral(new Date(fromMs).toISOString())}::timestamptz`;
    const where = ranges.map(([lo, hi]) => `recorded_at BETWEEN ${sqlLiteral(isoMicros(lo))}::timestamptz AND ${sqlLiteral(isoMicros(hi))}::timestamptz`).join(' OR ');
    const b = await copyOut!(`COPY (SELECT ${select} FROM telemetry WHERE vin = ${sqlLiteral(vin)} AND (${where})${since}) TO STDOUT (FORMAT binary)`);
    // Rows by measurement time; the rare rows that share a time with another go by time and seq.
    const byTime = new Map<number, number>();
    const shared = new Map<string, number>();
    for (const off of rowOffsets(b, copyDataStart(b))) {
      const k = rowKey(b, off);
      const other = byTime.get(k.pgMicros);
      if (other === undefined) byTime.set(k.pgMicros, off);
      else shared.set(`${k.pgMicros}:${k.seq}`, off);
    }
    const find = (pgMicros: number, seq: number): number | undefined => {
      const off = byTime.get(pgMicros);
      return off !== undefined && rowKey(b, off).seq === seq ? off : shared.get(`${pgMicros}:${seq}`);
    };
    const records: LogRecord[] = [];
    for (const e of entries) {
      for (let i = 0; i < e.us.length; i++) {
        const ord = i + 1;
        if (e.tx === a.tx && ord <= a.ord) continue;
        const pgMicros = e.us[i]! - PG_EPOCH_US;
        // Absent: erased since, or measured before ?from=.
        const off = find(pgMicros, e.seqs[i]!);
        if (off === undefined) continue;
        records.push({
          vin,
          tx: e.tx,
          ord,
          recordedAtMs: Math.floor(pgMicros / 1000) + PG_EPOCH_MS,
          json(p) {
            const { bytes } = planFor(vin, p).fill(b, [off], 0, line);
            return line.toString('latin1', 0, bytes - 1);
          },
        });
      }
    }
    return { records, last };
  }

  const rowsSelect = ['seq', 'recorded_at', ...ALL.flatMap((g) => [GROUP_FLAG[g], ...FIELD_COLUMNS.filter((c) => c.group === g).map((c) => c.column)])].join(', ');
  // Each key of an entry is looked up by the primary key, one probe per record. Written as
  // a LATERAL subquery with LIMIT 1 (the key is unique anyway) so the planner cannot turn
  // it around: with the statistics of a young table (one row per vehicle, it believes) it
  // chose to scan all of the vehicle's rows and rescan the keys for each, 20 s for 400
  // records here.
  const JOIN = `CROSS JOIN LATERAL unnest(l.ats, l.seqs) WITH ORDINALITY AS k(k_at, k_seq, ord)
    CROSS JOIN LATERAL (SELECT * FROM telemetry t WHERE t.vin = l.vin AND t.recorded_at = k.k_at AND t.seq = k.k_seq LIMIT 1) t`;

  return {
    async horizon() {
      // pg_snapshot_xmin alone would do, but it counts every database of the server: one
      // long transaction anywhere (a bulk load, a forgotten BEGIN in psql) would hold up
      // every stream. Only transactions of this database can write this log, so of the
      // transactions running at the snapshot, only those a backend of this database still
      // runs (asked after the snapshot was taken) hold the horizon back; every other one
      // has ended by then, and a later read sees its entries if it committed any.
      const r = await db.query<{ xmin: string; xmax: string; xip: string[] }>(
        `SELECT pg_snapshot_xmin(s)::text AS xmin, pg_snapshot_xmax(s)::text AS xmax, ARRAY(SELECT pg_snapshot_xip(s)::text) AS xip
           FROM (SELECT pg_current_snapshot() AS s) x`,
      );
      const snap = r.rows[0]!;
      let h = Number(snap.xmax);
      if (snap.xip.length > 0) {
        const ours = await db.query<{ x: string }>(
          `SELECT backend_xid::text AS x FROM pg_stat_activity
            WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND backend_xid IS NOT NULL`,
        );
        const running = new Set(ours.rows.map((o) => Number(o.x)));
        for (const x of snap.xip) {
          const full = Number(x);
          // backend_xid is the 32-bit xid; xip holds xid8 (epoch << 32 | xid).
          if (running.has(full % 4_294_967_296) && full < h) h = full;
        }
      }
      const w = await db.query<{ waiting: boolean }>(`SELECT EXISTS (SELECT 1 FROM stream_log WHERE tx >= $1::text::xid8) AS waiting`, [String(h)]);
      return { h, waiting: w.rows[0]!.waiting };
    },

    async range(lo, hi, vins) {
      if (vins.length === 0 || hi <= lo) return [];
      if (copyOut) {
        // COPY takes no parameters: VINs are validated ([A-HJ-NPR-Z0-9]{17}) and quoted anyway.
        return viaCopy(
          `SELECT ${select}, l.vin, l.tx::text::int8, k.ord FROM stream_log l ${JOIN}
            WHERE l.tx >= '${lo}'::xid8 AND l.tx < '${hi}'::xid8 AND l.vin IN (${vins.map(sqlLiteral).join(', ')})
            ORDER BY l.vin, l.tx, k.ord`,
        );
      }
      return viaRows(
        `SELECT ${rowsSelect}, l.vin AS l_vin, l.tx::text AS l_tx, k.ord FROM stream_log l ${JOIN}
          WHERE l.tx >= $1::text::xid8 AND l.tx < $2::text::xid8 AND l.vin = ANY($3::text[])
          ORDER BY l.vin, l.tx, k.ord`,
        [String(lo), String(hi), vins],
      );
    },

    async page(vin, after, bound, maxRecords, fromMs) {
      const a = after ?? { tx: 0, ord: 0 };
      // The page's entries: whole entries in tx order while fewer than maxRecords records
      // came before (each entry holds at least one record, so maxRecords entries suffice).
      const entries = `SELECT tx, ats, seqs FROM (
           SELECT tx, ats, seqs, sum(cardinality(seqs)) OVER (ORDER BY tx) - cardinality(seqs) AS before
             FROM (SELECT tx, ats, seqs FROM stream_log WHERE vin = $1 AND tx >= $2::text::xid8 AND tx < $3::text::xid8
                     AND (tx > $2::text::xid8 OR cardinality(seqs) > $4::int8) ORDER BY tx LIMIT $5) e) x
         WHERE before < $5`;
      const params = [vin, String(a.tx), String(bound), a.ord, maxRecords];
      if (copyOut) return pageViaRanges(vin, a, fromMs, entries, params);
      const end = await db.query<{ u: string | null }>(`SELECT max(tx)::text AS u FROM (${entries}) p`, params);
      const u = end.rows[0]?.u;
      if (u === null || u === undefined) return { records: [], last: null };
      const last: StreamPos = { tx: Number(u), ord: Number.MAX_SAFE_INTEGER };
      const p: unknown[] = [vin, String(a.tx), u, a.ord];
      if (fromMs !== null) p.push(new Date(fromMs));
      const records = await viaRows(
        `SELECT ${rowsSelect}, l.vin AS l_vin, l.tx::text AS l_tx, k.ord FROM stream_log l ${JOIN}
          WHERE l.vin = $1 AND l.tx >= $2::text::xid8 AND l.tx <= $3::text::xid8 AND (l.tx > $2::text::xid8 OR k.ord > $4::int8)${fromMs === null ? '' : ' AND t.recorded_at >= $5'}
          ORDER BY l.tx, k.ord`,
        p,
      );
      return { records, last };
    },

    async startFor(vin, fromMs, marginMs) {
      const r = await db.query<{ tx: string | null }>(
        `SELECT min(tx)::text AS tx FROM stream_log WHERE vin = $1 AND at >= $2`,
        [vin, new Date(fromMs - marginMs)],
      );
      const tx = r.rows[0]?.tx;
      return tx ? { tx: Number(tx), ord: 0 } : null;
    },

    async trimmedBelow() {
      const r = await db.query<{ below: string }>('SELECT below::text AS below FROM stream_log_trim');
      return Number(r.rows[0]?.below ?? 0);
    },

    async trim(beforeMs) {
      // By transaction id, so the log stays a suffix in cursor order: everything up to the
      // newest entry started before the cut goes.
      return db.transaction(async (tx) => {
        const cut = await tx.query<{ tx: string | null }>('SELECT max(tx)::text AS tx FROM stream_log WHERE at < $1', [new Date(beforeMs)]);
        const c = cut.rows[0]?.tx;
        if (!c) return 0;
        const d = await tx.query('DELETE FROM stream_log WHERE tx <= $1::text::xid8', [c]);
        await tx.query('UPDATE stream_log_trim SET below = greatest(below, $1::text::xid8)', [c]);
        return d.rowCount;
      });
    },
  };
}

/** vin, tx, ord: the last three fields of a row of `select`, vin, tx, ord. */
function trailing(b: Buffer, row: number): { vin: string; tx: number; ord: number } {
  const n = b.readInt16BE(row);
  let o = row + 2;
  for (let i = 0; i < n - 3; i++) {
    const len = b.readInt32BE(o);
    o += 4 + (len > 0 ? len : 0);
  }
  const vl = b.readInt32BE(o);
  const vin = b.toString('latin1', o + 4, o + 4 + vl);
  o += 4 + vl;
  const tx = b.readInt32BE(o + 4) * 4_294_967_296 + b.readUInt32BE(o + 8);
  o += 12;
  const ord = b.readInt32BE(o + 4) * 4_294_967_296 + b.readUInt32BE(o + 8);
  return { vin, tx, ord };
}

/** A PostgreSQL int8[] in text form ("{1,2,3}") as numbers. */
function intArray(text: string): number[] {
  return text.length <= 2 ? [] : text.slice(1, -1).split(',').map(Number);
}

/** A time in µs since 1970 as an ISO text with all six fractional digits. */
export function isoMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  return `${new Date(ms).toISOString().slice(0, -1)}${String(us - ms * 1000).padStart(3, '0')}Z`;
}

/**
 * Covers the sorted-or-not times `us` with at most `max` closed ranges: a new range where
 * two neighbours lie more than `gap` apart, keeping only the `max - 1` widest such gaps.
 */
export function timeRanges(us: readonly number[], gap: number, max: number): [number, number][] {
  if (us.length === 0) return [];
  const t = Float64Array.from(us).sort();
  let gaps: number[] = [];
  for (let i = 1; i < t.length; i++) if (t[i]! - t[i - 1]! > gap) gaps.push(i);
  if (gaps.length > max - 1) {
    gaps = gaps
      .sort((x, y) => t[y]! - t[y - 1]! - (t[x]! - t[x - 1]!))
      .slice(0, max - 1)
      .sort((x, y) => x - y);
  }
  const out: [number, number][] = [];
  let start = 0;
  for (const g of gaps) {
    out.push([t[start]!, t[g - 1]!]);
    start = g;
  }
  out.push([t[start]!, t[t.length - 1]!]);
  return out;
}
