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
import type { Db } from '../storage/driver/db.ts';
import type { LineProjection, StreamPos, StreamRecord } from '../proto/stream.ts';
import { FIELD_COLUMNS, GROUP_FLAG, GROUPS, type FieldList, type Group, type StoredValues } from '../proto/fields.ts';
import { copyDataStart, ndjsonPlan, readInt64, rowKey, rowOffsets, sqlLiteral, type NdjsonPlan } from '../storage/driver/copy-out.ts';
import { groupOf } from '../storage/repos/reads.ts';
import { lineOf, lineWriter, type RecentRows } from './held-rows.ts';
import type { CopyRow } from '../storage/driver/copy-binary.ts';

/** NOTIFY channel that wakes the streams of every instance after a commit (payload: a tag of the sending process). */
export const STREAM_CHANNEL = 'stream_committed';

const ALL: readonly Group[] = GROUPS;
const PG_EPOCH_MS = 946_684_800_000;
const PG_EPOCH_US = PG_EPOCH_MS * 1000;
/** Backlog reads: keys further apart than this (measurement time) are read as separate ranges, µs. */
const RANGE_GAP_US = 60_000_000;
/** At most this many ranges per page (the closest ones are merged). */
const MAX_RANGES = 32;
/** A tail read names the vehicles it wants in its query up to this many; beyond, it filters the range's entries itself. */
const VIN_LIST_MAX = 64;

export interface StreamLogRepo {
  /** The current horizon, and whether committed entries wait at or above it. */
  horizon(): Promise<{ h: number; waiting: boolean }>;
  /** Records of entries with lo <= tx < hi of these vehicles, by vin, then (tx, ord). */
  range(lo: number, hi: number, vins: readonly string[]): Promise<StreamRecord[]>;
  /**
   * horizon() and range(lo, h, vins) in one statement where the database allows it, the
   * horizon h being then the snapshot's own (never above what horizon() would say).
   */
  tail(lo: number, vins: readonly string[]): Promise<{ h: number; waiting: boolean; records: StreamRecord[] }>;
  /**
   * One page of a vehicle's records after `after` (null: from the start) below `bound`:
   * whole log entries, about `maxRecords` records (at least one entry, however large),
   * measured at or after `fromMs` when given. `last` is the position the next page starts
   * after (null: nothing left below bound).
   */
  page(vin: string, after: StreamPos | null, bound: number, maxRecords: number, fromMs: number | null): Promise<{ records: StreamRecord[]; last: StreamPos | null }>;
  /**
   * Where a stream from `fromMs` (measurement time) begins: just before the first entry that
   * can hold such records, or just before the current horizon when that is lower (a
   * transaction below it may still commit such records).
   */
  startFor(vin: string, fromMs: number, marginMs: number): Promise<StreamPos>;
  /** Entries with tx <= this were dropped by retention. */
  trimmedBelow(): Promise<number>;
  /** Drops entries of transactions started before `beforeMs`. */
  trim(beforeMs: number): Promise<number>;
}

/** A log entry with its keys: measurement times (µs since 1970) and seqs, in entry order. */
interface Entry {
  vin: string;
  tx: number;
  us: number[];
  seqs: number[];
  /** The entry's `at` (its transaction's now(), which is also the received_at of every row it lists), ms; null when not read. */
  atMs: number | null;
}

/** Lines are built one at a time into this buffer (no line is longer than a plan's maxLineBytes, ~1.5 kB). */
const LINE_BYTES = 16 * 1024;

/**
 * `recent`: the rows this process's writer just committed (stream/held-rows.ts); the
 * live tail takes the records of those transactions from there instead of the database.
 */
export function createStreamLogRepo(db: Db, opts: { recent?: RecentRows | null } = {}): StreamLogRepo {
  const recent = opts.recent ?? null;
  const copyOut = db.copy ? db.copy.copyOut.bind(db.copy) : undefined;
  const line = Buffer.allocUnsafe(LINE_BYTES);
  // Plans per (vehicle, projection): built once, reused for every record of that stream.
  const plans = new Map<string, NdjsonPlan>();
  const planFor = (vin: string, p: LineProjection): NdjsonPlan => {
    const key = `${vin}|${p.categories.join(',')}|${p.nulled.join(',')}|${p.fields?.join(',') ?? '*'}`;
    let plan = plans.get(key);
    if (!plan) {
      if (plans.size >= 20_000) plans.clear();
      // A field-level grant's stream writes only its fields (the rows, shared by every stream, hold all).
      plan = ndjsonPlan(vin, p.categories, { layout: ALL, nulled: p.nulled, fields: p.fields ?? null });
      plans.set(key, plan);
    }
    return plan;
  };
  const select = ndjsonPlan('', ALL).select;

  /** The same through parameters and rows (PGlite): the export's row mapping. */
  async function viaRows(sql: string, params: unknown[]): Promise<StreamRecord[]> {
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
          const rx = row.received_at as Date | null;
          const o: Record<string, unknown> = { vin, seq: Number(row.seq), recordedAt: at.toISOString(), receivedAt: rx ? rx.toISOString() : null };
          for (const g of ALL) if (p.categories.includes(g)) o[g] = p.nulled.includes(g) ? null : onlyFields(groupOf(row, g), g, p.fields ?? null);
          return JSON.stringify(o);
        },
        line(p, out, at) {
          return at + out.write(this.json(p), at, 'latin1');
        },
      };
    });
  }

  /**
   * Records of log entries on pg. The keys come from the entries; the rows are read by
   * time ranges of each vehicle's primary key (one index range scan per vehicle and
   * cluster of times) and put in cursor order here. Probing the key of each record
   * instead costs an index descent through the hypertable's chunk append per record:
   * measured 50,000 records of one vehicle in ~1 s against ~0.12 s by ranges.
   */
  async function recordsOf(entries: readonly Entry[], after: StreamPos | null, fromMs: number | null): Promise<StreamRecord[]> {
    const ranges: string[] = [];
    const byVin = new Map<string, number[]>();
    for (const e of entries) {
      let us = byVin.get(e.vin);
      if (!us) byVin.set(e.vin, (us = []));
      for (const u of e.us) us.push(u);
    }
    for (const [vin, us] of byVin) {
      for (const [lo, hi] of timeRanges(us, RANGE_GAP_US, MAX_RANGES)) ranges.push(`(${sqlLiteral(vin)}, ${sqlLiteral(isoMicros(lo))}::timestamptz, ${sqlLiteral(isoMicros(hi))}::timestamptz)`);
    }
    if (ranges.length === 0) return [];
    const since = fromMs === null ? '' : ` AND t.recorded_at >= ${sqlLiteral(new Date(fromMs).toISOString())}::timestamptz`;
    // COPY takes no parameters: VINs are validated ([A-HJ-NPR-Z0-9]{17}) and quoted anyway.
    // One index range scan per (vehicle, range), whatever the size of the chunks: OFFSET 0
    // keeps the planner from flattening the subquery into a join, which with many ranges
    // it ran as a hash join over a sequential scan of the whole chunk (measured: 1,000
    // ranges of 10 records, 200,000 rows in the chunk: 110 ms by hash join, 54 ms by index;
    // the hash join's cost grows with the chunk, a tail read's should not).
    const b = await copyOut!(
      `COPY (SELECT ${select}, t.vin FROM (VALUES ${ranges.join(', ')}) r(r_vin, r_lo, r_hi)
         CROSS JOIN LATERAL (SELECT * FROM telemetry t WHERE t.vin = r.r_vin AND t.recorded_at >= r.r_lo AND t.recorded_at <= r.r_hi${since} OFFSET 0) t) TO STDOUT (FORMAT binary)`,
    );
    // Rows by vehicle and measurement time; the rare rows sharing both with another go by seq too.
    const byTime = new Map<string, number>();
    const shared = new Map<string, number>();
    for (const off of rowOffsets(b, copyDataStart(b))) {
      const k = rowKey(b, off);
      const key = `${lastText(b, off)}:${k.pgMicros}`;
      if (!byTime.has(key)) byTime.set(key, off);
      else shared.set(`${key}:${k.seq}`, off);
    }
    const records: StreamRecord[] = [];
    for (const e of entries) {
      const vin = e.vin;
      for (let i = 0; i < e.us.length; i++) {
        const ord = i + 1;
        if (after && e.tx === after.tx && ord <= after.ord) continue;
        const pgMicros = e.us[i]! - PG_EPOCH_US;
        const seq = e.seqs[i]!;
        const key = `${vin}:${pgMicros}`;
        const first = byTime.get(key);
        // Absent: erased since, or measured before ?from=.
        const off = first !== undefined && rowKey(b, first).seq === seq ? first : shared.get(`${key}:${seq}`);
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
          line(p, out, at) {
            // fill ends the line with a newline: the end is before it.
            const r = planFor(vin, p).fill(b, [off], 0, out, at);
            if (r.next === 0) throw new RangeError(`no room for a line at ${at} of ${out.length} bytes`);
            return r.bytes - 1;
          },
        });
      }
    }
    return records;
  }

  /**
   * Entries of `sql` (selecting vin, tx, ats, seqs; numbers and VINs written into it as
   * literals: COPY takes no parameters) by vin, then tx, with the keys as numbers. By binary
   * COPY: the times arrive as µs, with no conversion per element in the database and no
   * text to split here (measured on 40 entries of 10 keys: 1.6 ms a read with the times
   * converted in SQL and the arrays as text, 0.8 ms with the arrays as they are stored).
   * The ORDER BY names the subquery's xid8 column: "100000" sorts before "99999" as text
   * (the order broke whenever a read spanned a power of ten of transaction ids).
   */
  async function entriesOf(sql: string): Promise<Entry[]> {
    return entryRows(await copyOut!(`COPY (SELECT e.vin, e.tx::text::int8, e.ats, e.seqs, e.at FROM (${sql}) e ORDER BY e.vin, e.tx) TO STDOUT (FORMAT binary)`), 5);
  }

  /**
   * The records of a live read's entries (of the vehicles followed, which a long list
   * leaves to this filter: see vinList): held rows where this process holds them.
   */
  async function liveRecords(all: Entry[], vins: readonly string[], hi: number): Promise<StreamRecord[]> {
    const wanted = vins.length > VIN_LIST_MAX ? new Set(vins) : null;
    const entries = wanted ? all.filter((e) => wanted.has(e.vin)) : all;
    if (!recent) return recordsOf(entries, null, null);
    const records = await recordsHeldOrRead(entries, recent);
    // The tail reads on from hi: what it held below is not asked for again (a resume's backlog reads the database).
    recent.trimBelow(hi);
    return records;
  }

  /**
   * The records of `entries` (in their order): of an entry whose transaction this process
   * wrote and whose rows it still holds, from memory; of every other, from the database.
   */
  async function recordsHeldOrRead(entries: readonly Entry[], held: RecentRows): Promise<StreamRecord[]> {
    const mem = entries.map((e): StreamRecord[] | null => {
      const out: StreamRecord[] = [];
      for (let i = 0; i < e.us.length; i++) {
        const row = held.get(e.tx, e.vin, e.us[i]! / 1000, e.seqs[i]!);
        if (!row) return null;
        out.push(new HeldRecord(e.tx, i + 1, row, e.atMs));
      }
      return out;
    });
    const missing = entries.filter((_, i) => mem[i] === null);
    const read = missing.length ? await recordsOf(missing, null, null) : [];
    held.counts.read += read.length;
    const out: StreamRecord[] = [];
    let k = 0;
    for (let i = 0; i < entries.length; i++) {
      const m = mem[i];
      if (m) {
        for (const r of m) out.push(r);
        held.counts.held += m.length;
        continue;
      }
      // recordsOf keeps its entries' order: this entry's records come next (an erased row is absent).
      const e = entries[i]!;
      while (k < read.length && read[k]!.tx === e.tx && read[k]!.vin === e.vin) out.push(read[k++]!);
    }
    return out;
  }

  const rowsSelect = ['seq', 'recorded_at', 'received_at', ...ALL.flatMap((g) => [GROUP_FLAG[g], ...FIELD_COLUMNS.filter((c) => c.group === g).map((c) => c.column)])].join(', ');
  // PGlite (no COPY): each key of an entry is looked up by the primary key, one probe per record. Written as
  // a LATERAL subquery with LIMIT 1 (the key is unique anyway) so the planner cannot turn
  // it around: with the statistics of a young table (one row per vehicle, it believes) it
  // chose to scan all of the vehicle's rows and rescan the keys for each, 20 s for 400
  // records here.
  const JOIN = `CROSS JOIN LATERAL unnest(l.ats, l.seqs) WITH ORDINALITY AS k(k_at, k_seq, ord)
    CROSS JOIN LATERAL (SELECT * FROM telemetry t WHERE t.vin = l.vin AND t.recorded_at = k.k_at AND t.seq = k.k_seq LIMIT 1) t`;

  const repo: StreamLogRepo = {
    async horizon() {
      // pg_snapshot_xmin alone would do, but it counts every database of the server: one
      // long transaction anywhere (a bulk load, a forgotten BEGIN in psql) would hold up
      // every stream. Only transactions of this database can write this log, so of the
      // transactions running at the snapshot, only those a backend of this database still
      // runs (asked after the snapshot was taken) hold the horizon back; every other one
      // has ended by then, and a later read sees its entries if it committed any.
      const r = await db.query<{ xmax: string; xip: string[] }>(
        `SELECT pg_snapshot_xmax(s)::text AS xmax, ARRAY(SELECT pg_snapshot_xip(s)::text) AS xip FROM (SELECT pg_current_snapshot() AS s) x`,
      );
      const snap = r.rows[0]!;
      // Nothing running: every entry lies below xmax. One at or above it is of a transaction
      // younger than this read, whose commit wakes the tail by itself.
      if (snap.xip.length === 0) return { h: Number(snap.xmax), waiting: false };
      // In a second statement (so pg_stat_activity is read after the snapshot was taken): the
      // oldest transaction of the snapshot a backend of this database still runs (xip holds
      // xid8, epoch << 32 | xid; backend_xid the 32-bit xid), and whether committed entries
      // wait at or above it.
      // "Waiting" compares with the newest entry (one descent of the tx index): an EXISTS
      // over tx >= h was planned as a sequential scan that stops at the first match, and the
      // matches lie at the end of the table (measured: 88 ms against 0.8 ms over 400,000
      // entries). The activity function rather than its view: the view's joins cost more to
      // plan (~1 ms a call) than the read itself.
      const q = await db.query<{ h: string; waiting: boolean }>(
        `SELECT h::text AS h, coalesce((SELECT max(tx) FROM stream_log) >= h::text::xid8, false) AS waiting FROM (
           SELECT coalesce(min(x::int8), $1::int8) AS h FROM unnest($2::text[]) AS u(x)
            WHERE x::int8 % 4294967296 IN (SELECT a.backend_xid::text::int8 FROM pg_stat_get_activity(NULL) a
                                            WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND a.backend_xid IS NOT NULL)) s`,
        [snap.xmax, snap.xip],
      );
      return { h: Number(q.rows[0]!.h), waiting: q.rows[0]!.waiting };
    },

    async range(lo, hi, vins) {
      if (vins.length === 0 || hi <= lo) return [];
      if (copyOut) return liveRecords(await entriesOf(`SELECT vin, tx, ats, seqs, at FROM stream_log WHERE tx >= ${xid8(lo)} AND tx < ${xid8(hi)}${vinList(vins)}`), vins, hi);
      return viaRows(
        `SELECT ${rowsSelect}, l.vin AS l_vin, l.tx::text AS l_tx, k.ord FROM stream_log l ${JOIN}
          WHERE l.tx >= $1::text::xid8 AND l.tx < $2::text::xid8 AND l.vin = ANY($3::text[])
          ORDER BY l.vin, l.tx, k.ord`,
        [String(lo), String(hi), vins],
      );
    },

    async tail(lo, vins) {
      if (!copyOut) {
        const { h, waiting } = await repo.horizon();
        return { h, waiting, records: h > lo ? await repo.range(lo, h, vins) : [] };
      }
      // One statement: its snapshot gives the horizon, and the same snapshot reads the
      // entries below it, so every transaction below h has ended and is seen (or wrote
      // nothing here). Of the transactions running at the snapshot, only those a backend
      // of ANOTHER database runs are passed over (they cannot write this log, whenever
      // that is asked); one that ended after the snapshot still holds h below it, as it
      // must: this snapshot cannot see what it wrote. (horizon() asks in a second
      // statement which ones still run, and so can pass those too: two round trips more.)
      // The first row carries h and the newest entry's tx; entries follow, if any.
      const b = await copyOut(
        `COPY (WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
           hz AS MATERIALIZED (SELECT coalesce(
             (SELECT min(x::text::int8) FROM s, pg_snapshot_xip(s.s) AS x
               WHERE x::text::int8 % 4294967296 NOT IN (
                 SELECT a.backend_xid::text::int8 FROM pg_stat_get_activity(NULL) a
                  WHERE a.backend_xid IS NOT NULL AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))),
             (SELECT pg_snapshot_xmax(s.s)::text::int8 FROM s)) AS h)
         SELECT NULL::text AS vin, hz.h AS tx, NULL::timestamptz[] AS ats, NULL::int8[] AS seqs, NULL::timestamptz AS at, (SELECT max(tx) FROM stream_log)::text::int8 AS top, 0 AS k FROM hz
         UNION ALL
         SELECT e.vin, e.tx::text::int8, e.ats, e.seqs, e.at, NULL, 1 FROM stream_log e
          WHERE e.tx >= ${xid8(lo)} AND e.tx < (SELECT h FROM hz)::text::xid8${vins.length === 0 ? ' AND false' : vinList(vins)}
         ORDER BY k, vin, tx) TO STDOUT (FORMAT binary)`,
      );
      const rows = entryRows(b, 7);
      const head = rows.shift();
      if (!head) throw new Error('the tail read returned no horizon row');
      const h = head.tx;
      return { h, waiting: head.top !== null && head.top >= h, records: h > lo ? await liveRecords(rows, vins, h) : [] };
    },

    async page(vin, after, bound, maxRecords, fromMs) {
      const a = after ?? { tx: 0, ord: 0 };
      // The page's entries: whole entries in tx order while fewer than maxRecords records
      // came before (each entry holds at least one record, so maxRecords entries suffice).
      const entries = `SELECT tx, ats, seqs, at FROM (
           SELECT tx, ats, seqs, at, sum(cardinality(seqs)) OVER (ORDER BY tx) - cardinality(seqs) AS before
             FROM (SELECT tx, ats, seqs, at FROM stream_log WHERE vin = $1 AND tx >= $2::text::xid8 AND tx < $3::text::xid8
                     AND (tx > $2::text::xid8 OR cardinality(seqs) > $4::int8) ORDER BY tx LIMIT $5) e) x
         WHERE before < $5`;
      const params = [vin, String(a.tx), String(bound), a.ord, maxRecords];
      if (copyOut) {
        // The same statement with its parameters written in (COPY takes none).
        const literal = [sqlLiteral(vin), `'${safeInt(a.tx)}'`, `'${safeInt(bound)}'`, String(safeInt(a.ord)), String(safeInt(maxRecords))];
        const es = await entriesOf(`SELECT ${literal[0]}::text AS vin, tx, ats, seqs, at FROM (${entries.replace(/\$([1-5])/g, (_, k: string) => literal[Number(k) - 1]!)}) p`);
        if (es.length === 0) return { records: [], last: null };
        return { records: await recordsOf(es, a, fromMs), last: { tx: es[es.length - 1]!.tx, ord: Number.MAX_SAFE_INTEGER } };
      }
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
      // The horizon first. Every transaction below it has ended, so the query after it sees
      // all their entries; one at or above it may commit later, and below entries already
      // visible (transaction ids are not commit-ordered): starting at the lower of the two
      // loses neither. (Starting at the first visible entry lost a transaction that was
      // still running; starting live when none was visible lost the ones that committed
      // between this query and the live start.)
      const { h } = await repo.horizon();
      const r = await db.query<{ tx: string | null }>(
        `SELECT min(tx)::text AS tx FROM stream_log WHERE vin = $1 AND at >= $2`,
        [vin, new Date(fromMs - marginMs)],
      );
      const tx = r.rows[0]?.tx;
      return { tx: tx ? Math.min(Number(tx), h) : h, ord: 0 };
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
  return repo;
}

/**
 * The condition naming the vehicles a live read wants, or none when they are many: a list
 * of a thousand VINs cost the database more to plan and match than the entries it left out
 * (measured: 3.8 ms against 1.6 ms a read, 40 entries of 1,000 vehicles); liveRecords
 * filters those itself.
 */
function vinList(vins: readonly string[]): string {
  return vins.length > VIN_LIST_MAX ? '' : ` AND vin IN (${vins.map(sqlLiteral).join(', ')})`;
}

/**
 * Log entries from a binary COPY of rows (vin, tx int8, ats timestamptz[], seqs int8[], at
 * timestamptz, then with 7 fields: top int8, k): the keys as numbers, the times in µs since
 * 1970. A null vin (the tail's first row) gives an entry without keys, and `top` its sixth field.
 */
function entryRows(b: Buffer, fields: 5 | 7): (Entry & { top: number | null })[] {
  const out: (Entry & { top: number | null })[] = [];
  for (const row of rowOffsets(b, copyDataStart(b))) {
    if (b.readInt16BE(row) !== fields) throw new Error(`a stream log row of ${b.readInt16BE(row)} fields, expected ${fields}`);
    let o = row + 2;
    const vinLen = b.readInt32BE(o);
    const vin = vinLen < 0 ? '' : b.toString('latin1', o + 4, o + 4 + vinLen);
    o += 4 + Math.max(vinLen, 0);
    const tx = readInt64(b, o + 4);
    o += 12;
    const us = int8Array(b, o, PG_EPOCH_US);
    o += 4 + Math.max(b.readInt32BE(o), 0);
    const seqs = int8Array(b, o, 0);
    o += 4 + Math.max(b.readInt32BE(o), 0);
    const atMs = b.readInt32BE(o) === 8 ? Math.floor(readInt64(b, o + 4) / 1000) + PG_EPOCH_MS : null;
    o += 4 + Math.max(b.readInt32BE(o), 0);
    const top = fields === 7 && b.readInt32BE(o) === 8 ? readInt64(b, o + 4) : null;
    out.push({ vin, tx, us, seqs, atMs, top });
  }
  return out;
}

/** A group's values narrowed to `fields` (catalogue names; null: all of them). */
function onlyFields(v: StoredValues | null, g: Group, fields: FieldList): StoredValues | null {
  if (v === null || fields === null) return v;
  const out: StoredValues = {};
  for (const [k, x] of Object.entries(v)) if (fields.includes(`${g}.${k}`)) out[k] = x;
  return out;
}

/** A record of a held row (a class: no closure per record). */
class HeldRecord implements StreamRecord {
  readonly vin: string;
  readonly recordedAtMs: number;
  constructor(
    readonly tx: number,
    readonly ord: number,
    private readonly row: CopyRow,
    private readonly receivedAtMs: number | null,
  ) {
    this.vin = row.vin;
    this.recordedAtMs = row.recordedAtMs;
  }
  json(p: LineProjection): string {
    return lineOf(this.row, p, this.receivedAtMs);
  }
  line(p: LineProjection, out: Buffer, at: number): number {
    return lineWriter(p)(this.row, out, at, this.receivedAtMs);
  }
}

/**
 * The elements of a one-dimensional binary int8[] or timestamptz[] (both 8-byte integers)
 * whose field starts at `o` (its length), plus `add`, as numbers.
 */
function int8Array(b: Buffer, o: number, add: number): number[] {
  if (b.readInt32BE(o) < 12 || b.readInt32BE(o + 4) === 0) return []; // no dimensions: empty
  let p = o + 4 + 12;
  const n = b.readInt32BE(p);
  p += 8;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    out[i] = readInt64(b, p + 4) + add;
    p += 12;
  }
  return out;
}

/** A position's integer, checked before it is written into SQL. */
function safeInt(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a stream position: ${n}`);
  return n;
}

/** A transaction id as an xid8 literal. */
function xid8(n: number): string {
  return `'${safeInt(n)}'::xid8`;
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

/** The last field of a binary COPY row, as text (the row's vin). */
function lastText(b: Buffer, row: number): string {
  const n = b.readInt16BE(row);
  let o = row + 2;
  for (let i = 0; i < n - 1; i++) {
    const len = b.readInt32BE(o);
    o += 4 + (len > 0 ? len : 0);
  }
  const len = b.readInt32BE(o);
  return b.toString('latin1', o + 4, o + 4 + len);
}
